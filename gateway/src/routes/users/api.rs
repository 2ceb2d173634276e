//! The JSON shapes of users: [`User`] and [`Me`].

use serde::Serialize;
use uuid::Uuid;

/// A user's public view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Nickname, case as registered.
    pub nickname: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Age.
    pub age: i16,
    /// `female`, `male`, `other` or `unspecified`.
    pub gender: String,
    /// Registration time.
    #[schema(example = "2026-11-24T09:15:02.123Z")]
    pub created_at: String,
}

/// The logged-in user's own view: [`User`] plus the e-mail address.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The public fields.
    #[serde(flatten)]
    pub user: User,
    /// E-mail address.
    pub email: String,
}
