//! The record of money must survive the shop's database: what the shop's own
//! schema can do to refundd's statements (refuse a write-back only at COMMIT,
//! answer the requests query with two rows for one order) and what a reading
//! of its requests taken at the wrong moment could make of an ending. Each
//! test plays the shop with its own SQL on the shop's tables, never on
//! refundd's.

use super::SCHEMA;
use crate::common::{bank_tx, eventually, Rig};
use refundd::ctbc::TxState;
use refundd::ops::shop_examples::TUTORIAL;
use refundd::sim::SimTx;
use std::time::Duration;

/// What `refundd plan` says a pass started now would do.
async fn plan_now(rig: &Rig) -> refundd::engine::plan::PassPlan {
    refundd::engine::plan::plan(
        &refundd::store::plan::PlanReader::new(rig.store.clone()),
        &refundd::ctbc::InquiryClient::new(crate::common::client_for(
            &rig.sim.base_url(),
            Duration::from_secs(10),
        ))
        .into(),
        &crate::common::engine_settings(),
        &refundd::engine::clock::SystemClock,
    )
    .await
    .unwrap()
}

/// The outbox kinds written for `order_no`, oldest first.
async fn outbox_kinds(rig: &Rig, order_no: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT type FROM outbox WHERE order_no = $1 ORDER BY seq")
        .bind(order_no)
        .fetch_all(&rig.pool)
        .await
        .unwrap()
}

/// An accounting rule of the shop's checked only at COMMIT: a deferred
/// constraint trigger that refuses to mark the `DEF…` orders refunded.
const BOOKS_CLOSED: &str = "
CREATE FUNCTION shop_books_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'refunded' AND NEW.order_no LIKE 'DEF%' THEN
    RAISE EXCEPTION 'the books are closed for order %', NEW.order_no;
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER shop_books_closed AFTER UPDATE ON orders
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION shop_books_closed();";

#[tokio::test]
async fn a_write_back_refused_at_commit_keeps_refundds_record_and_is_retried() {
    let rig = Rig::new_in(SCHEMA).await;
    for no in ["DEF1", "DEF2", "FINE"] {
        rig.seed(no, 1000, TxState::Authorised, None).await;
    }
    sqlx::raw_sql(BOOKS_CLOSED)
        .execute(&rig.pool)
        .await
        .unwrap();

    let s = rig.pass().await;
    assert_eq!(
        (s.outcome.as_str(), s.refunded()),
        ("completed", 3),
        "{s:?}"
    );
    let shop_status = "SELECT status FROM orders WHERE order_no = $1";
    for no in ["DEF1", "DEF2"] {
        // The money is back and refundd's record says so; the shop is told later.
        rig.order(no).await.assert_refunded("reversal", 1000);
        assert_eq!(
            rig.scalar::<String>(shop_status, no).await,
            "refund_requested"
        );
        let kinds = outbox_kinds(&rig, no).await;
        assert!(
            kinds.contains(&"refund.succeeded".to_string())
                && kinds.contains(&"refund.needs_attention".to_string()),
            "{no}: {kinds:?}"
        );
    }
    assert_eq!(rig.scalar::<String>(shop_status, "FINE").await, "refunded");
    let view = rig.store.queue_view().await.unwrap();
    let mut pending: Vec<&str> = view
        .shop_writes
        .iter()
        .map(|w| w.order_no.as_str())
        .collect();
    pending.sort();
    assert_eq!(pending, ["DEF1", "DEF2"]);
    assert!(view.shop_writes.iter().all(|w| w
        .writeback_error
        .as_deref()
        .is_some_and(|e| e.contains("books are closed"))));

    // Refused at COMMIT again: the pass goes on, nothing is sent twice.
    let s = rig.pass().await;
    assert_eq!(s.outcome.as_str(), "completed", "{s:?}");
    assert_eq!(rig.store.queue_view().await.unwrap().shop_writes.len(), 2);
    sqlx::raw_sql("DROP TRIGGER shop_books_closed ON orders")
        .execute(&rig.pool)
        .await
        .unwrap();
    rig.pass().await;
    for no in ["DEF1", "DEF2", "FINE"] {
        assert_eq!(
            rig.scalar::<String>(shop_status, no).await,
            "refunded",
            "{no}"
        );
        assert_eq!(rig.accepted(no, "reversal").await, 1, "{no}");
    }
    assert!(rig.store.queue_view().await.unwrap().shop_writes.is_empty());
}

