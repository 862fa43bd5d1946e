//! `refundd cancel-refund` end to end, against real PostgreSQL, the bank
//! simulator and the returns shop's tables: a refund refundd made cancelled
//! while it waits for the bank's batch (state 20), by a refund reversal that
//! names where the bank filed it; refused once it is in the batch, or when
//! it was not a refund of settled money; the shop told, the story saying who
//! asked and why.

use crate::common::{bank_tx, output_off_runtime, request, Rig};
use refundd::ctbc::{Merchants, TxState};
use refundd::domain::refund_id::RefundId;
use refundd::engine::cancel::{cancel_refund, CancelOrder, NotCancelled};
use refundd::engine::clock::SystemClock;
use refundd::ops::shop_examples::RETURNS;
use refundd::store::shop_examples::{approve_return, returns_of, AskedBack, SeedOrder};

/// The returns shop, its order `order_no` of `amount` at the bank in
/// `state`, and return `return_no` of `part` refunded by one pass.
async fn refunded_return(order_no: &str, amount: i64, state: TxState, part: i64) -> Rig {
    let rig = Rig::in_shop(&RETURNS).await;
    rig.admin
        .load(&[bank_tx(order_no, amount, state)])
        .await
        .unwrap();
    let paid = SeedOrder {
        refund: AskedBack::NotAsked,
        ..request(order_no, amount, None)
    };
    RETURNS.seed_orders(&rig.pool, &[paid]).await.unwrap();
    approve_return(&rig.pool, order_no, "R1", Some(part))
        .await
        .unwrap();
    rig.pass().await;
    rig
}

/// What an operator's cancel-refund of return `R1` comes to.
async fn cancel(
    rig: &Rig,
    order_no: &str,
) -> Result<refundd::engine::cancel::Cancelled, NotCancelled> {
    let order = CancelOrder {
        order_no: order_no.into(),
        refund_id: RefundId::of_record("R1"),
        asked_by: "alice (uid 1000)".into(),
        reason: "staff refunded the wrong amount".into(),
    };
    let merchants = Merchants::from(crate::common::client_for(
        &rig.sim.base_url(),
        std::time::Duration::from_secs(10),
    ));
    let settings = crate::common::engine_settings();
    cancel_refund(&rig.store, &merchants, &settings, &SystemClock, &order).await
}

/// The refund reversals the bank saw for the order.
async fn refund_reversals(rig: &Rig, order_no: &str) -> usize {
    let calls = rig.admin.calls_of(order_no).await.unwrap();
    calls
        .iter()
        .filter(|c| c.operation == "refund_reversal")
        .count()
}

