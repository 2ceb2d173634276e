//! Which notification an event of another service causes: pure functions
//! of what the deriver knows (who wrote each post and comment, the actors'
//! nicknames) and the event. [`learn`] folds events into that knowledge and
//! holds no rule.

use std::collections::HashMap;

use forum_events::chat::ChatEvent;
use forum_events::notifications::{notification_id, NotificationCreated, NotificationKind};
use forum_events::posts::{PostEvent, Reaction, TargetKind};
use uuid::Uuid;

/// An event of a log notifications are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// From the posts log.
    Posts(PostEvent),
    /// From the chat log.
    Chat(ChatEvent),
}

/// What the deriver knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knowledge {
    /// The author of each post and comment, by id.
    pub authors: HashMap<Uuid, Uuid>,
    /// Nicknames of the actors whose events do not carry one (reactions).
    pub nicknames: HashMap<Uuid, String>,
}

/// Records what an event teaches: the authors of new posts and comments.
/// Returns the (target, author) pair learnt, if any.
pub fn learn(k: &mut Knowledge, event: &SourceEvent) -> Option<(Uuid, Uuid)> {
    let learnt = match event {
        SourceEvent::Posts(PostEvent::PostCreated(e)) => (e.post_id, e.author_id),
        SourceEvent::Posts(PostEvent::CommentCreated(e)) => (e.comment_id, e.author_id),
        _ => return None,
    };
    k.authors.insert(learnt.0, learnt.1);
    Some(learnt)
}

/// The notification `event` (whose id is `cause`) gives, if any:
/// - a comment notifies the post's author;
/// - a like or dislike notifies the post's or comment's author (a withdrawn
///   reaction notifies nobody);
/// - a message notifies its recipient.
///
/// Nobody is notified of their own action, nor about a post or comment
/// whose author is unknown.
pub fn derive(k: &Knowledge, cause: Uuid, event: &SourceEvent) -> Option<NotificationCreated> {
    let n = match event {
        SourceEvent::Posts(PostEvent::CommentCreated(e)) => Draft {
            recipient: *k.authors.get(&e.post_id)?,
            kind: NotificationKind::Comment,
            actor_id: e.author_id,
            actor_nickname: e.author_nickname.clone(),
            post_id: Some(e.post_id),
            comment_id: Some(e.comment_id),
            message_id: None,
            at_us: e.created_at_us,
        },
        SourceEvent::Posts(PostEvent::ReactionSet(e))
            if matches!(e.reaction, Reaction::Like | Reaction::Dislike) =>
        {
            Draft {
                recipient: *k.authors.get(&e.target_id)?,
                kind: NotificationKind::Reaction,
                actor_id: e.user_id,
                actor_nickname: k.nicknames.get(&e.user_id).cloned().unwrap_or_default(),
                post_id: Some(e.post_id),
                comment_id: (e.target == TargetKind::Comment).then_some(e.target_id),
                message_id: None,
                at_us: e.at_us,
            }
        }
        SourceEvent::Chat(ChatEvent::MessageSent(e)) => Draft {
            recipient: e.to_id,
            kind: NotificationKind::Message,
            actor_id: e.from_id,
            actor_nickname: e.from_nickname.clone(),
            post_id: None,
            comment_id: None,
            message_id: Some(e.message_id),
            at_us: e.sent_at_us,
        },
        _ => return None,
    };
    if n.recipient == n.actor_id {
        return None;
    }
    Some(NotificationCreated {
        notification_id: notification_id(cause, n.recipient),
        user_id: n.recipient,
        kind: n.kind,
        actor_id: n.actor_id,
        actor_nickname: n.actor_nickname,
        post_id: n.post_id,
        comment_id: n.comment_id,
        message_id: n.message_id,
        cause_event_id: cause,
        created_at_us: n.at_us,
    })
}

struct Draft {
    recipient: Uuid,
    kind: NotificationKind,
    actor_id: Uuid,
    actor_nickname: String,
    post_id: Option<Uuid>,
    comment_id: Option<Uuid>,
    message_id: Option<Uuid>,
    at_us: i64,
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::testing::Decider;
    use forum_events::chat::{conversation_id, MessageSent, MessagesRead};
    use forum_events::posts::{CommentCreated, PostCreated, PostDeleted, ReactionSet};

    /// The deriver's decision, driven by the harness: it learns from the
    /// posts and chat events it has seen and derives notifications from
    /// the next one.
    enum Notifier {}

