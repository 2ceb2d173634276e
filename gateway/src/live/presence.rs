//! Who is online, across every gateway.
//!
//! Each gateway tells the others, on `<prefix>.gw.presence`, when a user's
//! first socket opens on it and when their last one closes, and sends a
//! snapshot of its users every heartbeat. A gateway not heard from for
//! [`EXPIRY_FACTOR`] heartbeats is taken for dead and its users go offline;
//! one that stops cleanly says so at once. A starting gateway asks the
//! others for their snapshots. `presence` frames go out on changes of a
//! user's overall state only.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use forum_events::codec;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use uuid::Uuid;

use super::frames;
use super::hub::{Hub, LocalPresence};
use futures::StreamExt;

/// A gateway is taken for dead after this many heartbeats of silence.
pub const EXPIRY_FACTOR: f64 = 2.5;

/// Users per snapshot message (16 bytes each: well under NATS's 1 MB).
const SNAPSHOT_CHUNK: usize = 8_192;

/// The online users as this gateway knows them. Cloning is shallow.
#[derive(Clone, Default)]
pub struct Presence {
    /// Per user, on how many gateways they have a socket.
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

    /// Counts one more gateway for `user`; true when they just came online.
    fn add(&self, user: Uuid) -> bool {
        let mut m = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(user).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Counts one gateway less for `user`; true when they just went offline.
    fn sub(&self, user: Uuid) -> bool {
        let mut m = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(&user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                m.remove(&user);
                true
            }
            None => false,
        }
    }
}

/// What gateways tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Wire {
    /// A user's first socket opened on `gw`.
    Online { gw: Uuid, user: Uuid },
    /// A user's last socket closed on `gw`.
    Offline { gw: Uuid, user: Uuid },
    /// Part of `gw`'s full list of users; the last part completes it.
    Snapshot {
        gw: Uuid,
        epoch: u64,
        last: bool,
        users: Vec<Uuid>,
    },
    /// `gw` stops.
    Gone { gw: Uuid },
    /// `gw` started and asks for everyone's snapshot.
    Sync { gw: Uuid },
}

struct Remote {
    users: HashSet<Uuid>,
    pending: Option<(u64, HashSet<Uuid>)>,
    seen: Instant,
}

/// The presence task of one gateway.
pub struct Tracker {
    me: Uuid,
    view: Presence,
    hub: Arc<Hub>,
    nats: async_nats::Client,
    subject: String,
    local: HashSet<Uuid>,
    remote: HashMap<Uuid, Remote>,
    epoch: u64,
}

impl Tracker {
    /// A tracker for gateway `me`, publishing on `subject`.
    pub fn new(
        me: Uuid,
        view: Presence,
        hub: Arc<Hub>,
        nats: async_nats::Client,
        subject: String,
    ) -> Self {
        Tracker {
            me,
            view,
            hub,
            nats,
            subject,
            local: HashSet::new(),
            remote: HashMap::new(),
            epoch: 0,
        }
    }

    /// Runs until `stop` turns true, then tells the others this gateway
    /// is gone.
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub async fn run(
        mut self,
        mut local: mpsc::UnboundedReceiver<LocalPresence>,
        heartbeat: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), async_nats::SubscribeError> {
        let mut sub = self.nats.subscribe(self.subject.clone()).await?;
        self.publish(&Wire::Sync { gw: self.me }).await;
        let mut beat = tokio::time::interval(heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let expiry = heartbeat.mul_f64(EXPIRY_FACTOR);
        loop {
            tokio::select! {
                change = local.recv() => match change {
                    Some((user, online)) => self.local_change(user, online).await,
                    None => break,
                },
                msg = sub.next() => match msg {
                    Some(msg) => match codec::decode::<Wire>(&msg.payload) {
                        Ok(wire) => self.on_wire(wire).await,
                        Err(e) => tracing::warn!(error = %e, "undecodable presence message"),
                    },
                    None => break,
                },
                _ = beat.tick() => {
                    self.snapshot().await;
                    self.expire(expiry);
                }
                _ = stop.changed() => if *stop.borrow() { break },
            }
        }
        self.publish(&Wire::Gone { gw: self.me }).await;
        let _ = self.nats.flush().await;
        Ok(())
    }

    async fn publish(&self, wire: &Wire) {
        let payload = Bytes::from(codec::encode(wire));
        if let Err(e) = self.nats.publish(self.subject.clone(), payload).await {
            tracing::warn!(error = %e, "presence not published");
        }
    }

    fn changed(&self, user: Uuid, online: bool) {
        self.hub.broadcast(&frames::presence(user, online));
    }

    fn add(&self, user: Uuid) {
        if self.view.add(user) {
            self.changed(user, true);
        }
    }

    fn sub(&self, user: Uuid) {
        if self.view.sub(user) {
            self.changed(user, false);
        }
    }

    async fn local_change(&mut self, user: Uuid, online: bool) {
        if online {
            if self.local.insert(user) {
                self.add(user);
                self.publish(&Wire::Online { gw: self.me, user }).await;
            }
        } else if self.local.remove(&user) {
            self.sub(user);
            self.publish(&Wire::Offline { gw: self.me, user }).await;
        }
    }

    async fn snapshot(&mut self) {
        self.epoch += 1;
        let users: Vec<Uuid> = self.local.iter().copied().collect();
        let chunks: Vec<&[Uuid]> = if users.is_empty() {
            vec![&[]]
        } else {
            users.chunks(SNAPSHOT_CHUNK).collect()
        };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            self.publish(&Wire::Snapshot {
                gw: self.me,
                epoch: self.epoch,
                last: i + 1 == n,
                users: chunk.to_vec(),
            })
            .await;
        }
    }

