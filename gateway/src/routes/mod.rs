//! The routes, one module per area, each exposing `router()`; [`paging`]
//! holds the cursor paging the list routes share.

pub mod auth;
pub mod chat;
pub mod docs;
pub mod notifications;
pub mod ops;
pub mod paging;
pub mod posts;
pub mod users;
pub mod web;
