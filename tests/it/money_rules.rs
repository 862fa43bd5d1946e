//! The money rules under an adversary, end to end against real PostgreSQL and
//! the bank simulator: a state that only looks done is not refundd's, a lost
//! answer overtaken by the bank's batch, a refund that vanishes while watched,
//! what a person reads, and bad input that must never stop the queue.

use super::SCHEMA;
use crate::common::{
    bank_tx, ending_as, engine_settings, eventually, pass_of, twd, Ends, OrderView, Rig, StateCase,
};
use refundd::ctbc::{Operation, TxState};
use refundd::domain::words::{CallOutcome, EventKind};
use refundd::sim::{FaultPlan, FaultRule};
use std::time::Duration;

#[tokio::test]
async fn a_lowered_authorisation_refundd_did_not_lower_goes_to_a_person() {
    let rig = Rig::new_in(SCHEMA).await;
    // The bank authorised 1,000; the row says 1,500 and asks 500 back.
    rig.admin
        .load(&[bank_tx("LOW", 1000, TxState::Authorised)])
        .await
        .unwrap();
    rig.insert_order("LOW", 1500, Some(500)).await;
    rig.pass().await;
    let OrderView {
        status,
        refund_method: method,
        refunded_amount: amount,
        refund_error: err,
        ..
    } = rig.order("LOW").await;
    assert_eq!(
        (status.as_str(), method, amount),
        ("refund_failed", None, None)
    );
    let err = err.unwrap();
    assert!(err.contains("1000") && err.contains("1500"), "{err}");
    assert!(rig.money_calls("LOW").await.is_empty());
}

#[tokio::test]
async fn money_back_before_refundd_is_a_question_for_a_person() {
    let rig = Rig::new_in(SCHEMA).await;
    // Cancelled (0), refunded (20) and settled as refunded (22) by someone else.
    let back: Vec<&StateCase> = ending_as(Ends::BackBeforeRefundd).collect();
    let states: Vec<&str> = back.iter().map(|c| c.state.code()).collect();
    assert_eq!(states, ["0", "20", "22"]);
    rig.seed_cases(back.iter().copied()).await;
    rig.pass().await;
    // Failed, needing a person, nothing refunded and no money-moving call.
    for case in back {
        rig.assert_ended(case).await;
    }
}

#[tokio::test]
async fn a_retried_order_keeps_the_amount_the_bank_refunded() {
    let rig = Rig::new_in(SCHEMA).await;
    // As the engine records it: a refund of 500 asked, 300 refunded (RefAmt).
    rig.seed("R300", 1000, TxState::Settled, Some(500)).await;
    let lease = rig
        .intent_of_a_dead_worker(Operation::Refund, 500, (1000, 500))
        .await;
    let mismatch = refundd::domain::record::GatewayEvent {
        kind: EventKind::Outcome,
        operation: Some(Operation::Refund),
        outcome: Some(CallOutcome::AmountMismatch),
        amount: Some(300),
        ..Default::default()
    };
    let why = "the bank refunded 300 instead of the 500 asked; needs a person";
    rig.store
        .fail(&lease, &[mismatch], why, Some(twd(300)))
        .await
        .unwrap();
    let mut tx = rig.admin.transaction("R300").await.unwrap().unwrap();
    (tx.state, tx.refunded_amount, tx.returned_amount) = ("20".into(), 300, 300);
    rig.admin.load(&[tx]).await.unwrap();

    refundd::ops::manual_queue::retry(&rig.store, "R300", None)
        .await
        .unwrap();
    rig.pass().await;
    let OrderView {
        status,
        refunded_amount: amount,
        refund_error: err,
        ..
    } = rig.order("R300").await;
    assert_eq!((status.as_str(), amount), ("refund_failed", Some(300)));
    assert!(err.unwrap().contains("300"));
    assert!(rig.money_calls("R300").await.is_empty());
}

