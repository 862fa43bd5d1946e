//! The moment a money-moving call leaves: only while the claim's lease is
//! certain to outlast it, the bank's wait included; only for the claim the
//! intent was recorded for; never inside a blackout window or after a stop
//! that began while the call waited for its turn. Each test breaks one of
//! these with real engines, a real database and the simulator.

use crate::common::{engine_settings, eventually, pass_of, twd, Rig};
use refundd::ctbc::{Operation, TxState};
use refundd::domain::record::GatewayEvent;
use refundd::domain::words::EventKind;
use refundd::engine::clock::SystemClock;
use refundd::sim::{FaultPlan, FaultRule};
use refundd::store::intents::Intent;
use refundd::store::StoreError;
use std::sync::Arc;
use std::time::Duration;

async fn intents_of(rig: &Rig, order_no: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM refund_events WHERE order_no = $1 AND kind = 'intent'")
        .bind(order_no)
        .fetch_one(&rig.pool)
        .await
        .unwrap()
}

/// Engine A's refund is held by the bank longer than A's lease, and A's
/// renewals are kept from the record by the test's own lock on it, so the
/// lease would run out while the call is still on its way. Engine B takes the
/// order over. The bank must see one refund, not two: A may not send a call
/// its lease cannot outlast (a lease shorter than one call is refused at
/// start-up too, but the engine keeps the rule by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_never_outlives_the_lease_it_was_sent_under() {
    let rig = Rig::new().await;
    rig.seed("HELD", 1000, TxState::Settled, None).await;
    let mut settings = engine_settings();
    settings.lease = Duration::from_secs(4);
    settings.recheck = Duration::from_secs(1);
    let held = FaultPlan {
        rules: vec![FaultRule {
            operation: Some(Operation::Refund),
            order_no: Some("HELD".into()),
            latency_ms: 5_000,
            ..FaultRule::default()
        }],
    };
    rig.admin.set_faults(&held).await.unwrap();
    let a = rig.engine_with(
        settings.clone(),
        Arc::new(SystemClock),
        Duration::from_secs(6),
    );
    let a_pass = pass_of(&a);
    let take_over = async {
        eventually(Duration::from_secs(20), "A's intent committed", || async {
            intents_of(&rig, "HELD").await == 1
        })
        .await;
        let mut hold = rig.pool.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM refunds WHERE order_no = 'HELD' FOR UPDATE")
            .execute(&mut *hold)
            .await
            .unwrap();
        eventually(Duration::from_secs(20), "A's lease ran out", || async {
            sqlx::query_scalar::<_, bool>(
            "SELECT coalesce(lease_expires_at < now(), true) FROM refunds WHERE order_no = 'HELD'",
        )
        .fetch_one(&rig.pool)
        .await
        .unwrap()
        })
        .await;
        hold.rollback().await.unwrap();
        rig.admin.set_faults(&FaultPlan::none()).await.unwrap();

        let b = rig.engine_with(settings, Arc::new(SystemClock), Duration::from_secs(2));
        eventually(Duration::from_secs(30), "B ends the order", || async {
            pass_of(&b).await;
            rig.order("HELD").await.status == "refunded"
        })
        .await;
    };
    // A's pass ends once its call has (its client waits longer than the
    // bank holds it): the bank's books are final.
    tokio::join!(a_pass, take_over);
    let ledger = rig.admin.ledger().await.unwrap();
    assert_eq!(ledger.duplicates, 0, "a refund was sent twice");
    assert_eq!(rig.accepted("HELD", "refund").await, 1);
}

/// One worker holds an order under two claims (its first lease ran out and
/// it claimed the order again); both claims' intents reach the same batch.
/// Only the live claim's is recorded, and only its event is written.
#[tokio::test]
async fn an_intent_is_answered_for_its_claim_not_for_its_record() {
    let rig = Rig::new().await;
    rig.seed("TWICE", 1000, TxState::Authorised, None).await;
    let worker = uuid::Uuid::new_v4();
    let lease_for = Duration::from_secs(30);
    let claim = || async {
        let rows = rig
            .store
            .claim(worker, lease_for, 10, chrono::Utc::now())
            .await
            .unwrap();
        rows[0].lease(worker)
    };
    let stale = claim().await;
    sqlx::query("UPDATE refunds SET lease_expires_at = now() - interval '1 second'")
        .execute(&rig.pool)
        .await
        .unwrap();
    let live = claim().await;
    assert_ne!(stale.token, live.token);
    let intent = GatewayEvent {
        kind: EventKind::Intent,
        operation: Some(Operation::Reversal),
        amount: Some(0),
        ..Default::default()
    };
    let amounts = (twd(1000), twd(1000), twd(1000));
    let (old, new) = tokio::join!(
        rig.store
            .record_intent(&stale, lease_for, &[], None, &intent, amounts),
        rig.store
            .record_intent(&live, lease_for, &[], None, &intent, amounts),
    );
    assert!(matches!(old, Err(StoreError::LeaseLost)), "{old:?}");
    assert_eq!(new.unwrap(), Intent::Recorded);
    assert_eq!(intents_of(&rig, "TWICE").await, 1);
}

