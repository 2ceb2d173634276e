//! `ApiError`: every error the API answers, in the body API.md specifies.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use forum_commands::Rejection;
use serde::Serialize;

/// An error answer. Each variant's doc names its status and code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400 `validation_failed`, with the failing fields.
    #[error("the request is not valid")]
    Validation(BTreeMap<String, String>),
    /// 400 `malformed_json`: the body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 401 `unauthorized`.
    #[error("authentication required")]
    Unauthorized,
    /// 401 `invalid_credentials`.
    #[error("unknown login or wrong password")]
    InvalidCredentials,
    /// 403 `forbidden`.
    #[error("not allowed")]
    Forbidden,
    /// 404 `not_found`.
    #[error("not found")]
    NotFound,
    /// 405 `method_not_allowed` (documented in the OpenAPI description).
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 409 `nickname_taken`.
    #[error("this nickname is taken")]
    NicknameTaken,
    /// 409 `email_taken`.
    #[error("this e-mail address is taken")]
    EmailTaken,
    /// 409 `conflict`.
    #[error("{0}")]
    Conflict(String),
    /// 408 `request_timeout`: the body did not arrive within the body
    /// timeout; answered with `Connection: close`.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 413 `payload_too_large`.
    #[error("the body is larger than 64 KiB")]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`.
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// 429 `rate_limited`, with `Retry-After` seconds.
    #[error("too many requests")]
    RateLimited(u64),
    /// 503 `unavailable`: a dependency did not answer in time.
    #[error("the service is unavailable, try again")]
    Unavailable(String),
    /// 500 `internal`: logged with its cause, answered opaquely.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NicknameTaken | ApiError::EmailTaken | ApiError::Conflict(_) => {
                StatusCode::CONFLICT
            }
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::NicknameTaken => "nickname_taken",
            ApiError::EmailTaken => "email_taken",
            ApiError::Conflict(_) => "conflict",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A validation error on one field.
    pub fn field(name: &str, message: &str) -> Self {
        ApiError::Validation(BTreeMap::from([(name.to_string(), message.to_string())]))
    }
}

/// The error body: `{"error": {"code", "message", "fields"?}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable text.
    pub message: String,
    /// Per-field messages, for `validation_failed` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                self.to_string()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "unavailable");
                self.to_string()
            }
            other => other.to_string(),
        };
        let fields = match &self {
            ApiError::Validation(f) => Some(f.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                fields,
            },
        };
        let mut response = (self.status_code(), axum::Json(body)).into_response();
        match self {
            ApiError::RateLimited(secs) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            ApiError::RequestTimeout => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        if let ApiError::Unavailable(_) = self {
            // Overload or a dependency restarting: worth trying again soon.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Validation(fields) => ApiError::Validation(fields.into_iter().collect()),
            Rejection::NicknameTaken => ApiError::NicknameTaken,
            Rejection::EmailTaken => ApiError::EmailTaken,
            Rejection::InvalidCredentials => ApiError::InvalidCredentials,
            Rejection::Unauthorized => ApiError::Unauthorized,
            Rejection::Forbidden => ApiError::Forbidden,
            Rejection::NotFound => ApiError::NotFound,
            Rejection::Conflict(m) => ApiError::Conflict(m),
            Rejection::Unavailable => ApiError::Unavailable(
                "the service is overloaded or its database unavailable".into(),
            ),
            Rejection::Internal => {
                ApiError::Internal("the service refused with an internal error".into())
            }
            Rejection::RateLimited { retry_after_secs } => {
                ApiError::RateLimited(u64::from(retry_after_secs))
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The gateway's result type.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl From<forum_store::Error> for ApiError {
    fn from(e: forum_store::Error) -> Self {
        match e {
            forum_store::Error::Database(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