#[tokio::test]
async fn a_capture_reversal_overtaken_by_the_batch_becomes_a_watched_refund() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("RACE", 1000, TxState::CapturedNotSettled, None)
        .await;
    // The capture reversal's answer is lost; while it is in flight the bank's
    // batch settles the transaction.
    rig.admin
        .set_faults(&FaultPlan {
            rules: vec![FaultRule {
                operation: Some(Operation::CaptureReversal),
                latency_ms: 3_000,
                p_reset: 1.0,
                ..FaultRule::default()
            }],
        })
        .await
        .unwrap();
    let engine = rig.engine();
    let batch_meanwhile = async {
        // The intent is committed before the call is sent.
        eventually(
            Duration::from_secs(30),
            "the capture reversal's intent",
            || async {
                let intents: i64 = rig.scalar(
                    "SELECT count(*) FROM refund_events WHERE order_no = $1 AND kind = 'intent'",
                    "RACE",
                )
                .await;
                intents > 0
            },
        )
        .await;
        rig.admin.run_batch().await.unwrap();
    };
    tokio::join!(pass_of(&engine), batch_meanwhile);

    let OrderView {
        status,
        refund_method: method,
        refunded_amount: amount,
        ..
    } = rig.order("RACE").await;
    assert_eq!(
        (status.as_str(), method.as_deref(), amount),
        ("refunded", Some("refund"), Some(1000))
    );
    let OrderView {
        settlement, step, ..
    } = rig.order("RACE").await;
    assert_eq!(
        settlement.as_deref(),
        Some("pending"),
        "a refund is watched"
    );
    assert_eq!(step.as_deref(), Some("done"));
    let took_effect: i64 = rig
        .scalar(
            "SELECT count(*) FROM refund_events WHERE order_no = $1 AND outcome = 'took_effect'",
            "RACE",
        )
        .await;
    assert_eq!(
        took_effect, 0,
        "no false note that the capture reversal took effect"
    );
    assert_eq!(rig.accepted("RACE", "refund").await, 1);
    assert_eq!(rig.accepted("RACE", "capture_reversal").await, 0);
}

#[tokio::test]
async fn a_refund_that_vanishes_while_watched_goes_to_a_person_at_once() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("GONE", 1000, TxState::Settled, None).await;
    rig.pass().await;
    assert_eq!(rig.order("GONE").await.status, "refunded");
    // Reversed through the bank's portal: the transaction is settled again.
    let mut tx = rig.admin.transaction("GONE").await.unwrap().unwrap();
    tx.state = "12".into();
    rig.admin.load(&[tx]).await.unwrap();
    let s = rig.pass().await;
    assert_eq!((s.watched, s.settlement_failed), (1, 1));
    let OrderView {
        status,
        refund_error: err,
        ..
    } = rig.order("GONE").await;
    assert_eq!(status, "refund_failed");
    assert!(err.unwrap().contains("state 12"));
}

#[tokio::test]
async fn a_person_reads_every_call_whose_outcome_is_unknown() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("UNK", 1000, TxState::Settled, None).await;
    rig.lose_answers_of(Operation::Refund).await;
    assert_eq!(rig.pass().await.outcome_unknown, 1);
    // The bank no longer knows the order when it is asked again.
    rig.admin.reset().await.unwrap();
    sqlx::query(
        "UPDATE refunds SET next_attempt_at = now() - interval '1 second',
                unknown_since = now() - interval '301 seconds' WHERE order_no = 'UNK'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.pass().await;
    let OrderView {
        status,
        refund_error: err,
        ..
    } = rig.order("UNK").await;
    assert_eq!(status, "refund_failed");
    let err = err.unwrap();
    assert!(err.contains("does not know this order"), "{err}");
    assert!(
        err.contains("a refund of 1000 was sent at") && err.contains("outcome is unknown"),
        "{err}"
    );
    assert!(
        err.contains("check the bank before refunding by hand"),
        "{err}"
    );
    let status = rig.store.queue_view().await.unwrap();
    assert!(
        status.unknown.iter().any(|u| u.order_no == "UNK"),
        "status keeps listing the unknown refund"
    );
}

#[tokio::test]
async fn an_unknown_capture_reversal_shown_done_is_committed_and_keeps_its_exemption() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("HALF", 1000, TxState::CapturedNotSettled, None)
        .await;
    // A worker sends the capture reversal and dies before its outcome is recorded.
    rig.intent_of_a_dead_worker(Operation::CaptureReversal, 0, (1000, 1000))
        .await;
    let mut tx = rig.admin.transaction("HALF").await.unwrap().unwrap();
    tx.state = "1".into();
    rig.admin.load(&[tx]).await.unwrap();
    sqlx::query("UPDATE refunds SET lease_expires_at = now() - interval '1 second'")
        .execute(&rig.pool)
        .await
        .unwrap();
    // Inside a blackout window the completing reversal may run; its answer is lost.
    // Outside the window at the start of the pass and for the claim, inside for the calls.
    let in_window = || rig.engine_reaching_window(2, engine_settings());
    rig.lose_answers_of(Operation::Reversal).await;
    assert_eq!(pass_of(&in_window()).await.outcome_unknown, 1);
    let step: Option<String> = rig
        .scalar("SELECT step FROM refunds WHERE order_no = $1", "HALF")
        .await;
    assert_eq!(step.as_deref(), Some("capture_reversed"));
    // Later, still in the window, the reversal is sent again after a fresh inquiry.
    rig.admin.set_faults(&FaultPlan::none()).await.unwrap();
    sqlx::query(
        "UPDATE refunds SET next_attempt_at = now() - interval '1 second',
                unknown_since = now() - interval '301 seconds' WHERE order_no = 'HALF'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    pass_of(&in_window()).await;
    let OrderView {
        status,
        refund_method: method,
        refunded_amount: amount,
        ..
    } = rig.order("HALF").await;
    assert_eq!(
        (status.as_str(), method.as_deref(), amount),
        ("refunded", Some("capture_reversal+reversal"), Some(1000))
    );
    assert_eq!(rig.accepted("HALF", "reversal").await, 1);
}

