//! The JSON shapes of the chat: what its routes answer (and the live feed
//! sends), and the request bodies, each one type that is both its OpenAPI
//! schema and its validation ([`Validate`]).

use forum_commands::chat::validate::MessageContent;
use forum_events::chat::MessageSent;
use serde::Serialize;
use uuid::Uuid;

use crate::extract::{Fields, Validate};
use crate::routes::posts::api::Author;
use crate::time::format_us;

/// Another user, as the chat's user list shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChatUser {
    /// User id.
    pub id: Uuid,
    /// Nickname, case as registered.
    pub nickname: String,
    /// Whether the user has a live connection on some gateway.
    pub online: bool,
    /// The last message between the caller and this user, if any.
    #[schema(example = "2026-11-24T09:15:02.123Z")]
    pub last_message_at: Option<String>,
    /// Messages from this user the caller has not read.
    pub unread: i32,
}

/// A private message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    /// Id.
    pub id: Uuid,
    /// The sender (nickname when sent).
    pub from: Author,
    /// The recipient's user id.
    pub to: Uuid,
    /// Content, as sent.
    pub content: String,
    /// When it was sent.
    pub sent_at: String,
    /// When the recipient read it, if they did.
    pub read_at: Option<String>,
}

impl From<MessageSent> for Message {
    /// The message as it was sent: what its `201` answers and its
    /// `message.new` frame carries.
    fn from(m: MessageSent) -> Self {
        Message {
            id: m.message_id,
            from: Author {
                id: m.from_id,
                nickname: m.from_nickname,
            },
            to: m.to_id,
            content: m.content,
            sent_at: format_us(m.sent_at_us),
            read_at: None,
        }
    }
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub items: Vec<Message>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/conversations/{user_id}/messages`.
#[derive(Debug, utoipa::ToSchema)]
pub struct SendMessageRequest {
    /// 1–2000 characters, not blank (stored as given); no control
    /// characters but tab and line breaks.
    #[schema(
        value_type = String,
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub content: MessageContent,
}

impl Validate for SendMessageRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let content = f.parsed("content", MessageContent::parse);
        Some(SendMessageRequest { content: content? })
    }
}

/// Body of `POST /api/conversations/{user_id}/read`.
#[derive(Debug, utoipa::ToSchema)]
pub struct ReadReceiptRequest {
    /// A message of the conversation: it and every older message from
    /// `{user_id}` to the caller become read.
    pub up_to: Uuid,
}

impl Validate for ReadReceiptRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let up_to = f.parsed("up_to", |s| {
            Uuid::parse_str(s).map_err(|_| "must be a message id")
        });
        Some(ReadReceiptRequest { up_to: up_to? })
    }
}
