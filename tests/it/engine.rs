//! The reconciliation engine end to end, against real PostgreSQL and the bank
//! simulator over HTTP: every path, lost answers, leases, settlement, blackout.

use super::SCHEMA;
use crate::common::{
    bank_tx, declined_too, ended_in_one_pass, engine_settings, in_both_modes, pass_of, taipei,
    OrderView, Rig, StateCase,
};
use refundd::engine::settings::EngineSettings;

in_both_modes!(
    in SCHEMA;
    every_bank_state_ends_where_it_should,
    partial_refund_of_a_captured_transaction_waits_for_settlement,
    batch_running_waits_without_counting_an_attempt,
    apply_then_drop_on_refund_and_capture_reversal_are_done_once,
    a_lost_answer_where_the_bank_did_not_act_waits_then_sends_once,
    a_worker_killed_between_capture_reversal_and_reversal_is_resumed,
    an_order_held_by_a_live_lease_is_left_alone_and_taken_up_after_expiry,
    settlement_watch_records_settled_and_failed_refunds,
    a_blackout_window_covering_now_sends_nothing,
    two_engines_on_the_same_orders_move_each_refund_once,
    a_bank_slow_for_the_lease_is_not_worked_twice,
    a_pass_reaching_a_blackout_window_stops_and_releases_what_it_has_not_started,
    the_reversal_completing_a_capture_reversal_may_run_in_a_window,
    an_unavailable_bank_is_retried_with_backoff_then_given_up_but_never_an_unknown_outcome,
    the_bank_never_answers_more_calls_at_once_than_the_concurrency,
    an_accepted_refund_keeps_where_the_bank_filed_it,
    an_order_number_authorised_more_than_once_is_refunded_on_the_shop_s_xid,
    an_order_whose_xid_the_bank_declined_goes_to_a_person,
);
use refundd::ctbc::TxState;
use refundd::domain::blackout::Blackout;
use refundd::engine::clock::{FixedClock, SystemClock};
use refundd::sim::{FaultKind, FaultPlan};
use std::sync::Arc;
use std::time::Duration;

async fn every_bank_state_ends_where_it_should(rig: Rig) {
    // The states that wait for the bank's batch have tests of their own below.
    let cases: Vec<&StateCase> = ended_in_one_pass().collect();
    rig.seed_cases(cases.iter().copied()).await;
    let summary = rig.pass().await;
    assert_eq!(summary.claimed, cases.len() as u64);
    // Refunded by the method and for the amount the table says; every other
    // order is a person's, with no mutating call at all (money back at the
    // bank before refundd included: refundd did not give it back).
    for case in &cases {
        rig.assert_ended(case).await;
    }
    // The bank moved exactly what the database says.
    let sim_tx = rig.admin.transaction("S1P").await.unwrap().unwrap();
    assert_eq!((sim_tx.state.as_str(), sim_tx.auth_amount), ("1", 700));
    assert_eq!(
        rig.admin.transaction("S10").await.unwrap().unwrap().state,
        "0"
    );
    assert_eq!(
        rig.admin
            .transaction("S12P")
            .await
            .unwrap()
            .unwrap()
            .refunded_amount,
        250
    );
    assert_eq!(rig.admin.duplicates().await.unwrap(), 0);
    // A second pass finds nothing to do.
    assert_eq!(rig.pass().await.claimed, 0);
}

async fn partial_refund_of_a_captured_transaction_waits_for_settlement(rig: Rig) {
    rig.seed("P10", 1000, TxState::CapturedNotSettled, Some(400))
        .await;
    let first = rig.pass().await;
    assert_eq!(first.deferred, 1);
    assert_eq!(rig.order("P10").await.status, "refund_requested");
    assert_eq!(rig.accepted("P10", "capture_reversal").await, 0);
    rig.admin.run_batch().await.unwrap();
    rig.pass().await;
    rig.order("P10").await.assert_refunded("refund", 400);
    assert_eq!(rig.accepted("P10", "refund").await, 1);
}

