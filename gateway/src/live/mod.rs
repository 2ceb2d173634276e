//! The live feed: `GET /api/ws`, fan-out of events to sockets, resume from
//! a cursor, presence and typing across gateways.
//!
//! # Layout
//! - [`feed`]: one NATS subscription per event subject for the whole
//!   gateway, made gap-free by reading missed positions from the logs.
//! - [`frames`]: what each event becomes on the wire and who gets it,
//!   serialized once.
//! - [`hub`]: this gateway's sockets, their bounded queues, the feed
//!   cursor, slow-consumer and logout closes.
//! - [`cursor`]: the opaque resume cursor (a position per log).
//! - [`socket`]: one socket: upgrade (origin check, per-user limit),
//!   `hello`, resume from the logs, then live frames, pings, client
//!   frames, the session's expiry and the write deadline.
//! - [`origin`]: which pages may open a cookie-authenticated socket.
//! - [`presence`]: who is online on any gateway, with expiry of dead ones.
//! - [`typing`]: typing indicators between gateways, and their rate limit.

pub mod cursor;
pub mod feed;
pub mod frames;
pub mod hub;
pub mod origin;
pub mod presence;
pub mod socket;
pub mod typing;

use std::sync::Arc;
use std::time::Duration;

use forum_events::subject::Subjects;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub use origin::AllowedOrigins;
pub use presence::Presence;

use crate::error::Result;
use hub::Hub;
use typing::Typing;

/// Tunables of the live feed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Frames queued per socket before it is closed as a slow consumer;
    /// a resume waits for room in a queue of this size instead.
    pub queue: usize,
    /// Ping interval; a socket that answered nothing since the last ping
    /// is closed.
    pub ping: Duration,
    /// Largest client frame accepted; larger ones close the socket (1009).
    pub max_message: usize,
    /// Most events a resume replays; an older cursor gets `resumed: false`.
    pub resume_max: u64,
    /// Presence heartbeat between gateways.
    pub heartbeat: Duration,
    /// How often the feed compares itself with the logs' heads.
    pub check: Duration,
    /// Most sockets one user holds on this gateway; one more upgrade is
    /// refused with `429` before it happens.
    pub max_per_user: usize,
    /// Origins besides the gateway's own that may open a
    /// cookie-authenticated socket.
    pub allowed_origins: AllowedOrigins,
    /// How long one frame (or the flush after a batch) may take to be
    /// written to the client's connection; a socket that does not read its
    /// frames is closed with 4008 like a slow consumer.
    pub write_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue: 1024,
            ping: Duration::from_secs(20),
            max_message: 4096,
            resume_max: 10_000,
            heartbeat: Duration::from_secs(10),
            check: Duration::from_secs(1),
            max_per_user: 16,
            allowed_origins: AllowedOrigins::default(),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The live side of a gateway. Cloning is shallow.
#[derive(Clone)]
pub struct Live {
    /// This gateway's sockets.
    pub hub: Arc<Hub>,
    /// Typing indicators out.
    pub typing: Typing,
    /// Tunables.
    pub settings: Arc<Settings>,
    /// The presence task, awaited by [`Live::drain`]: its last act is
    /// telling the other gateways that this one's users are gone.
    presence_task: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Live {
    /// Starts the feed, presence and typing tasks; they stop with `stop`,
    /// closing every socket with 1001 ("going away").
    ///
    /// # Errors
    /// When NATS refuses a subscription or Postgres is unreachable.
    pub async fn start(
        settings: Settings,
        pool: PgPool,
        nats: async_nats::Client,
        subjects: &Subjects,
        presence: Presence,
        stop: watch::Receiver<bool>,
    ) -> Result<Live> {
        let (feed, cursor) = feed::start(pool, nats.clone(), subjects).await?;
        let (local_tx, local_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(cursor, local_tx));
        tokio::spawn(feed.run(hub.clone(), settings.check, stop.clone()));
        let tracker = presence::Tracker::new(
            Uuid::new_v4(),
            presence,
            hub.clone(),
            nats.clone(),
            subjects.gateway("presence"),
        );
        let heartbeat = settings.heartbeat;
        let presence_stop = stop.clone();
        let presence_task = tokio::spawn(async move {
            if let Err(e) = tracker.run(local_rx, heartbeat, presence_stop).await {
                tracing::error!(error = %e, "presence stopped");
            }
        });
        let typing = Typing::new(nats, subjects.gateway("typing"));
        let typing_task = typing.clone();
        let typing_hub = hub.clone();
        let typing_stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = typing_task.run(typing_hub, typing_stop).await {
                tracing::error!(error = %e, "typing stopped");
            }
        });
        let closing = hub.clone();
        let mut stop = stop;
        tokio::spawn(async move {
            if stop.wait_for(|s| *s).await.is_ok() {
                closing.close_all(hub::GOING_AWAY);
            }
        });
        Ok(Live {
            hub,
            typing,
            settings: Arc::new(settings),
            presence_task: Arc::new(tokio::sync::Mutex::new(Some(presence_task))),
        })
    }

    /// Waits (at most `within`) until every socket has closed and the
    /// other gateways have been told this one's users are gone; call after
    /// the stop signal, which asks for both. (A process that exited before
    /// the presence task published its goodbye would leave its users
    /// online elsewhere until their presence expires.)
    pub async fn drain(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.hub.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // At least a second for the goodbye, however long the sockets took.
        let until = deadline.max(tokio::time::Instant::now() + Duration::from_secs(1));
        if let Some(task) = self.presence_task.lock().await.take() {
            let _ = tokio::time::timeout_at(until, task).await;
        }
    }
}