#[tokio::test]
async fn two_rows_for_one_order_are_that_orders_problem_and_nothing_is_sent_for_it() {
    let rig = Rig::in_shop_in(&TUTORIAL, SCHEMA).await;
    rig.seed("FINE", 1000, TxState::Authorised, None).await;
    rig.admin
        .load(&[bank_tx("DUP", 1000, TxState::Authorised)])
        .await
        .unwrap();
    // The shop keeps an earlier failed payment attempt of DUP beside the one
    // that went through: its requests query, a JOIN, returns DUP twice.
    sqlx::raw_sql(
        "ALTER TABLE shop.payment_results DROP CONSTRAINT payment_results_one_per_order;
         INSERT INTO shop.orders (oid, status, total) VALUES ('DUP', '申請退款', 1000);
         INSERT INTO shop.payment_results (oid, xid, auth_code, auth_amt)
              VALUES ('DUP', 'XDUP', 'A1B2C3', 1000), ('DUP', 'XDUP-EARLIER', 'A1B2C3', 1000);",
    )
    .execute(&rig.pool)
    .await
    .unwrap();

    // `plan` says so before the pass, whichever row the query gives first.
    let plan = plan_now(&rig).await;
    let dup = format!("{plan:?}");
    assert!(dup.contains("returned 2 rows for this order"), "{dup}");

    let s = rig.pass().await;
    assert_eq!(s.outcome.as_str(), "completed", "{s:?}");
    rig.order("FINE").await.assert_refunded("reversal", 1000);
    let dup = rig.order("DUP").await;
    assert_eq!(dup.status, "refund_failed", "{dup:?}");
    let reason = dup.refund_error.unwrap_or_default();
    assert!(
        reason.contains("returned 2 rows for this order") && reason.contains("make it return one"),
        "{reason}"
    );
    let calls = rig.admin.calls_of("DUP").await.unwrap();
    assert!(
        calls.is_empty(),
        "nothing is sent for a doubled order: {calls:?}"
    );
}

/// A shop's requests query that waits, after its snapshot is taken, until the
/// test lets it go (a transaction-level advisory lock the test holds).
fn waiting_requests() -> String {
    format!(
        "SELECT q.* FROM ({}) AS q, LATERAL (SELECT pg_advisory_xact_lock_shared(2323)) AS gate",
        TUTORIAL.requests
    )
}

#[tokio::test]
async fn a_failure_told_to_the_shop_after_a_reading_began_is_not_reopened_by_it() {
    let rig = Rig::in_shop_in(&TUTORIAL, SCHEMA).await;
    // A transaction that is no longer authorised: refund_failed for a person.
    rig.seed("LATE", 1000, TxState::AuthFailed, None).await;
    // The shop refuses to be told at first.
    sqlx::raw_sql(
        "CREATE FUNCTION shop_no_failures() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'failures are entered by hand'; END $$;
         CREATE TRIGGER shop_no_failures BEFORE UPDATE ON shop.orders FOR EACH ROW
           WHEN (NEW.status = '退款失敗') EXECUTE FUNCTION shop_no_failures();",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.pass().await;
    assert_eq!(rig.order("LATE").await.status, "refund_failed");
    sqlx::raw_sql("DROP TRIGGER shop_no_failures ON shop.orders")
        .execute(&rig.pool)
        .await
        .unwrap();

    // Another daemon's reading takes its snapshot now and is held...
    let store = refundd::store::Store::new(
        rig.store.pool().clone(),
        rig.store.schema().clone(),
        refundd::store::ShopStatements::of_shop(
            waiting_requests(),
            TUTORIAL.on_refunded.into(),
            Some(TUTORIAL.on_failed.into()),
        ),
    );
    let mut gate = rig.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(2323)")
        .execute(&mut *gate)
        .await
        .unwrap();
    let reading = tokio::spawn(async move { store.intake(1000).await });
    eventually(
        Duration::from_secs(20),
        "the reading waits at the gate",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
            .fetch_one(&rig.pool)
            .await
            .unwrap();
            waiting > 0
        },
    )
    .await;
    // ...while the shop is told of the failure.
    let told = rig.store.retry_write_backs(10).await.unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    let shop_status: String =
        sqlx::query_scalar("SELECT status FROM shop.orders WHERE oid = 'LATE'")
            .fetch_one(&rig.pool)
            .await
            .unwrap();
    assert_eq!(shop_status, "退款失敗");
    gate.commit().await.unwrap();
    reading.await.unwrap().unwrap();

    // The reading saw the row still requested, but not the telling: the
    // failure stays, for a person.
    let late = rig.order("LATE").await;
    assert_eq!(late.status, "refund_failed", "{late:?}");
    let view = rig.store.queue_view().await.unwrap();
    assert!(view.failed.iter().any(|f| f.order_no == "LATE"), "{view:?}");
}

