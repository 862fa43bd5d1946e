//! Several refunds of one order, end to end against real PostgreSQL, the
//! bank simulator and the returns shop's own tables (`shop3`, each return a
//! refund of its own, `refund_id`): parts given back one after another, each
//! with its own record and write-back, worked one at a time, never beyond the
//! order's balance, whatever the bank's state.

use super::SCHEMA;
use crate::common::{bank_tx, Rig};
use refundd::ctbc::TxState;
use refundd::ops::shop_examples::RETURNS;
use refundd::store::shop_examples::{approve_return, returns_of, ReturnRow};

/// A returns shop whose order `order_no` of `amount` the bank holds in `state`.
async fn shop_with_order(order_no: &str, amount: i64, state: TxState) -> Rig {
    let rig = Rig::in_shop_in(&RETURNS, SCHEMA).await;
    rig.admin
        .load(&[bank_tx(order_no, amount, state)])
        .await
        .unwrap();
    let paid = refundd::store::shop_examples::SeedOrder {
        refund: refundd::store::shop_examples::AskedBack::NotAsked,
        ..crate::common::request(order_no, amount, None)
    };
    RETURNS.seed_orders(&rig.pool, &[paid]).await.unwrap();
    rig
}

/// The shop's customer service approves a return of `amount` NT$.
async fn approve(rig: &Rig, order_no: &str, return_no: &str, amount: i64) {
    approve_return(&rig.pool, order_no, return_no, Some(amount))
        .await
        .unwrap();
}

/// The bank's authorised amount of the order now.
async fn bank_authorised(rig: &Rig, order_no: &str) -> i64 {
    let tx = rig.admin.transaction(order_no).await.unwrap().unwrap();
    tx.auth_amount
}

/// How many money-moving calls the bank saw for the order.
async fn money_calls_at_bank(rig: &Rig, order_no: &str) -> usize {
    let calls = rig.admin.calls_of(order_no).await.unwrap();
    calls.iter().filter(|c| c.operation != "inquiry").count()
}

/// The shop's row of one return.
fn row<'a>(rows: &'a [ReturnRow], return_no: &str) -> &'a ReturnRow {
    rows.iter()
        .find(|r| r.return_no == return_no)
        .unwrap_or_else(|| panic!("no return {return_no} in {rows:?}"))
}

#[tokio::test]
async fn parts_given_back_one_after_another_never_beyond_the_balance() {
    let rig = shop_with_order("N1", 1000, TxState::Authorised).await;

    approve(&rig, "N1", "A1", 300).await;
    rig.pass().await;
    rig.refund("N1", "A1")
        .await
        .assert_refunded("reversal", 300);
    assert_eq!(bank_authorised(&rig, "N1").await, 700);

    // A week later, a second part: the authorisation is lowered again, by
    // this part only (the bank's 700 is the order's 1000 less the first).
    approve(&rig, "N1", "A2", 200).await;
    rig.pass().await;
    rig.refund("N1", "A2")
        .await
        .assert_refunded("reversal", 200);
    assert_eq!(bank_authorised(&rig, "N1").await, 500);

    // A third over what is left fails alone, saying what is left; nothing is sent.
    let calls_before = money_calls_at_bank(&rig, "N1").await;
    approve(&rig, "N1", "A3", 600).await;
    rig.pass().await;
    let over = rig.refund("N1", "A3").await;
    assert_eq!(over.status, "refund_failed");
    let reason = over.refund_error.unwrap_or_default();
    assert!(reason.contains("over the order's balance"), "{reason}");
    assert!(
        reason.contains("500 left of the 1000 authorised"),
        "{reason}"
    );
    assert_eq!(money_calls_at_bank(&rig, "N1").await, calls_before);
    assert_eq!(bank_authorised(&rig, "N1").await, 500);

    // Each return's own row is told its own outcome.
    let rows = returns_of(&rig.pool, "N1").await.unwrap();
    let (a1, a2, a3) = (row(&rows, "A1"), row(&rows, "A2"), row(&rows, "A3"));
    assert_eq!((a1.state.as_str(), a1.refunded), ("refunded", Some(300)));
    assert_eq!((a2.state.as_str(), a2.refunded), ("refunded", Some(200)));
    assert_eq!(a2.method.as_deref(), Some("reversal"));
    assert_eq!(a3.state, "refund_failed");
    assert!(a3.note.as_deref().unwrap_or_default().contains("balance"));
}

