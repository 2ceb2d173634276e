//! Typing indicators: `{"type":"typing","to","active"}` from a client
//! reaches only the addressee's sockets, on whichever gateway they are,
//! with the sender's nickname. The gateway holding the addressee's sockets
//! ends a typing state by itself [`TYPING_TIMEOUT`] after the last
//! `active: true`, so a sender that vanishes does not type forever. One
//! socket sends at most [`TYPING_PER_SECOND`] typing frames a second
//! ([`TypingRate`]); the socket answers the others with a `rate_limited`
//! error frame and drops them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use forum_events::codec;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::frames;
use super::hub::Hub;

/// How long a typing state lasts without a new `active: true`.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(5);

/// Typing frames one socket may send in any one second.
pub const TYPING_PER_SECOND: usize = 5;

/// The typing frames a socket sent in the last second: a sliding window,
/// so no second, however it is cut, holds more than
/// [`TYPING_PER_SECOND`] accepted frames.
#[derive(Debug, Default)]
pub struct TypingRate {
    accepted: VecDeque<Instant>,
}

impl TypingRate {
    /// Whether a typing frame arriving at `now` may go out; counts it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        while self
            .accepted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.accepted.pop_front();
        }
        if self.accepted.len() >= TYPING_PER_SECOND {
            return false;
        }
        self.accepted.push_back(now);
        true
    }
}

/// One typing change between gateways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Wire {
    from: Uuid,
    nickname: String,
    to: Uuid,
    active: bool,
}

/// Sends typing changes to every gateway. Cloning is shallow.
#[derive(Clone)]
pub struct Typing {
    nats: async_nats::Client,
    subject: String,
}

impl Typing {
    /// Typing over `nats` on `subject`.
    pub fn new(nats: async_nats::Client, subject: String) -> Self {
        Typing { nats, subject }
    }

    /// Tells every gateway that `from` is (or stopped) typing to `to`.
    pub async fn send(&self, from: Uuid, nickname: &str, to: Uuid, active: bool) {
        let wire = Wire {
            from,
            nickname: nickname.to_string(),
            to,
            active,
        };
        if let Err(e) = self
            .nats
            .publish(self.subject.clone(), Bytes::from(codec::encode(&wire)))
            .await
        {
            tracing::warn!(error = %e, "typing not published");
        }
    }

    /// Delivers typing changes to this gateway's sockets until `stop`.
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub async fn run(
        self,
        hub: Arc<Hub>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), async_nats::SubscribeError> {
        let mut sub = self.nats.subscribe(self.subject.clone()).await?;
        // (from, to) → (ends at, nickname)
        let mut active: HashMap<(Uuid, Uuid), (Instant, String)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = sub.next() => {
                    let Some(msg) = msg else { break };
                    let Ok(w) = codec::decode::<Wire>(&msg.payload) else {
                        tracing::warn!("undecodable typing message");
                        continue;
                    };
                    if !hub.has_user(w.to) {
                        active.remove(&(w.from, w.to));
                        continue;
                    }
                    let key = (w.from, w.to);
                    if w.active {
                        let ends = Instant::now() + TYPING_TIMEOUT;
                        if active.insert(key, (ends, w.nickname.clone())).is_none() {
                            hub.send_to_user(w.to, &frames::typing(w.from, &w.nickname, true));
                        }
                    } else if active.remove(&key).is_some() {
                        hub.send_to_user(w.to, &frames::typing(w.from, &w.nickname, false));
                    }
                }
                _ = tick.tick(), if !active.is_empty() => {
                    let now = Instant::now();
                    let ended: Vec<_> = active
                        .iter()
                        .filter(|(_, (ends, _))| *ends <= now)
                        .map(|(k, _)| *k)
                        .collect();
                    for key in ended {
                        if let Some((_, nickname)) = active.remove(&key) {
                            hub.send_to_user(key.1, &frames::typing(key.0, &nickname, false));
                        }
                    }
                }
                _ = stop.changed() => if *stop.borrow() { break },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_typing_frames_a_second_pass_and_the_sixth_waits_for_the_window() {
        let mut rate = TypingRate::default();
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(rate.allow(t0 + Duration::from_millis(i * 100)), "frame {i}");
        }
        assert!(!rate.allow(t0 + Duration::from_millis(500)));
        assert!(
            !rate.allow(t0 + Duration::from_millis(999)),
            "dropped ones do not count"
        );
        assert!(rate.allow(t0 + Duration::from_millis(1_000)));
        assert!(!rate.allow(t0 + Duration::from_millis(1_050)));
        assert!(rate.allow(t0 + Duration::from_millis(1_100)));
    }
}
