//! What the shop's rows mean over time, end to end: a request withdrawn before
//! anything was sent, withdrawn and asked again while a call is in flight, an
//! amount corrected while waiting, asked again after the refund, asked again
//! after a failure the shop fixed; and a bad description of the shop's tables
//! refused before anything is sent.

use super::SCHEMA;
use crate::common::{empty_db, eventually, pass_of, refundd_bin, Rig};
use refundd::ctbc::{Operation, TxState};
use refundd::sim::{
    FaultKind, FaultPlan, FaultRule, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};
use std::process::Output;
use std::time::Duration;

async fn shop_sql(rig: &Rig, sql: &str) {
    sqlx::raw_sql(sql).execute(&rig.pool).await.unwrap();
}

async fn refundd_status(rig: &Rig, order_no: &str) -> String {
    sqlx::query_scalar("SELECT status FROM refunds WHERE order_no = $1")
        .bind(order_no)
        .fetch_one(&rig.pool)
        .await
        .unwrap()
}

async fn due_now(rig: &Rig) {
    shop_sql(
        rig,
        "UPDATE refunds SET next_attempt_at = now() - interval '1 second',
                unknown_since = unknown_since - interval '1 hour'",
    )
    .await;
}

#[tokio::test]
async fn a_request_withdrawn_while_the_bank_is_down_is_never_sent() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("GONE", 1000, TxState::Settled, None).await;
    rig.admin
        .set_faults(&FaultPlan::always(FaultKind::ServerError, None))
        .await
        .unwrap();
    assert_eq!(rig.pass().await.deferred, 1);
    // The shop changes its mind.
    shop_sql(
        &rig,
        "UPDATE orders SET status = 'paid' WHERE order_no = 'GONE'",
    )
    .await;
    rig.admin.set_faults(&FaultPlan::none()).await.unwrap();
    due_now(&rig).await;
    let s = rig.pass().await;
    assert_eq!(s.claimed, 0);
    assert_eq!(refundd_status(&rig, "GONE").await, "withdrawn");
    assert!(rig.money_calls("GONE").await.is_empty());
    let note: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refund_events WHERE order_no = 'GONE' AND outcome = 'withdrawn'",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert_eq!(note, 1);
    // Asked again later, it is a new request and is refunded once.
    shop_sql(
        &rig,
        "UPDATE orders SET status = 'refund_requested' WHERE order_no = 'GONE'",
    )
    .await;
    rig.pass().await;
    assert_eq!(refundd_status(&rig, "GONE").await, "refunded");
    assert_eq!(rig.accepted("GONE", "refund").await, 1);
}

#[tokio::test]
async fn withdrawn_and_asked_again_while_a_call_is_in_flight_is_one_call_at_the_bank() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("FLIGHT", 1000, TxState::Settled, None).await;
    rig.admin
        .set_faults(&FaultPlan {
            rules: vec![FaultRule {
                operation: Some(Operation::Refund),
                latency_ms: 1_500,
                ..FaultRule::default()
            }],
        })
        .await
        .unwrap();
    let first = rig.engine();
    let second = rig.engine();
    let meanwhile = async {
        eventually(Duration::from_secs(30), "the refund's intent", || async {
            let intents: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM refund_events WHERE order_no = 'FLIGHT' AND kind = 'intent'",
            )
            .fetch_one(&rig.pool)
            .await
            .unwrap();
            intents > 0
        })
        .await;
        // While the refund is in flight the shop withdraws and asks again,
        // and another daemon reads the shop's requests.
        shop_sql(
            &rig,
            "UPDATE orders SET status = 'paid' WHERE order_no = 'FLIGHT'",
        )
        .await;
        shop_sql(
            &rig,
            "UPDATE orders SET status = 'refund_requested' WHERE order_no = 'FLIGHT'",
        )
        .await;
        pass_of(&second).await
    };
    let (_, other) = tokio::join!(pass_of(&first), meanwhile);
    assert_eq!(other.claimed, 0, "the order in flight is not claimed twice");
    rig.pass().await;
    assert_eq!(refundd_status(&rig, "FLIGHT").await, "refunded");
    assert_eq!(rig.accepted("FLIGHT", "refund").await, 1);
    assert_eq!(rig.admin.duplicates().await.unwrap(), 0);
}

