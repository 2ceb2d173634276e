//! The live feed: WebSockets, fan-out of events, presence and typing.

pub mod presence;

pub use presence::Presence;
