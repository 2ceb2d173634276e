//! What every role tells its operator: metrics in the Prometheus text
//! format, and logs and traces that carry each request's correlation id.
//!
//! # Layout
//! - [`names`]: every metric family, its help text and its buckets, in one
//!   place (docs/METRICS.md lists the same).
//! - [`recorder`]: the process's one Prometheus recorder, installed on first
//!   use; the other crates record through the `metrics` macros.
//! - [`scrape`]: [`Exporter`], the `/metrics` text: the recorded families and
//!   the gauges read at scrape time (pools, NATS, the followers' lag, parked
//!   events).
//! - [`server`]: `/metrics` on an address of its own, for the roles that
//!   have no HTTP port (`--metrics-listen`).
//! - [`logs`]: the tracing subscriber (stderr, `RUST_LOG`), the optional
//!   OTLP export, and [`correlate`], which makes a correlation id a trace id.
//! - [`error`]: the crate's error type.

pub mod error;
pub mod logs;
pub mod names;
pub mod recorder;
pub mod scrape;
pub mod server;

pub use error::{Error, Result};
pub use logs::{correlate, Guard};
pub use scrape::{Exporter, Source};