    fn expire(&mut self, expiry: Duration) {
        let now = Instant::now();
        let dead: Vec<Uuid> = self
            .remote
            .iter()
            .filter(|(_, r)| now.duration_since(r.seen) > expiry)
            .map(|(gw, _)| *gw)
            .collect();
        for gw in dead {
            tracing::warn!(%gw, "gateway silent for too long; its users are offline");
            self.forget(gw);
        }
    }

    fn forget(&mut self, gw: Uuid) {
        if let Some(r) = self.remote.remove(&gw) {
            for user in r.users {
                self.sub(user);
            }
        }
    }

    async fn on_wire(&mut self, wire: Wire) {
        let gw = match &wire {
            Wire::Online { gw, .. }
            | Wire::Offline { gw, .. }
            | Wire::Snapshot { gw, .. }
            | Wire::Gone { gw }
            | Wire::Sync { gw } => *gw,
        };
        if gw == self.me {
            return;
        }
        if let Wire::Gone { .. } = wire {
            self.forget(gw);
            return;
        }
        let remote = self.remote.entry(gw).or_insert_with(|| Remote {
            users: HashSet::new(),
            pending: None,
            seen: Instant::now(),
        });
        remote.seen = Instant::now();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let mut sync = false;
        match wire {
            Wire::Online { user, .. } => {
                if let Some((_, p)) = &mut remote.pending {
                    p.insert(user);
                }
                if remote.users.insert(user) {
                    added.push(user);
                }
            }
            Wire::Offline { user, .. } => {
                if let Some((_, p)) = &mut remote.pending {
                    p.remove(&user);
                }
                if remote.users.remove(&user) {
                    removed.push(user);
                }
            }
            Wire::Snapshot {
                epoch, last, users, ..
            } => {
                match &mut remote.pending {
                    Some((e, p)) if *e == epoch => p.extend(users),
                    _ => remote.pending = Some((epoch, users.into_iter().collect())),
                }
                if last {
                    if let Some((_, full)) = remote.pending.take() {
                        removed.extend(remote.users.difference(&full).copied());
                        added.extend(full.difference(&remote.users).copied());
                        remote.users = full;
                    }
                }
            }
            Wire::Sync { .. } => sync = true,
            Wire::Gone { .. } => {}
        }
        for user in added {
            self.add(user);
        }
        for user in removed {
            self.sub(user);
        }
        if sync {
            self.snapshot().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_online_while_any_gateway_counts_them() {
        let p = Presence::default();
        let u = Uuid::new_v4();
        assert!(!p.is_online(u));
        assert!(p.add(u));
        assert!(!p.add(u));
        assert!(!p.sub(u));
        assert!(p.is_online(u));
        assert!(p.sub(u));
        assert!(!p.is_online(u));
        assert!(!p.sub(u));
    }

    #[test]
    fn wire_messages_survive_encoding() {
        let w = Wire::Snapshot {
            gw: Uuid::new_v4(),
            epoch: 3,
            last: true,
            users: vec![Uuid::new_v4()],
        };
        assert_eq!(codec::decode::<Wire>(&codec::encode(&w)), Ok(w));
    }
}
