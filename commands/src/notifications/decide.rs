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
    use std::convert::Infallible;

    use super::*;
    use crate::testing::{Decider, NOW_US};
    use forum_events::notifications::NotificationKind;

    /// The notifications decisions, driven by the harness.
    enum Inboxes {}

    /// A notifications command as the decisions receive it: a notification
    /// the deriver found, or a user's command (stamped with [`NOW_US`]).
    #[derive(Debug)]
    enum Cmd {
        Create(NotificationCreated),
        MarkRead { user: Uuid, ids: Vec<Uuid> },
        MarkAllRead { user: Uuid },
    }

    impl Decider for Inboxes {
        type State = World;
        type Event = NotificationEvent;
        type Command = Cmd;
        type Emitted = NotificationEvent;
        type Error = Infallible;

        fn apply(world: &mut World, event: &NotificationEvent) {
            apply(world, event);
        }

        fn decide(world: &World, command: &Cmd) -> Result<Vec<NotificationEvent>, Infallible> {
            Ok(match command {
                Cmd::Create(n) => create(world, n),
                Cmd::MarkRead { user, ids } => mark_read(world, *user, ids, NOW_US),
                Cmd::MarkAllRead { user } => mark_all_read(world, *user, NOW_US),
            })
        }
    }

    const ANN: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);
    const UNKNOWN: Uuid = Uuid::from_u128(999);

    /// The id of the `n`th notification.
    fn id(n: u128) -> Uuid {
        Uuid::from_u128(100 + n)
    }

    /// The `n`th notification, for `user`.
    fn notification(n: u128, user: Uuid) -> NotificationCreated {
        NotificationCreated {
            notification_id: id(n),
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

    fn created(n: u128, user: Uuid) -> NotificationEvent {
        NotificationEvent::Created(notification(n, user))
    }

    /// Ann's 1st and 2nd, Bob's 3rd.
    fn two_for_ann_one_for_bob() -> [NotificationEvent; 3] {
        [created(1, ANN), created(2, ANN), created(3, BOB)]
    }

    fn read(user: Uuid, ids: Vec<Uuid>) -> NotificationEvent {
        NotificationEvent::Read(NotificationsRead {
            user_id: user,
            ids,
            read_at_us: NOW_US,
        })
    }

    fn all_read(user: Uuid) -> NotificationEvent {
        NotificationEvent::AllRead(AllNotificationsRead {
            user_id: user,
            read_at_us: NOW_US,
        })
    }

    fn mark_read_by(user: Uuid, ids: &[Uuid]) -> Cmd {
        Cmd::MarkRead {
            user,
            ids: ids.to_vec(),
        }
    }

    #[test]
    fn a_derived_notification_is_created() {
        Inboxes::given([])
            .when(Cmd::Create(notification(1, ANN)))
            .then([created(1, ANN)]);
    }

    #[test]
    fn a_created_notification_is_unread_at_version_one_of_its_users_stream() {
        let given = Inboxes::given([created(1, ANN)]);
        assert_eq!(given.state().version(ANN), 1);
        assert_eq!(given.state().inboxes[&ANN].unread_count, 1);
        assert_eq!(given.state().version(BOB), 0);
    }

    #[test]
    fn a_notification_derived_again_is_not_created_twice() {
        Inboxes::given([created(1, ANN)])
            .when(Cmd::Create(notification(1, ANN)))
            .then_nothing();
    }

    #[test]
    fn marking_some_read_lists_only_ones_own_unread_ones_once_in_order() {
        Inboxes::given(two_for_ann_one_for_bob())
            .when(mark_read_by(ANN, &[id(2), id(3), UNKNOWN, id(2), id(1)]))
            .then([read(ANN, vec![id(2), id(1)])]);
    }

    #[test]
    fn a_read_notification_is_no_longer_counted_and_moves_the_stream_version() {
        let given = Inboxes::given(two_for_ann_one_for_bob()).and([read(ANN, vec![id(2)])]);
        assert_eq!(given.state().inboxes[&ANN].unread_count, 1);
        assert_eq!(given.state().version(ANN), 3);
        assert_eq!(given.state().version(BOB), 1);
    }

    #[test]
    fn marking_read_only_ones_already_read_foreign_or_unknown_changes_nothing() {
        for ids in [&[id(2), id(3), UNKNOWN][..], &[]] {
            Inboxes::given(two_for_ann_one_for_bob())
                .and([read(ANN, vec![id(2)])])
                .when(mark_read_by(ANN, ids))
                .then_nothing();
        }
    }

    #[test]
    fn marking_read_after_reading_some_lists_the_ones_still_unread() {
        Inboxes::given(two_for_ann_one_for_bob())
            .and([read(ANN, vec![id(2)])])
            .when(mark_read_by(ANN, &[id(1)]))
            .then([read(ANN, vec![id(1)])]);
    }

    #[test]
    fn marking_read_without_any_notification_changes_nothing() {
        Inboxes::given([created(3, BOB)])
            .when(mark_read_by(ANN, &[id(3)]))
            .then_nothing();
    }

    #[test]
    fn marking_all_read_reads_every_unread_one() {
        Inboxes::given([created(1, ANN), created(2, ANN)])
            .when(Cmd::MarkAllRead { user: ANN })
            .then([all_read(ANN)]);
    }

    #[test]
    fn after_all_read_nothing_is_counted_unread() {
        let given = Inboxes::given([created(1, ANN), created(2, ANN), all_read(ANN)]);
        assert_eq!(given.state().inboxes[&ANN].unread_count, 0);
        assert!(given.state().inboxes[&ANN].unread.is_empty());
    }

    #[test]
    fn marking_all_read_with_nothing_unread_changes_nothing() {
        for given in [
            vec![created(1, ANN), created(2, ANN), all_read(ANN)],
            vec![created(1, ANN), read(ANN, vec![id(1)])],
            vec![created(3, BOB)],
            vec![],
        ] {
            Inboxes::given(given)
                .when(Cmd::MarkAllRead { user: ANN })
                .then_nothing();
        }
    }
}
