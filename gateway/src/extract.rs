//! Extractors whose rejections are [`ApiError`]s: the JSON body, the
//! authenticated user, the request id; and the reading of request bodies
//! ([`Validate`], [`Fields`]).

use std::collections::BTreeMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

/// The most a request body may hold.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON object body. 415 for another content type, 413 past 64 KiB, 400
/// `malformed_json` for bytes that are not JSON, 400 `validation_failed`
/// for JSON that is not an object.
pub struct JsonBody(pub Map<String, Value>);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            return Err(ApiError::PayloadTooLarge);
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|e| {
                if crate::server::is_body_timeout(&e) {
                    ApiError::RequestTimeout
                } else {
                    ApiError::PayloadTooLarge
                }
            })?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        match value {
            Value::Object(map) => Ok(JsonBody(map)),
            _ => Err(ApiError::field("body", "must be a JSON object")),
        }
    }
}

/// A request body, as one type: its fields are the validated values (the
/// newtypes of `forum_commands::*::validate`), its `utoipa::ToSchema`
/// derive (with the constraints) is its OpenAPI description, and
/// [`Validate::validate`] reads it from the JSON object. Every field is
/// read, so a bad body gets one `400 validation_failed` naming all its bad
/// fields.
///
/// Handlers take the body as [`JsonBody`] (which answers 415, 413 and
/// `malformed_json`) and call [`Validate::parse`] after their path
/// parameters, so a malformed id is still `404` whatever the body.
pub trait Validate: Sized {
    /// Reads every field from `f`. Answers `None` exactly when it recorded
    /// a problem: each [`Fields`] reader that answers `None` has recorded
    /// one, and a check of its own records one with [`Fields::fail`].
    fn validate(f: &mut Fields<'_>) -> Option<Self>;

    /// The validated body.
    ///
    /// # Errors
    /// [`ApiError::Validation`] naming every bad field.
    fn parse(body: &Map<String, Value>) -> Result<Self, ApiError> {
        Self::parse_with(body, |_| ())
    }

    /// The validated body, with `more` checks that need more than the body
    /// (the path, the caller) reported in the same answer.
    ///
    /// # Errors
    /// [`ApiError::Validation`] naming every bad field.
    fn parse_with(
        body: &Map<String, Value>,
        more: impl FnOnce(&mut Fields<'_>),
    ) -> Result<Self, ApiError> {
        let mut f = Fields::new(body);
        let value = Self::validate(&mut f);
        more(&mut f);
        f.finish_with(value)
    }
}

/// Reads typed fields out of a JSON object, collecting every problem so one
/// answer names all the bad fields. Every reader answers `None` only after
/// recording the field's problem.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    errors: BTreeMap<String, String>,
}

/// The message for a number that is not whole.
const NOT_INTEGER: &str = "must be an integer";

impl<'a> Fields<'a> {
    /// Starts reading `map`.
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Fields {
            map,
            errors: BTreeMap::new(),
        }
    }

    /// Records a problem with `name` (the first one per field is kept).
    pub fn fail(&mut self, name: &str, message: &str) {
        self.errors
            .entry(name.to_string())
            .or_insert_with(|| message.to_string());
    }

    /// The value of a check of field `name`, or `None` with its error
    /// recorded as the field's message.
    pub fn check<T>(&mut self, name: &str, checked: Result<T, &'static str>) -> Option<T> {
        match checked {
            Ok(v) => Some(v),
            Err(m) => {
                self.fail(name, m);
                None
            }
        }
    }

    /// A field read by `read` from its raw value (`None` when absent);
    /// `read`'s error is the field's message.
    pub fn field<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(Option<&'a Value>) -> Result<T, &'static str>,
    ) -> Option<T> {
        let checked = read(self.map.get(name));
        self.check(name, checked)
    }

