//! Group commit: the intents and endings of orders that are ready together
//! share one commit, one order's refused write stays that order's, and a
//! process killed after the bank accepted a call but before the batch holding
//! its outcome committed leaves an unknown outcome that the next pass resolves
//! by asking the bank, never by sending again.

use crate::common::{eventually, output_off_runtime, twd, Rig, Running};
use refundd::ctbc::{Operation, TxState};
use refundd::domain::record::{GatewayEvent, Lease};
use refundd::domain::words::{EventKind, RefundMethod};
use refundd::sim::{FaultPlan, FaultRule};
use refundd::store::intents::Intent;
use refundd::store::writeback::WriteBack;
use refundd::store::StoreError;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(600);

/// Seeds `orders` (authorised, 1000 each), takes them in and claims them.
async fn claimed(rig: &Rig, orders: &[&str]) -> Vec<Lease> {
    for no in orders {
        rig.seed(no, 1000, TxState::Authorised, None).await;
    }
    rig.store.intake(100).await.unwrap();
    let worker = uuid::Uuid::new_v4();
    let rows = rig
        .store
        .claim(worker, LEASE, 100, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(rows.len(), orders.len());
    rows.iter().map(|r| r.lease(worker)).collect()
}

/// The intents of `leases`, all submitted at once.
async fn intents_together(rig: &Rig, leases: &[Lease]) -> Vec<Result<Intent, StoreError>> {
    let intent = GatewayEvent {
        kind: EventKind::Intent,
        operation: Some(Operation::Reversal),
        amount: Some(0),
        ..Default::default()
    };
    let all = leases.iter().map(|l| {
        rig.store.record_intent(
            l,
            LEASE,
            &[],
            None,
            &intent,
            (twd(1000), twd(1000), twd(1000)),
        )
    });
    futures::future::join_all(all).await
}

/// How many transactions last wrote these orders' records.
async fn commits_of(rig: &Rig, table: &str, orders: &[&str]) -> i64 {
    let orders: Vec<String> = orders.iter().map(|s| s.to_string()).collect();
    sqlx::query_scalar(&format!(
        "SELECT count(DISTINCT xmin::text) FROM {table} WHERE order_no = ANY($1)"
    ))
    .bind(orders)
    .fetch_one(&rig.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn intents_and_endings_of_orders_ready_together_share_one_commit() {
    let rig = Rig::new().await;
    let orders = ["GC1", "GC2", "GC3", "GC4", "GC5", "GC6"];
    let leases = claimed(&rig, &orders).await;
    for r in intents_together(&rig, &leases).await {
        assert_eq!(r.unwrap(), Intent::Recorded);
    }
    assert_eq!(commits_of(&rig, "refundd.refunds", &orders).await, 1);

    let ends = leases.iter().map(|l| {
        rig.store
            .finish_refunded(l, &[], RefundMethod::Reversal, twd(1000), None)
    });
    for r in futures::future::join_all(ends).await {
        assert_eq!(r.unwrap(), WriteBack::Done);
    }
    // refundd's records and the shop's rows, all in the one transaction.
    let both = sqlx::query_scalar::<_, i64>(
        "SELECT count(DISTINCT x) FROM (
             SELECT xmin::text AS x FROM refundd.refunds WHERE order_no LIKE 'GC%'
             UNION ALL SELECT xmin::text FROM orders WHERE order_no LIKE 'GC%') t",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert_eq!(both, 1);
    for no in orders {
        rig.order(no).await.assert_refunded("reversal", 1000);
    }
}

#[tokio::test]
async fn an_intent_the_database_refuses_is_that_orders_alone() {
    let rig = Rig::new().await;
    let leases = claimed(&rig, &["GC_OK1", "GC_BAD", "GC_OK2"]).await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_gc_bad() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.order_no = 'GC_BAD' AND NEW.unknown_operation IS NOT NULL THEN
             RAISE EXCEPTION 'this record is refused';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_gc_bad BEFORE UPDATE ON refundd.refunds
           FOR EACH ROW EXECUTE FUNCTION refuse_gc_bad();",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    let answers = intents_together(&rig, &leases).await;
    let mut bad = None;
    for (i, l) in leases.iter().enumerate() {
        let no: String = sqlx::query_scalar("SELECT order_no FROM refundd.refunds WHERE id = $1")
            .bind(l.id)
            .fetch_one(&rig.pool)
            .await
            .unwrap();
        if no == "GC_BAD" {
            bad = Some(i);
        }
    }
    for (i, r) in answers.into_iter().enumerate() {
        match r {
            Err(e) if Some(i) == bad => assert!(e.is_about_one_order(), "{e}"),
            Ok(Intent::Recorded) if Some(i) != bad => {}
            other => panic!("answer {i}: {other:?}"),
        }
    }
    let unknown: Vec<String> = sqlx::query_scalar(
        "SELECT order_no FROM refundd.refunds WHERE unknown_operation IS NOT NULL ORDER BY order_no",
    )
    .fetch_all(&rig.pool)
    .await
    .unwrap();
    assert_eq!(unknown, ["GC_OK1", "GC_OK2"]);
}

#[tokio::test]
async fn a_write_back_the_shop_refuses_is_that_orders_alone() {
    let rig = Rig::new().await;
    let orders = ["WB_OK1", "WB_BAD", "WB_OK2"];
    let leases = claimed(&rig, &orders).await;
    sqlx::raw_sql(
        "CREATE FUNCTION shop_refuses() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.order_no = 'WB_BAD' AND NEW.status = 'refunded' THEN
             RAISE EXCEPTION 'the shop refuses this order';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER shop_refuses BEFORE UPDATE ON orders
           FOR EACH ROW EXECUTE FUNCTION shop_refuses();",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    let ends = leases.iter().map(|l| {
        rig.store
            .finish_refunded(l, &[], RefundMethod::Reversal, twd(1000), None)
    });
    let answers = futures::future::join_all(ends).await;
    let refused = answers
        .iter()
        .filter(|r| matches!(r, Ok(WriteBack::Refused(why)) if why.contains("the shop refuses")))
        .count();
    let done = answers
        .iter()
        .filter(|r| matches!(r, Ok(WriteBack::Done)))
        .count();
    assert_eq!((refused, done), (1, 2), "{answers:?}");
    for no in orders {
        rig.order(no).await.assert_refunded("reversal", 1000);
    }
    let shop: Vec<(String, String)> =
        sqlx::query_as("SELECT order_no, status FROM orders ORDER BY order_no")
            .fetch_all(&rig.pool)
            .await
            .unwrap();
    let status = |no: &str| shop.iter().find(|(o, _)| o == no).unwrap().1.clone();
    assert_eq!(status("WB_BAD"), "refund_requested");
    assert_eq!(status("WB_OK1"), "refunded");
    assert_eq!(status("WB_OK2"), "refunded");
    let pending: Option<String> =
        sqlx::query_scalar("SELECT writeback FROM refundd.refunds WHERE order_no = 'WB_BAD'")
            .fetch_one(&rig.pool)
            .await
            .unwrap();
    assert_eq!(pending.as_deref(), Some("refunded"));
}

fn once(rig: &Rig) -> std::process::Command {
    let mut cmd = rig.refundd("once");
    cmd.env("REFUNDD__CTBC__TIMEOUT_SECS", "60")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// The record's status and the operation whose outcome it does not know.
async fn unknown_of(rig: &Rig, no: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, unknown_operation FROM refundd.refunds WHERE order_no = $1")
        .bind(no)
        .fetch_one(&rig.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn killed_after_the_banks_answer_before_its_batched_outcome_commits() {
    let rig = Rig::new().await;
    let orders = ["KB1", "KB2", "KB3"];
    for no in orders {
        rig.seed(no, 1000, TxState::Authorised, None).await;
    }
    // The bank holds its answers to the reversals long enough for the test
    // to lock the records between each intent's commit and its outcome's.
    let held = FaultPlan {
        rules: vec![FaultRule {
            operation: Some(Operation::Reversal),
            latency_ms: 5000,
            ..Default::default()
        }],
    };
    rig.admin.set_faults(&held).await.unwrap();
    // Killed if the test fails, so it does not outlive it.
    let mut first = Running(once(&rig).spawn().unwrap());

    let intents_committed = || async {
        let mut all = true;
        for no in orders {
            all &= unknown_of(&rig, no).await.1.as_deref() == Some("reversal");
        }
        all
    };
    eventually(
        Duration::from_secs(60),
        "all three intents committed",
        intents_committed,
    )
    .await;
    let mut lock = rig.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM refundd.refunds WHERE order_no LIKE 'KB%' FOR UPDATE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let outcome_blocked = || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE application_name = 'refundd' AND wait_event_type = 'Lock'",
        )
        .fetch_one(&rig.pool)
        .await
        .unwrap();
        let mut accepted = 0;
        for no in orders {
            accepted += rig.accepted(no, "reversal").await;
        }
        waiting > 0 && accepted == orders.len()
    };
    eventually(
        Duration::from_secs(60),
        "the bank accepted all three reversals and their outcomes wait on the lock",
        outcome_blocked,
    )
    .await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    lock.rollback().await.unwrap();

    // The bank moved the money; refundd's record does not know it yet.
    for no in orders {
        let (status, unknown) = unknown_of(&rig, no).await;
        assert_eq!(
            (status.as_str(), unknown.as_deref()),
            ("refunding", Some("reversal"))
        );
    }
    // The dead process's leases run out; the next pass asks the bank.
    sqlx::query("UPDATE refundd.refunds SET lease_expires_at = now() - interval '1 second'")
        .execute(&rig.pool)
        .await
        .unwrap();
    rig.admin.set_faults(&FaultPlan::default()).await.unwrap();
    let status = output_off_runtime(once(&rig)).await.status;
    assert!(status.success());
    for no in orders {
        rig.order(no).await.assert_refunded("reversal", 1000);
        assert_eq!(rig.accepted(no, "reversal").await, 1, "{no}: sent again");
        let calls = rig.admin.calls_of(no).await.unwrap();
        assert!(
            calls.iter().filter(|c| c.operation == "inquiry").count() >= 2,
            "{no}: the second pass did not ask the bank"
        );
    }
}

#[tokio::test]
async fn a_batch_rolled_back_to_break_a_deadlock_is_written_again_order_by_order() {
    let rig = Rig::new().await;
    let mut leases = claimed(&rig, &["DL1", "DL2"]).await;
    leases.sort_by_key(|l| l.id);
    let (low, high) = (leases[0], leases[1]);
    // Another transaction holds the higher record, and waits longer than
    // refundd's session before it looks for a deadlock.
    let mut other = rig.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL deadlock_timeout = '60s'")
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query("SELECT 1 FROM refundd.refunds WHERE id = $1 FOR UPDATE")
        .bind(high.id)
        .execute(&mut *other)
        .await
        .unwrap();
    let store = rig.store.clone();
    let ends = tokio::spawn(async move {
        let ends = [low, high].map(|l| {
            let store = store.clone();
            async move {
                store
                    .finish_refunded(&l, &[], RefundMethod::Reversal, twd(1000), None)
                    .await
            }
        });
        futures::future::join_all(ends).await
    });
    let waiting = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(&rig.pool)
            .await
            .unwrap()
            > 0
    };
    eventually(
        Duration::from_secs(30),
        "the batch holds the lower record and waits for the higher",
        waiting,
    )
    .await;
    // Asking for the lower record closes the cycle; PostgreSQL rolls the
    // batch back (its session looks first), so this lock is granted.
    sqlx::query("SELECT 1 FROM refundd.refunds WHERE id = $1 FOR UPDATE")
        .bind(low.id)
        .execute(&mut *other)
        .await
        .unwrap();
    other.rollback().await.unwrap();
    for answer in ends.await.unwrap() {
        assert_eq!(answer.unwrap(), WriteBack::Done);
    }
    for no in ["DL1", "DL2"] {
        rig.order(no).await.assert_refunded("reversal", 1000);
    }
}

#[tokio::test]
async fn a_capture_reversal_is_recorded_with_the_reversal_s_intent_before_the_reversal_is_sent() {
    let rig = Rig::new().await;
    rig.seed("CRX", 1000, TxState::CapturedNotSettled, None)
        .await;
    // The reversal's answer is lost: the capture reversal before it must be on record.
    rig.lose_answers_of(Operation::Reversal).await;
    assert_eq!(rig.pass().await.outcome_unknown, 1);
    assert_eq!(rig.accepted("CRX", "capture_reversal").await, 1);
    let order = rig.order("CRX").await;
    assert_eq!(
        (order.step.as_deref(), order.unknown_operation.as_deref()),
        (Some("capture_reversed"), Some("reversal"))
    );
    // The capture reversal's outcome and the reversal's intent: one commit.
    let commit_of = |kind: &'static str, operation: &'static str| {
        sqlx::query_scalar::<_, String>(
            "SELECT xmin::text FROM refundd.refund_events
              WHERE order_no = 'CRX' AND kind = $1 AND operation = $2",
        )
        .bind(kind)
        .bind(operation)
        .fetch_one(&rig.pool)
    };
    let outcome = commit_of("outcome", "capture_reversal").await.unwrap();
    let intent = commit_of("intent", "reversal").await.unwrap();
    assert_eq!(outcome, intent);
}
