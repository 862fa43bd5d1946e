//! The Prometheus recorder: installed once per process, so every counter the
//! engine and the client emit lands in what `/metrics` serves.

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
/// Orders whose money-moving call has an outcome nobody knows yet.
pub const OUTCOME_UNKNOWN: &str = "refundd_outcome_unknown_orders";
/// Refunds of settled money the bank has not settled yet.
pub const AWAITING_SETTLEMENT: &str = "refundd_refunds_awaiting_settlement";
/// Outcomes the shop's database has not taken yet.
pub const WRITE_BACKS_PENDING: &str = "refundd_shop_write_backs_pending";
/// When a pass last completed (Unix time).
pub const LAST_COMPLETED_PASS: &str = "refundd_last_completed_pass_timestamp_seconds";

/// When a reconciliation last finished (Unix time).
pub const LAST_RECONCILE: &str = "refundd_reconcile_last_run_timestamp_seconds";
/// The latest reconciliation's orders, by class.
pub const RECONCILE_ORDERS: &str = "refundd_reconcile_orders";
/// Mismatches no person or later run has closed.
pub const OPEN_MISMATCHES: &str = "refundd_reconcile_open_mismatches";

/// Gateway results shown from start-up: the answer and the errors the gateway
/// error ratio counts, so the first error of a process is seen as an increase.
pub const GATEWAY_RESULTS_FROM_START: &[&str] =
    &["accepted", "unavailable", "ambiguous", "bad_answer"];

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
    show_from_start();
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
    describe_gauge!(
        BACKLOG,
        "Orders a pass started now would work (measured at each scrape)"
    );
    describe_gauge!(
        OUTCOME_UNKNOWN,
        "Orders with a money-moving call whose outcome is not known yet (measured at each scrape)"
    );
    describe_gauge!(
        AWAITING_SETTLEMENT,
        "Refunds of settled money the bank has not settled yet, watched or unconfirmed (measured at each scrape)"
    );
    describe_gauge!(
        WRITE_BACKS_PENDING,
        "Outcomes the shop's database refused and refundd still has to write back (measured at each scrape and after each pass)"
    );
    describe_gauge!(
        LAST_COMPLETED_PASS,
        Unit::Seconds,
        "When a pass last completed, by any worker (Unix time; this process's start until the database records one)"
    );
    describe_gauge!(
        LAST_RECONCILE,
        Unit::Seconds,
        "When a reconciliation with the bank last finished, by any worker or command (Unix time; this process's start until the database records one)"
    );
    describe_gauge!(
        RECONCILE_ORDERS,
        "The latest reconciliation's orders, by class: matched, expected, mismatch (measured at each scrape)"
    );
    describe_gauge!(
        OPEN_MISMATCHES,
        "Orders the bank does not hold as refundd recorded, not yet closed by a person or a later run (measured at each scrape)"
    );
    describe_counter!(
        "refundd_shop_write_back_refused_total",
        "Outcomes the shop's database refused to take"
    );
    describe_counter!(
        "refundd_webhook_deliveries_total",
        "Webhook deliveries, by result (delivered, failed, dead)"
    );
    describe_gauge!(
        "refundd_webhook_dead_events",
        "Events whose delivery was given up (0 when no webhook is configured)"
    );
    describe_gauge!(
        "refundd_webhook_held_events",
        "Events waiting behind a dead event of their order, which must be delivered first (0 when no webhook is configured)"
    );
    describe_gauge!(
        "refundd_webhook_oldest_undelivered_seconds",
        Unit::Seconds,
        "Age of the oldest event still to be delivered (0 when no webhook is configured)"
    );
    describe_gauge!(
        "refundd_last_pass_timestamp_seconds",
        Unit::Seconds,
        "When this process last finished a pass (Unix time)"
    );
}

/// Every merchant's calls to the bank shown from start-up, as the default
/// merchant's are (`show_from_start`); installs the recorder first, so
/// none is lost.
pub fn show_merchants(merchants: &crate::ctbc::Merchants) {
    install_metrics();
    for (merchant, _) in merchants.iter() {
        show_calls_of(crate::domain::merchant::label(merchant));
    }
}

