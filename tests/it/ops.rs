//! What operators rely on, tested against real PostgreSQL, the simulator and
//! real HTTP: log lines as JSON with the order's fields and no secret, the
//! health and metrics endpoint, `status`, `request` and `retry` through the
//! binary, progress lines, and the demo end to end.

use crate::common::{
    bank_tx, eventually, fresh_db, http_get, order_view, refundd_bin, Captured, Rig,
};
use refundd::ctbc::envelope::Envelope;
use refundd::ctbc::types::MerId;
use refundd::ctbc::TxState;
use refundd::ctbc::{Client, ClientConfig};
use refundd::engine::clock::SystemClock;
use refundd::engine::pass::Engine;
use refundd::engine::summary::PassCounters;
use refundd::ops::health::Health;
use refundd::ops::http::serve;
use refundd::sim::{SimConfig, SimServer, REFERENCE_MER_ID};
use serde_json::Value;
use std::process::Output;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::prelude::*;

// ---------------------------------------------------------------- logs

fn order_no_of(line: &Value) -> Option<&str> {
    line.get("order_no")
        .or_else(|| line.get("span").and_then(|s| s.get("order_no")))
        .and_then(Value::as_str)
}

const TEST_MAC_KEY: &str = "QWERTYUIOPASDFGHJKLZXCV9";
const TEST_IV: &str = "zx8v7n6m";

#[tokio::test]
async fn log_lines_are_json_with_the_order_fields_and_never_the_mac_key() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("trace"))
        .with(refundd::ops::logging::json_layer(logs.clone()));
    let _guard = crate::common::on_this_thread(subscriber);

    let (pool, _url) = fresh_db().await;
    let sim = SimServer::start(SimConfig {
        mac_key: TEST_MAC_KEY.into(),
        iv: TEST_IV.into(),
        ..SimConfig::for_tests()
    })
    .await
    .unwrap();
    let admin = sim.admin();
    let orders = [
        ("LOGS_AUTH", TxState::Authorised),
        ("LOGS_CAPT", TxState::CapturedNotSettled),
        ("LOGS_SETTLED", TxState::Settled),
    ];
    for (no, state) in orders.clone() {
        admin.load(&[bank_tx(no, 1200, state)]).await.unwrap();
        refundd::store::Store::builtin(pool.clone())
            .insert_paid_order(no, Some(&format!("X{no}")), "A1B2C3", 1200)
            .await
            .unwrap();
        refundd::ops::manual_queue::request(
            &refundd::store::Store::builtin(pool.clone()),
            no,
            None,
        )
        .await
        .unwrap();
    }
    let mut cfg = ClientConfig::new(
        url::Url::parse(&sim.base_url()).unwrap(),
        MerId::parse(REFERENCE_MER_ID).unwrap(),
        Envelope::new(TEST_MAC_KEY.as_bytes(), TEST_IV.as_bytes()).unwrap(),
    );
    cfg.timeout = Duration::from_secs(10);
    let engine = Engine::new(
        refundd::store::Store::builtin(pool.clone()),
        Client::new(cfg).unwrap(),
        crate::common::engine_settings(),
        Arc::new(SystemClock),
    );
    let summary = engine
        .run_pass(&CancellationToken::new(), Arc::new(PassCounters::default()))
        .await
        .unwrap();
    assert_eq!(summary.refunded(), 3, "{}", summary.line());
    sim.shutdown().await;

    let text = logs.text();
    assert!(!text.contains(TEST_MAC_KEY), "the MAC key reached the logs");
    assert!(!text.contains(TEST_IV), "the IV reached the logs");
    assert!(
        !text.contains("ApiEnc="),
        "an encrypted body reached the logs"
    );

    let lines = logs.lines();
    assert!(lines.len() > 10, "too few log lines:\n{text}");
    // Every line the engine writes while working an order names it.
    let engine_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("refundd_core::engine::"))
        })
        .filter(|l| l.get("span").and_then(|s| s.get("name")) == Some(&Value::from("order")))
        .collect();
    assert!(!engine_lines.is_empty(), "{text}");
    for l in &engine_lines {
        let no = order_no_of(l).unwrap_or_else(|| panic!("no order_no: {l}"));
        assert!(orders.iter().any(|(o, _)| *o == no), "{l}");
    }
    // Every gateway line carries the order, the operation and the time it took.
    let gateway: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("operation").is_some())
        .collect();
    for op in ["inquiry", "reversal", "capture_reversal", "refund"] {
        assert!(
            gateway.iter().any(|l| l["operation"] == op),
            "no log line for {op}:\n{text}"
        );
    }
    for l in &gateway {
        assert!(
            order_no_of(l).is_some(),
            "gateway line without order_no: {l}"
        );
        assert!(
            l["elapsed_ms"].is_u64(),
            "gateway line without elapsed_ms: {l}"
        );
    }
    // The bank's accepted answers name the step.
    assert!(gateway
        .iter()
        .any(|l| l["message"] == "bank accepted" && l["step"] == "capture_reversal"));
    // One summary line per pass, with its counts.
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "pass_summary")
        .collect();
    assert_eq!(summaries.len(), 1, "{text}");
    let s = summaries[0];
    assert_eq!(s["claimed"], 3);
    assert_eq!(s["refunded"], 3);
    assert_eq!(s["refunded_reversal"], 1);
    assert_eq!(s["refunded_capture_reversal"], 1);
    assert_eq!(s["refunded_refund"], 1);
    assert_eq!(s["failed"], 0);
    assert!(s["elapsed_ms"].is_u64());
}

