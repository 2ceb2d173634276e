//! Who is online, across every gateway.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

/// The online users as this gateway knows them: a user is online while any
/// of their sockets is open on any gateway. Cloning is shallow.
#[derive(Clone, Default)]
pub struct Presence {
    inner: Arc<RwLock<HashMap<Uuid, u32>>>,
}

impl Presence {
    /// Whether `user` has an open socket on some gateway.
    pub fn is_online(&self, user: Uuid) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&user)
            .is_some_and(|n| *n > 0)
    }
}
