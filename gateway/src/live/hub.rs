//! The sockets of this gateway and the delivery of frames to them.
//!
//! Every socket has a bounded queue of frames. A frame is serialized once
//! and shared (`Utf8Bytes` clones are reference counts); a socket whose
//! queue is full is closed with 4008 ("slow consumer") and removed, so it
//! never holds anyone else up.
//!
//! The hub also holds the feed's [`Cursor`]: the last position delivered
//! per log. A socket goes live under the same lock that moves the cursor,
//! so everything after the cursor it was given reaches its queue, and
//! everything up to it is for the resume to read from the logs. A resuming
//! socket is registered (it counts as online, and a logout closes it) but
//! not live: it gets no frames, durable or not, until the resume has caught
//! up with the feed and calls [`Hub::go_live`].
//!
//! Last, the hub counts each user's sockets on this gateway: a [`Slot`] is
//! taken before the upgrade and held until the socket ends, so the limit
//! holds however many upgrades race. The count is per gateway process; a
//! user reaching several gateways (behind a load balancer) may hold the
//! limit on each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use forum_events::Service;
use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

use super::cursor::Cursor;
use super::frames::{Audience, Effect};

/// Close code for a socket whose queue overflowed.
pub const SLOW_CONSUMER: u16 = 4008;
/// Close code for a socket whose session ended (logout).
pub const SESSION_ENDED: u16 = 4001;
/// Close code when the gateway shuts down.
pub const GOING_AWAY: u16 = 1001;
/// Close code when a resume failed half-way (the client resumes again from
/// the last cursor it received).
pub const RESUME_FAILED: u16 = 1011;

/// Asks one socket to close, from anywhere.
#[derive(Default)]
pub struct Control {
    code: AtomicU16,
    notify: Notify,
}

impl Control {
    /// Asks the socket to close with `code` (the first request wins).
    pub fn close(&self, code: u16) {
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// Resolves once a close was asked for, with its code.
    pub async fn closed(&self) -> u16 {
        loop {
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
        }
    }

    /// The close asked for, if any.
    pub fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }
}

struct Entry {
    user: Uuid,
    session: Uuid,
    tx: mpsc::Sender<Utf8Bytes>,
    control: Arc<Control>,
    /// Whether frames are delivered to `tx` (false while resuming).
    live: bool,
}

#[derive(Default)]
struct State {
    cursor: Cursor,
    sockets: HashMap<u64, Entry>,
    by_user: HashMap<Uuid, Vec<u64>>,
    /// Slots taken per user (sockets open or upgrading).
    slots: HashMap<Uuid, usize>,
}

/// One of a user's places on this gateway, taken by
/// [`Hub::reserve`] before the upgrade; dropping it frees the place.
pub struct Slot {
    hub: Arc<Hub>,
    user: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(n) = state.slots.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                state.slots.remove(&self.user);
            }
        }
    }
}

/// A change of a user's presence on this gateway: their first socket
/// opened (`true`) or their last one closed (`false`).
pub type LocalPresence = (Uuid, bool);

/// This gateway's sockets.
pub struct Hub {
    state: Mutex<State>,
    next_id: AtomicU64,
    presence: mpsc::UnboundedSender<LocalPresence>,
}

/// A registered socket's handle.
pub struct Registration {
    /// Its id in the hub.
    pub id: u64,
    /// The feed position it starts from: later events reach its queue.
    pub start: Cursor,
}

impl Hub {
    /// An empty hub starting at `cursor`; local presence changes go to
    /// `presence`.
    pub fn new(cursor: Cursor, presence: mpsc::UnboundedSender<LocalPresence>) -> Self {
        Hub {
            state: Mutex::new(State {
                cursor,
                ..State::default()
            }),
            next_id: AtomicU64::new(1),
            presence,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one of `user`'s `max` places on this gateway; `None` when they
    /// are all taken.
    pub fn reserve(self: &Arc<Self>, user: Uuid, max: usize) -> Option<Slot> {
        let mut state = self.lock();
        let n = state.slots.entry(user).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            hub: self.clone(),
            user,
        })
    }

    /// Adds a socket. When `live`, every frame after the returned cursor
    /// goes to `tx`; otherwise none does until [`Hub::go_live`].
    pub fn register(
        &self,
        user: Uuid,
        session: Uuid,
        tx: mpsc::Sender<Utf8Bytes>,
        control: Arc<Control>,
        live: bool,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        state.sockets.insert(
            id,
            Entry {
                user,
                session,
                tx,
                control,
                live,
            },
        );
        let mine = state.by_user.entry(user).or_default();
        mine.push(id);
        if mine.len() == 1 {
            // Sent under the lock, so a user's online and offline changes
            // reach the presence task in the order they happened.
            let _ = self.presence.send((user, true));
        }
        let start = state.cursor;
        drop(state);
        crate::metrics::ws_open(1);
        Registration { id, start }
    }

