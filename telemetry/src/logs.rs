//! Logs to stderr, filtered by `RUST_LOG`, and with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans exported over OTLP/HTTP.
//!
//! The trace of a span that [`correlate`] was given a correlation id is that
//! id (a UUID is 128 bits, like a trace id), so the spans of one request on
//! the gateway, the command service and every projector that applies its
//! events form one trace without any trace context on the wire.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use uuid::Uuid;

use crate::{Error, Result};

/// The log filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,async_nats=warn";

/// What is exported when OTLP is on: the forum's spans, not those of the
/// exporter's own HTTP client.
const EXPORT_FILTER: &str =
    "info,sqlx=warn,async_nats=warn,hyper=off,hyper_util=off,reqwest=off,h2=off,opentelemetry=off";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The log lines on stderr, coloured only on a terminal.
fn log_lines<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
}

/// Flushes the exported spans when dropped (at the end of `main`).
#[must_use = "dropping the guard stops the export"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// A guard with nothing to flush.
    pub fn none() -> Self {
        Guard { provider: None }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown() {
                eprintln!("forum: spans not all exported: {e}");
            }
        }
    }
}

/// Installs the process's subscriber: logs to stderr filtered by
/// `RUST_LOG` (default [`DEFAULT_FILTER`]), and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
/// is set, spans exported over OTLP/HTTP (protobuf) under the service name
/// `OTEL_SERVICE_NAME`, else `forum-ROLE`.
///
/// # Errors
/// When the exporter cannot be built from its environment (the logs are
/// installed anyway).
pub fn init(role: &str) -> Result<Guard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let wanted = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()));
    if !wanted {
        // One global filter: what it refuses is never even built.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(log_lines())
            .try_init();
        return Ok(Guard { provider: None });
    }
    // The exporter takes the forum's spans whatever the log shows: each
    // layer has its own filter.
    let fmt = log_lines().with_filter(filter);
    let built = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build();
    let exporter = match built {
        Ok(e) => e,
        Err(e) => {
            let _ = tracing_subscriber::registry().with(fmt).try_init();

            return Err(Error::Otlp(e.to_string()));
        }
    };
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("forum-{role}"));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(name).build())
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("forum"))
        .with_filter(EnvFilter::new(EXPORT_FILTER));
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    EXPORTING.store(true, Ordering::Relaxed);
    Ok(Guard {
        provider: Some(provider),
    })
}

/// Whether spans are exported (OTLP is on).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The target of the followers' lines: `RUST_LOG=info,forum::follow=debug`
/// logs each event applied or derived.
pub const FOLLOW_TARGET: &str = "forum::follow";

/// Logs each event a follower (a projection, the deriver) went through, at
/// debug level, with its correlation id: `applied` or `derived` per `what`;
/// when spans are exported, each is also a span `follow` of its write's
/// trace. Costs nothing when neither is on.
pub fn followed<'a>(
    follower: &str,
    what: &'static str,
    events: impl IntoIterator<Item = &'a forum_events::RecordedEvent>,
) {
    if !exporting() && !tracing::enabled!(target: FOLLOW_TARGET, tracing::Level::DEBUG) {
        return;
    }
    for e in events {
        let span = tracing::info_span!(target: FOLLOW_TARGET, "follow", follower, service = %e.service,
            position = e.position, event_type = %e.event_type,
            correlation_id = %e.metadata.correlation_id);
        correlate(&span, e.metadata.correlation_id);
        span.in_scope(|| tracing::debug!(target: FOLLOW_TARGET, "{what}"));
    }
}

/// Makes `correlation_id` the trace of `span` (call it before the span is
/// first entered). Does nothing unless spans are exported.
pub fn correlate(span: &tracing::Span, correlation_id: Uuid) {
    if !EXPORTING.load(Ordering::Relaxed) || span.is_disabled() {
        return;
    }
    let _ = span
        .set_parent(opentelemetry::Context::new().with_remote_span_context(remote(correlation_id)));
}

/// The remote parent every span of `correlation_id` hangs from: trace id
/// the id's 16 bytes, span id its last 8 (never zero).
fn remote(correlation_id: Uuid) -> SpanContext {
    let bytes = correlation_id.into_bytes();
    let mut span = [0u8; 8];
    span.copy_from_slice(&bytes[8..]);
    if span == [0u8; 8] {
        span[7] = 1;
    }
    SpanContext::new(
        TraceId::from_bytes(bytes),
        SpanId::from_bytes(span),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_of_a_correlation_id_is_its_bytes_and_its_span_id_is_never_zero() {
        let id = Uuid::parse_str("0190a6b2-7c3d-7e4f-8a1b-000000000000").unwrap();
        let sc = remote(id);
        assert_eq!(sc.trace_id().to_bytes(), id.into_bytes());
        assert_ne!(sc.span_id(), SpanId::INVALID);
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(format!("{}", sc.trace_id()), id.simple().to_string());
    }
}
