//! What each event becomes on the live feed: a frame type, its data (JSON,
//! serialized once) and who receives it. The same function renders live
//! events and resumed ones, so both are byte-identical apart from the
//! cursor.

use forum_events::auth::AuthEvent;
use forum_events::chat::ChatEvent;
use forum_events::notifications::NotificationEvent;
use forum_events::posts::PostEvent;
use forum_events::{DecodeError, RecordedEvent, Service};
use serde::Serialize;
use uuid::Uuid;

use crate::routes::chat::api::Message;
use crate::routes::notifications::api::Notification;
use crate::routes::posts::api::{Author, Comment, Post};
use crate::time::format_us;

/// Who receives a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every connected socket.
    Everyone,
    /// Every socket of these users.
    Users(Vec<Uuid>),
}

impl Audience {
    /// Whether `user` receives the frame.
    pub fn includes(&self, user: Uuid) -> bool {
        match self {
            Audience::Everyone => true,
            Audience::Users(users) => users.contains(&user),
        }
    }
}

/// A durable frame before its cursor is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The frame type, e.g. `post.new`.
    pub kind: &'static str,
    /// Who receives it.
    pub audience: Audience,
    /// The `data` member, as JSON.
    pub data: String,
}

impl Rendered {
    /// The frame text with `cursor`.
    pub fn frame(&self, cursor: &str) -> String {
        format!(
            r#"{{"type":"{}","cursor":"{}","data":{}}}"#,
            self.kind, cursor, self.data
        )
    }
}

/// What an event means to the live feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A frame to deliver.
    Frame(Rendered),
    /// A session ended: close its sockets.
    SessionEnded(Uuid),
    /// Nothing to show.
    None,
}

/// `message.read` data.
#[derive(Debug, Serialize)]
struct MessageReadData {
    reader: Uuid,
    other: Uuid,
    up_to: Uuid,
}

/// `reaction.updated` data.
#[derive(Debug, Serialize)]
struct ReactionData {
    target: &'static str,
    id: Uuid,
    likes: u32,
    dislikes: u32,
}

/// `post.deleted` data.
#[derive(Debug, Serialize)]
struct Deleted {
    id: Uuid,
}

fn json<T: Serialize>(value: &T) -> String {
    // Plain structs of strings, numbers and UUIDs always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn frame<T: Serialize>(kind: &'static str, audience: Audience, data: &T) -> Effect {
    Effect::Frame(Rendered {
        kind,
        audience,
        data: json(data),
    })
}

/// What `event` means to the live feed.
///
/// # Errors
/// When its payload does not decode.
pub fn render(event: &RecordedEvent) -> Result<Effect, DecodeError> {
    Ok(match event.service {
        Service::Auth => match event.decode::<AuthEvent>()? {
            AuthEvent::SessionRevoked(e) => Effect::SessionEnded(e.session_id),
            _ => Effect::None,
        },
        Service::Posts => posts(event.decode::<PostEvent>()?),
        Service::Chat => chat(event.decode::<ChatEvent>()?),
        Service::Notifications => match event.decode::<NotificationEvent>()? {
            NotificationEvent::Created(n) => frame(
                "notification.new",
                Audience::Users(vec![n.user_id]),
                &Notification {
                    id: n.notification_id,
                    kind: n.kind.as_str().to_string(),
                    actor: Author {
                        id: n.actor_id,
                        nickname: n.actor_nickname,
                    },
                    post_id: n.post_id,
                    comment_id: n.comment_id,
                    message_id: n.message_id,
                    created_at: format_us(n.created_at_us),
                    read: false,
                },
            ),
            NotificationEvent::Read(_) | NotificationEvent::AllRead(_) => Effect::None,
        },
    })
}

fn posts(event: PostEvent) -> Effect {
    match event {
        PostEvent::PostCreated(e) => frame("post.new", Audience::Everyone, &Post::from(e)),
        PostEvent::PostEdited(e) => frame("post.updated", Audience::Everyone, &Post::from(e)),
        PostEvent::PostDeleted(e) => frame(
            "post.deleted",
            Audience::Everyone,
            &Deleted { id: e.post_id },
        ),
        PostEvent::CommentCreated(e) => frame("comment.new", Audience::Everyone, &Comment::from(e)),
        PostEvent::ReactionSet(e) => frame(
            "reaction.updated",
            Audience::Everyone,
            &ReactionData {
                target: e.target.as_str(),
                id: e.target_id,
                likes: e.likes,
                dislikes: e.dislikes,
            },
        ),
        PostEvent::CommentEdited(_) | PostEvent::CommentDeleted(_) => Effect::None,
    }
}

fn chat(event: ChatEvent) -> Effect {
    match event {
        ChatEvent::MessageSent(m) => {
            let audience = Audience::Users(vec![m.from_id, m.to_id]);
            frame("message.new", audience, &Message::from(m))
        }
        ChatEvent::MessagesRead(r) => frame(
            "message.read",
            Audience::Users(vec![r.reader_id, r.other_id]),
            &MessageReadData {
                reader: r.reader_id,
                other: r.other_id,
                up_to: r.up_to,
            },
        ),
    }
}

