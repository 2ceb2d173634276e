//! The OpenAPI description, generated from the handlers' annotations and
//! served at `/api/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Forum API", version = "1",
         description = "Real-time forum backend. Errors always have the body `{\"error\": {\"code\", \"message\", \"fields\"?}}`. \
Besides the codes of the contract, an unsupported method on a known path answers 405 `method_not_allowed`. \
Every write accepts `Idempotency-Key` (1-128 characters). Live feed: `GET /api/ws` (WebSocket)."),
    paths(
        routes::ops::healthz, routes::ops::readyz, routes::ops::metrics,
        routes::auth::register, routes::auth::login, routes::auth::logout, routes::auth::me,
        routes::users::get_user,
        routes::posts::list_categories, routes::posts::create_post, routes::posts::list_posts,
        routes::posts::get_post, routes::posts::edit_post, routes::posts::delete_post,
        routes::posts::create_comment, routes::posts::list_comments, routes::posts::edit_comment,
        routes::posts::delete_comment, routes::posts::react_to_post, routes::posts::react_to_comment,
        routes::chat::list_users, routes::chat::send_message, routes::chat::list_messages,
        routes::chat::mark_read,
        routes::notifications::list_notifications, routes::notifications::mark_read,
        crate::live::socket::upgrade,
    ),
    components(schemas(
        crate::error::ErrorBody, crate::error::ErrorDetail,
        routes::auth::AuthResponse, routes::auth::RegisterRequest, routes::auth::LoginRequest,
        routes::users::User, routes::users::Me,
        routes::posts::Category, routes::posts::Author, routes::posts::Post, routes::posts::Comment,
        routes::posts::PostPage, routes::posts::CommentPage, routes::posts::ReactionState,
        routes::posts::CreatePostRequest, routes::posts::EditPostRequest,
        routes::posts::CommentRequest, routes::posts::ReactionRequest,
        routes::chat::ChatUser, routes::chat::Message, routes::chat::MessagePage,
        routes::chat::SendMessageRequest, routes::chat::ReadReceiptRequest,
        routes::notifications::Notification, routes::notifications::NotificationPage,
        routes::notifications::NotificationsReadRequest,
    )),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("session"))),
        );
    }
}