/// A full reversal sends AuthNewAmt 0 (the authorisation that remains): the
/// log says what was given back, and names what remains apart, so an
/// operator never reads 0 for a full refund.
#[tokio::test]
async fn accepted_calls_log_the_amount_given_back_and_the_authorisation_left() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(refundd::ops::logging::json_layer(logs.clone()));
    let _guard = crate::common::on_this_thread(subscriber);
    let rig = Rig::new().await;
    rig.seed("BACK_FULL", 1200, TxState::Authorised, None).await;
    rig.seed("BACK_PART", 1000, TxState::Authorised, Some(300))
        .await;
    rig.seed("BACK_CAPT", 800, TxState::CapturedNotSettled, None)
        .await;
    rig.seed("BACK_SETL", 500, TxState::Settled, Some(200))
        .await;
    assert_eq!(rig.pass().await.refunded(), 4);

    let lines = logs.lines();
    let accepted = |order: &str, op: &str| -> Value {
        lines
            .iter()
            .find(|l| {
                l["message"] == "bank accepted"
                    && l["operation"] == op
                    && order_no_of(l) == Some(order)
            })
            .unwrap_or_else(|| panic!("no accepted {op} for {order}:\n{}", logs.text()))
            .clone()
    };
    let fields = |l: &Value| {
        (
            l.get("amount_back").and_then(Value::as_i64),
            l.get("auth_remaining").and_then(Value::as_i64),
            l.get("capture_reversed").and_then(Value::as_i64),
            l.get("amount").cloned(),
        )
    };
    // (given back, authorisation left, capture taken out, no ambiguous `amount`)
    for (order, op, expected) in [
        ("BACK_FULL", "reversal", (Some(1200), Some(0), None, None)),
        ("BACK_PART", "reversal", (Some(300), Some(700), None, None)),
        (
            "BACK_CAPT",
            "capture_reversal",
            (None, None, Some(800), None),
        ),
        ("BACK_CAPT", "reversal", (Some(800), Some(0), None, None)),
        ("BACK_SETL", "refund", (Some(200), None, None, None)),
    ] {
        let line = accepted(order, op);
        assert_eq!(fields(&line), expected, "{order} {op}: {line}");
    }
}