    /// An event the deriver is handed, with its id (the cause).
    #[derive(Debug)]
    struct Cause {
        event_id: Uuid,
        event: SourceEvent,
    }

    impl Decider for Notifier {
        type State = Knowledge;
        type Event = SourceEvent;
        type Command = Cause;
        type Emitted = NotificationCreated;
        type Error = Infallible;

        fn apply(k: &mut Knowledge, event: &SourceEvent) {
            learn(k, event);
        }

        fn decide(k: &Knowledge, c: &Cause) -> Result<Vec<NotificationCreated>, Infallible> {
            Ok(derive(k, c.event_id, &c.event).into_iter().collect())
        }
    }

    const ANN: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);
    const POST: Uuid = Uuid::from_u128(10);
    const COMMENT: Uuid = Uuid::from_u128(20);
    const MESSAGE: Uuid = Uuid::from_u128(30);
    const CAUSE: Uuid = Uuid::from_u128(99);

    fn seen(event: SourceEvent) -> Cause {
        Cause {
            event_id: CAUSE,
            event,
        }
    }

    /// The nicknames the deriver reads from `read.users` for reactions.
    fn knowing_ann_and_bob() -> Knowledge {
        let mut k = Knowledge::default();
        k.nicknames.insert(BOB, "bob".into());
        k.nicknames.insert(ANN, "ann".into());
        k
    }

    fn post_by(author: Uuid) -> SourceEvent {
        SourceEvent::Posts(PostEvent::PostCreated(PostCreated {
            post_id: POST,
            author_id: author,
            author_nickname: "ann".into(),
            title: "t".into(),
            content: "c".into(),
            categories: vec!["news".into()],
            created_at_us: 1,
        }))
    }

    fn comment_by(author: Uuid, nickname: &str) -> SourceEvent {
        SourceEvent::Posts(PostEvent::CommentCreated(CommentCreated {
            comment_id: COMMENT,
            post_id: POST,
            author_id: author,
            author_nickname: nickname.into(),
            content: "c".into(),
            created_at_us: 2,
        }))
    }

    fn reaction(target: TargetKind, target_id: Uuid, user: Uuid, r: Reaction) -> SourceEvent {
        SourceEvent::Posts(PostEvent::ReactionSet(ReactionSet {
            target,
            target_id,
            post_id: POST,
            user_id: user,
            reaction: r,
            likes: 1,
            dislikes: 0,
            at_us: 3,
        }))
    }

    fn post_deleted() -> SourceEvent {
        SourceEvent::Posts(PostEvent::PostDeleted(PostDeleted {
            post_id: POST,
            author_id: ANN,
            deleted_at_us: 9,
        }))
    }

    fn message(from: Uuid, to: Uuid) -> SourceEvent {
        SourceEvent::Chat(ChatEvent::MessageSent(MessageSent {
            message_id: MESSAGE,
            conversation_id: conversation_id(from, to),
            from_id: from,
            from_nickname: "bob".into(),
            to_id: to,
            content: "hi".into(),
            sent_at_us: 4,
        }))
    }

    /// A notification of `kind` for `user`, by `actor`, caused by CAUSE.
    fn notification(
        user: Uuid,
        kind: NotificationKind,
        actor: (Uuid, &str),
        at_us: i64,
    ) -> NotificationCreated {
        NotificationCreated {
            notification_id: notification_id(CAUSE, user),
            user_id: user,
            kind,
            actor_id: actor.0,
            actor_nickname: actor.1.into(),
            post_id: Some(POST),
            comment_id: None,
            message_id: None,
            cause_event_id: CAUSE,
            created_at_us: at_us,
        }
    }

    #[test]
    fn a_comment_on_anns_post_by_bob_notifies_ann() {
        Notifier::given([post_by(ANN)])
            .when(seen(comment_by(BOB, "bob")))
            .then([NotificationCreated {
                comment_id: Some(COMMENT),
                ..notification(ANN, NotificationKind::Comment, (BOB, "bob"), 2)
            }]);
    }

    #[test]
    fn a_comment_by_the_posts_author_notifies_nobody() {
        Notifier::given([post_by(ANN)])
            .when(seen(comment_by(ANN, "ann")))
            .then_nothing();
    }

    #[test]
    fn a_comment_on_a_post_of_unknown_author_notifies_nobody() {
        Notifier::given([])
            .when(seen(comment_by(BOB, "bob")))
            .then_nothing();
    }

    #[test]
    fn a_dislike_of_anns_post_notifies_ann_with_the_reactors_nickname() {
        Notifier::given_state(knowing_ann_and_bob())
            .and([post_by(ANN), comment_by(BOB, "bob")])
            .when(seen(reaction(
                TargetKind::Post,
                POST,
                BOB,
                Reaction::Dislike,
            )))
            .then([notification(
                ANN,
                NotificationKind::Reaction,
                (BOB, "bob"),
                3,
            )]);
    }

    #[test]
    fn a_like_of_bobs_comment_notifies_bob() {
        Notifier::given_state(knowing_ann_and_bob())
            .and([post_by(ANN), comment_by(BOB, "bob")])
            .when(seen(reaction(
                TargetKind::Comment,
                COMMENT,
                ANN,
                Reaction::Like,
            )))
            .then([NotificationCreated {
                comment_id: Some(COMMENT),
                ..notification(BOB, NotificationKind::Reaction, (ANN, "ann"), 3)
            }]);
    }

    #[test]
    fn a_reaction_by_a_user_missing_from_the_users_still_notifies_without_a_nickname() {
        Notifier::given([post_by(ANN)])
            .when(seen(reaction(TargetKind::Post, POST, BOB, Reaction::Like)))
            .then([notification(ANN, NotificationKind::Reaction, (BOB, ""), 3)]);
    }

    #[test]
    fn a_withdrawn_reaction_notifies_nobody() {
        Notifier::given_state(knowing_ann_and_bob())
            .and([post_by(ANN)])
            .when(seen(reaction(TargetKind::Post, POST, BOB, Reaction::None)))
            .then_nothing();
    }

    #[test]
    fn a_reaction_to_ones_own_post_notifies_nobody() {
        Notifier::given_state(knowing_ann_and_bob())
            .and([post_by(ANN)])
            .when(seen(reaction(TargetKind::Post, POST, ANN, Reaction::Like)))
            .then_nothing();
    }

    #[test]
    fn a_reaction_to_a_target_of_unknown_author_notifies_nobody() {
        Notifier::given_state(knowing_ann_and_bob())
            .and([post_by(ANN)])
            .when(seen(reaction(
                TargetKind::Comment,
                COMMENT,
                BOB,
                Reaction::Like,
            )))
            .then_nothing();
    }

    #[test]
    fn a_message_notifies_its_recipient() {
        Notifier::given([])
            .when(seen(message(BOB, ANN)))
            .then([NotificationCreated {
                post_id: None,
                message_id: Some(MESSAGE),
                ..notification(ANN, NotificationKind::Message, (BOB, "bob"), 4)
            }]);
    }

    #[test]
    fn a_message_to_oneself_notifies_nobody() {
        Notifier::given([])
            .when(seen(message(BOB, BOB)))
            .then_nothing();
    }

    #[test]
    fn a_read_receipt_notifies_nobody() {
        Notifier::given([message(BOB, ANN)])
            .when(seen(SourceEvent::Chat(ChatEvent::MessagesRead(
                MessagesRead {
                    conversation_id: conversation_id(ANN, BOB),
                    reader_id: ANN,
                    other_id: BOB,
                    up_to: MESSAGE,
                    up_to_position: 1,
                    read_at_us: 5,
                },
            ))))
            .then_nothing();
    }

    #[test]
    fn a_new_or_deleted_post_notifies_nobody() {
        Notifier::given([]).when(seen(post_by(ANN))).then_nothing();
        Notifier::given([post_by(ANN)])
            .when(seen(post_deleted()))
            .then_nothing();
    }

    #[test]
    fn new_posts_and_comments_teach_their_authors_and_nothing_else_does() {
        let mut k = Knowledge::default();
        assert_eq!(learn(&mut k, &post_by(ANN)), Some((POST, ANN)));
        assert_eq!(learn(&mut k, &comment_by(BOB, "bob")), Some((COMMENT, BOB)));
        for event in [
            post_deleted(),
            reaction(TargetKind::Post, POST, BOB, Reaction::Like),
            message(BOB, ANN),
        ] {
            assert_eq!(learn(&mut k, &event), None, "{event:?}");
        }
        let learnt = Notifier::given([post_by(ANN), comment_by(BOB, "bob"), post_deleted()]);
        assert_eq!(learnt.state(), &k);
        assert_eq!(learnt.state().authors, [(POST, ANN), (COMMENT, BOB)].into());
    }
}
