//! The OpenAPI description, generated from the handlers' annotations and
//! served at `/api/openapi.json`.

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes;
use crate::routes::{chat::api as chat, notifications::api as notifications, posts::api as posts};

/// The API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Forum API", version = "1",
         description = "Real-time forum backend. Errors always have the body `{\"error\": {\"code\", \"message\", \"fields\"?}}`. \
Besides the codes of the contract, an unsupported method on a known path answers 405 `method_not_allowed`. \
Every write accepts `Idempotency-Key` (1-128 characters): a retry with the same key by the same caller gets the \
first outcome (same status and body) and changes nothing more, whatever happened to the first attempt (a 503, a \
lost connection, a restart); it never waits on the first attempt. Outcomes are recorded with the write itself and \
kept for good, answers cached 24 hours. The same key for another request (method, path or body), or for a write \
of another kind, is 409 `conflict`; anonymous keys (register, login) are bound to the request. Live feed: `GET /api/ws` (WebSocket). \
Rate limits: every route but `/healthz`, `/readyz` and `/metrics` is limited per client address (reads, writes, \
register and login, WebSocket upgrades each have their own budget), and every authenticated write also per user. \
Every response of a limited route carries `RateLimit-Limit` (requests allowed at once), `RateLimit-Remaining` \
(requests left now) and `RateLimit-Reset` (seconds until the budget is full again); a refused request is \
429 `rate_limited` with `Retry-After` (whole seconds, at least 1). A request refused before any work \
(401, 408, 413, 415, 429) records no outcome for its `Idempotency-Key`. A body that does not arrive within the server's body \
timeout is 408 `request_timeout` (the connection closes). \
Request ids: every answer carries `X-Request-Id`: the request's own when it sent one of 1 to 128 visible ASCII \
characters, else a new UUID. It is the correlation id stored with the events the request wrote and logged by \
every process that handled them (a request id that is not a UUID stands for the UUIDv5 of it)."),
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
        routes::users::api::User, routes::users::api::Me,
        posts::Category, posts::Author, posts::Post, posts::Comment,
        posts::PostPage, posts::CommentPage, posts::ReactionState,
        posts::CreatePostRequest, posts::EditPostRequest,
        posts::CommentRequest, posts::ReactionRequest,
        chat::ChatUser, chat::Message, chat::MessagePage,
        chat::SendMessageRequest, chat::ReadReceiptRequest,
        notifications::Notification, notifications::NotificationPage,
        notifications::NotificationsReadRequest,
    )),
    modifiers(&Security, &CommonResponses),
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

/// The answers every route of a kind can give, added to each operation in
/// one place (an annotation keeps its own description where it has one):
/// every `/api` route may answer 500 `internal` and 503 `unavailable`; a
/// route with a path parameter 400 (a segment that is not UTF-8) and 404;
/// a write 400 (`Idempotency-Key` over 128 characters), 409 (a key reused
/// for another request), and, when it takes a body, 408, 413 and 415.
/// Every `/api` route may answer 429 `rate_limited`. Writes also get the
/// `Idempotency-Key` header parameter.
struct CommonResponses;

impl CommonResponses {
    fn add(op: &mut Operation, status: &str, description: &str) {
        if op.responses.responses.contains_key(status) {
            return;
        }
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .insert(status.to_string(), response.into());
    }

    fn complete(path: &str, op: &mut Operation, write: bool) {
        if !path.starts_with("/api/") {
            return;
        }
        Self::add(
            op,
            "500",
            "internal: an unexpected failure (no detail in the body)",
        );
        Self::add(
            op,
            "429",
            "rate_limited: a rate limit of the client address or the user is spent; `Retry-After` says when to try again (the RateLimit-* headers are on every answer of a limited route)",
        );
        Self::add(
            op,
            "503",
            "unavailable: a command service or the read models did not answer in time; retry (with the same Idempotency-Key for a write)",
        );
        if path.contains('{') {
            Self::add(
                op,
                "400",
                "validation_failed: a path segment that is not valid UTF-8, or invalid input",
            );
            Self::add(op, "404", "not_found: no such item (a malformed id too)");
        }
        if write {
            Self::add(
                op,
                "400",
                "validation_failed: invalid input, or an Idempotency-Key over 128 characters",
            );
            Self::add(
                op,
                "409",
                "conflict: the Idempotency-Key was used for another request",
            );
            Self::add(op, "413", "payload_too_large: a body over 64 KiB");
            if op.request_body.is_some() {
                Self::add(
                    op,
                    "408",
                    "request_timeout: the body did not arrive within the server's body timeout (the connection closes)",
                );
                Self::add(
                    op,
                    "415",
                    "unsupported_media_type: a body that is not application/json",
                );
            }
            let key = ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1-128 characters: a retry with the same key by the same caller returns the first outcome and changes nothing more; the same key for another request is 409",
                ))
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .min_length(Some(1))
                        .max_length(Some(128)),
                ))
                .build();
            let params = op.parameters.get_or_insert_with(Vec::new);
            if !params.iter().any(|p| p.name == "Idempotency-Key") {
                params.push(key);
            }
        }
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [
                &mut item.get,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                Self::complete(path, op, false);
            }
            for op in [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                Self::complete(path, op, true);
            }
        }
    }
}
