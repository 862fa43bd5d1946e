// The Prometheus recorder: installed once per process, so every counter the
// engine and the client emit lands in what `/metrics` serves.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// How often histogram samples are drained into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Histogram buckets for a call to the bank, in seconds: most answers take
/// well under a second, the client gives up after `ctbc.timeout_secs` (30 s).
pub const GATEWAY_LATENCY_BUCKETS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

/// The gateway latency histogram, as named by the CTBC client.
pub const GATEWAY_LATENCY: &str = "refundd_gateway_call_seconds";
/// Orders a pass started now would work.
pub const BACKLOG: &str = "refundd_backlog";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder the first time; returns the handle that renders it.
pub fn install_metrics() -> PrometheusHandle {
    HANDLE.get_or_init(install).clone()
}

fn install() -> PrometheusHandle {
    // Fails only for an empty bucket list.
    let builder = match PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full(GATEWAY_LATENCY.into()),
        GATEWAY_LATENCY_BUCKETS,
    ) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "gateway latency buckets not applied; using summaries");
            PrometheusBuilder::new()
        }
    };
    let handle = match builder.install_recorder() {
        Ok(h) => h,
        Err(e) => {
            // Another recorder owns this process: serve an empty page rather than fail.
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
            PrometheusBuilder::new().build_recorder().handle()
        }
    };
    describe();
    spawn_upkeep(handle.clone());
    handle
}

/// The recorder keeps every histogram sample until upkeep drains it into the
/// buckets. Nothing else does that when no one scrapes `/metrics` (`once`, or
/// `http.listen = off`), and a long pass would grow by a few bytes per call:
/// drain on a timer for the life of the process.
fn spawn_upkeep(handle: PrometheusHandle) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(UPKEEP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    handle.run_upkeep();
                }
            });
        }
        Err(_) => {
            tracing::warn!("metrics installed outside the runtime: histograms are drained only when /metrics is rendered");
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "refundd_passes_total",
        "Passes over the refund queue, by how they ended"
    );
    describe_counter!(
        "refundd_orders_total",
        "Attempts at orders, by outcome (refund method, deferred, outcome_unknown, failed, ...)"
    );
    describe_counter!(
        "refundd_gateway_calls_total",
        "Calls to the CTBC POS API, by operation and result"
    );
    describe_histogram!(
        GATEWAY_LATENCY,
        Unit::Seconds,
        "Time of one call to the CTBC POS API, by operation"
    );
    describe_gauge!(BACKLOG, "Orders a pass started now would work");
    describe_gauge!(
        "refundd_last_pass_timestamp_seconds",
        Unit::Seconds,
        "When this process last finished a pass (Unix time)"
    );
}
