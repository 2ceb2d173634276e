//! The recorded outcomes of commands sent with an `Idempotency-Key`
//! (`command.outcomes`): written in the transaction that appends the
//! command's events, read by a retry under the same service lock, so a
//! command takes effect once whatever happened to its first attempt.

use forum_events::Service;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::Result;

/// The digest of the request a command id was first used for.
pub type Digest = [u8; 32];

/// A command's recorded outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The command id.
    pub command_id: Uuid,
    /// The service that decided it.
    pub service: String,
    /// The request the id was first used for.
    pub request_digest: Vec<u8>,
    /// The encoded reply.
    pub reply: Vec<u8>,
}

/// The outcomes recorded for any of `ids`, in no particular order.
///
/// # Errors
/// Database failure.
pub async fn find(tx: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Recorded>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "select command_id, service, request_digest, reply from command.outcomes
         where command_id = any($1)",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Recorded {
                command_id: r.try_get("command_id")?,
                service: r.try_get("service")?,
                request_digest: r.try_get("request_digest")?,
                reply: r.try_get("reply")?,
            })
        })
        .collect()
}

/// Records outcomes of `service`'s commands: (command id, request digest,
/// encoded reply), in one multi-row insert.
///
/// # Errors
/// Database failure; a unique violation when an id is already recorded
/// (the same key used at the same time with another service).
pub async fn record(
    tx: &mut PgConnection,
    service: Service,
    outcomes: &[(Uuid, Digest, Vec<u8>)],
) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = outcomes.iter().map(|o| o.0).collect();
    let digests: Vec<Vec<u8>> = outcomes.iter().map(|o| o.1.to_vec()).collect();
    let replies: Vec<&[u8]> = outcomes.iter().map(|o| o.2.as_slice()).collect();
    sqlx::query(
        "insert into command.outcomes (command_id, service, request_digest, reply)
         select id, $2, digest, reply from unnest($1::uuid[], $3::bytea[], $4::bytea[])
             as t(id, digest, reply)",
    )
    .bind(&ids)
    .bind(service.as_str())
    .bind(&digests)
    .bind(&replies)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