#[tokio::test]
async fn a_nul_in_a_bank_page_never_stops_the_queue() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("NUL", 1000, TxState::Settled, None).await;
    rig.seed("FINE", 1000, TxState::Settled, None).await;
    rig.seed("WNUL", 1000, TxState::Settled, None).await;
    // WNUL is refunded first and then watched.
    let first = rig.engine();
    sqlx::query(
        "UPDATE refunds SET next_attempt_at = now() + interval '1 hour' WHERE order_no <> 'WNUL'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    pass_of(&first).await;
    assert_eq!(rig.order("WNUL").await.status, "refunded");
    sqlx::query("UPDATE refunds SET next_attempt_at = NULL")
        .execute(&rig.pool)
        .await
        .unwrap();
    let page = |no: &str| FaultRule {
        order_no: Some(no.into()),
        operation: Some(Operation::Inquiry),
        p_5xx: 1.0,
        page: Some("<html><title>a\0b</title></html>".into()),
        ..FaultRule::default()
    };
    rig.admin
        .set_faults(&FaultPlan {
            rules: vec![page("NUL"), page("WNUL")],
        })
        .await
        .unwrap();
    let s = rig.pass().await;
    assert_eq!(s.outcome.as_str(), "completed");
    assert_eq!(rig.order("FINE").await.status, "refunded");
    assert_eq!(rig.order("NUL").await.status, "refund_requested");
    let last_error: Option<String> = rig
        .scalar("SELECT last_error FROM refunds WHERE order_no = $1", "NUL")
        .await;
    assert!(last_error.is_some_and(|e| !e.chars().any(char::is_control)));
    assert_eq!(s.watched, 1);
    assert_eq!(rig.order("WNUL").await.status, "refunded");
}