/// `{"type":"presence","data":{"user_id","online"}}` (no cursor).
pub fn presence(user: Uuid, online: bool) -> String {
    format!(r#"{{"type":"presence","data":{{"user_id":"{user}","online":{online}}}}}"#)
}

/// `{"type":"typing","data":{"from":{"id","nickname"},"active"}}` (no cursor).
pub fn typing(from: Uuid, nickname: &str, active: bool) -> String {
    #[derive(Serialize)]
    struct Data {
        from: Author,
        active: bool,
    }
    let data = Data {
        from: Author {
            id: from,
            nickname: nickname.to_string(),
        },
        active,
    };
    format!(r#"{{"type":"typing","data":{}}}"#, json(&data))
}

/// `{"type":"hello","cursor":C,"data":{"user_id","resumed"}}`. The cursor
/// is where this socket starts, so a client that drops before any event
/// can still resume.
pub fn hello(user: Uuid, resumed: bool, cursor: &str) -> String {
    format!(
        r#"{{"type":"hello","cursor":"{cursor}","data":{{"user_id":"{user}","resumed":{resumed}}}}}"#
    )
}

/// `{"type":"error","data":{"code","message"}}`.
pub fn error(code: &str, message: &str) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        code: &'a str,
        message: &'a str,
    }
    format!(
        r#"{{"type":"error","data":{}}}"#,
        json(&Data { code, message })
    )
}

/// A frame a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame {
    /// `{"type":"typing","to": user id,"active": bool}`.
    Typing {
        /// The addressee.
        to: Uuid,
        /// Typing started (or goes on), or stopped.
        active: bool,
    },
}

/// Why a client frame was refused: the `error` frame's code and message.
pub type Refusal = (&'static str, String);

/// Parses one client text frame. Anything but a well-formed known frame is
/// refused with the code of its `error` frame: `malformed_json` for bytes
/// that are not JSON, `validation_failed` for the rest.
///
/// # Errors
/// The refusal to send back; the socket stays open.
pub fn parse_client(text: &str) -> Result<ClientFrame, Refusal> {
    let bad = |m: &str| ("validation_failed", m.to_string());
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| ("malformed_json", "frames must be JSON objects".to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("frames must be JSON objects"))?;
    match obj.get("type").and_then(serde_json::Value::as_str) {
        Some("typing") => {}
        Some(other) => {
            let shown: String = other.chars().take(64).collect();
            return Err(bad(&format!("unknown frame type {shown:?}")));
        }
        None => return Err(bad("`type` is required")),
    }
    let to = obj
        .get("to")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| bad("`to` must be a user id"))?;
    let active = obj
        .get("active")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| bad("`active` must be true or false"))?;
    Ok(ClientFrame::Typing { to, active })
}

#[cfg(test)]
mod tests {
    use super::*;
    use forum_events::chat::MessageSent;
    use forum_events::posts::PostDeleted;
    use forum_events::{EventSet, Metadata};
    use serde_json::Value;

    fn recorded<E: EventSet>(event: &E) -> RecordedEvent {
        RecordedEvent {
            service: E::SERVICE,
            position: 1,
            stream_id: Uuid::nil(),
            version: 1,
            event_id: Uuid::nil(),
            event_type: event.event_type().into(),
            schema_version: event.schema_version(),
            payload: event.encode_payload(),
            metadata: Metadata {
                correlation_id: Uuid::nil(),
                causation_id: Uuid::nil(),
                actor: None,
                recorded_at_us: 0,
            },
        }
    }

    fn parsed(effect: Effect, cursor: &str) -> (Audience, Value) {
        let Effect::Frame(r) = effect else {
            panic!("no frame");
        };
        let v = serde_json::from_str(&r.frame(cursor)).expect("frame is JSON");
        (r.audience, v)
    }

    #[test]
    fn a_message_goes_to_both_participants_as_a_message() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let e = ChatEvent::MessageSent(MessageSent {
            message_id: Uuid::nil(),
            conversation_id: Uuid::nil(),
            from_id: a,
            from_nickname: "ann \"quoted\"".into(),
            to_id: b,
            content: "hi\n".into(),
            sent_at_us: 1_000,
        });
        let (audience, v) = parsed(render(&recorded(&e)).expect("decodes"), "C1");
        assert_eq!(audience, Audience::Users(vec![a, b]));
        assert_eq!(v["type"], "message.new");
        assert_eq!(v["cursor"], "C1");
        assert_eq!(v["data"]["from"]["nickname"], "ann \"quoted\"");
        assert_eq!(v["data"]["to"], b.to_string());
        assert_eq!(v["data"]["read_at"], Value::Null);
        assert_eq!(v["data"]["sent_at"], "1970-01-01T00:00:00.001Z");
    }

    #[test]
    fn a_deleted_post_reaches_everyone_with_its_id() {
        let id = Uuid::new_v4();
        let e = PostEvent::PostDeleted(PostDeleted {
            post_id: id,
            author_id: Uuid::nil(),
            deleted_at_us: 0,
        });
        let (audience, v) = parsed(render(&recorded(&e)).expect("decodes"), "C");
        assert_eq!(audience, Audience::Everyone);
        assert_eq!(v["data"], serde_json::json!({ "id": id }));
    }

    #[test]
    fn control_frames_are_json() {
        let u = Uuid::new_v4();
        for text in [
            presence(u, true),
            typing(u, "a\"b", false),
            hello(u, true, "abc"),
            error("validation_failed", "bad \"type\""),
        ] {
            let v: Value = serde_json::from_str(&text).expect("JSON");
            assert!(v["type"].is_string());
        }
    }
}