    /// A field that may be absent: `Some(None)` when it is, else what
    /// `read` makes of it (`read` gets `self` and the name back).
    pub fn optional<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&mut Self, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        if self.has(name) {
            read(self, name).map(Some)
        } else {
            Some(None)
        }
    }

    /// A required string.
    pub fn string(&mut self, name: &str) -> Option<&'a str> {
        self.field(name, |v| match v {
            Some(Value::String(s)) => Ok(s.as_str()),
            None => Err("is required"),
            Some(_) => Err("must be a string"),
        })
    }

    /// A required string, parsed by `parse` (its error is the message).
    pub fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let s = self.string(name)?;
        self.check(name, parse(s))
    }

    /// A required integer: a JSON number whose value is whole (`30` or
    /// `30.0`, as JSON Schema's `integer`; never `30.5`, `"30"` or `true`).
    pub fn integer(&mut self, name: &str) -> Option<i64> {
        self.field(name, |v| match v {
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .ok_or(NOT_INTEGER),
            None => Err("is required"),
            Some(_) => Err(NOT_INTEGER),
        })
    }

    /// Whether `name` is present at all.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The raw value of `name`.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    /// Ends reading: the collected problems as a 400, if any.
    ///
    /// # Errors
    /// [`ApiError::Validation`] naming every bad field.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }

    /// Ends reading `value`: it, or the collected problems as a 400.
    ///
    /// # Errors
    /// [`ApiError::Validation`] naming every bad field.
    pub fn finish_with<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            None if self.errors.is_empty() => {
                // A reader broke the rule above; still a refusal of the input.
                tracing::error!("a body was refused without a field named");
                Err(ApiError::field("body", "is not valid"))
            }
            _ => Err(ApiError::Validation(self.errors)),
        }
    }
}

/// The token of a request: `Authorization: Bearer …`, else the `session`
/// cookie.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = auth.splitn(2, ' ');
        if let (Some(scheme), Some(t)) = (parts.next(), parts.next()) {
            if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() {
                return Some(t.trim());
            }
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "session")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The authenticated user of a request: a valid token whose session is
/// open. Anything else is 401 `unauthorized`.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The user.
    pub user_id: Uuid,
    /// The session the token belongs to.
    pub session_id: Uuid,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(*user);
        }
        let token = token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let user = state.authenticate(token).await?;
        parts.extensions.insert(user);
        Ok(user)
    }
}

/// The authenticated user, or `None` for an anonymous request. On routes
/// that need no login an invalid, expired or revoked token or cookie is
/// ignored: the request is answered as an anonymous one, never `401`.
/// (A failure to check the session, such as Postgres being unreachable, is
/// still that failure.)
pub struct MaybeUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if token(&parts.headers).is_none() {
            return Ok(MaybeUser(None));
        }
        match AuthUser::from_request_parts(parts, state).await {
            Ok(user) => Ok(MaybeUser(Some(user))),
            Err(ApiError::Unauthorized) => Ok(MaybeUser(None)),
            Err(other) => Err(other),
        }
    }
}

/// A path parameter; its rejection is the API's error body: a segment that
/// is not valid UTF-8 once percent-decoded (`/api/posts/%FF`) is `400
/// validation_failed` naming `path`, never axum's plain-text answer.
/// Handlers parse the string into an id with [`path_id`].
pub struct PathParam<T>(pub T);

/// The id of a path segment: a malformed one names nothing, so 404.
///
/// # Errors
/// [`ApiError::NotFound`].
pub fn path_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound)
}

impl<S, T> FromRequestParts<S> for PathParam<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParam(value)),
            Err(rejection) => {
                tracing::debug!(%rejection, "path parameter refused");
                Err(ApiError::field(
                    "path",
                    "is not a valid UTF-8 path segment of this route",
                ))
            }
        }
    }
}

/// The query string as name → value (the last of repeated names wins). Its
/// rejection is the API's error body (`400 validation_failed` naming
/// `query`); bytes that are not UTF-8 once percent-decoded are refused the
/// same way rather than replaced, so no handler sees U+FFFD it did not send.
pub struct QueryMap(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        let mut map = std::collections::HashMap::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(k), Some(v)) = (decode_component(k), decode_component(v)) else {
                return Err(ApiError::field(
                    "query",
                    "is not valid UTF-8 once percent-decoded",
                ));
            };
            map.insert(k, v);
        }
        Ok(QueryMap(map))
    }
}

/// Percent-decodes one query component (`+` is a space), or `None` when the
/// bytes are not UTF-8.
fn decode_component(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The request's correlation id: the client's `X-Request-Id` when it is a
/// UUID, a UUIDv5 of it when it is another id, else a new one. Set by the
/// request-id middleware.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .copied()
            .unwrap_or_else(|| RequestId(Uuid::now_v7())))
    }
}

/// Where a command comes from: its request's correlation id and, when the
/// request carried an `Idempotency-Key`, the command id derived from it
/// (set by [`crate::idempotency::layer`]). Handlers pass it to
/// [`crate::bus::Bus::send`].
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The request's correlation id.
    pub correlation_id: Uuid,
    /// The keyed command, if the request had a key.
    pub keyed: Option<crate::idempotency::Keyed>,
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RequestId(correlation_id) = RequestId::from_request_parts(parts, state).await?;
        Ok(Origin {
            correlation_id,
            keyed: parts.extensions.get::<crate::idempotency::Keyed>().copied(),
        })
    }
}
