//! The routes, one module per area.

pub mod auth;
pub mod docs;
pub mod ops;
pub mod posts;
pub mod users;
