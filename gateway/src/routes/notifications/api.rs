//! The JSON shapes of notifications: what the routes answer (and the live
//! feed sends), and the read-mark body, one type that is both its OpenAPI
//! schema and its validation ([`Validate`]).

use forum_commands::notifications::{MarkRead, NotificationsCommand, MAX_IDS};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::extract::{Fields, Validate};
use crate::routes::posts::api::Author;

/// A notification.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// Id.
    pub id: Uuid,
    /// `comment` (on the caller's post), `reaction` (a like or dislike of
    /// the caller's post or comment) or `message` (to the caller).
    pub kind: String,
    /// Who acted (nickname at the time).
    pub actor: Author,
    /// The post concerned (comments and reactions).
    pub post_id: Option<Uuid>,
    /// The comment concerned (a comment, or a reaction to a comment).
    pub comment_id: Option<Uuid>,
    /// The message concerned (messages).
    pub message_id: Option<Uuid>,
    /// When the action happened.
    pub created_at: String,
    /// Whether the caller has read it.
    pub read: bool,
}

/// A page of notifications, newest first, with the caller's unread count.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    /// The notifications.
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
    /// How many of the caller's notifications are unread (all of them, not
    /// only this page's).
    pub unread_count: i64,
}

/// Body of `POST /api/notifications/read`: exactly one of the two fields.
#[derive(Debug, PartialEq, Eq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum NotificationsReadRequest {
    /// Marks the notifications named.
    Ids {
        /// Notification ids to mark read (at most 1000); ids that are not
        /// the caller's, or already read, are ignored.
        #[schema(max_items = 1000)]
        ids: Vec<Uuid>,
    },
    /// Marks every notification read.
    All {
        /// `true`, the only value accepted.
        all: bool,
    },
}

impl NotificationsReadRequest {
    /// The command the body asks for.
    pub fn into_command(self) -> NotificationsCommand {
        match self {
            NotificationsReadRequest::Ids { ids } => {
                NotificationsCommand::MarkRead(MarkRead { ids })
            }
            NotificationsReadRequest::All { .. } => NotificationsCommand::MarkAllRead,
        }
    }
}

impl Validate for NotificationsReadRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        const IDS: &str = "must be an array of notification ids";
        match (f.has("ids"), f.has("all")) {
            (true, false) => f
                .field("ids", |v| {
                    let items = v.and_then(Value::as_array).ok_or(IDS)?;
                    if items.len() > MAX_IDS {
                        return Err("at most 1000 ids");
                    }
                    items
                        .iter()
                        .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                        .collect::<Option<Vec<Uuid>>>()
                        .ok_or(IDS)
                })
                .map(|ids| NotificationsReadRequest::Ids { ids }),
            (false, true) => f.field("all", |v| match v {
                Some(Value::Bool(true)) => Ok(NotificationsReadRequest::All { all: true }),
                _ => Err("must be true"),
            }),
            _ => {
                f.fail(
                    "body",
                    "give either `ids` (an array of notification ids) or `all: true`",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use serde_json::json;

    fn command(v: Value) -> Result<NotificationsCommand, ApiError> {
        match v {
            Value::Object(map) => NotificationsReadRequest::parse(&map).map(|r| r.into_command()),
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn a_read_mark_body_is_ids_or_all_true_and_nothing_else() {
        let id = Uuid::now_v7();
        assert_eq!(
            command(json!({"ids": [id.to_string()]})).ok(),
            Some(NotificationsCommand::MarkRead(MarkRead { ids: vec![id] }))
        );
        assert_eq!(
            command(json!({"all": true})).ok(),
            Some(NotificationsCommand::MarkAllRead)
        );
        for bad in [
            json!({}),
            json!({"all": false}),
            json!({"all": "true"}),
            json!({"ids": "x"}),
            json!({"ids": ["not-a-uuid"]}),
            json!({"ids": [1]}),
            json!({"ids": [id.to_string()], "all": true}),
        ] {
            assert!(
                matches!(command(bad.clone()), Err(ApiError::Validation(_))),
                "{bad}"
            );
        }
    }
}
