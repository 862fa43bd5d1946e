//! What the monitoring reads is there: the queue gauges count what the alert
//! rules watch, and a running `refundd run` exposes, from start-up, every
//! metric the Grafana dashboard and the Prometheus rules name, so neither rots.

use crate::common::{metrics_page, run_with_endpoint, Rig};
use refundd::domain::words::PassOutcome;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const RULES: &str = "deploy/prometheus/refundd-rules.yml";
const DASHBOARD: &str = "deploy/grafana/refundd.json";

#[tokio::test]
async fn the_queue_gauges_count_what_the_alerts_watch() {
    let rig = Rig::new().await;
    let none = rig.store.queue_gauges().await.unwrap();
    assert_eq!(none.due_now, 0);
    assert_eq!(none.last_completed_pass_at, None);

    for no in ["MON_DUE", "MON_UNKNOWN", "MON_SETTLING", "MON_SHOP"] {
        rig.insert_order(no, 1000, None).await;
    }
    // A refund sent whose answer never came, still leased by its worker.
    sqlx::query(
        "UPDATE refundd.refunds SET status = 'refunding', unknown_operation = 'refund',
                unknown_since = now(), lease_owner = gen_random_uuid(), lease_token = gen_random_uuid(),
                lease_expires_at = now() + interval '1 hour'
          WHERE order_no = 'MON_UNKNOWN'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE refundd.refunds SET status = 'refunded', refunded_at = now(), refund_method = 'refund',
                refunded_amount = 1000, settlement = 'pending'
          WHERE order_no = 'MON_SETTLING'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE refundd.refunds SET status = 'refunded', refunded_at = now(), refund_method = 'reversal',
                refunded_amount = 1000, writeback = 'refunded', writeback_error = 'the shop said no'
          WHERE order_no = 'MON_SHOP'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();

    let g = rig.store.queue_gauges().await.unwrap();
    assert_eq!(g.due_now, 1, "{g:?}");
    assert_eq!(g.outcome_unknown, 1, "{g:?}");
    assert_eq!(g.awaiting_settlement, 1, "{g:?}");
    assert_eq!(g.write_backs_pending, 1, "{g:?}");

    // Only a completed pass counts as one; a later stopped pass does not.
    let worker = uuid::Uuid::new_v4();
    let (completed, _) = rig.store.start_pass(worker).await.unwrap();
    rig.store
        .finish_pass(completed, PassOutcome::Completed, &serde_json::json!({}))
        .await
        .unwrap();
    let at = rig
        .store
        .queue_gauges()
        .await
        .unwrap()
        .last_completed_pass_at;
    assert!(at.is_some());
    let (stopped, _) = rig.store.start_pass(worker).await.unwrap();
    rig.store
        .finish_pass(stopped, PassOutcome::Stopped, &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(
        rig.store
            .queue_gauges()
            .await
            .unwrap()
            .last_completed_pass_at,
        at
    );
}

/// The expressions of a rules file: `expr:` values, inline or as a block
/// scalar (`expr: >-` and the more indented lines below it).
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let key = line.trim_start();
        let Some(rest) = key.strip_prefix("- ").unwrap_or(key).strip_prefix("expr:") else {
            continue;
        };
        // The key's column: a block scalar's lines are indented past it.
        let indent = line.len() - rest.len() - "expr:".len();
        let rest = rest.trim();
        if rest.starts_with('>') || rest.starts_with('|') {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            exprs.push(rest.trim_matches(|c| c == '"' || c == '\'').to_string());
        }
    }
    exprs
}

/// The expressions of a Grafana dashboard's panels (rows included).
fn dashboard_expressions(json: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut panels: Vec<&serde_json::Value> = json["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

/// The metric names an expression reads: `refundd_...` and Prometheus's `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if ident(chars[i]) && (i == 0 || !ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // A label matcher (`up="..."`) names a label, not a metric.
            let after = chars[i..].iter().find(|c| !c.is_whitespace());
            let is_label = matches!(after, Some('=') | Some('!'));
            if (word.starts_with("refundd_") || word == "up") && !is_label {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (operation, le) (rate(refundd_gateway_call_seconds_bucket{job="refundd", result=~"a|b"}[5m]))) / up{job="refundd"} and refundd_backlog[4h] offset 4h"#,
    );
    let want: BTreeSet<String> = [
        "refundd_gateway_call_seconds_bucket",
        "up",
        "refundd_backlog",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, want);
    assert_eq!(
        rule_expressions("  - expr: >-\n      a\n      and b\n    for: 5m\n  - expr: up == 0\n"),
        ["a and b", "up == 0"]
    );
}

/// Metric families on a `/metrics` page: name to type, for those with samples.
fn exposed(text: &str) -> BTreeMap<String, String> {
    let mut types = BTreeMap::new();
    let mut sampled = BTreeSet::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut parts = t.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.split(['{', ' ']).next().unwrap_or("");
            sampled.insert(series.to_string());
        }
    }
    types
        .into_iter()
        .filter(|(name, kind)| match kind.as_str() {
            "histogram" => sampled.contains(&format!("{name}_bucket")),
            _ => sampled.contains(name),
        })
        .collect()
}

/// Whether `name` as a query names it is on the page: a histogram's series
/// (`_bucket`, `_sum`, `_count`) count as the histogram.
fn is_exposed(name: &str, page: &BTreeMap<String, String>) -> bool {
    if page.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| page.get(base).map(String::as_str) == Some("histogram"))
    })
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_read_is_exposed_from_start_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wanted: BTreeMap<String, &str> = BTreeMap::new();
    let rules = std::fs::read_to_string(root.join(RULES)).unwrap();
    for expr in rule_expressions(&rules) {
        for name in metric_names(&expr) {
            wanted.entry(name).or_insert(RULES);
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(DASHBOARD)).unwrap()).unwrap();
    for expr in dashboard_expressions(&dashboard) {
        for name in metric_names(&expr) {
            wanted.entry(name).or_insert(DASHBOARD);
        }
    }
    assert!(
        wanted.len() >= 10 && wanted.contains_key("up"),
        "the queries were not read: {wanted:?}"
    );

    let rig = Rig::new().await;
    let (_running, log) = run_with_endpoint(&rig);
    // The first page served: nothing has happened yet, everything is there.
    let page = metrics_page(log.path(), "a /metrics page from refundd run", |_| true).await;
    let page = exposed(&page);
    let missing: Vec<String> = wanted
        .iter()
        // `up` is Prometheus's own: a page scraped is what makes it 1.
        .filter(|(name, _)| name.as_str() != "up" && !is_exposed(name, &page))
        .map(|(name, file)| format!("{name} (in {file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "named in the monitoring files but not on /metrics: {missing:?}\nexposed: {:?}",
        page.keys().collect::<Vec<_>>()
    );
}
