//! The outbox, against real PostgreSQL and the simulator: every outcome that
//! matters to someone is an event written by the transaction that made the
//! change, announced with NOTIFY on `refundd`, readable as the view `events`;
//! a person's attention is raised once per cause and order; a change rolled
//! back (a lease lost) leaves no event.

use crate::common::Rig;
use refundd::ctbc::TxState;
use refundd::domain::words::NotificationType;
use std::time::Duration;

async fn types_of(rig: &Rig, order_no: &str) -> Vec<String> {
    rig.store
        .events_of(order_no)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.to_string())
        .collect()
}

#[tokio::test]
async fn each_outcome_is_an_event_with_the_fields_that_apply() {
    let rig = Rig::new().await;
    rig.seed("OK", 1000, TxState::Authorised, Some(400)).await;
    rig.seed("REF", 1000, TxState::Settled, None).await;
    rig.seed("FAIL", 1000, TxState::AuthFailed, None).await;
    rig.seed("GONE", 1000, TxState::Settled, None).await;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE order_no = 'GONE'")
        .execute(&rig.pool)
        .await
        .unwrap();
    rig.pass().await;
    rig.admin.run_batch().await.unwrap();
    rig.pass().await;

    assert_eq!(types_of(&rig, "OK").await, ["refund.succeeded"]);
    assert_eq!(
        types_of(&rig, "REF").await,
        ["refund.succeeded", "refund.settled"]
    );
    assert_eq!(types_of(&rig, "FAIL").await, ["refund.failed"]);
    assert_eq!(types_of(&rig, "GONE").await, ["refund.withdrawn"]);

    let ok = &rig.store.events_of("OK").await.unwrap()[0];
    assert_eq!(ok.body["id"], ok.id.to_string());
    assert_eq!(ok.body["type"], "refund.succeeded");
    assert_eq!(ok.body["order_no"], "OK");
    assert_eq!(ok.body["amount"], 400);
    assert_eq!(ok.body["method"], "reversal");
    assert!(chrono::DateTime::parse_from_rfc3339(ok.body["occurred_at"].as_str().unwrap()).is_ok());
    let fail = &rig.store.events_of("FAIL").await.unwrap()[0];
    assert!(fail.body["reason"].as_str().unwrap().contains("state -1"));
    assert_eq!(fail.body["bank_state"], "-1");

    // The shop's code reads the same events through the view.
    let in_view: i64 = sqlx::query_scalar("SELECT count(*) FROM refundd.events")
        .fetch_one(&rig.pool)
        .await
        .unwrap();
    assert_eq!(in_view, 5);
}

#[tokio::test]
async fn the_shops_code_hears_each_event_with_listen() {
    let rig = Rig::new().await;
    let mut listener = sqlx::postgres::PgListener::connect(&rig.url).await.unwrap();
    listener.listen("refundd").await.unwrap();
    rig.seed("HEARD", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    let event = &rig.store.events_of("HEARD").await.unwrap()[0];
    assert_eq!(n.payload(), format!("{} refund.succeeded", event.id));
}

#[tokio::test]
async fn a_change_rolled_back_leaves_no_event() {
    let rig = Rig::new().await;
    rig.seed("LOST", 1000, TxState::Authorised, None).await;
    let lease = rig
        .intent_of_a_dead_worker(refundd::ctbc::Operation::Reversal, 0, (1000, 1000))
        .await;
    // The lease runs out and another worker takes the order.
    sqlx::query("UPDATE refundd.refunds SET lease_expires_at = now() - interval '1 second'")
        .execute(&rig.pool)
        .await
        .unwrap();
    let other = uuid::Uuid::new_v4();
    let taken = rig
        .store
        .claim(other, Duration::from_secs(30), 10, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    // The first worker's late record is refused, and so is its event.
    let late = rig
        .store
        .finish_refunded(
            &lease,
            &[],
            refundd::domain::words::RefundMethod::Reversal,
            crate::common::twd(1000),
            None,
        )
        .await;
    assert!(
        matches!(late, Err(refundd::store::StoreError::LeaseLost)),
        "{late:?}"
    );
    assert!(types_of(&rig, "LOST").await.is_empty());
}

#[tokio::test]
async fn attention_is_raised_once_per_cause_and_order() {
    let rig = Rig::new().await;
    rig.seed("DOUBT", 1000, TxState::Settled, None).await;
    rig.lose_answers_of(refundd::ctbc::Operation::Refund).await;
    assert_eq!(rig.pass().await.outcome_unknown, 1);
    // Not yet: the unknown outcome is younger than the attention delay.
    assert_eq!(
        rig.store
            .raise_attention(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    sqlx::query("UPDATE refundd.refunds SET unknown_since = now() - interval '2 hours'")
        .execute(&rig.pool)
        .await
        .unwrap();
    assert_eq!(
        rig.store
            .raise_attention(Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        rig.store
            .raise_attention(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    let events = rig.store.events_of("DOUBT").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, NotificationType::NeedsAttention);
    assert_eq!(events[0].body["cause"], "outcome_unknown");
    assert!(events[0].body["reason"]
        .as_str()
        .unwrap()
        .contains("refund"));
}

#[tokio::test]
async fn a_write_back_the_shop_refuses_and_an_unsettled_refund_need_attention() {
    let rig = Rig::new().await;
    rig.seed("WB", 1000, TxState::Authorised, None).await;
    rig.seed("SLOW", 1000, TxState::Settled, None).await;
    sqlx::raw_sql(
        "CREATE FUNCTION shop_rule() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.order_no = 'WB' AND NEW.status = 'refunded' THEN
             RAISE EXCEPTION 'order WB is closed';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER shop_rule BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION shop_rule();",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.pass().await;
    assert_eq!(
        types_of(&rig, "WB").await,
        ["refund.succeeded", "refund.needs_attention"]
    );
    // The settlement watch runs out without the bank settling SLOW.
    sqlx::query(
        "UPDATE refundd.refunds SET watch_until = now() - interval '1 second', next_attempt_at = now() - interval '1 second' WHERE order_no = 'SLOW'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.pass().await;
    let slow = rig.store.events_of("SLOW").await.unwrap();
    assert_eq!(slow.last().unwrap().kind, NotificationType::NeedsAttention);
    assert_eq!(slow.last().unwrap().body["cause"], "not_settled");
    // Raised once, however many passes see it.
    rig.pass().await;
    assert_eq!(types_of(&rig, "WB").await.len(), 2);
}