/// The window opens while a capture reversal waits for its turn: it is not
/// sent, and the order waits for the next pass with nothing unknown.
#[tokio::test]
async fn a_capture_reversal_that_waited_into_a_blackout_window_is_not_sent() {
    let rig = Rig::new().await;
    rig.seed("LATE10", 1000, TxState::CapturedNotSettled, None)
        .await;
    // Outside the window at the pass's start, its claim, the order's start
    // and the step's start; inside when the call is about to leave.
    let engine = rig.engine_reaching_window(4, engine_settings());
    pass_of(&engine).await;
    let calls = rig.money_calls("LATE10").await;
    assert!(calls.is_empty(), "sent inside the window: {calls:?}");
    let order = rig.order("LATE10").await;
    assert_eq!(order.unknown_operation, None, "{order:?}");
    assert!(order.last_error_says("blackout"), "{order:?}");
    assert!(!order.claimed, "{order:?}");
}

/// A worker died with a call of unknown outcome in flight, sent long after
/// its intent (it waited for its turn). Its lease has only just lapsed: the
/// call may have reached the bank a moment ago, so the recheck delay counts
/// from the lapse, not from the intent, and nothing is sent again yet.
#[tokio::test]
async fn the_recheck_delay_counts_from_when_the_call_could_last_have_been_sent() {
    let rig = Rig::new().await;
    rig.seed("LAPSED", 1000, TxState::Authorised, None).await;
    rig.intent_of_a_dead_worker(Operation::Reversal, 0, (1000, 1000))
        .await;
    sqlx::query(
        "UPDATE refunds SET unknown_since = now() - interval '1 hour',
                lease_expires_at = now() - interval '1 second' WHERE order_no = 'LAPSED'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    // engine_settings: a recheck delay of 300 s.
    pass_of(&rig.engine()).await;
    let calls = rig.money_calls("LAPSED").await;
    assert!(
        calls.is_empty(),
        "sent again within the recheck delay: {calls:?}"
    );
    let order = rig.order("LAPSED").await;
    assert_eq!(
        order.unknown_operation.as_deref(),
        Some("reversal"),
        "{order:?}"
    );
    assert!(order.last_error_says("recheck"), "{order:?}");
}

/// The bank's answers do not open with refundd's keys (a wrong MAC key):
/// that is the settings, not the bank having a bad day. The pass stops
/// claiming and sending, nothing moves, no order is failed, and the summary
/// says which settings to check.
#[tokio::test]
async fn answers_that_do_not_open_with_our_keys_stop_the_pass() {
    use refundd::ctbc::{Client, ClientConfig, Envelope, MerId};
    let rig = Rig::new().await;
    let orders: Vec<String> = (1..=8).map(|n| format!("KEY{n}")).collect();
    for no in &orders {
        rig.seed(no, 1000, TxState::Settled, None).await;
    }
    let wrong = Envelope::new(
        b"ZYXWVUTSRQPONMLKJIHGFEDC",
        refundd::sim::REFERENCE_IV.as_bytes(),
    )
    .unwrap();
    let cfg = ClientConfig::new(
        url::Url::parse(&rig.sim.base_url()).unwrap(),
        MerId::parse(refundd::sim::REFERENCE_MER_ID).unwrap(),
        wrong,
    );
    let mut settings = engine_settings();
    settings.concurrency = 2;
    let engine = refundd::engine::pass::Engine::new(
        rig.store.clone(),
        Client::new(cfg).unwrap(),
        settings,
        Arc::new(SystemClock),
    );
    let s = pass_of(&engine).await;
    assert_eq!(s.outcome.as_str(), "bank_keys_wrong", "{s:?}");
    let problem = s.problem.clone().unwrap_or_default();
    assert!(
        problem.contains("check ctbc.mac_key and ctbc.iv"),
        "{problem}"
    );
    for no in &orders {
        assert!(rig.money_calls(no).await.is_empty(), "{no}");
        assert_ne!(rig.order(no).await.status, "refund_failed", "{no}");
    }
}
