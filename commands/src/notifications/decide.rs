//! The notifications decisions: pure functions of state and command (or of
//! a derived notification). [`apply`] folds events into [`World`] and holds
//! no rule.

use std::collections::{HashMap, HashSet};

use forum_events::notifications::{
    AllNotificationsRead, NotificationCreated, NotificationEvent, NotificationsRead,
};
use uuid::Uuid;

/// One user's notifications as decisions see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbox {
    /// The user's stream version (its last event's).
    pub version: u32,
    /// How many of the user's notifications are unread.
    pub unread_count: u32,
    /// Unread notification ids of the user (those the batch names).
    pub unread: HashSet<Uuid>,
}

/// The state a batch of decisions reads and the events it folds into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// Inboxes by user.
    pub inboxes: HashMap<Uuid, Inbox>,
    /// Notification ids that exist (those the batch may create again).
    pub known: HashSet<Uuid>,
}

impl World {
    /// A user's stream version (0 before their first notification).
    pub fn version(&self, user: Uuid) -> u32 {
        self.inboxes.get(&user).map_or(0, |i| i.version)
    }
}

/// Folds one event into the world; the user's stream version moves by one.
pub fn apply(world: &mut World, event: &NotificationEvent) {
    let inbox = world.inboxes.entry(event.user_id()).or_default();
    inbox.version += 1;
    match event {
        NotificationEvent::Created(e) => {
            world.known.insert(e.notification_id);
            inbox.unread.insert(e.notification_id);
            inbox.unread_count += 1;
        }
        NotificationEvent::Read(e) => {
            for id in &e.ids {
                inbox.unread.remove(id);
            }
            inbox.unread_count = inbox.unread_count.saturating_sub(e.ids.len() as u32);
        }
        NotificationEvent::AllRead(_) => {
            inbox.unread.clear();
            inbox.unread_count = 0;
        }
    }
}

/// Creating a derived notification: at most once per id (an id is one
/// cause and one recipient), so a cause seen twice creates nothing more.
pub fn create(world: &World, notification: &NotificationCreated) -> Vec<NotificationEvent> {
    if world.known.contains(&notification.notification_id) {
        return Vec::new();
    }
    vec![NotificationEvent::Created(notification.clone())]
}

/// Marking some of one's notifications read: only the user's own unread
/// ones are listed (each once, in the order given); unknown, foreign or
/// already read ids are ignored. Nothing to mark, no event.
pub fn mark_read(world: &World, user: Uuid, ids: &[Uuid], at_us: i64) -> Vec<NotificationEvent> {
    let Some(inbox) = world.inboxes.get(&user) else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let listed: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| inbox.unread.contains(id) && seen.insert(*id))
        .collect();
    if listed.is_empty() {
        return Vec::new();
    }
    vec![NotificationEvent::Read(NotificationsRead {
        user_id: user,
        ids: listed,
        read_at_us: at_us,
    })]
}

/// Marking every notification read: only when the user has unread ones.
pub fn mark_all_read(world: &World, user: Uuid, at_us: i64) -> Vec<NotificationEvent> {
    match world.inboxes.get(&user) {
        Some(inbox) if inbox.unread_count > 0 => {
            vec![NotificationEvent::AllRead(AllNotificationsRead {
                user_id: user,
                read_at_us: at_us,
            })]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forum_events::notifications::NotificationKind;

    const ANN: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);

    fn created(n: u128, user: Uuid) -> NotificationCreated {
        NotificationCreated {
            notification_id: Uuid::from_u128(100 + n),
            user_id: user,
            kind: NotificationKind::Comment,
            actor_id: BOB,
            actor_nickname: "bob".into(),
            post_id: Some(Uuid::from_u128(50)),
            comment_id: Some(Uuid::from_u128(60 + n)),
            message_id: None,
            cause_event_id: Uuid::from_u128(200 + n),
            created_at_us: 1,
        }
    }

    fn given(events: &[NotificationEvent]) -> World {
        let mut w = World::default();
        for e in events {
            apply(&mut w, e);
        }
        w
    }

    #[test]
    fn given_nothing_when_a_notification_is_derived_then_it_is_created_at_version_one() {
        let n = created(1, ANN);
        let events = create(&World::default(), &n);
        assert_eq!(events, vec![NotificationEvent::Created(n)]);
        let w = given(&events);
        assert_eq!(w.version(ANN), 1);
        assert_eq!(w.inboxes[&ANN].unread_count, 1);
    }

    #[test]
    fn given_a_notification_when_the_same_one_is_derived_again_then_nothing_is_created() {
        let n = created(1, ANN);
        let w = given(&[NotificationEvent::Created(n.clone())]);
        assert_eq!(create(&w, &n), vec![]);
    }

    #[test]
    fn given_unread_notifications_when_marking_some_read_then_only_own_unread_ones_are_listed() {
        let w = given(&[
            NotificationEvent::Created(created(1, ANN)),
            NotificationEvent::Created(created(2, ANN)),
            NotificationEvent::Created(created(3, BOB)),
        ]);
        let (a1, a2, b3) = (
            Uuid::from_u128(101),
            Uuid::from_u128(102),
            Uuid::from_u128(103),
        );
        let unknown = Uuid::from_u128(999);
        let events = mark_read(&w, ANN, &[a2, b3, unknown, a2], 5);
        assert_eq!(
            events,
            vec![NotificationEvent::Read(NotificationsRead {
                user_id: ANN,
                ids: vec![a2],
                read_at_us: 5,
            })]
        );
        let w2 = {
            let mut w2 = w.clone();
            apply(&mut w2, &events[0]);
            w2
        };
        assert_eq!(w2.inboxes[&ANN].unread_count, 1);
        assert_eq!(w2.version(ANN), 3);
        // Already read, foreign or unknown: no event at all.
        assert_eq!(mark_read(&w2, ANN, &[a2, b3, unknown], 6), vec![]);
        assert_eq!(mark_read(&w2, ANN, &[], 6), vec![]);
        assert_eq!(mark_read(&w2, ANN, &[a1], 6).len(), 1);
    }

    #[test]
    fn given_unread_notifications_when_marking_all_read_then_all_read_once() {
        let w = given(&[
            NotificationEvent::Created(created(1, ANN)),
            NotificationEvent::Created(created(2, ANN)),
        ]);
        let events = mark_all_read(&w, ANN, 7);
        assert_eq!(
            events,
            vec![NotificationEvent::AllRead(AllNotificationsRead {
                user_id: ANN,
                read_at_us: 7,
            })]
        );
        let mut w2 = w.clone();
        apply(&mut w2, &events[0]);
        assert_eq!(w2.inboxes[&ANN].unread_count, 0);
        assert_eq!(mark_all_read(&w2, ANN, 8), vec![]);
        assert_eq!(mark_all_read(&World::default(), BOB, 8), vec![]);
    }
}