#[tokio::test]
async fn an_amount_corrected_while_waiting_for_settlement_is_the_amount_sent() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("FIX", 1000, TxState::CapturedNotSettled, Some(400))
        .await;
    assert_eq!(rig.pass().await.deferred, 1, "a part waits for settlement");
    shop_sql(
        &rig,
        "UPDATE orders SET refund_amount = 300 WHERE order_no = 'FIX'",
    )
    .await;
    rig.admin.run_batch().await.unwrap();
    rig.pass().await;
    rig.order("FIX").await.assert_refunded("refund", 300);
    let shop: (String, Option<i64>) =
        sqlx::query_as("SELECT status, refunded_amount FROM orders WHERE order_no = 'FIX'")
            .fetch_one(&rig.pool)
            .await
            .unwrap();
    assert_eq!(shop, ("refunded".into(), Some(300)));
    assert_eq!(
        rig.admin
            .transaction("FIX")
            .await
            .unwrap()
            .unwrap()
            .refunded_amount,
        300
    );
}

#[tokio::test]
async fn an_order_asked_again_after_its_refund_is_never_refunded_twice() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("TWICE", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    assert_eq!(refundd_status(&rig, "TWICE").await, "refunded");
    shop_sql(
        &rig,
        "UPDATE orders SET status = 'refund_requested' WHERE order_no = 'TWICE'",
    )
    .await;
    let s = rig.pass().await;
    assert_eq!(s.claimed, 0);
    assert_eq!(rig.accepted("TWICE", "reversal").await, 1);
    let view = rig.store.queue_view().await.unwrap();
    assert_eq!(view.asked_again.len(), 1);
    assert_eq!(view.asked_again[0].order_no, "TWICE");
    // Shown once, however many passes see it.
    rig.pass().await;
    assert_eq!(rig.store.queue_view().await.unwrap().asked_again.len(), 1);
    let text = refundd::ops::status::report(&rig.store, refundd::ops::status::Webhook::NotSet)
        .await
        .unwrap()
        .render();
    assert!(text.contains("requested again after its refund"), "{text}");
    assert!(text.contains("TWICE"), "{text}");
}

#[tokio::test]
async fn an_order_asked_again_after_a_failure_the_shop_fixed_is_worked_again() {
    let rig = Rig::new_in(SCHEMA).await;
    rig.seed("FIXED", 1000, TxState::Authorised, None).await;
    shop_sql(
        &rig,
        "UPDATE orders SET xid = 'SOMEONE-ELSE' WHERE order_no = 'FIXED'",
    )
    .await;
    rig.pass().await;
    assert_eq!(refundd_status(&rig, "FIXED").await, "refund_failed");
    // on_failed told the shop, in its own table.
    let shop: String = sqlx::query_scalar("SELECT status FROM orders WHERE order_no = 'FIXED'")
        .fetch_one(&rig.pool)
        .await
        .unwrap();
    assert_eq!(shop, "refund_failed");
    // The shop fixes the row and asks again.
    shop_sql(
        &rig,
        "UPDATE orders SET xid = 'XFIXED', status = 'refund_requested' WHERE order_no = 'FIXED'",
    )
    .await;
    rig.pass().await;
    assert_eq!(refundd_status(&rig, "FIXED").await, "refunded");
    assert_eq!(rig.accepted("FIXED", "reversal").await, 1);
}

// ------------------------------------------------- a bad description of the shop