    /// Starts delivering frames to socket `id`: every frame after the
    /// returned cursor reaches its queue. `None` when the socket is gone.
    pub fn go_live(&self, id: u64) -> Option<Cursor> {
        let mut state = self.lock();
        let cursor = state.cursor;
        let entry = state.sockets.get_mut(&id)?;
        entry.live = true;
        Some(cursor)
    }

    /// The feed's cursor: the last position delivered per log.
    pub fn cursor(&self) -> Cursor {
        self.lock().cursor
    }

    /// Removes a socket (no-op when it is already gone).
    pub fn unregister(&self, id: u64) {
        let mut state = self.lock();
        self.remove(&mut state, id);
    }

    /// Removes a socket under the lock; the user's last one makes them
    /// offline here.
    fn remove(&self, state: &mut State, id: u64) {
        let Some(entry) = state.sockets.remove(&id) else {
            return;
        };
        crate::metrics::ws_open(-1);
        let last = match state.by_user.get_mut(&entry.user) {
            Some(ids) => {
                ids.retain(|i| *i != id);
                ids.is_empty()
            }
            None => true,
        };
        if last {
            state.by_user.remove(&entry.user);
            let _ = self.presence.send((entry.user, false));
        }
    }

    /// Whether `user` has a socket on this gateway.
    pub fn has_user(&self, user: Uuid) -> bool {
        self.lock().by_user.contains_key(&user)
    }

    /// Applies one event of `service` at `position`: moves the cursor and
    /// delivers its frame, or closes the sockets of an ended session.
    pub fn publish(&self, service: Service, position: u64, effect: &Effect) {
        let mut state = self.lock();
        state.cursor.set(service, position);
        let mut dropped = Vec::new();
        match effect {
            Effect::Frame(rendered) => {
                let text = Utf8Bytes::from(rendered.frame(&state.cursor.encode()));
                let n = deliver(&state, &rendered.audience, &text, &mut dropped);
                crate::metrics::ws_frames(n);
            }
            Effect::SessionEnded(session) => {
                for entry in state.sockets.values().filter(|e| e.session == *session) {
                    entry.control.close(SESSION_ENDED);
                }
            }
            Effect::None => {}
        }
        self.drop_all(&mut state, dropped);
    }

    /// Sends a control frame (presence) to every socket.
    pub fn broadcast(&self, text: &str) {
        self.send(&Audience::Everyone, text);
    }

    /// Sends a control frame (typing) to every socket of `user`.
    pub fn send_to_user(&self, user: Uuid, text: &str) {
        self.send(&Audience::Users(vec![user]), text);
    }

    fn send(&self, audience: &Audience, text: &str) {
        let text = Utf8Bytes::from(text);
        let mut state = self.lock();
        let mut dropped = Vec::new();
        let n = deliver(&state, audience, &text, &mut dropped);
        crate::metrics::ws_frames(n);
        self.drop_all(&mut state, dropped);
    }

    fn drop_all(&self, state: &mut State, dropped: Vec<(u64, bool)>) {
        for (id, slow) in dropped {
            if slow {
                if let Some(e) = state.sockets.get(&id) {
                    e.control.close(SLOW_CONSUMER);
                }
            }
            self.remove(state, id);
        }
    }

    /// Asks every socket to close with `code`.
    pub fn close_all(&self, code: u16) {
        for entry in self.lock().sockets.values() {
            entry.control.close(code);
        }
    }

