//! Sending commands to the services over NATS request-reply.

use std::time::Duration;

use bytes::Bytes;
use forum_commands::{Envelope, Reply};
use forum_events::{subject::Subjects, Service};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::metrics::Metrics;

/// The gateway's side of the command bus.
#[derive(Clone)]
pub struct Bus {
    nats: async_nats::Client,
    subjects: Subjects,
    timeout: Duration,
    metrics: Metrics,
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
    pub fn new(
        nats: async_nats::Client,
        subjects: Subjects,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Bus {
            nats,
            subjects,
            timeout,
            metrics,
        }
    }

    /// Sends `command` to `service` as `<prefix>.cmd.<service>.<name>` and
    /// waits for the reply.
    ///
    /// # Errors
    /// The service's rejection as its API error; 503 `unavailable` when no
    /// instance answers in time.
    pub async fn send<C: Serialize, D: DeserializeOwned>(
        &self,
        service: Service,
        name: &str,
        correlation_id: Uuid,
        actor: Option<Uuid>,
        command: C,
    ) -> Result<Accepted<D>> {
        let envelope = Envelope {
            command_id: Uuid::now_v7(),
            correlation_id,
            actor,
            command,
        };
        let subject = self.subjects.command(service, name);
        self.metrics.command_sent();
        let request = self
            .nats
            .request(subject.clone(), Bytes::from(envelope.to_bytes()));
        let msg = match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(msg)) => msg,
            Ok(Err(e)) => {
                self.metrics.command_unavailable();
                return Err(ApiError::Unavailable(format!("{subject}: {e}")));
            }
            Err(_) => {
                self.metrics.command_unavailable();
                return Err(ApiError::Unavailable(format!(
                    "{subject}: no reply in time"
                )));
            }
        };
        match Reply::<D>::from_bytes(&msg.payload) {
            Ok(Reply::Accepted { positions, data }) => Ok(Accepted { positions, data }),
            Ok(Reply::Rejected(r)) => Err(r.into()),
            Err(e) => Err(ApiError::Internal(format!(
                "undecodable reply on {subject}: {e}"
            ))),
        }
    }
}