#[tokio::test]
async fn an_order_with_a_call_of_unknown_outcome_is_never_withdrawn() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("DOUBT", 1000, TxState::Authorised, None).await;
    let lease = rig
        .intent_of_a_dead_worker(refundd::ctbc::Operation::Reversal, 0, (1000, 1000))
        .await;
    // As a failure the shop asked again leaves it: the claimed amount
    // cleared, the call of unknown outcome kept on the record.
    sqlx::raw_sql(
        "UPDATE refunds SET claimed_amount = NULL WHERE order_no = 'DOUBT';
         UPDATE orders SET status = 'paid' WHERE order_no = 'DOUBT';",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    // The shop no longer lists it: the claim that finds so asks again.
    let _ = rig.store.recheck_request(&lease).await;
    let doubt = rig.order("DOUBT").await;
    assert_ne!(doubt.status, "withdrawn", "{doubt:?}");
    assert_eq!(doubt.unknown_operation.as_deref(), Some("reversal"));
    rig.store.intake(1000).await.unwrap();
    assert_ne!(rig.order("DOUBT").await.status, "withdrawn");
}

/// The shop's `on_refunded` names the order by another key than the one its
/// requests query returns: it changes no row. That is a refused write-back,
/// kept pending and shown, never a write-back done.
#[tokio::test]
async fn a_write_back_that_changes_no_row_is_refused_and_shown() {
    let statements = refundd::store::ShopStatements::of_shop(
        TUTORIAL.requests.into(),
        "UPDATE shop.orders SET status = '已退款' WHERE oid = 'WC-' || $1".into(),
        Some(TUTORIAL.on_failed.into()),
    );
    let rig = Rig::in_shop_with(&TUTORIAL, SCHEMA, statements).await;
    rig.seed("NOROW", 1000, TxState::Authorised, None).await;
    let s = rig.pass().await;
    assert_eq!(
        (s.outcome.as_str(), s.refunded()),
        ("completed", 1),
        "{s:?}"
    );
    rig.order("NOROW").await.assert_refunded("reversal", 1000);
    let shop_status = "SELECT status FROM shop.orders WHERE oid = $1";
    assert_eq!(rig.scalar::<String>(shop_status, "NOROW").await, "申請退款");
    let view = rig.store.queue_view().await.unwrap();
    assert_eq!(view.shop_writes.len(), 1, "{view:?}");
    let reason = view.shop_writes[0]
        .writeback_error
        .clone()
        .unwrap_or_default();
    assert!(
        reason.contains("shop.on_refunded changed 0 rows"),
        "{reason}"
    );
    let report = refundd::ops::status::report(&rig.store, refundd::ops::status::Webhook::NotSet)
        .await
        .unwrap()
        .render();
    assert!(
        report.contains("NOROW") && report.contains("changed 0 rows"),
        "{report}"
    );
    assert!(outbox_kinds(&rig, "NOROW")
        .await
        .contains(&"refund.needs_attention".to_string()));
    // Tried again on the next pass, still pending, never refunded twice.
    rig.pass().await;
    assert_eq!(rig.store.queue_view().await.unwrap().shop_writes.len(), 1);
    assert_eq!(rig.accepted("NOROW", "reversal").await, 1);
}

/// A shop whose order numbers the bank cannot take (dashes) sends the bank
/// a number of its own derived from them; its requests query says which in
/// the optional column `lidm`. The bank is asked by `lidm`, the shop's row is
/// written back by its own `order_no`.
#[tokio::test]
async fn the_bank_knows_the_order_by_lidm_and_the_shop_by_order_no() {
    let requests = TUTORIAL.requests.replacen(
        "SELECT o.oid AS order_no,",
        "SELECT o.oid AS order_no, replace(o.oid, '-', '') AS lidm,",
        1,
    );
    assert!(requests.contains("lidm"), "{requests}");
    let statements = refundd::store::ShopStatements::of_shop(
        requests,
        TUTORIAL.on_refunded.into(),
        Some(TUTORIAL.on_failed.into()),
    );
    let rig = Rig::in_shop_with(&TUTORIAL, SCHEMA, statements).await;
    let shop_no = "WC-2026-000123";
    rig.admin
        .load(&[SimTx::new(
            "WC2026000123",
            format!("X{shop_no}"),
            "A1B2C3",
            1000,
            TxState::Authorised,
        )])
        .await
        .unwrap();
    rig.insert_order(shop_no, 1000, None).await;

    let s = rig.pass().await;
    assert_eq!(
        (s.outcome.as_str(), s.refunded()),
        ("completed", 1),
        "{s:?}"
    );
    rig.order(shop_no).await.assert_refunded("reversal", 1000);
    assert_eq!(rig.money_calls("WC2026000123").await, ["reversal"]);
    let shop_status = "SELECT status FROM shop.orders WHERE oid = $1";
    assert_eq!(rig.scalar::<String>(shop_status, shop_no).await, "已退款");
}

