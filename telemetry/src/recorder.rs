//! The process's one Prometheus recorder. It is installed by the first
//! [`install`] (every role of `forum up` shares it), and every crate records
//! into it through the `metrics` macros; without it the macros do nothing.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::names;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often recorded histogram samples are folded into their buckets when
/// nobody scrapes (so memory stays bounded).
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the recorder (once per process) and records `forum_build_info`
/// for `role`. Later calls only add their role's `forum_build_info`.
pub fn install(role: &str) {
    if handle().is_some() {
        metrics::gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "role" => role.to_string())
            .set(1.0);
    }
}

/// The recorder's handle, installing it first if no one has; `None` when
/// another recorder was installed before (then nothing is recorded here).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), names::SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets(names::SIZE_BUCKETS));
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics not recorded: bad buckets");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "metrics not recorded: another recorder is installed");
                return None;
            }
            names::describe();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep not started: histograms fold at scrapes only");
            }
            Some(handle)
        })
        .as_ref()
}