#[tokio::test]
async fn progress_lines_report_done_total_and_rate() {
    let logs = Captured::default();
    let subscriber =
        tracing_subscriber::registry().with(refundd::ops::logging::json_layer(logs.clone()));
    let _guard = crate::common::on_this_thread(subscriber);

    let counters = Arc::new(PassCounters::default());
    counters.backlog.store(40, Ordering::Relaxed);
    counters.done.store(10, Ordering::Relaxed);
    let stop = CancellationToken::new();
    let task = tokio::spawn(refundd::ops::progress::log_lines(
        counters.clone(),
        stop.clone(),
        Duration::from_millis(20),
    ));
    eventually(Duration::from_secs(10), "a progress line", || async {
        logs.text().contains("\"progress\"")
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let line = logs
        .lines()
        .into_iter()
        .find(|l| l["event"] == "progress")
        .unwrap();
    assert_eq!(line["done"], 10);
    assert_eq!(line["total"], 40);
    assert!(line["rate_per_sec"].is_number(), "{line}");
}

// ---------------------------------------------------------------- HTTP

#[tokio::test]
async fn healthz_turns_503_when_the_scheduler_is_silent_or_the_database_goes_away() {
    let (pool, url) = fresh_db().await;
    let health = Health::new();
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let addr = serve(
        "127.0.0.1:0".parse().unwrap(),
        refundd::store::Store::builtin(pool.clone()),
        health.clone(),
        stop.clone(),
        &tasks,
    )
    .await
    .unwrap();
    assert_ne!(addr.port(), 0);

    let (code, body) = http_get(addr, "/healthz").await.unwrap();
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["database"], "ok");
    assert!(
        v["reasons"][0].as_str().unwrap().contains("scheduler"),
        "{v}"
    );

    health.scheduler_beat();
    let (code, body) = http_get(addr, "/healthz").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["scheduler"], "alive");
    assert!(v["last_pass"].is_null());

    let summary = refundd::engine::summary::PassSummary {
        outcome: refundd::domain::words::PassOutcome::Completed,
        ..Default::default()
    };
    health.pass_finished(chrono::Utc::now(), &summary);
    let (_, body) = http_get(addr, "/healthz").await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["last_pass"]["outcome"], "completed", "{v}");

    // The database goes away.
    let name = url.rsplit('/').next().unwrap().to_string();
    let cluster = tokio::task::spawn_blocking(refundd::throwaway_pg::ThrowawayPostgres::shared)
        .await
        .unwrap()
        .unwrap();
    let admin = refundd::store::connect(&cluster.url("postgres"), 1)
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
    let (code, body) = http_get(addr, "/healthz").await.unwrap();
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert_eq!(v["database"], "unreachable");
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("database unreachable")),
        "{v}"
    );
    // /metrics still answers without its database.
    let (code, _) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);

    // The server is a task of the tracker and ends when told to.
    stop.cancel();
    tasks.close();
    tokio::time::timeout(Duration::from_secs(10), tasks.wait())
        .await
        .expect("the endpoint's task ends after stop");
    assert!(reqwest::get(format!("http://{addr}/healthz"))
        .await
        .is_err());
}