    /// Open sockets.
    pub fn len(&self) -> usize {
        self.lock().sockets.len()
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Queues `text` for the audience; sockets that could not take it are
/// listed in `dropped` (with `true` when their queue was full).
fn deliver(
    state: &State,
    audience: &Audience,
    text: &Utf8Bytes,
    dropped: &mut Vec<(u64, bool)>,
) -> u64 {
    let mut n = 0;
    let mut offer = |id: u64, entry: &Entry| {
        if !entry.live {
            return;
        }
        match entry.tx.try_send(text.clone()) {
            Ok(()) => n += 1,
            Err(mpsc::error::TrySendError::Full(_)) => dropped.push((id, true)),
            Err(mpsc::error::TrySendError::Closed(_)) => dropped.push((id, false)),
        }
    };
    match audience {
        Audience::Everyone => {
            for (id, entry) in &state.sockets {
                offer(*id, entry);
            }
        }
        Audience::Users(users) => {
            for user in users {
                for id in state.by_user.get(user).into_iter().flatten() {
                    if let Some(entry) = state.sockets.get(id) {
                        offer(*id, entry);
                    }
                }
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::frames::Rendered;

    fn hub() -> (Hub, mpsc::UnboundedReceiver<LocalPresence>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Hub::new(Cursor::default(), tx), rx)
    }

    fn frame(audience: Audience) -> Effect {
        Effect::Frame(Rendered {
            kind: "post.new",
            audience,
            data: "{}".into(),
        })
    }

    #[tokio::test]
    async fn a_full_queue_closes_only_that_socket_as_a_slow_consumer() {
        let (hub, _presence) = hub();
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let (fast_tx, mut fast_rx) = mpsc::channel(8);
        let slow = Arc::new(Control::default());
        let fast = Arc::new(Control::default());
        hub.register(Uuid::new_v4(), Uuid::new_v4(), slow_tx, slow.clone(), true);
        hub.register(Uuid::new_v4(), Uuid::new_v4(), fast_tx, fast.clone(), true);
        for p in 1..=3 {
            hub.publish(Service::Posts, p, &frame(Audience::Everyone));
        }
        assert_eq!(slow.closed().await, SLOW_CONSUMER);
        assert_eq!(fast.code.load(Ordering::Acquire), 0);
        assert_eq!(hub.len(), 1);
        for _ in 0..3 {
            assert!(fast_rx.recv().await.is_some());
        }
    }

    #[tokio::test]
    async fn a_socket_starts_at_the_cursor_and_gets_only_its_frames() {
        let (hub, mut presence) = hub();
        hub.publish(Service::Chat, 4, &Effect::None);
        let (me, other) = (Uuid::new_v4(), Uuid::new_v4());
        let (tx, mut rx) = mpsc::channel(8);
        let r = hub.register(me, Uuid::new_v4(), tx, Arc::default(), true);
        assert_eq!(r.start.get(Service::Chat), 4);
        assert_eq!(presence.recv().await, Some((me, true)));
        hub.publish(Service::Chat, 5, &frame(Audience::Users(vec![other])));
        hub.publish(Service::Chat, 6, &frame(Audience::Users(vec![me])));
        let text = rx.recv().await.expect("frame");
        let v: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
        let c = Cursor::decode(v["cursor"].as_str().expect("cursor")).expect("cursor");
        assert_eq!(c.get(Service::Chat), 6);
        assert!(rx.try_recv().is_err());
        hub.unregister(r.id);
        assert_eq!(presence.recv().await, Some((me, false)));
    }

    #[tokio::test]
    async fn an_ended_session_closes_its_sockets_only() {
        let (hub, _presence) = hub();
        let (user, s1, s2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (c1, c2) = (Arc::new(Control::default()), Arc::new(Control::default()));
        hub.register(user, s1, mpsc::channel(1).0, c1.clone(), true);
        hub.register(user, s2, mpsc::channel(1).0, c2.clone(), false);
        hub.publish(Service::Auth, 1, &Effect::SessionEnded(s1));
        assert_eq!(c1.closed().await, SESSION_ENDED);
        assert_eq!(c2.code.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_resuming_socket_gets_nothing_until_it_goes_live_then_everything_after_its_cursor() {
        let (hub, _presence) = hub();
        let (tx, mut rx) = mpsc::channel(8);
        let r = hub.register(Uuid::new_v4(), Uuid::new_v4(), tx, Arc::default(), false);
        hub.publish(Service::Posts, 1, &frame(Audience::Everyone));
        hub.broadcast("presence");
        assert!(rx.try_recv().is_err(), "nothing before going live");
        assert_eq!(hub.len(), 1, "not dropped either");
        let start = hub.go_live(r.id).expect("registered");
        assert_eq!(start.get(Service::Posts), 1);
        assert_eq!(hub.cursor(), start);
        hub.publish(Service::Posts, 2, &frame(Audience::Everyone));
        let text = rx.recv().await.expect("frame");
        let v: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
        let c = Cursor::decode(v["cursor"].as_str().expect("cursor")).expect("cursor");
        assert_eq!(c.get(Service::Posts), 2);
        hub.unregister(r.id);
        assert_eq!(hub.go_live(r.id), None);
    }

    #[test]
    fn a_user_holds_at_most_max_slots_and_a_dropped_one_is_free_again() {
        let (hub, _presence) = hub();
        let hub = Arc::new(hub);
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let mut held: Vec<Slot> = (0..3).map(|_| hub.reserve(ann, 3).expect("free")).collect();
        assert!(hub.reserve(ann, 3).is_none());
        assert!(hub.reserve(bob, 3).is_some(), "per user");
        held.pop();
        assert!(hub.reserve(ann, 3).is_some());
        held.clear();
        assert!(!hub.lock().slots.contains_key(&ann));
    }
}