async fn an_accepted_refund_keeps_where_the_bank_filed_it(rig: Rig) {
    rig.seed("R1", 1000, TxState::Settled, None).await;
    rig.seed("R2", 1000, TxState::Settled, Some(300)).await;
    rig.seed("V1", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    let references = |order_no: &'static str, operation: &'static str| {
        let rig = &rig;
        async move {
            let row: (Option<String>, Option<String>, Option<String>) = sqlx::query_as(
                "SELECT retr_ref, batch_id, batch_seq FROM refund_events
                  WHERE order_no = $1 AND operation = $2 AND outcome = 'accepted'",
            )
            .bind(order_no)
            .bind(operation)
            .fetch_one(&rig.pool)
            .await
            .unwrap();
            row
        }
    };
    let digits = |v: &Option<String>, n: usize| {
        v.as_deref()
            .is_some_and(|t| t.len() == n && t.bytes().all(|b| b.is_ascii_digit()))
    };
    // The simulator files a refund as the bank does: a 12-digit retrieval
    // reference, the batch's date and a 6-digit place in it.
    let (one, two) = (
        references("R1", "refund").await,
        references("R2", "refund").await,
    );
    for (retr_ref, batch_id, batch_seq) in [&one, &two] {
        assert!(digits(retr_ref, 12), "{retr_ref:?}");
        assert!(digits(batch_id, 8), "{batch_id:?}");
        assert!(digits(batch_seq, 6), "{batch_seq:?}");
    }
    assert_ne!(one.0, two.0, "each refund has its own reference");
    // A reversal is filed nowhere.
    assert_eq!(references("V1", "reversal").await, (None, None, None));
}

#[tokio::test]
async fn invalid_rows_fail_with_their_reason_and_send_nothing() {
    let rig = Rig::new_in(SCHEMA).await;
    sqlx::query(
        "INSERT INTO orders (order_no, xid, auth_code, auth_amount, currency, status, refund_amount) VALUES
         ('BAD-NO', 'X1', 'A1', 1000, '901', 'refund_requested', NULL),
         ('NOXID', NULL, 'A1', 1000, '901', 'refund_requested', NULL),
         ('TOOMUCH', 'X2', 'A1', 1000, '901', 'refund_requested', 1001),
         ('ZERO', 'X3', 'A1', 1000, '901', 'refund_requested', 0),
         ('USD', 'X4', 'A1', 1000, '840', 'refund_requested', NULL)",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    let s = rig.pass().await;
    assert_eq!(s.failed, 5);
    for (no, needle) in [
        ("BAD-NO", "order_no"),
        ("NOXID", "xid"),
        ("TOOMUCH", "refund_amount"),
        ("ZERO", "refund_amount"),
        ("USD", "currency"),
    ] {
        let OrderView {
            status,
            refund_error: err,
            ..
        } = rig.order(no).await;
        assert_eq!(status, "refund_failed");
        assert!(err.unwrap().contains(needle), "{no}");
    }
    assert_eq!(
        rig.admin.ledger().await.unwrap().calls,
        0,
        "nothing was sent"
    );
}

#[tokio::test]
async fn unknown_order_and_foreign_xid_and_wrong_amount_fail() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.insert_order("NOTATBANK", 1000, None).await;
    rig.seed("WRONGXID", 1000, TxState::Settled, None).await;
    sqlx::query("UPDATE orders SET xid = 'SOMEONE-ELSE' WHERE order_no = 'WRONGXID'")
        .execute(&rig.pool)
        .await
        .unwrap();
    rig.seed("WRONGAMT", 1000, TxState::Settled, None).await;
    sqlx::query("UPDATE orders SET auth_amount = 900 WHERE order_no = 'WRONGAMT'")
        .execute(&rig.pool)
        .await
        .unwrap();
    rig.pass().await;
    assert!(rig
        .order("NOTATBANK")
        .await
        .refund_error
        .unwrap()
        .contains("does not know"));
    assert!(rig
        .order("WRONGXID")
        .await
        .refund_error
        .unwrap()
        .contains("XID"));
    assert!(rig
        .order("WRONGAMT")
        .await
        .refund_error
        .unwrap()
        .contains("authorised amount"));
    assert_eq!(rig.accepted("WRONGXID", "refund").await, 0);
}

async fn batch_running_waits_without_counting_an_attempt(rig: Rig) {
    rig.seed("B1", 1000, TxState::CapturedNotSettled, None)
        .await;
    rig.admin.batch_start().await.unwrap();
    let s = rig.pass().await;
    assert_eq!(s.deferred, 1);
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM refunds WHERE order_no = 'B1'")
        .fetch_one(&rig.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0);
    rig.admin.batch_finish().await.unwrap();
    rig.pass().await;
    assert_eq!(
        rig.order("B1").await.refund_method.as_deref(),
        Some("refund")
    );
}

async fn apply_then_drop_on_refund_and_capture_reversal_are_done_once(rig: Rig) {
    rig.seed("AD12", 1000, TxState::Settled, None).await;
    rig.seed("AD10", 1000, TxState::CapturedNotSettled, None)
        .await;
    let mut plan = FaultPlan::always(
        FaultKind::ApplyThenDrop,
        Some(refundd::ctbc::Operation::Refund),
    );
    plan.rules.extend(
        FaultPlan::always(
            FaultKind::ApplyThenDrop,
            Some(refundd::ctbc::Operation::CaptureReversal),
        )
        .rules,
    );
    rig.admin.set_faults(&plan).await.unwrap();
    rig.pass().await;
    rig.order("AD12").await.assert_refunded("refund", 1000);
    rig.order("AD10")
        .await
        .assert_refunded("capture_reversal+reversal", 1000);
    assert_eq!(rig.accepted("AD12", "refund").await, 1);
    assert_eq!(rig.accepted("AD10", "capture_reversal").await, 1);
    assert_eq!(rig.accepted("AD10", "reversal").await, 1);
    assert_eq!(rig.admin.duplicates().await.unwrap(), 0);
}

async fn a_lost_answer_where_the_bank_did_not_act_waits_then_sends_once(rig: Rig) {
    rig.seed("LOST", 1000, TxState::Settled, None).await;
    rig.lose_answers_of(refundd::ctbc::Operation::Refund).await;
    let s = rig.pass().await;
    assert_eq!(s.outcome_unknown, 1);
    let lost = rig.order("LOST").await;
    assert_eq!(
        (lost.status.as_str(), lost.unknown_operation.as_deref()),
        ("refunding", Some("refund"))
    );
    let next_in_secs: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM refunds WHERE order_no = 'LOST'",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert!(
        next_in_secs > 250.0,
        "waits about recheck_secs (300), got {next_in_secs}"
    );
    rig.admin.set_faults(&FaultPlan::none()).await.unwrap();
    // Not yet due: a pass now leaves it alone.
    assert_eq!(rig.pass().await.claimed, 0);
    // Even if claimed early (lease expired, due now), the recheck delay holds.
    sqlx::query(
        "UPDATE refunds SET next_attempt_at = now() - interval '1 second' WHERE order_no = 'LOST'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    let s = rig.pass().await;
    assert_eq!(s.outcome_unknown, 1);
    assert_eq!(rig.accepted("LOST", "refund").await, 0);
    // Time passes beyond recheck_secs.
    sqlx::query("UPDATE refunds SET next_attempt_at = now() - interval '1 second', unknown_since = now() - interval '301 seconds' WHERE order_no = 'LOST'")
        .execute(&rig.pool)
        .await
        .unwrap();
    rig.pass().await;
    assert_eq!(rig.order("LOST").await.status, "refunded");
    assert_eq!(rig.accepted("LOST", "refund").await, 1);
}

async fn a_worker_killed_between_capture_reversal_and_reversal_is_resumed(rig: Rig) {
    rig.seed("HALF", 1000, TxState::CapturedNotSettled, None)
        .await;
    // A first worker claims, sends the capture reversal, and dies before the reversal.
    rig.intent_of_a_dead_worker(refundd::ctbc::Operation::CaptureReversal, 0, (1000, 1000))
        .await;
    let client = crate::common::client_for(&rig.sim.base_url(), Duration::from_secs(5));
    let m = |a| refundd::ctbc::types::Money::new(refundd::ctbc::types::Currency::TWD, a).unwrap();
    client
        .capture_reversal(&refundd::ctbc::CaptureReversal {
            order_no: refundd::ctbc::types::OrderNo::parse("HALF").unwrap(),
            xid: refundd::ctbc::types::Xid::parse("XHALF").unwrap(),
            auth_code: refundd::ctbc::types::AuthCode::parse("A1B2C3").unwrap(),
            original: m(1000),
            amount: m(0),
        })
        .await
        .unwrap();
    // Its lease runs out.
    sqlx::query(
        "UPDATE refunds SET lease_expires_at = now() - interval '1 second' WHERE order_no = 'HALF'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.pass().await;
    rig.order("HALF")
        .await
        .assert_refunded("capture_reversal+reversal", 1000);
    assert_eq!(rig.accepted("HALF", "capture_reversal").await, 1);
    assert_eq!(rig.accepted("HALF", "reversal").await, 1);
}

async fn an_order_held_by_a_live_lease_is_left_alone_and_taken_up_after_expiry(rig: Rig) {
    rig.seed("LEASED", 1000, TxState::Authorised, None).await;
    let other = uuid::Uuid::new_v4();
    rig.store.intake(100).await.unwrap();
    rig.store
        .claim(other, Duration::from_secs(600), 10, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(rig.pass().await.claimed, 0);
    sqlx::query("UPDATE refunds SET lease_expires_at = now() - interval '1 second'")
        .execute(&rig.pool)
        .await
        .unwrap();
    assert_eq!(rig.pass().await.claimed, 1);
    assert_eq!(rig.order("LEASED").await.status, "refunded");
}

async fn settlement_watch_records_settled_and_failed_refunds(rig: Rig) {
    rig.seed("W22", 1000, TxState::Settled, None).await;
    rig.seed("W23", 1000, TxState::Settled, None).await;
    rig.pass().await;
    rig.admin.run_batch().await.unwrap(); // 20 -> 21 -> 22
                                          // The bank's batch fails one refund.
    let mut failed = rig.admin.transaction("W23").await.unwrap().unwrap();
    failed.state = "23".into();
    rig.admin.load(&[failed]).await.unwrap();
    let s = rig.pass().await;
    assert_eq!((s.watched, s.settled, s.settlement_failed), (2, 1, 1));
    let w22 = rig.order("W22").await;
    assert_eq!(
        (w22.settlement.as_deref(), w22.settled),
        (Some("settled"), true)
    );
    let OrderView {
        status,
        refund_error: err,
        ..
    } = rig.order("W23").await;
    assert_eq!(status, "refund_failed");
    assert!(err.unwrap().contains("refund failed at settlement"));
}

async fn a_blackout_window_covering_now_sends_nothing(rig: Rig) {
    rig.seed("BL", 1000, TxState::Settled, None).await;
    let mut settings = engine_settings();
    settings.blackout = Blackout::parse("00:00-23:59").unwrap();
    let engine = rig.engine_with(
        settings,
        Arc::new(FixedClock(taipei("2026-11-27 12:00"))),
        Duration::from_secs(5),
    );
    let s = pass_of(&engine).await;
    assert_eq!((s.outcome.as_str(), s.claimed), ("blackout", 0));
    assert_eq!(rig.admin.ledger().await.unwrap().calls, 0, "no call at all");
    assert_eq!(rig.order("BL").await.status, "refund_requested");
}

async fn two_engines_on_the_same_orders_move_each_refund_once(rig: Rig) {
    let states = [
        TxState::Authorised,
        TxState::CapturedNotSettled,
        TxState::Settled,
    ];
    let orders: Vec<(String, i64)> = (0..1000).map(|i| (format!("T{i}"), 1000 + i)).collect();
    rig.bank_knows(&orders, |i| states[i % 3].clone()).await;
    rig.insert_orders(&orders).await;
    let mut s = engine_settings();
    s.batch_size = 25;
    let a = rig.engine_with(s.clone(), Arc::new(SystemClock), Duration::from_secs(10));
    let b = rig.engine_with(s, Arc::new(SystemClock), Duration::from_secs(10));
    let (ra, rb) = tokio::join!(pass_of(&a), pass_of(&b));
    assert_eq!(ra.refunded() + rb.refunded(), 1000);
    assert!(
        ra.claimed > 0 && rb.claimed > 0,
        "both engines worked: {} / {}",
        ra.claimed,
        rb.claimed
    );
    let ledger = rig.admin.ledger().await.unwrap();
    assert_eq!(ledger.duplicates, 0);
    let refunded: i64 = sqlx::query_scalar(
        "SELECT sum(refunded_amount)::bigint FROM refunds WHERE status = 'refunded'",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert_eq!(refunded, ledger.returned_total);
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refunds WHERE lease_owner IS NOT NULL")
            .fetch_one(&rig.pool)
            .await
            .unwrap();
    assert_eq!(held, 0, "nothing left claimed");
}

async fn a_bank_slow_for_the_lease_is_not_worked_twice(rig: Rig) {
    for i in 0..6 {
        rig.seed(&format!("SLOW{i}"), 1000, TxState::Settled, None)
            .await;
    }
    let plan =
        FaultPlan::from_json(r#"{"rules":[{"operation":"refund","latency_ms":1500}]}"#).unwrap();
    rig.admin.set_faults(&plan).await.unwrap();
    // The lease outlasts one call (2 s and a tenth of the lease to spare),
    // but not the bank's 1.5 s per call many times over: renewals keep it.
    let mut s = engine_settings();
    s.lease = Duration::from_millis(2_500);
    let a = rig.engine_with(s.clone(), Arc::new(SystemClock), Duration::from_secs(2));
    let b = rig.engine_with(s, Arc::new(SystemClock), Duration::from_secs(2));
    let (ra, rb) = tokio::join!(pass_of(&a), pass_of(&b));
    assert_eq!(ra.refunded() + rb.refunded(), 6);
    for i in 0..6 {
        assert_eq!(rig.accepted(&format!("SLOW{i}"), "refund").await, 1);
    }
    assert_eq!(rig.admin.duplicates().await.unwrap(), 0);
}

async fn a_pass_reaching_a_blackout_window_stops_and_releases_what_it_has_not_started(rig: Rig) {
    for i in 0..40 {
        rig.seed(&format!("WIN{i}"), 1000, TxState::Settled, None)
            .await;
    }
    let settings = EngineSettings {
        concurrency: 1,
        batch_size: 10,
        ..engine_settings()
    };
    let engine = rig.engine_reaching_window(12, settings);
    let s = pass_of(&engine).await;
    assert_eq!(s.outcome.as_str(), "blackout");
    assert!(
        s.refunded() > 0 && s.refunded() < 40,
        "some refunded before the window: {s:?}"
    );
    let (requested, held): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'refund_requested'), count(*) FILTER (WHERE lease_owner IS NOT NULL) FROM refunds",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert_eq!(
        requested as u64 + s.refunded(),
        40,
        "the rest went back to the queue"
    );
    assert_eq!(held, 0, "nothing left claimed");
    let refunds = rig
        .admin
        .ledger()
        .await
        .unwrap()
        .by_operation
        .get("refund")
        .map(|t| t.calls)
        .unwrap_or(0);
    assert_eq!(refunds, s.refunded(), "no refund started inside the window");
}

async fn the_reversal_completing_a_capture_reversal_may_run_in_a_window(rig: Rig) {
    // The capture reversal is done (state 1 at the bank, step recorded).
    rig.seed("DONEHALF", 1000, TxState::Authorised, None).await;
    sqlx::query("UPDATE refunds SET status = 'refunding', step = 'capture_reversed' WHERE order_no = 'DONEHALF'")
        .execute(&rig.pool)
        .await
        .unwrap();
    rig.seed("FRESH", 1000, TxState::Authorised, None).await;
    let settings = EngineSettings {
        concurrency: 1,
        ..engine_settings()
    };
    // Outside the window at the start of the pass and for the claim, inside for the calls.
    let engine = rig.engine_reaching_window(2, settings);
    pass_of(&engine).await;
    rig.order("DONEHALF")
        .await
        .assert_refunded("capture_reversal+reversal", 1000);
    assert_eq!(
        rig.accepted("FRESH", "reversal").await,
        0,
        "a fresh reversal waits for the window to close"
    );
    assert_eq!(rig.order("FRESH").await.status, "refund_requested");
}

async fn an_unavailable_bank_is_retried_with_backoff_then_given_up_but_never_an_unknown_outcome(
    rig: Rig,
) {
    rig.seed("DOWN", 1000, TxState::Settled, None).await;
    rig.seed("DOUBT", 1000, TxState::Settled, None).await;
    // DOUBT has a refund of unknown outcome from an earlier attempt, long ago.
    sqlx::query(
        "UPDATE refunds SET status = 'refunding', unknown_operation = 'refund', unknown_since = now() - interval '1 hour' WHERE order_no = 'DOUBT'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.admin.set_maintenance(true).await.unwrap();
    let mut settings = engine_settings();
    settings.max_attempts = 3;
    settings.backoff_base = Duration::ZERO;
    settings.backoff_max = Duration::ZERO;
    settings.recheck = Duration::ZERO;
    let engine = rig.engine_with(settings, Arc::new(SystemClock), Duration::from_secs(5));
    // A backoff of zero: each pass takes the order up again.
    for attempt in 1..=2 {
        pass_of(&engine).await;
        let down = rig.order("DOWN").await;
        assert_eq!(
            (down.status.as_str(), down.attempts),
            ("refund_requested", attempt)
        );
    }
    pass_of(&engine).await;
    let OrderView {
        status,
        refund_error: err,
        ..
    } = rig.order("DOWN").await;
    assert_eq!(status, "refund_failed");
    assert!(err.unwrap().contains("gave up after 3 attempts"));
    // The order whose refund may have happened is never made final by the limit.
    let doubt = rig.order("DOUBT").await;
    assert_eq!(
        (doubt.status.as_str(), doubt.unknown_operation.as_deref()),
        ("refunding", Some("refund"))
    );
    // Once the bank is back, the fresh inquiry decides: nothing happened, send it once.
    rig.admin.set_maintenance(false).await.unwrap();
    pass_of(&engine).await;
    assert_eq!(rig.order("DOUBT").await.status, "refunded");
    assert_eq!(rig.accepted("DOUBT", "refund").await, 1);
}

async fn the_bank_never_answers_more_calls_at_once_than_the_concurrency(rig: Rig) {
    // More orders in hand than turns at the bank: their calls take turns. Each
    // call is held 100 ms, so the first three orders' inquiries overlap.
    let states = [
        TxState::Settled,
        TxState::CapturedNotSettled,
        TxState::Authorised,
    ];
    for i in 0..24 {
        rig.seed(&format!("TURN{i}"), 1000, states[i % 3].clone(), None)
            .await;
    }
    let plan = FaultPlan::from_json(r#"{"rules":[{"latency_ms":100}]}"#).unwrap();
    rig.admin.set_faults(&plan).await.unwrap();
    let mut settings = engine_settings();
    settings.concurrency = 3;
    let engine = rig.engine_with(settings, Arc::new(SystemClock), Duration::from_secs(10));
    let s = pass_of(&engine).await;
    assert_eq!(s.refunded(), 24, "{s:?}");
    let ledger = rig.admin.ledger().await.unwrap();
    assert!(
        ledger.most_calls_at_once <= 3,
        "the bank answered {} calls at once, more than worker.concurrency (3)",
        ledger.most_calls_at_once
    );
    assert!(
        ledger.most_calls_at_once >= 2,
        "calls of different orders overlap: {}",
        ledger.most_calls_at_once
    );
    assert_eq!(ledger.duplicates, 0);
}

async fn an_order_number_authorised_more_than_once_is_refunded_on_the_shop_s_xid(rig: Rig) {
    // The shop's XID is X<order> (`request`). AGAIN10's card was declined
    // first, then authorised; AGAIN12's was authorised, then a declined retry
    // became the latest, which the inquiry's top level shows.
    rig.admin
        .load(&[
            declined_too(
                bank_tx("AGAIN10", 1000, TxState::CapturedNotSettled),
                "DAGAIN10",
                false,
            ),
            declined_too(bank_tx("AGAIN12", 1000, TxState::Settled), "DAGAIN12", true),
        ])
        .await
        .unwrap();
    rig.insert_order("AGAIN10", 1000, None).await;
    rig.insert_order("AGAIN12", 1000, None).await;
    rig.pass().await;
    rig.order("AGAIN10")
        .await
        .assert_refunded("capture_reversal+reversal", 1000);
    rig.order("AGAIN12").await.assert_refunded("refund", 1000);
    let again10 = rig.admin.transaction("AGAIN10").await.unwrap().unwrap();
    let again12 = rig.admin.transaction("AGAIN12").await.unwrap().unwrap();
    assert_eq!(
        (again10.state.as_str(), again12.refunded_amount),
        ("0", 1000)
    );
    assert_eq!(rig.admin.duplicates().await.unwrap(), 0);
    // The settlement watch reads the refunded authorisation's own record too,
    // not the declined retry at the top.
    rig.admin.run_batch().await.unwrap();
    let s = rig.pass().await;
    assert_eq!((s.watched, s.settled, s.settlement_failed), (1, 1, 0));
    assert_eq!(
        rig.order("AGAIN12").await.settlement.as_deref(),
        Some("settled")
    );
}

async fn an_order_whose_xid_the_bank_declined_goes_to_a_person(rig: Rig) {
    // The shop's XID X<order> is a declined authorisation; the one that
    // stands is N<order>, made after it for DECLINED1 and before it for
    // DECLINED2 (whose declined retry is then the latest, at the top).
    let authorised = |no: &str, state| {
        let mut tx = bank_tx(no, 1000, state);
        tx.xid = format!("N{no}");
        tx
    };
    rig.admin
        .load(&[
            declined_too(
                authorised("DECLINED1", TxState::CapturedNotSettled),
                "XDECLINED1",
                false,
            ),
            declined_too(
                authorised("DECLINED2", TxState::Settled),
                "XDECLINED2",
                true,
            ),
        ])
        .await
        .unwrap();
    rig.insert_order("DECLINED1", 1000, None).await;
    rig.insert_order("DECLINED2", 1000, None).await;
    rig.pass().await;
    for (no, authorised_state) in [("DECLINED1", "10"), ("DECLINED2", "12")] {
        let OrderView {
            status,
            refund_error,
            ..
        } = rig.order(no).await;
        let why = refund_error.unwrap_or_default();
        assert_eq!(status, "refund_failed", "{no}: {why}");
        assert!(
            why.starts_with("needs a person: the authorisation failed (state -1)")
                && why.contains(&format!("XID X{no} in state -1")),
            "{no}: {why}"
        );
        assert!(
            why.contains(&format!("XID N{no} in state {authorised_state}")),
            "{no}: {why}"
        );
        assert!(rig.money_calls(no).await.is_empty(), "{no}: nothing sent");
    }
}