#[tokio::test]
async fn a_write_the_database_refuses_is_that_orders_trouble() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("WHELD", 1000, TxState::Settled, None).await;
    rig.pass().await;
    assert_eq!(rig.order("WHELD").await.status, "refunded");
    // A rule of the database's owner on refundd's own table: one order may
    // not be recorded refunded, one refund may not be recorded settled.
    sqlx::raw_sql(
        "CREATE FUNCTION dba_rule() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.order_no = 'HELD2' AND NEW.status = 'refunded' THEN
             RAISE EXCEPTION 'order HELD2 is locked by accounting';
           END IF;
           IF NEW.order_no = 'WHELD' AND NEW.settlement = 'settled' THEN
             RAISE EXCEPTION 'settlement of WHELD is locked by accounting';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER dba_rule BEFORE UPDATE ON refunds FOR EACH ROW EXECUTE FUNCTION dba_rule();",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.seed("HELD2", 1000, TxState::Authorised, None).await;
    rig.seed("FREE2", 1000, TxState::Authorised, None).await;
    rig.admin.run_batch().await.unwrap(); // WHELD: 20 -> 22
    let s = rig.pass().await;
    assert_eq!(s.outcome.as_str(), "completed");
    assert_eq!(rig.order("FREE2").await.status, "refunded");
    // The bank reversed HELD2; the database refused the record: it stays with
    // the reversal of unknown outcome, and the error says why.
    let OrderView {
        status,
        unknown_operation,
        last_error,
        ..
    } = rig.order("HELD2").await;
    assert_eq!(status, "refunding");
    assert_eq!(unknown_operation.as_deref(), Some("reversal"));
    assert!(last_error.unwrap().contains("locked by accounting"));
    assert_eq!(rig.accepted("HELD2", "reversal").await, 1);
    let settlement: Option<String> = rig
        .scalar(
            "SELECT settlement FROM refunds WHERE order_no = $1",
            "WHELD",
        )
        .await;
    assert_eq!(
        settlement.as_deref(),
        Some("pending"),
        "watched again later"
    );
    // Once the rule is lifted a later pass records it, without a second reversal.
    sqlx::raw_sql("DROP TRIGGER dba_rule ON refunds")
        .execute(&rig.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE refunds SET next_attempt_at = now() - interval '1 second',
                unknown_since = now() - interval '301 seconds'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.pass().await;
    assert_eq!(rig.order("HELD2").await.status, "refunded");
    assert_eq!(rig.accepted("HELD2", "reversal").await, 1);
}

#[tokio::test]
async fn a_write_back_the_shop_refuses_keeps_refundds_record_and_is_retried() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("WB", 1000, TxState::Authorised, None).await;
    rig.seed("WBOK", 1000, TxState::Authorised, None).await;
    // The shop's own rule on its own table.
    sqlx::raw_sql(
        "CREATE FUNCTION shop_rule() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.order_no = 'WB' AND NEW.status = 'refunded' THEN
             RAISE EXCEPTION 'order WB is closed for changes';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER shop_rule BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION shop_rule();",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    let s = rig.pass().await;
    assert_eq!((s.outcome.as_str(), s.refunded()), ("completed", 2));
    // The money is back and refundd's record says so; the shop's row does not yet.
    assert_eq!(rig.order("WB").await.status, "refunded");
    let shop_status: String = rig
        .scalar("SELECT status FROM orders WHERE order_no = $1", "WB")
        .await;
    assert_eq!(shop_status, "refund_requested");
    let shop_ok: String = rig
        .scalar("SELECT status FROM orders WHERE order_no = $1", "WBOK")
        .await;
    assert_eq!(shop_ok, "refunded");
    let text = refundd::ops::status::report(&rig.store, refundd::ops::status::Webhook::NotSet)
        .await
        .unwrap()
        .render();
    assert!(text.contains("refused") && text.contains("WB"), "{text}");
    let view = rig.store.queue_view().await.unwrap();
    assert_eq!(view.shop_writes.len(), 1);
    assert_eq!(view.shop_writes[0].order_no, "WB");
    assert!(view.shop_writes[0]
        .writeback_error
        .as_deref()
        .is_some_and(|e| e.contains("closed for changes")));
    // While the shop still lists it, it is not refunded twice; once the shop
    // lifts its rule, the next pass writes the outcome back.
    rig.pass().await;
    assert_eq!(rig.accepted("WB", "reversal").await, 1);
    sqlx::raw_sql("DROP TRIGGER shop_rule ON orders")
        .execute(&rig.pool)
        .await
        .unwrap();
    rig.pass().await;
    let shop_status: String = rig
        .scalar("SELECT status FROM orders WHERE order_no = $1", "WB")
        .await;
    assert_eq!(shop_status, "refunded");
    assert!(rig.store.queue_view().await.unwrap().shop_writes.is_empty());
    assert_eq!(rig.accepted("WB", "reversal").await, 1);
}

#[tokio::test]
async fn rows_refundd_cannot_work_end_with_a_reason_instead_of_coming_back() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("NEG", 1000, TxState::Authorised, None).await;
    sqlx::query("UPDATE refunds SET attempts = -3 WHERE order_no = 'NEG'")
        .execute(&rig.pool)
        .await
        .unwrap();
    // A refunded order in the settlement watch whose number the bank cannot take.
    sqlx::raw_sql(
        "INSERT INTO refunds (order_no, xid, auth_code, auth_amount, status, refunded_amount,
                refund_method, settlement, watch_until)
         VALUES ('BAD-WATCH', 'X9', 'A1', 1000, 'refunded', 1000, 'refund', 'pending', now() + interval '14 days')",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    let s = rig.pass().await;
    assert_eq!(s.outcome.as_str(), "completed");
    let OrderView {
        status,
        refund_error: err,
        ..
    } = rig.order("NEG").await;
    assert_eq!(status, "refund_failed");
    assert!(err.unwrap().contains("attempts"));
    assert!(rig.money_calls("NEG").await.is_empty());
    let OrderView {
        status,
        refund_error: err,
        ..
    } = rig.order("BAD-WATCH").await;
    assert_eq!(status, "refund_failed");
    assert!(err.unwrap().contains("order_no"));
    // Nothing comes back on the next pass.
    let s = rig.pass().await;
    assert_eq!((s.claimed, s.watched), (0, 0));
}