#[tokio::test]
async fn a_refund_waiting_for_the_batch_is_cancelled_and_the_shop_told() {
    let rig = refunded_return("C1", 1000, TxState::Settled, 300).await;
    rig.refund("C1", "R1").await.assert_refunded("refund", 300);

    let done = cancel(&rig, "C1").await.unwrap();
    assert_eq!(done.amount.amount(), 300);
    assert_eq!(done.write_back, refundd::store::writeback::WriteBack::Done);

    // The bank took the refund back: nothing is given back any more.
    let tx = rig.admin.transaction("C1").await.unwrap().unwrap();
    assert_eq!(tx.state, "12");
    assert_eq!(tx.returned_amount, 0);
    let at_bank = rig.admin.refunds_of("C1").await.unwrap().unwrap();
    assert!(at_bank[0].reversed, "{at_bank:?}");

    // refundd's record, the shop's row, the story and the event.
    let record = rig.refund("C1", "R1").await;
    assert_eq!(record.status, "cancelled");
    assert_eq!(record.settlement, None);
    let shop = returns_of(&rig.pool, "C1").await.unwrap();
    assert_eq!(shop[0].state, "cancelled");
    let note = shop[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("alice (uid 1000)") && note.contains("wrong amount"),
        "{note}"
    );
    let asked: String = sqlx::query_scalar(
        "SELECT message FROM refund_events
          WHERE order_no = 'C1' AND refund_id = 'R1' AND kind = 'intent' AND operation = 'refund_reversal'",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert!(asked.contains("alice (uid 1000)"), "{asked}");
    let events = rig.store.events_of("C1").await.unwrap();
    let cancelled = events
        .iter()
        .find(|e| e.kind.as_str() == "refund.cancelled")
        .expect("a refund.cancelled event");
    assert_eq!(cancelled.body["refund_id"], "R1");
    assert_eq!(cancelled.body["amount"], 300);
    assert_eq!(cancelled.body["order_refunded"], 0);

    // The money stayed with the shop: the whole order can still be refunded.
    approve_return(&rig.pool, "C1", "R2", Some(1000))
        .await
        .unwrap();
    rig.pass().await;
    rig.refund("C1", "R2").await.assert_refunded("refund", 1000);
    // And the settlement watch never takes the cancelled refund up again.
    assert_eq!(rig.refund("C1", "R1").await.status, "cancelled");
}

#[tokio::test]
async fn a_refund_in_the_banks_batch_is_not_cancelled_and_nothing_is_sent() {
    let rig = refunded_return("C2", 1000, TxState::Settled, 400).await;
    rig.admin.run_batch().await.unwrap();

    let refused = cancel(&rig, "C2").await.unwrap_err();
    assert!(matches!(refused, NotCancelled::InBatch(_)), "{refused}");
    assert_eq!(refused.exit_code(), 2);
    assert!(refused
        .to_string()
        .contains("it can no longer be cancelled"));
    assert_eq!(refund_reversals(&rig, "C2").await, 0);
    let record = rig.refund("C2", "R1").await;
    assert_eq!(record.status, "refunded");
    assert!(!record.claimed, "the lease is given back");

    // From the command line: exit 2, the reason on stderr.
    let mut cmd = rig.refundd("cancel-refund");
    cmd.args([
        "C2",
        "--refund",
        "R1",
        "--reason",
        "customer changed their mind",
    ]);
    let out = output_off_runtime(cmd).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the refund is in the bank's batch: it can no longer be cancelled"),
        "{err}"
    );
    assert_eq!(refund_reversals(&rig, "C2").await, 0);
}

#[tokio::test]
async fn only_a_refund_of_settled_money_refundd_made_can_be_cancelled() {
    // Given back by lowering the authorisation: there is no refund to take back.
    let rig = refunded_return("C3", 1000, TxState::Authorised, 200).await;
    rig.refund("C3", "R1")
        .await
        .assert_refunded("reversal", 200);
    let refused = cancel(&rig, "C3").await.unwrap_err();
    assert!(
        matches!(refused, NotCancelled::NotCancellable(_)),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("only a refund of settled money"),
        "{refused}"
    );
    assert_eq!(refund_reversals(&rig, "C3").await, 0);

    // A refund refundd has no record of.
    let unknown = CancelOrder {
        order_no: "NOPE".into(),
        refund_id: RefundId::default(),
        asked_by: "alice".into(),
        reason: "test".into(),
    };
    let merchants = Merchants::from(crate::common::client_for(
        &rig.sim.base_url(),
        std::time::Duration::from_secs(10),
    ));
    let settings = crate::common::engine_settings();
    let e = cancel_refund(&rig.store, &merchants, &settings, &SystemClock, &unknown)
        .await
        .unwrap_err();
    assert!(matches!(e, NotCancelled::NoSuchRefund(_)), "{e}");
    assert_eq!(e.exit_code(), 2);
}

#[tokio::test]
async fn the_built_in_table_shows_a_cancelled_refund_paid_again() {
    let rig = Rig::new().await;
    rig.seed("C4", 1000, TxState::Settled, Some(400)).await;
    rig.pass().await;
    rig.order("C4").await.assert_refunded("refund", 400);

    let order = CancelOrder {
        order_no: "C4".into(),
        refund_id: RefundId::default(),
        asked_by: "bob (uid 1001)".into(),
        reason: "wrong order".into(),
    };
    let merchants = Merchants::from(crate::common::client_for(
        &rig.sim.base_url(),
        std::time::Duration::from_secs(10),
    ));
    let settings = crate::common::engine_settings();
    cancel_refund(&rig.store, &merchants, &settings, &SystemClock, &order)
        .await
        .unwrap();
    assert_eq!(rig.order("C4").await.status, "cancelled");
    let (status, refunded, why): (String, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT status, refunded_amount, refund_error FROM public.orders WHERE order_no = 'C4'",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), refunded), ("paid", None));
    assert!(why.unwrap_or_default().contains("bob (uid 1001)"));
}