#[tokio::test]
async fn each_refund_has_its_own_events_with_the_order_refunded_in_all() {
    let rig = shop_with_order("N2", 1000, TxState::Authorised).await;
    approve(&rig, "N2", "B1", 100).await;
    approve(&rig, "N2", "B2", 250).await;
    rig.pass().await;
    rig.pass().await;
    let events = rig.store.events_of("N2").await.unwrap();
    let succeeded: Vec<_> = events
        .iter()
        .filter(|e| e.kind.as_str() == "refund.succeeded")
        .map(|e| &e.body)
        .collect();
    assert_eq!(succeeded.len(), 2, "{events:?}");
    assert_eq!(succeeded[0]["refund_id"], "B1");
    assert_eq!(succeeded[0]["amount"], 100);
    assert_eq!(succeeded[0]["order_refunded"], 100);
    assert_eq!(succeeded[1]["refund_id"], "B2");
    assert_eq!(succeeded[1]["amount"], 250);
    assert_eq!(succeeded[1]["order_refunded"], 350);
    assert_eq!(bank_authorised(&rig, "N2").await, 650);
}

#[tokio::test]
async fn an_orders_refunds_are_worked_oldest_first_never_two_at_once() {
    let rig = shop_with_order("N3", 900, TxState::Authorised).await;
    // Approved in this order, which is not their ids' (the shop's query lists
    // them by approval): refundd works them in the order it read them.
    approve(&rig, "N3", "K1", 100).await;
    approve(&rig, "N3", "B2", 200).await;
    approve(&rig, "N3", "A3", 300).await;
    rig.store.intake(1000).await.unwrap();

    // A claim takes only the oldest of the order's refunds.
    let worker = uuid::Uuid::new_v4();
    let lease = std::time::Duration::from_secs(30);
    let claimed = rig
        .store
        .claim(worker, lease, 10, chrono::Utc::now())
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.iter().map(|r| r.refund_id.as_str()).collect();
    assert_eq!(ids, ["K1"]);
    // While it is under way, no other refund of the order is claimed.
    let again = rig
        .store
        .claim(uuid::Uuid::new_v4(), lease, 10, chrono::Utc::now())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    // And the database refuses two under way at once, whatever a claim saw.
    let second = sqlx::query(
        "UPDATE refunds SET status = 'refunding' WHERE order_no = 'N3' AND refund_id = 'B2'",
    )
    .execute(&rig.pool)
    .await;
    assert!(
        second.is_err(),
        "two refunds of one order under way at once"
    );
    rig.store
        .release(&[claimed[0].lease(worker)])
        .await
        .unwrap();

    // The passes work them all, in order, each lowering what the last left.
    for _ in 0..3 {
        rig.pass().await;
    }
    let amounts: Vec<Option<i64>> = rig
        .admin
        .calls_of("N3")
        .await
        .unwrap()
        .iter()
        .filter(|c| c.operation == "reversal")
        .map(|c| c.amount)
        .collect();
    assert_eq!(amounts, [Some(800), Some(600), Some(300)]);
    for (id, amount) in [("K1", 100), ("B2", 200), ("A3", 300)] {
        rig.refund("N3", id)
            .await
            .assert_refunded("reversal", amount);
    }
}