/// One merchant's calls to the bank (labelled by its name, or `default`),
/// by operation and by each result the gateway error ratio counts.
fn show_calls_of(merchant: &str) {
    for op in crate::ctbc::Operation::ALL {
        for result in GATEWAY_RESULTS_FROM_START {
            metrics::counter!(
                "refundd_gateway_calls_total",
                "operation" => op.as_str(),
                "result" => *result,
                "merchant" => merchant.to_string()
            )
            .increment(0);
        }
    }
}

/// Registers every series the alert rules and the dashboard read, so each is
/// on `/metrics` from start-up rather than after its first event; a counter
/// that first appears at 1 would also hide that first increase.
fn show_from_start() {
    use crate::ctbc::Operation;
    use crate::domain::words::{PassOutcome, RefundMethod};
    use crate::engine::summary::OrderOutcome;
    for outcome in PassOutcome::ALL {
        metrics::counter!("refundd_passes_total", "outcome" => outcome.as_str()).increment(0);
    }
    let orders = RefundMethod::ALL
        .iter()
        .map(|m| OrderOutcome::Refunded(*m))
        .chain([
            OrderOutcome::Deferred,
            OrderOutcome::Unknown,
            OrderOutcome::Failed,
            OrderOutcome::Released,
            OrderOutcome::LeaseLost,
            OrderOutcome::Withdrawn,
        ]);
    for outcome in orders {
        metrics::counter!("refundd_orders_total", "outcome" => outcome.as_str()).increment(0);
    }
    show_calls_of(crate::domain::merchant::label(None));
    for op in Operation::ALL {
        // Registered without a sample: its buckets show at 0.
        let _ = metrics::histogram!(GATEWAY_LATENCY, "operation" => op.as_str());
    }
    for result in ["delivered", "failed", "dead"] {
        metrics::counter!("refundd_webhook_deliveries_total", "result" => result).increment(0);
    }
    metrics::counter!("refundd_shop_write_back_refused_total").increment(0);
    // The notifier sets these every few seconds when a webhook is configured;
    // without one nothing waits for refundd to deliver it.
    metrics::gauge!("refundd_webhook_dead_events").set(0.0);
    metrics::gauge!("refundd_webhook_held_events").set(0.0);
    metrics::gauge!("refundd_webhook_oldest_undelivered_seconds").set(0.0);
    // Replaced at the first scrape by the database's last completed pass.
    metrics::gauge!(LAST_COMPLETED_PASS).set(chrono::Utc::now().timestamp() as f64);
    // Likewise by the last reconciliation: none for a day after start-up is
    // as much a silence as none for a day since the last one.
    metrics::gauge!(LAST_RECONCILE).set(chrono::Utc::now().timestamp() as f64);
    for class in crate::domain::reconcile::Class::ALL {
        metrics::gauge!(RECONCILE_ORDERS, "class" => class.as_str()).set(0.0);
    }
    metrics::gauge!(OPEN_MISMATCHES).set(0.0);
}

/// Sets the gauges read from the queue at a scrape.
pub fn show_queue(g: &crate::store::status::QueueGauges) {
    metrics::gauge!(BACKLOG).set(g.due_now as f64);
    metrics::gauge!(OUTCOME_UNKNOWN).set(g.outcome_unknown as f64);
    metrics::gauge!(AWAITING_SETTLEMENT).set(g.awaiting_settlement as f64);
    metrics::gauge!(WRITE_BACKS_PENDING).set(g.write_backs_pending as f64);
    if let Some(at) = g.last_completed_pass_at {
        metrics::gauge!(LAST_COMPLETED_PASS).set(at.timestamp() as f64);
    }
    if let Some(at) = g.last_reconcile_at {
        metrics::gauge!(LAST_RECONCILE).set(at.timestamp() as f64);
    }
    use crate::domain::reconcile::Class;
    for (class, n) in [
        (Class::Matched, g.reconcile_matched),
        (Class::Expected, g.reconcile_expected),
        (Class::Mismatch, g.reconcile_mismatch),
    ] {
        metrics::gauge!(RECONCILE_ORDERS, "class" => class.as_str()).set(f64::from(n));
    }
    metrics::gauge!(OPEN_MISMATCHES).set(g.open_mismatches as f64);
}
