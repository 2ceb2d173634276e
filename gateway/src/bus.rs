//! Sending commands to the services over NATS request-reply.

use std::time::Duration;

use bytes::Bytes;
use forum_commands::{Envelope, Reply};
use forum_events::{subject::Subjects, Service};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::extract::Origin;
use crate::metrics::{self, CommandResult};

/// The gateway's side of the command bus.
#[derive(Clone)]
pub struct Bus {
    nats: async_nats::Client,
    subjects: Subjects,
    timeout: Duration,
}

/// An accepted command: the log positions it wrote, and its data.
pub struct Accepted<D> {
    /// (log, last position written).
    pub positions: Vec<(Service, u64)>,
    /// The reply data.
    pub data: D,
}

impl Bus {
    /// A bus over `nats`, waiting at most `timeout` for a reply.
    pub fn new(nats: async_nats::Client, subjects: Subjects, timeout: Duration) -> Self {
        Bus {
            nats,
            subjects,
            timeout,
        }
    }

    /// Sends `command` to `service` as `<prefix>.cmd.<service>.<name>` and
    /// waits for the reply. A request is sent as one command at most: a
    /// keyed request's command id is its key's.
    ///
    /// # Errors
    /// The service's rejection as its API error; 503 `unavailable` when no
    /// instance answers in time.
    pub async fn send<C: Serialize, D: DeserializeOwned>(
        &self,
        service: Service,
        name: &str,
        origin: Origin,
        actor: Option<Uuid>,
        command: C,
    ) -> Result<Accepted<D>> {
        // A keyed request's command id comes from its key, so a retry is
        // the same command to the service (which answers it its first
        // outcome); any other command gets a fresh id.
        let mut envelope = Envelope {
            command_id: origin.keyed.map_or_else(Uuid::now_v7, |k| k.command_id),
            correlation_id: origin.correlation_id,
            actor,
            command,
            timeout_ms: None,
            request_digest: origin.keyed.map(|k| k.digest),
        };
        let subject = self.subjects.command(service, name);
        let sent = std::time::Instant::now();
        // "No responders" means no instance is subscribed right now (one is
        // starting or restarting): retry until the deadline.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pause = std::time::Duration::from_millis(5);
        let msg = loop {
            // The service drops slow work it could only finish after we
            // stop waiting: tell it how long that is, on every try.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            envelope.timeout_ms = Some(u32::try_from(left.as_millis()).unwrap_or(u32::MAX));
            let payload = Bytes::from(envelope.to_bytes());
            let request = self.nats.request(subject.clone(), payload);
            match tokio::time::timeout_at(deadline, request).await {
                Ok(Ok(msg)) => break msg,
                Ok(Err(e))
                    if e.kind() == async_nats::RequestErrorKind::NoResponders
                        && tokio::time::Instant::now() + pause < deadline =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                Ok(Err(e)) => {
                    metrics::command(service, CommandResult::Unavailable, sent.elapsed());
                    return Err(ApiError::Unavailable(format!("{subject}: {e}")));
                }
                Err(_) => {
                    metrics::command(service, CommandResult::Unavailable, sent.elapsed());
                    return Err(ApiError::Unavailable(format!(
                        "{subject}: no reply in time"
                    )));
                }
            }
        };
        let took = sent.elapsed();
        match Reply::<D>::from_bytes(&msg.payload) {
            Ok(Reply::Accepted { positions, data }) => {
                metrics::command(service, CommandResult::Accepted, took);
                Ok(Accepted { positions, data })
            }
            Ok(Reply::Rejected(r)) => {
                metrics::command(service, CommandResult::Rejected, took);
                Err(r.into())
            }
            Err(e) => Err(ApiError::Internal(format!(
                "undecodable reply on {subject}: {e}"
            ))),
        }
    }
}