/// The shop's query gives every row a currency the bank does not take
/// ('TWD' instead of '901'): one mistake of the operator's, not four failed
/// orders. Nothing is sent, nothing is written to the shop's rows, no event
/// is raised, and the pass says which check and what to fix.
#[tokio::test]
async fn a_mapping_that_fails_most_rows_alike_moves_nothing_and_marks_nothing_failed() {
    let requests = TUTORIAL.requests.replacen(
        "SELECT o.oid AS order_no,",
        "SELECT o.oid AS order_no, 'TWD' AS currency,",
        1,
    );
    let statements = refundd::store::ShopStatements::of_shop(
        requests,
        TUTORIAL.on_refunded.into(),
        Some(TUTORIAL.on_failed.into()),
    );
    let rig = Rig::in_shop_with(&TUTORIAL, SCHEMA, statements).await;
    let orders: Vec<String> = (1..=4).map(|n| format!("MAP{n}")).collect();
    for no in &orders {
        rig.seed(no, 1000, TxState::Authorised, None).await;
    }
    // `plan` says so first, as the pass will.
    let plan = plan_now(&rig).await;
    let said = plan.settings_problem.clone().unwrap_or_default();
    assert!(
        said.contains("4 of the 4") && said.contains("currency"),
        "{plan:?}"
    );
    let s = rig.pass().await;
    assert_eq!(s.outcome.as_str(), "settings_problem", "{s:?}");
    let problem = s.problem.clone().unwrap_or_default();
    assert!(
        problem.contains("4 of the 4") && problem.contains("currency") && problem.contains("TWD"),
        "{problem}"
    );
    let shop_status = "SELECT status FROM shop.orders WHERE oid = $1";
    for no in &orders {
        assert!(rig.admin.calls_of(no).await.unwrap().is_empty(), "{no}");
        assert_eq!(rig.order(no).await.status, "refund_requested", "{no}");
        assert_eq!(
            rig.scalar::<String>(shop_status, no).await,
            "申請退款",
            "{no}"
        );
        assert!(outbox_kinds(&rig, no).await.is_empty(), "{no}");
    }
}

/// `check` rehearses each write-back on an order the shop really asks to
/// refund, rolled back: one that would change no row is found before the
/// first pass, and nothing of the rehearsal stays in the shop's rows.
#[tokio::test]
async fn check_rehearses_the_write_backs_on_a_real_request_and_keeps_nothing() {
    use refundd::store::rehearsal::Rehearsal;
    let wrong = refundd::store::ShopStatements::of_shop(
        TUTORIAL.requests.into(),
        "UPDATE shop.orders SET status = '已退款' WHERE oid = 'WC-' || $1".into(),
        Some(TUTORIAL.on_failed.into()),
    );
    let rig = Rig::in_shop_with(&TUTORIAL, SCHEMA, wrong).await;
    assert_eq!(
        rig.store.rehearse_write_backs().await.unwrap(),
        Rehearsal::NoRequest
    );
    rig.seed("REH1", 1000, TxState::Authorised, None).await;
    let Rehearsal::On {
        order_no,
        statements,
    } = rig.store.rehearse_write_backs().await.unwrap()
    else {
        panic!("a request to rehearse on")
    };
    assert_eq!(order_no, "REH1");
    let (setting, refused) = &statements[0];
    assert_eq!(*setting, "shop.on_refunded");
    assert!(
        refused
            .as_deref()
            .is_some_and(|r| r.contains("changed 0 rows")),
        "{statements:?}"
    );
    assert_eq!(statements[1], ("shop.on_failed", None), "{statements:?}");
    // Rolled back: the shop's row still asks for its refund.
    let shop_status = "SELECT status FROM shop.orders WHERE oid = $1";
    assert_eq!(rig.scalar::<String>(shop_status, "REH1").await, "申請退款");
}
