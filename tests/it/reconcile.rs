//! `refundd reconcile` end to end, against real PostgreSQL and the bank
//! simulator, in both table modes: orders refundd refunded, then changed at
//! the bank behind its back; each classified against refundd's records with
//! inquiries only, each mismatch kept and told once, closed by a person or by
//! a later run that finds the order matched.

use super::SCHEMA;
use crate::common::{
    ask_for_refunds, bank_tx, eventually, in_both_modes, metrics_page, request, run_with_endpoint,
    Rig,
};
use refundd::ctbc::{InquiryBanks, TxState};
use refundd::domain::reconcile::Class;
use refundd::engine::reconcile::{reconcile, Report, ReportRow, Window};
use refundd::sim::PortalChange;
use std::time::Duration;

in_both_modes!(in SCHEMA; each_order_is_classified_and_a_mismatch_is_told_once);

/// A run over the last day, as `refundd reconcile --since 1d` makes it.
async fn reconcile_now(rig: &Rig) -> Report {
    let banks = InquiryBanks::new(&rig.merchants(&[]));
    let window = Window::since(chrono::Utc::now(), "1d").unwrap();
    reconcile(&rig.store, &banks, window, 4).await.unwrap()
}

/// The order's line of the report.
fn row_of<'a>(report: &'a Report, order_no: &str) -> &'a ReportRow {
    let row = report.rows.iter().find(|r| r.order_no == order_no);
    row.unwrap_or_else(|| panic!("{order_no} not in {report:?}"))
}

fn class_of(report: &Report, order_no: &str) -> Class {
    row_of(report, order_no).class
}

/// Orders of 1000 the bank holds in their states, each asked back (whole,
/// or the part given), worked off by one pass.
async fn worked_off(rig: &Rig, orders: &[(&str, TxState, Option<i64>)]) {
    let txs: Vec<_> = (orders.iter())
        .map(|(o, s, _)| bank_tx(o, 1000, s.clone()))
        .collect();
    rig.admin.load(&txs).await.unwrap();
    let asked: Vec<_> = (orders.iter())
        .map(|(o, _, part)| request(o, 1000, *part))
        .collect();
    ask_for_refunds(&rig.pool, rig.shop, &asked).await;
    rig.pass().await;
}

/// A change made at the bank's portal, behind refundd's back.
async fn at_portal(rig: &Rig, order_no: &str, change: PortalChange) {
    rig.admin.portal(order_no, &change).await.unwrap();
}

async fn mismatch_events(rig: &Rig) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE type = 'refund.mismatch'")
        .fetch_one(&rig.pool)
        .await
        .unwrap()
}

async fn each_order_is_classified_and_a_mismatch_is_told_once(rig: Rig) {
    worked_off(
        &rig,
        &[
            ("RC1", TxState::Authorised, None),
            ("RC2", TxState::Settled, None),
            ("RC3", TxState::Settled, None),
            ("RC4", TxState::Authorised, None),
        ],
    )
    .await;
    rig.order("RC1").await.assert_refunded("reversal", 1000);
    rig.order("RC2").await.assert_refunded("refund", 1000);

    // Settling refunds are expected; reversals match.
    let first = reconcile_now(&rig).await;
    assert_eq!(class_of(&first, "RC1"), Class::Matched);
    assert_eq!(class_of(&first, "RC2"), Class::Expected);
    assert!(first.new_mismatches.is_empty(), "{first:?}");

    // The batch settles the refunds; then the bank changes two orders.
    rig.admin.run_batch().await.unwrap();
    at_portal(&rig, "RC3", PortalChange::FailRefund {}).await;
    at_portal(&rig, "RC4", PortalChange::SetState { state: "12".into() }).await;
    let calls_before = rig.admin.calls().await.unwrap().len();
    let second = reconcile_now(&rig).await;
    assert_eq!(class_of(&second, "RC1"), Class::Matched);
    assert_eq!(class_of(&second, "RC2"), Class::Matched);
    assert_eq!(class_of(&second, "RC3"), Class::Mismatch);
    assert_eq!(class_of(&second, "RC4"), Class::Mismatch);
    let rc3 = row_of(&second, "RC3");
    assert!(rc3.reason.contains("state 23"), "{rc3:?}");
    assert_eq!(second.new_mismatches.len(), 2, "{second:?}");
    assert_eq!(mismatch_events(&rig).await, 2);
    // Inquiries only.
    let calls = rig.admin.calls().await.unwrap();
    assert!(calls[calls_before..]
        .iter()
        .all(|c| c.operation == "inquiry"));

    // Found again: not new, not told again.
    let third = reconcile_now(&rig).await;
    assert_eq!(third.totals[&Class::Mismatch], 2);
    assert!(third.new_mismatches.is_empty());
    assert_eq!(mismatch_events(&rig).await, 2);
    let status = refundd::ops::status::report(&rig.store, refundd::ops::status::Webhook::NotSet)
        .await
        .unwrap();
    let open: Vec<&str> = (status.reconciliation.open_mismatches.iter())
        .map(|m| m.order_no.as_str())
        .collect();
    assert_eq!(open, ["RC3", "RC4"]);
    assert!(
        status.render().contains("open mismatches (2;"),
        "{}",
        status.render()
    );

    // A person resolves one; the bank puts the other right.
    assert!(rig
        .store
        .resolve_mismatch("RC3", "alice (uid 1000)", "asked the bank")
        .await
        .unwrap());
    assert!(!rig
        .store
        .resolve_mismatch("RC1", "alice (uid 1000)", "nothing")
        .await
        .unwrap());
    at_portal(&rig, "RC4", PortalChange::SetState { state: "0".into() }).await;
    let fourth = reconcile_now(&rig).await;
    assert_eq!(class_of(&fourth, "RC4"), Class::Matched);
    assert!(fourth.new_mismatches.is_empty(), "{fourth:?}");
    assert!(rig.store.open_mismatches().await.unwrap().is_empty());
    assert_eq!(mismatch_events(&rig).await, 2);

    // The latest run reads back without asking the bank.
    let last = refundd::engine::reconcile::last_run(&rig.store)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.run, fourth.run);
    assert_eq!(last.rows, fourth.rows);
}

