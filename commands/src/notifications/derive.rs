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
    use super::*;
    use forum_events::chat::{conversation_id, MessageSent, MessagesRead};
    use forum_events::posts::{CommentCreated, PostCreated, PostDeleted, ReactionSet};

    const ANN: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);
    const POST: Uuid = Uuid::from_u128(10);
    const COMMENT: Uuid = Uuid::from_u128(20);
    const CAUSE: Uuid = Uuid::from_u128(99);

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

    fn given(events: &[SourceEvent]) -> Knowledge {
        let mut k = Knowledge::default();
        k.nicknames.insert(BOB, "bob".into());
        k.nicknames.insert(ANN, "ann".into());
        for e in events {
            learn(&mut k, e);
        }
        k
    }

    #[test]
    fn given_anns_post_when_bob_comments_then_ann_is_notified_of_the_comment() {
        let k = given(&[post_by(ANN)]);
        let n = derive(&k, CAUSE, &comment_by(BOB, "bob")).expect("a notification");
        assert_eq!(
            n,
            NotificationCreated {
                notification_id: notification_id(CAUSE, ANN),
                user_id: ANN,
                kind: NotificationKind::Comment,
                actor_id: BOB,
                actor_nickname: "bob".into(),
                post_id: Some(POST),
                comment_id: Some(COMMENT),
                message_id: None,
                cause_event_id: CAUSE,
                created_at_us: 2,
            }
        );
    }

    #[test]
    fn given_anns_post_when_ann_comments_on_it_then_nobody_is_notified() {
        let k = given(&[post_by(ANN)]);
        assert_eq!(derive(&k, CAUSE, &comment_by(ANN, "ann")), None);
    }

    #[test]
    fn given_a_post_and_a_comment_when_someone_likes_or_dislikes_them_then_their_authors_are_notified(
    ) {
        let k = given(&[post_by(ANN), comment_by(BOB, "bob")]);
        let on_post = derive(
            &k,
            CAUSE,
            &reaction(TargetKind::Post, POST, BOB, Reaction::Dislike),
        )
        .expect("the post's author");
        assert_eq!(
            (
                on_post.user_id,
                on_post.kind,
                on_post.actor_nickname.as_str()
            ),
            (ANN, NotificationKind::Reaction, "bob")
        );
        assert_eq!((on_post.post_id, on_post.comment_id), (Some(POST), None));
        let on_comment = derive(
            &k,
            CAUSE,
            &reaction(TargetKind::Comment, COMMENT, ANN, Reaction::Like),
        )
        .expect("the comment's author");
        assert_eq!((on_comment.user_id, on_comment.actor_id), (BOB, ANN));
        assert_eq!(
            (on_comment.post_id, on_comment.comment_id),
            (Some(POST), Some(COMMENT))
        );
    }

    #[test]
    fn given_a_post_when_a_reaction_is_withdrawn_or_own_then_nobody_is_notified() {
        let k = given(&[post_by(ANN)]);
        assert_eq!(
            derive(
                &k,
                CAUSE,
                &reaction(TargetKind::Post, POST, BOB, Reaction::None)
            ),
            None
        );
        assert_eq!(
            derive(
                &k,
                CAUSE,
                &reaction(TargetKind::Post, POST, ANN, Reaction::Like)
            ),
            None
        );
    }

    #[test]
    fn given_an_unknown_post_when_commented_then_nobody_is_notified() {
        assert_eq!(derive(&given(&[]), CAUSE, &comment_by(BOB, "bob")), None);
    }

    #[test]
    fn given_anything_when_a_message_is_sent_then_its_recipient_is_notified() {
        let message = Uuid::from_u128(30);
        let sent = SourceEvent::Chat(ChatEvent::MessageSent(MessageSent {
            message_id: message,
            conversation_id: conversation_id(ANN, BOB),
            from_id: BOB,
            from_nickname: "bob".into(),
            to_id: ANN,
            content: "hi".into(),
            sent_at_us: 4,
        }));
        let n = derive(&given(&[]), CAUSE, &sent).expect("the recipient");
        assert_eq!(
            (n.user_id, n.kind, n.message_id, n.post_id, n.created_at_us),
            (ANN, NotificationKind::Message, Some(message), None, 4)
        );
        let read = SourceEvent::Chat(ChatEvent::MessagesRead(MessagesRead {
            conversation_id: conversation_id(ANN, BOB),
            reader_id: ANN,
            other_id: BOB,
            up_to: message,
            up_to_position: 1,
            read_at_us: 5,
        }));
        assert_eq!(derive(&given(&[]), CAUSE, &read), None);
    }

    #[test]
    fn given_anything_when_a_post_is_created_or_deleted_then_authors_are_learnt_and_nobody_notified(
    ) {
        let mut k = given(&[]);
        assert_eq!(learn(&mut k, &post_by(ANN)), Some((POST, ANN)));
        assert_eq!(derive(&k, CAUSE, &post_by(ANN)), None);
        let deleted = SourceEvent::Posts(PostEvent::PostDeleted(PostDeleted {
            post_id: POST,
            author_id: ANN,
            deleted_at_us: 9,
        }));
        assert_eq!(learn(&mut k, &deleted), None);
        assert_eq!(derive(&k, CAUSE, &deleted), None);
    }
}