/// Checks the Prometheus text exposition format line by line; returns the samples.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "bad comment line: {line}"
            );
            if let Some(t) = rest.strip_prefix("TYPE ") {
                let kind = t.split_whitespace().nth(1).unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "bad TYPE: {line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(v.starts_with('"'), "{line}");
                }
            }
        }
        samples.push((series.to_string(), value));
    }
    samples
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_count_a_pass() {
    let rig = Rig::new().await;
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let addr = serve(
        "127.0.0.1:0".parse().unwrap(),
        rig.store.clone(),
        Health::new(),
        stop.clone(),
        &tasks,
    )
    .await
    .unwrap();
    let passes_before = completed_passes(&parse_prometheus(
        &http_get(addr, "/metrics").await.unwrap().1,
    ));

    rig.seed("MET_AUTH", 800, TxState::Authorised, None).await;
    rig.seed("MET_CAPT", 900, TxState::CapturedNotSettled, None)
        .await;
    rig.insert_order("MET_WAITING", 500, None).await;
    sqlx::query("UPDATE refundd.refunds SET next_attempt_at = now() + interval '1 hour' WHERE order_no = 'MET_WAITING'")
        .execute(&rig.pool)
        .await
        .unwrap();
    let summary = rig.pass().await;
    assert_eq!(summary.refunded(), 2);
    // A request that is due now shows in the backlog.
    rig.insert_order("MET_DUE", 700, None).await;

    let (code, text) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let samples = parse_prometheus(&text);
    assert!(
        completed_passes(&samples) >= passes_before + 1.0,
        "the pass was not counted:\n{text}"
    );
    let value = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    assert_eq!(value("refundd_backlog"), 1.0);
    assert!(value(r#"refundd_orders_total{outcome="reversal"}"#) >= 1.0);
    assert!(
        value(
            r#"refundd_gateway_calls_total{operation="capture_reversal",result="accepted",merchant="default"}"#
        ) >= 1.0
    );
    assert!(
        samples.iter().any(
            |(s, _)| s.starts_with("refundd_gateway_call_seconds_bucket{")
                && s.contains("operation=\"inquiry\"")
                && s.contains("le=\"0.05\"")
        ),
        "no latency buckets:\n{text}"
    );
    assert!(text.contains("# TYPE refundd_gateway_call_seconds histogram"));
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

fn completed_passes(samples: &[(String, f64)]) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == r#"refundd_passes_total{outcome="completed"}"#)
        .map(|(_, v)| *v)
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------- commands

fn refundd_at(url: &str, args: &[&str]) -> Output {
    refundd_bin()
        .args(args)
        .env("REFUNDD__DATABASE__URL", url)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn status_json_matches_the_database() {
    let rig = Rig::new().await;
    rig.seed("ST_AUTH", 1000, TxState::Authorised, None).await;
    rig.seed("ST_SETTLED", 2000, TxState::Settled, Some(500))
        .await;
    rig.seed("ST_FAILED", 300, TxState::AuthFailed, None).await;
    rig.seed("ST_BATCH", 400, TxState::CaptureBatchRunning, None)
        .await;
    rig.insert_order("ST_NOT_AT_BANK", 600, None).await;
    let summary = rig.pass().await;
    assert_eq!(summary.claimed, 5);
    // Orders as a later moment would find them.
    refundd::store::Store::builtin(rig.pool.clone())
        .insert_paid_order("ST_PAID", Some("XST_PAID"), "A1B2C3", 700)
        .await
        .unwrap();
    rig.insert_order("ST_BACKOFF", 800, None).await;
    sqlx::query("UPDATE refundd.refunds SET attempts = 2, last_error = 'bank unavailable', next_attempt_at = now() + interval '10 minutes' WHERE order_no = 'ST_BACKOFF'")
        .execute(&rig.pool).await.unwrap();
    rig.insert_order("ST_UNKNOWN", 900, None).await;
    sqlx::query("UPDATE refundd.refunds SET status = 'refunding', unknown_operation = 'refund', unknown_since = now(), next_attempt_at = now() + interval '5 minutes' WHERE order_no = 'ST_UNKNOWN'")
        .execute(&rig.pool).await.unwrap();

    let out = refundd_at(&rig.url, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();

    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM refundd.refunds GROUP BY status")
            .fetch_all(&rig.pool)
            .await
            .unwrap();
    for (status, n) in &counts {
        let shown = v["counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == status.as_str())
            .unwrap_or_else(|| panic!("{status} missing: {v}"));
        assert_eq!(shown["count"], *n, "{status}");
    }
    assert_eq!(v["counts"].as_array().unwrap().len(), 5);

    let names = |key: &str| -> Vec<String> {
        let mut n: Vec<String> = v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_no"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let db_names = |sql: &str| {
        let pool = rig.pool.clone();
        let sql = sql.to_string();
        async move {
            let mut n: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&pool).await.unwrap();
            n.sort();
            n
        }
    };
    assert_eq!(
        names("failed"),
        db_names("SELECT order_no FROM refundd.refunds WHERE status = 'refund_failed'").await
    );
    assert_eq!(names("failed"), ["ST_FAILED", "ST_NOT_AT_BANK"]);
    assert!(v["failed"][0]["refund_error"].as_str().unwrap().len() > 5);
    assert_eq!(
        names("waiting"),
        db_names("SELECT order_no FROM refundd.refunds WHERE status IN ('refund_requested','refunding') AND next_attempt_at > now()").await
    );
    assert!(names("waiting").contains(&"ST_BACKOFF".to_string()));
    assert_eq!(names("unknown"), ["ST_UNKNOWN"]);
    assert_eq!(v["unknown"][0]["operation"], "refund");
    assert_eq!(v["unknown_total"], 1);
    assert_eq!(names("settling"), ["ST_SETTLED"]);
    assert_eq!(v["settling"][0]["refunded_amount"], 500);
    // ST_BATCH waits for the next pass (batch running), due now; it is the oldest request.
    assert_eq!(v["oldest_request"]["order_no"], "ST_BATCH");
    assert!(v["oldest_request"]["age_secs"].as_i64().unwrap() >= 0);
    let due: i64 = rig.store.count_due_now().await.unwrap();
    assert_eq!(v["due_now"], due);
    assert_eq!(v["last_pass"]["outcome"], "completed");
    assert_eq!(v["last_pass"]["summary"]["claimed"], 5);
    assert_eq!(v["last_pass"]["summary"]["refunded_refund"], 1);

    // The table for people says the same things.
    let out = refundd_at(&rig.url, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "ST_FAILED",
        "ST_UNKNOWN",
        "ST_BACKOFF",
        "ST_SETTLED",
        "refund_failed",
        "last pass",
    ] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }
}

/// Without a webhook the outbox keeps its events, and nothing waits for a
/// delivery: `status` says so rather than count them undelivered.
#[tokio::test]
async fn status_without_a_webhook_says_the_events_are_kept_not_undelivered() {
    let rig = Rig::new().await;
    rig.seed("NO_HOOK", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    let kept = rig.store.delivery_state().await.unwrap().undelivered;
    assert!(kept > 0);

    let out = refundd_at(&rig.url, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let events = if kept == 1 { "event" } else { "events" };
    let said = format!("no webhook set (notify.webhook_url): {kept} {events} kept in the outbox");
    assert!(table.contains(&said), "{said:?} missing:\n{table}");
    assert!(!table.contains("undelivered"), "{table}");
}

#[test]
fn status_without_a_database_url_is_a_settings_error() {
    let out = refundd_bin().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("REFUNDD__DATABASE__URL"),
        "{}",
        stderr(&out)
    );
}

async fn seed_statuses(pool: &sqlx::PgPool) {
    for (no, status) in [
        ("CLI_PAID", "paid"),
        ("CLI_PAID2", "paid"),
        ("CLI_FAILED", "refund_failed"),
        ("CLI_DONE", "refunded"),
    ] {
        refundd::store::Store::builtin(pool.clone())
            .insert_paid_order(no, Some(&format!("X{no}")), "A1B2C3", 1000)
            .await
            .unwrap();
        if status != "paid" {
            // The shop's row, and refundd's record of the refund.
            sqlx::query("UPDATE orders SET status = $2, refund_error = CASE WHEN $2 = 'refund_failed' THEN 'needs a person: test' END WHERE order_no = $1")
                .bind(no)
                .bind(status)
                .execute(pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO refundd.refunds (order_no, xid, auth_code, auth_amount, status, refund_error, attempts)
                 VALUES ($1, 'X' || $1, 'A1B2C3', 1000, $2, CASE WHEN $2 = 'refund_failed' THEN 'needs a person: test' END, 3)",
            )
            .bind(no)
            .bind(status)
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

#[tokio::test]
async fn request_checks_its_input_and_marks_a_paid_order() {
    let (pool, url) = fresh_db().await;
    seed_statuses(&pool).await;

    let rejected = |args: &[&str], needles: &[&str]| {
        let out = refundd_at(&url, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        for n in needles {
            assert!(err.contains(n), "{args:?}: {n:?} missing from: {err}");
        }
    };
    rejected(&["request", "BAD-NO!"], &["order_no", "LID-M"]);
    rejected(
        &["request", "NO_SUCH_ORDER"],
        &["NO_SUCH_ORDER", "does not exist"],
    );
    rejected(
        &["request", "CLI_PAID", "--amount", "1001"],
        &["1001", "authorised for 1000"],
    );
    rejected(&["request", "CLI_PAID", "--amount", "0"], &["more than 0"]);
    rejected(
        &["request", "CLI_FAILED"],
        &["is refund_failed", "refundd retry"],
    );
    rejected(&["request", "CLI_DONE"], &["is refunded", "refunded whole"]);
    // Nothing changed.
    let status: String =
        sqlx::query_scalar("SELECT status FROM orders WHERE order_no = 'CLI_PAID'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "paid");

    let out = refundd_at(&url, &["request", "CLI_PAID", "--amount", "400"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NT$400 of the NT$1,000"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (status, amount, requested_at): (
        String,
        Option<i64>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as(
        "SELECT status, refund_amount, refund_requested_at FROM orders WHERE order_no = 'CLI_PAID'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), amount), ("refund_requested", Some(400)));
    assert!(requested_at.is_some());
    rejected(
        &["request", "CLI_PAID"],
        &["is refund_requested", "already in the refund queue"],
    );

    let out = refundd_at(&url, &["request", "CLI_PAID2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let amount: Option<i64> =
        sqlx::query_scalar("SELECT refund_amount FROM orders WHERE order_no = 'CLI_PAID2'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(amount, None);
    let notes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refundd.refund_events WHERE kind = 'note' AND message = $1",
    )
    .bind(refundd::ops::manual_queue::REQUEST_NOTE)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(notes, 2);
}

#[tokio::test]
async fn retry_checks_its_input_and_requeues_a_failed_order() {
    let (pool, url) = fresh_db().await;
    seed_statuses(&pool).await;

    for (args, needles) in [
        (vec!["retry", "BAD-NO!"], vec!["order_no"]),
        (vec!["retry", "NO_SUCH_ORDER"], vec!["no record"]),
        (
            vec!["retry", "CLI_PAID"],
            vec!["no record", "refundd request"],
        ),
        (
            vec!["retry", "CLI_DONE"],
            vec!["is refunded", "refunded once"],
        ),
    ] {
        let out = refundd_at(&url, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        for n in needles {
            assert!(
                stderr(&out).contains(n),
                "{args:?}: {n:?} missing: {}",
                stderr(&out)
            );
        }
    }

    let out = refundd_at(&url, &["retry", "CLI_FAILED"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A request again: a fresh start, stamped with when it was asked for
    // (`requested_at` is read as a time, never empty).
    let own = crate::common::test_pool(&url, crate::common::DEFAULT_SCHEMA).await;
    let again = order_view(&own, "CLI_FAILED").await;
    assert_eq!(again.status, "refund_requested");
    assert_eq!(again.attempts, 0);
    assert_eq!(again.refund_error, None);
    let shop_status: String =
        sqlx::query_scalar("SELECT status FROM orders WHERE order_no = 'CLI_FAILED'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        shop_status, "refund_requested",
        "the built-in table asks again"
    );
    let story: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT kind, to_status, message FROM refundd.refund_events WHERE order_no = 'CLI_FAILED' ORDER BY id DESC LIMIT 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        story[0],
        (
            "note".to_string(),
            None,
            Some("retry requested from the command line".to_string())
        )
    );
    assert_eq!(story[1].1.as_deref(), Some("refund_requested"));

    let out = refundd_at(&url, &["retry", "CLI_FAILED"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already in the refund queue"));
}

/// The shop asked for NT$300.50 of a NT$1,299 sale: refundd refunds whole
/// NT$ only, so the order failed, and `retry` says what the shop asked and
/// that refundd would refund nothing of it, never "the whole 1299".
#[tokio::test]
async fn retry_says_the_amount_the_shop_gave_and_what_refundd_would_refund() {
    use refundd::ops::manual_queue::retry;
    let rig = Rig::in_shop(&refundd::ops::shop_examples::CODES).await;
    let sale = |sql: &'static str| {
        let pool = rig.pool.clone();
        async move { sqlx::query(sql).execute(&pool).await.unwrap() }
    };
    rig.seed("HALF", 1299, TxState::Settled, Some(300)).await;
    sale("UPDATE shop2.sales SET refund = 300.50 WHERE order_code = 'HALF'").await;
    rig.pass().await;
    assert_eq!(rig.order("HALF").await.status, "refund_failed");

    // The shop asks again, still for 300.50: the next pass reads that row.
    sale("UPDATE shop2.sales SET state = 5 WHERE order_code = 'HALF'").await;
    let line = retry(&rig.store, "HALF", None)
        .await
        .unwrap()
        .line("back in the queue");
    for needle in ["NT$300.50", "NT$1,299", "would refund nothing", "fraction"] {
        assert!(line.contains(needle), "{needle:?} missing from: {line}");
    }
    assert!(!line.contains("whole 1299"), "{line}");

    // Corrected to a whole NT$300 (and read), and failed again for another
    // reason: the shop's row and what refundd would give back.
    sale("UPDATE shop2.sales SET refund = 300 WHERE order_code = 'HALF'").await;
    rig.store.intake(1000).await.unwrap();
    sale("UPDATE refunds SET status = 'refund_failed' WHERE order_no = 'HALF'").await;
    let line = retry(&rig.store, "HALF", None)
        .await
        .unwrap()
        .line("back in the queue");
    for needle in [
        "NT$300.00 of NT$1,299.00",
        "would refund NT$300 of the NT$1,299",
    ] {
        assert!(line.contains(needle), "{needle:?} missing from: {line}");
    }

    // No longer listed by the shop: what refundd last read, which the next pass works from.
    sale("UPDATE shop2.sales SET state = 9 WHERE order_code = 'HALF'").await;
    sale("UPDATE refunds SET status = 'refund_failed' WHERE order_no = 'HALF'").await;
    let line = retry(&rig.store, "HALF", None)
        .await
        .unwrap()
        .line("back in the queue");
    for needle in [
        "no longer list",
        "NT$300 of NT$1,299",
        "would refund NT$300",
    ] {
        assert!(line.contains(needle), "{needle:?} missing from: {line}");
    }
}

// ---------------------------------------------------------------- demo

#[test]
fn the_demo_runs_to_completion_and_its_totals_match() {
    let out = refundd_bin().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table: Vec<&str> = stdout.lines().filter(|l| l.starts_with('D')).collect();
    for i in 1..=50 {
        let prefix = format!("D{i:02}_");
        assert!(
            table.iter().any(|l| l.starts_with(&prefix)),
            "order {prefix} missing:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("50 orders: refund_failed 12, refunded 38"),
        "{stdout}"
    );
    assert!(stdout.contains("totals match."), "{stdout}");
    // Last, changes at the bank's portal: a reconciliation finds each, and only them.
    assert!(
        stdout.contains("mismatch 6 (6 new)")
            && stdout.contains("the six orders changed at the portal are the six mismatches"),
        "{stdout}"
    );
    for (order, reason) in [
        ("D01_AUTH", "does not know the order"),
        ("D24_SETTLED", "failed at the bank's settlement"),
        ("D33_SETTLED_PART", "made elsewhere"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("mismatch {order} ")) && l.contains(reason)),
            "{order}: {stdout}"
        );
    }
    // The integration, not only the engine: the settings used and the shop's own statuses.
    assert!(
        stdout.contains("[shop]") && stdout.contains("requests = "),
        "{stdout}"
    );
    assert!(
        stdout.contains("shop.orders, as refundd wrote it back: 已退款 38, 退款失敗 12"),
        "{stdout}"
    );
    // A few of the shop's rows: what on_refunded and on_failed wrote into them.
    let shop_row = |oid: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(oid) && l.starts_with("  "))
            .unwrap_or_else(|| panic!("no shop row {oid}:\n{stdout}"))
            .to_string()
    };
    let row = shop_row("D01_AUTH");
    assert!(row.contains("已退款") && row.contains(" reversal"), "{row}");
    let row = shop_row("D11_CAPT");
    assert!(
        row.contains("已退款") && row.contains("capture_reversal+reversal"),
        "{row}"
    );
    let row = shop_row("D32_SETTLED_PART");
    assert!(
        row.contains("已退款") && row.contains("1748 refund"),
        "{row}"
    );
    let row = shop_row("D50_NO_XID");
    assert!(
        row.contains("退款失敗") && row.contains("invalid row: xid is missing"),
        "{row}"
    );
    let row = shop_row("D38_CANCELLED");
    assert!(
        row.contains("退款失敗") && row.contains("needs a person"),
        "{row}"
    );
    assert!(
        stdout.contains("duplicates (money asked back twice): 0"),
        "{stdout}"
    );
    assert!(stdout.contains("pass 1: pass completed"));
    assert!(stdout.contains("pass 2: pass completed"));
    // The returns shop beside it: an order refunded in two parts, and the
    // orders of a second merchant id, each refunded under its own MERID.
    let refund_row = |return_no: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.split_whitespace().nth(3) == Some(return_no))
            .unwrap_or_else(|| panic!("no row of return {return_no}:\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    for (return_no, merchant, mer_id) in [
        ("R02-A", "brand", "7654321"),
        ("R02-B", "brand", "7654321"),
        ("R03-A", "brand", "7654321"),
        ("R01-A", "default", "1234567"),
    ] {
        let row = refund_row(return_no);
        assert_eq!(
            (row[1].as_str(), row[2].as_str()),
            (merchant, mer_id),
            "{row:?}"
        );
        assert!(row.iter().any(|c| c == "refunded"), "{row:?}");
    }
    let (first, second) = (refund_row("R02-A"), refund_row("R02-B"));
    assert_eq!(first[0], second[0], "two returns of one order");
    assert!(
        first.ends_with(&["reversal".into(), "300".into(), "500".into()]),
        "{first:?}"
    );
    assert!(
        second.ends_with(&["reversal".into(), "200".into(), "500".into()]),
        "{second:?}"
    );
    assert!(
        stdout.contains("returns pass 2: pass completed: claimed 1, refunded 1"),
        "{stdout}"
    );
    let unknown = refund_row("R04-A");
    assert!(
        unknown.contains(&"refund_failed".to_string()),
        "{unknown:?}"
    );
    // `refundd demo | cat`: the report alone on stdout, in words; the logs
    // (JSON lines, since stdout is no terminal) go to stderr.
    for line in stdout.lines() {
        assert!(
            !serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()),
            "a log line in the report: {line}"
        );
    }
    assert!(
        !stdout.contains("BatchRun") && !stdout.contains("BatchMoved") && !stdout.contains("{ "),
        "{stdout}"
    );
    assert!(
        stdout.contains("the bank runs its batch: ") && stdout.contains(" settled"),
        "{stdout}"
    );
}