in_both_modes!(in SCHEMA; changes_made_at_the_banks_portal_are_mismatches_with_their_reason);

async fn changes_made_at_the_banks_portal_are_mismatches_with_their_reason(rig: Rig) {
    // RP1 is refunded in part: the bank may settle anything from that up.
    worked_off(
        &rig,
        &[
            ("RP1", TxState::Settled, Some(300)),
            ("RP2", TxState::Authorised, None),
            ("RP3", TxState::CaptureFailed, None),
            ("RP4", TxState::Settled, None),
            ("RP5", TxState::Settled, Some(400)),
        ],
    )
    .await;
    rig.admin.run_batch().await.unwrap();
    // The next pass's settlement watch sees the refunds settled.
    rig.pass().await;
    rig.order("RP1").await.assert_refunded("refund", 300);
    assert_eq!(rig.order("RP3").await.status, "refund_failed");

    at_portal(&rig, "RP1", PortalChange::SettleAmount { amount: 900 }).await;
    at_portal(&rig, "RP2", PortalChange::Forget {}).await;
    at_portal(&rig, "RP3", PortalChange::SetState { state: "22".into() }).await;
    at_portal(&rig, "RP5", PortalChange::Refund { amount: 200 }).await;
    let report = reconcile_now(&rig).await;
    assert!(row_of(&report, "RP1").reason.contains("amount differs"));
    assert!(row_of(&report, "RP2").reason.contains("does not know"));
    assert!(row_of(&report, "RP3")
        .reason
        .contains("refundd says nothing was given back"));
    assert!(row_of(&report, "RP5")
        .reason
        .contains("after refundd's own had settled"));
    assert_eq!(class_of(&report, "RP4"), Class::Matched);
    assert_eq!(report.totals[&Class::Mismatch], 4, "{report:?}");
    let mut new = report.new_mismatches.clone();
    new.sort();
    assert_eq!(new, ["RP1", "RP2", "RP3", "RP5"]);
}

in_both_modes!(in SCHEMA; refundd_run_reconciles_on_its_own_and_tells_the_mismatch);

/// The value of a sample on a `/metrics` page (`name{labels}` as written).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn refundd_run_reconciles_on_its_own_and_tells_the_mismatch(rig: Rig) {
    worked_off(
        &rig,
        &[
            ("RS1", TxState::Authorised, None),
            ("RS2", TxState::Settled, None),
        ],
    )
    .await;
    rig.admin.run_batch().await.unwrap();
    at_portal(&rig, "RS2", PortalChange::FailRefund {}).await;
    let none = rig.store.queue_gauges().await.unwrap();
    assert_eq!((none.last_reconcile_at, none.open_mismatches), (None, 0));

    // No reconciliation was ever kept: one is due at start-up, on the
    // default reconcile.cron.
    let (_running, log) = run_with_endpoint(&rig);
    let what = "a reconciliation kept by refundd run, shown on /metrics";
    let page = metrics_page(log.path(), what, |page| {
        sample(page, "refundd_reconcile_open_mismatches") == Some(1.0)
    })
    .await;
    let class = |c: &str| sample(&page, &format!("refundd_reconcile_orders{{class=\"{c}\"}}"));
    assert_eq!(class("matched"), Some(1.0), "{page}");
    assert_eq!(class("mismatch"), Some(1.0), "{page}");
    let at = sample(&page, "refundd_reconcile_last_run_timestamp_seconds").unwrap();
    let kept = rig.store.queue_gauges().await.unwrap().last_reconcile_at;
    assert_eq!(kept.map(|t| t.timestamp() as f64), Some(at));

    // Told: the event, and a warning naming the order and how to close it.
    assert_eq!(mismatch_events(&rig).await, 1);
    let said = std::fs::read_to_string(log.path()).unwrap();
    let warning = said
        .lines()
        .find(|l| l.contains("\"reconcile_mismatch\""))
        .unwrap_or_else(|| panic!("no mismatch warning:\n{said}"));
    assert!(
        warning.contains("RS2") && warning.contains("WARN"),
        "{warning}"
    );
    assert!(
        warning.contains("refundd reconcile resolve RS2"),
        "{warning}"
    );
    assert!(said.contains("\"reconcile_summary\""), "{said}");
    // Nothing of the orders' money moved: refundd's records are as they were.
    rig.order("RS1").await.assert_refunded("reversal", 1000);
    rig.order("RS2").await.assert_refunded("refund", 1000);
}

/// Workers sharing a database take turns to reconcile: one at a time, and
/// the turn of one that stopped mid-run is free again.
#[tokio::test]
async fn one_worker_at_a_time_reconciles() {
    let rig = Rig::new_in(SCHEMA).await;
    let first = rig.store.take_reconcile_turn().await.unwrap();
    assert!(first.is_some());
    assert!(rig.store.take_reconcile_turn().await.unwrap().is_none());
    first.unwrap().give_back().await;
    let stopped = rig.store.take_reconcile_turn().await.unwrap();
    assert!(stopped.is_some());
    drop(stopped);
    let again = eventually(
        Duration::from_secs(30),
        "the dropped turn freed",
        || async { rig.store.take_reconcile_turn().await.unwrap() },
    )
    .await;
    again.give_back().await;
}
