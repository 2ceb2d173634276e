//! Register, login, logout, me.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use forum_commands::auth::validate::{self, Email, Nickname, Password, PersonName};
use forum_commands::auth::{AuthCommand, AuthData, Login, Logout, Register};
use forum_events::auth::Gender;
use forum_events::Service;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::extract::{AuthUser, Fields, JsonBody, Origin, Validate};
use crate::routes::users::api::{Me, User};
use crate::routes::users::read;
use crate::AppState;

/// The accounts routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
}

/// `{"user": Me, "token"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthResponse {
    /// The account.
    pub user: Me,
    /// The session token (also set as the `session` cookie).
    pub token: String,
}

/// Registration body.
#[derive(Debug, utoipa::ToSchema)]
pub struct RegisterRequest {
    /// 3–32 of `A–Z a–z 0–9 _ . -`, unique case-insensitively.
    #[schema(
        value_type = String,
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9_.-]+$"
    )]
    pub nickname: Nickname,
    /// One `@`, a dot in the domain, ≤ 254, no spaces or control characters;
    /// unique case-insensitively.
    #[schema(
        value_type = String,
        max_length = 254,
        pattern = "^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$"
    )]
    pub email: Email,
    /// 8–128 characters.
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    pub password: Password,
    /// 1–64 after trimming; no control characters but tab and line breaks.
    #[schema(
        value_type = String,
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub first_name: PersonName,
    /// 1–64 after trimming; no control characters but tab and line breaks.
    #[schema(
        value_type = String,
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub last_name: PersonName,
    /// Integer 13–130 (a whole JSON number: `30` or `30.0`).
    #[schema(value_type = i64, minimum = 13, maximum = 130)]
    pub age: u8,
    /// `female`, `male`, `other` or `unspecified`.
    #[schema(value_type = String, pattern = "^(female|male|other|unspecified)$")]
    pub gender: Gender,
}

impl Validate for RegisterRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let nickname = f.parsed("nickname", Nickname::parse);
        let email = f.parsed("email", Email::parse);
        let password = f.parsed("password", Password::parse);
        let first_name = f.parsed("first_name", PersonName::parse);
        let last_name = f.parsed("last_name", PersonName::parse);
        let age = f
            .integer("age")
            .and_then(|a| f.check("age", validate::age(a)));
        let gender = f.parsed("gender", validate::gender);
        Some(RegisterRequest {
            nickname: nickname?,
            email: email?,
            password: password?,
            first_name: first_name?,
            last_name: last_name?,
            age: age?,
            gender: gender?,
        })
    }
}

/// Login body.
#[derive(utoipa::ToSchema)]
pub struct LoginRequest {
    /// Nickname or e-mail, any case; no control characters.
    #[schema(
        min_length = 1,
        max_length = 254,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub login: String,
    /// Password (longer than 128 characters never matches).
    #[schema(max_length = 128)]
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl Validate for LoginRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        // No account's nickname or e-mail holds a control character: such
        // a login is refused as input, before any look-up.
        let login = f.parsed("login", |s| {
            forum_commands::text::check(s).map(|()| s.to_string())
        });
        let password = f.string("password");
        Some(LoginRequest {
            login: login?,
            password: password?.to_string(),
        })
    }
}

fn session_cookie(state: &AppState, token: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "session={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("session=; Path=/"))
}

fn with_session(
    state: &AppState,
    status: StatusCode,
    user: Me,
    user_id: Uuid,
    session_id: Uuid,
    (started_at_us, expires_at_us): (i64, i64),
) -> Response {
    // Both from the session alone: a retried login or registration (same
    // Idempotency-Key) answers the same token and the same cookie.
    let token = state
        .tokens
        .issue(user_id, session_id, started_at_us, expires_at_us);
    let max_age = ((expires_at_us - started_at_us) / 1_000_000).max(0);
    let cookie = session_cookie(state, &token, max_age);
    let mut response = (status, Json(AuthResponse { user, token })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// Creates an account and logs it in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = AuthResponse, description = "Created; the session cookie is set"),
              (status = 400, body = crate::error::ErrorBody, description = "validation_failed / malformed_json"),
              (status = 409, body = crate::error::ErrorBody, description = "nickname_taken / email_taken")))]
pub async fn register(
    State(state): State<AppState>,
    rid: Origin,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let body = RegisterRequest::parse(&body)?;
    let command = Register {
        nickname: body.nickname.into_inner(),
        email: body.email.into_inner(),
        password: body.password.into_inner(),
        first_name: body.first_name.into_inner(),
        last_name: body.last_name.into_inner(),
        age: body.age,
        gender: body.gender,
    };
    let me_fields = command.clone();
    let accepted = state
        .bus
        .send::<_, AuthData>(
            Service::Auth,
            "register",
            rid,
            None,
            AuthCommand::Register(command),
        )
        .await?;
    let AuthData::Registered {
        user_id,
        session_id,
        expires_at_us,
        registered_at_us,
    } = accepted.data
    else {
        return Err(ApiError::Internal("unexpected reply to register".into()));
    };
    state.watermarks.wait(&accepted.positions).await?;
    let me = Me {
        user: User {
            id: user_id,
            nickname: me_fields.nickname,
            first_name: me_fields.first_name,
            last_name: me_fields.last_name,
            age: me_fields.age as i16,
            gender: me_fields.gender.as_str().to_string(),
            created_at: crate::time::format_us(registered_at_us),
        },
        email: me_fields.email,
    };
    Ok(with_session(
        &state,
        StatusCode::CREATED,
        me,
        user_id,
        session_id,
        (registered_at_us, expires_at_us),
    ))
}

/// Logs in by nickname or e-mail.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = AuthResponse, description = "The session cookie is set"),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody, description = "invalid_credentials, for unknown user and wrong password alike")))]
pub async fn login(
    State(state): State<AppState>,
    rid: Origin,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let LoginRequest { login, password } = LoginRequest::parse(&body)?;
    if login.is_empty() || login.chars().count() > 254 || password.chars().count() > 128 {
        return Err(ApiError::InvalidCredentials);
    }
    let command = AuthCommand::Login(Login { login, password });
    let accepted = state
        .bus
        .send::<_, AuthData>(Service::Auth, "login", rid, None, command)
        .await?;
    let AuthData::LoggedIn {
        user_id,
        session_id,
        expires_at_us,
        started_at_us,
    } = accepted.data
    else {
        return Err(ApiError::Internal("unexpected reply to login".into()));
    };
    state.watermarks.wait(&accepted.positions).await?;
    let me = read::me(&state.pool, user_id)
        .await?
        .ok_or_else(|| ApiError::Internal("logged-in user missing from read.users".into()))?;
    Ok(with_session(
        &state,
        StatusCode::OK,
        me,
        user_id,
        session_id,
        (started_at_us, expires_at_us),
    ))
}

/// Ends this session: its token stops working at once, on every gateway.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out; the cookie is cleared"),
              (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
) -> Result<Response> {
    let command = AuthCommand::Logout(Logout {
        session_id: user.session_id,
    });
    let accepted = state
        .bus
        .send::<_, AuthData>(Service::Auth, "logout", rid, Some(user.user_id), command)
        .await?;
    state.watermarks.wait(&accepted.positions).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Me>> {
    read::me(&state.pool, user.user_id)
        .await?
        .map(Json)
        .ok_or(ApiError::Unauthorized)
}
