//! The routes, one module per area, each exposing `router()`; [`paging`]
//! holds the cursor paging the list routes share.
//!
//! An area with reads is a directory: its `mod.rs` has the router and the
//! handlers, `api` the JSON shapes (answers, live-feed data and request
//! bodies; what other modules import), `read` the read queries and the
//! mapping of their rows. [`users::read`] holds every read of `read.users`
//! and `read.sessions` the gateway makes.

pub mod auth;
pub mod chat;
pub mod docs;
pub mod notifications;
pub mod ops;
pub mod paging;
pub mod posts;
pub mod users;
pub mod web;