/// Where the bank filed each refund refundd recorded as accepted: (refund
/// id, BatchID, BatchSeq, RetrRef), oldest first.
async fn filed_refunds(rig: &Rig, order_no: &str) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT refund_id, batch_id, batch_seq, retr_ref FROM refund_events
          WHERE order_no = $1 AND operation = 'refund' AND outcome = 'accepted' AND kind = 'outcome'
          ORDER BY id",
    )
    .bind(order_no)
    .fetch_all(&rig.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn settled_money_is_refunded_part_by_part_each_after_the_last_settled() {
    let rig = shop_with_order("N4", 1000, TxState::Settled).await;
    approve(&rig, "N4", "D1", 300).await;
    rig.pass().await;
    rig.refund("N4", "D1").await.assert_refunded("refund", 300);

    // The second part waits while the first is settling (state 20)...
    approve(&rig, "N4", "D2", 200).await;
    rig.pass().await;
    let waiting = rig.refund("N4", "D2").await;
    assert_eq!(waiting.status, "refund_requested");
    assert!(waiting.last_error_says("earlier refund"), "{waiting:?}");
    assert_eq!(money_calls_at_bank(&rig, "N4").await, 1);

    // ...and is sent once the bank's batch has settled it (state 22).
    rig.admin.run_batch().await.unwrap();
    rig.pass().await;
    rig.refund("N4", "D2").await.assert_refunded("refund", 200);
    assert!(rig.refund("N4", "D1").await.settled);
    rig.admin.run_batch().await.unwrap();
    rig.pass().await;
    assert!(rig.refund("N4", "D2").await.settled);

    // The bank holds two refunds, each where refundd recorded it.
    let at_bank = rig.admin.refunds_of("N4").await.unwrap().unwrap();
    let amounts: Vec<i64> = at_bank.iter().map(|r| r.amount).collect();
    assert_eq!(amounts, [300, 200]);
    let filed = filed_refunds(&rig, "N4").await;
    let ours: Vec<(&str, &str, &str)> = filed
        .iter()
        .map(|(_, b, s, r)| (b.as_str(), s.as_str(), r.as_str()))
        .collect();
    let theirs: Vec<(&str, &str, &str)> = at_bank
        .iter()
        .map(|r| {
            (
                r.batch_id.as_str(),
                r.batch_seq.as_str(),
                r.retr_ref.as_str(),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(filed[0].0, "D1");
    assert_eq!(filed[1].0, "D2");

    // The order's balance is 500: a third part of 600 is refused before the bank.
    approve(&rig, "N4", "D3", 600).await;
    rig.pass().await;
    let over = rig.refund("N4", "D3").await;
    assert_eq!(over.status, "refund_failed");
    assert!(over.refund_error.unwrap_or_default().contains("500 left"));
    assert_eq!(money_calls_at_bank(&rig, "N4").await, 2);
}

/// The built-in orders table's row of an order: (status, refunded_amount).
async fn builtin_order(rig: &Rig, order_no: &str) -> (String, Option<i64>) {
    sqlx::query_as("SELECT status, refunded_amount FROM public.orders WHERE order_no = $1")
        .bind(order_no)
        .fetch_one(&rig.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_built_in_table_asks_further_parts_of_an_order_refunded_in_part() {
    use refundd::ops::manual_queue::{request as ask_by_hand, QueueError};
    let rig = Rig::new_in(SCHEMA).await;
    rig.admin
        .load(&[bank_tx("B1", 1000, TxState::Authorised)])
        .await
        .unwrap();
    let paid = refundd::store::shop_examples::SeedOrder {
        refund: refundd::store::shop_examples::AskedBack::NotAsked,
        ..crate::common::request("B1", 1000, None)
    };
    rig.ask(&[paid]).await;

    ask_by_hand(&rig.store, "B1", Some(300)).await.unwrap();
    rig.pass().await;
    rig.refund("B1", "").await.assert_refunded("reversal", 300);
    assert_eq!(
        builtin_order(&rig, "B1").await,
        ("refunded".into(), Some(300))
    );

    // A further part of what is left: the order's second refund.
    ask_by_hand(&rig.store, "B1", Some(200)).await.unwrap();
    rig.pass().await;
    rig.refund("B1", "2").await.assert_refunded("reversal", 200);
    assert_eq!(
        builtin_order(&rig, "B1").await,
        ("refunded".into(), Some(500))
    );
    assert_eq!(bank_authorised(&rig, "B1").await, 500);

    // More than is left is refused before it is asked; the rest is not.
    let over = ask_by_hand(&rig.store, "B1", Some(600)).await.unwrap_err();
    assert!(
        matches!(over, QueueError::AmountOverAuthorised { .. }),
        "{over}"
    );
    ask_by_hand(&rig.store, "B1", None).await.unwrap();
    rig.pass().await;
    rig.refund("B1", "3").await.assert_refunded("reversal", 500);
    assert_eq!(
        builtin_order(&rig, "B1").await,
        ("refunded".into(), Some(1000))
    );
    assert_eq!(bank_authorised(&rig, "B1").await, 0);
    let whole = ask_by_hand(&rig.store, "B1", Some(1)).await.unwrap_err();
    assert!(whole.to_string().contains("refunded whole"), "{whole}");
}