fn with_shop(url: &str, args: &[&str], shop: &[(&str, &str)]) -> Output {
    let mut cmd = refundd_bin();
    cmd.args(args)
        .env("REFUNDD__DATABASE__URL", url)
        .env("REFUNDD__HTTP__LISTEN", "off")
        // `check` checks the bank's settings too (it asks the bank only with --bank).
        .env("REFUNDD__CTBC__BASE_URL", "http://127.0.0.1:9")
        .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
        .env("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY)
        .env("REFUNDD__CTBC__IV", REFERENCE_IV);
    for (k, v) in shop {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

const SHOP_TABLE: &str = "CREATE SCHEMA shop;
     CREATE TABLE shop.sales (code varchar(19) PRIMARY KEY, state smallint NOT NULL,
            card_xid text, card_auth text, amount numeric(12,2), refund numeric(12,2), note text);";

#[tokio::test]
async fn a_bad_mapping_is_refused_before_anything_is_sent_naming_the_setting_and_the_column() {
    let (pool, url) = empty_db().await;
    sqlx::raw_sql(SHOP_TABLE).execute(&pool).await.unwrap();
    let good_requests = "SELECT code AS order_no, card_xid AS xid, card_auth AS auth_code, amount AS auth_amount, refund AS refund_amount FROM shop.sales WHERE state = 5";
    let good_refunded = "UPDATE shop.sales SET state = 6 WHERE code = $1";
    let cases: [(&str, &str, &str, &[&str]); 3] = [
        (
            "SELECT code AS order_no, card_xid AS xid, amount AS auth_amount, refund AS refund_amount FROM shop.sales",
            good_refunded,
            "missing column",
            &["shop.requests", "auth_code"],
        ),
        (
            "SELECT code AS order_no, card_xid AS xid, card_auth AS auth_code, note AS auth_amount, refund AS refund_amount FROM shop.sales",
            good_refunded,
            "text where an amount must be",
            &["shop.requests", "auth_amount", "text"],
        ),
        (
            good_requests,
            "UPDATE shop.sales SET state = 6, note = $5 WHERE code = $1",
            "a parameter refundd does not supply",
            &["shop.on_refunded", "$5", "$4 the refund's id"],
        ),
    ];
    for (requests, on_refunded, what, needles) in cases {
        let shop = [
            ("REFUNDD__SHOP__REQUESTS", requests),
            ("REFUNDD__SHOP__ON_REFUNDED", on_refunded),
        ];
        let out = with_shop(&url, &["check"], &shop);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} missing from {err}");
        }
    }
    let shop = [
        ("REFUNDD__SHOP__REQUESTS", good_requests),
        ("REFUNDD__SHOP__ON_REFUNDED", good_refunded),
    ];
    let out = with_shop(&url, &["check"], &shop);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn once_with_a_bad_mapping_exits_2_and_calls_no_bank() {
    let rig = Rig::new_in(SCHEMA).await;
    shop_sql(&rig, SHOP_TABLE).await;
    let shop = [
        (
            "REFUNDD__SHOP__REQUESTS",
            "SELECT code AS order_no, card_xid AS xid, amount AS auth_amount, refund AS refund_amount FROM shop.sales",
        ),
        ("REFUNDD__SHOP__ON_REFUNDED", "UPDATE shop.sales SET state = 6 WHERE code = $1"),
        ("REFUNDD__SHOP__ON_FAILED", "UPDATE shop.sales SET note = $2 WHERE code = $1"),
        ("REFUNDD__CTBC__BASE_URL", &rig.sim.base_url()),
        ("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID),
        ("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY),
        ("REFUNDD__CTBC__IV", REFERENCE_IV),
        ("REFUNDD__DATABASE__SCHEMA", "refundd_shop"),
    ];
    let out = with_shop(&rig.url, &["once"], &shop);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("auth_code"), "{err}");
    assert_eq!(rig.admin.ledger().await.unwrap().calls, 0);
}

#[tokio::test]
async fn statements_reach_the_database_exactly_as_written_from_the_environment() {
    let (pool, url) = empty_db().await;
    sqlx::raw_sql(SHOP_TABLE).execute(&pool).await.unwrap();
    // Commas, quotes, dollars and newlines.
    let requests = "SELECT code AS order_no,\n       card_xid AS xid, card_auth AS auth_code,\n       amount AS auth_amount, refund AS refund_amount\n  FROM shop.sales\n WHERE state = 5 AND coalesce(note, 'a,b') <> $$it's$$";
    let on_refunded = "UPDATE shop.sales\n   SET state = 6, note = 'refunded, ' || $3 || ' of ' || $2::text\n WHERE code = $1";
    let shop = [
        ("REFUNDD__SHOP__REQUESTS", requests),
        ("REFUNDD__SHOP__ON_REFUNDED", on_refunded),
    ];
    let out = with_shop(&url, &["check"], &shop);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sources = refundd::config::Sources {
        env: shop
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..refundd::config::Sources::default()
    };
    let settings = refundd::config::Settings::load(&sources).unwrap();
    assert_eq!(settings.shop.requests, requests);
    assert_eq!(settings.shop.on_refunded, on_refunded);
}

#[tokio::test]
async fn migrate_beside_a_shops_own_orders_table_exits_2_and_points_to_shop_settings() {
    let (pool, url) = empty_db().await;
    sqlx::raw_sql("CREATE TABLE orders (oid text PRIMARY KEY, status text)")
        .execute(&pool)
        .await
        .unwrap();
    let out = with_shop(&url, &["migrate"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("shop.requests"), "{err}");
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leftovers, 0, "nothing left behind");
}

#[tokio::test]
async fn request_with_shop_statements_exits_2_and_says_where_requests_come_from() {
    let (pool, url) = empty_db().await;
    sqlx::raw_sql(SHOP_TABLE).execute(&pool).await.unwrap();
    let shop = [
        (
            "REFUNDD__SHOP__REQUESTS",
            "SELECT code AS order_no, card_xid AS xid, card_auth AS auth_code, amount AS auth_amount, refund AS refund_amount FROM shop.sales WHERE state = 5",
        ),
        ("REFUNDD__SHOP__ON_REFUNDED", "UPDATE shop.sales SET state = 6 WHERE code = $1"),
    ];
    let out = with_shop(&url, &["migrate"], &shop);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = with_shop(&url, &["request", "A1"], &shop);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("shop's own tables"), "{err}");
}
