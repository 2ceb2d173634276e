//! Users' nicknames for the services that write them into events (posts,
//! comments, messages), from `read.users`, remembered by the process.
//!
//! A nickname never changes once registered and a user is never removed,
//! so a nickname read once stays right for good: the look-up is a query
//! only the first time a process meets a user (an unknown id is not
//! remembered, since it may be a registration still on its way). The
//! memory is bounded: past [`Nicknames::CAPACITY`] users it starts over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::wire::Rejection;

/// The nicknames a service has met, shared by its tasks (cloning is
/// shallow).
#[derive(Clone)]
pub struct Nicknames {
    pool: PgPool,
    known: Arc<Mutex<HashMap<Uuid, String>>>,
}

impl Nicknames {
    /// How many users a process remembers before it starts over.
    pub const CAPACITY: usize = 100_000;

    /// Look-ups through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Nicknames {
            pool,
            known: Arc::default(),
        }
    }

    /// The nicknames of those of `ids` that are users (one query for the
    /// ones this process has not met yet, none when it has met them all).
    ///
    /// # Errors
    /// `Rejection::Unavailable` when Postgres cannot be asked.
    pub async fn of(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>, Rejection> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                match known.get(id) {
                    Some(n) => {
                        found.insert(*id, n.clone());
                    }
                    None => missing.push(*id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let rows = sqlx::query("select id, nickname from read.users where id = any($1)")
            .bind(&missing)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "nickname look-up failed");
                Rejection::Unavailable
            })?;
        let fresh: Vec<(Uuid, String)> = rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("nickname")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| {
                tracing::error!(error = %e, "nickname look-up failed");
                Rejection::Internal
            })?;
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() + fresh.len() > Self::CAPACITY {
            known.clear();
        }
        for (id, nickname) in fresh {
            known.insert(id, nickname.clone());
            found.insert(id, nickname);
        }
        Ok(found)
    }

    /// The nickname of `user`.
    ///
    /// # Errors
    /// `Rejection::Unauthorized` when `user` is not a user (an actor whose
    /// account does not exist); `Unavailable` as [`Nicknames::of`].
    pub async fn actor(&self, user: Uuid) -> Result<String, Rejection> {
        self.of(&[user])
            .await?
            .remove(&user)
            .ok_or(Rejection::Unauthorized)
    }
}
