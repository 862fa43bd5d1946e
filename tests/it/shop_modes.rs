//! refundd on each example shop's own tables, end to end against real
//! PostgreSQL and the simulator: every bank state worked off through the
//! shop's statements, the outcome written back in the shop's own values, and
//! the shop's schema and `public` identical in the catalog before and after
//! `migrate` and the passes.

use crate::common::{ended_in_one_pass, Rig, StateCase};
use refundd::ctbc::TxState;
use refundd::ops::shop_examples::{ShopExample, CODES, TUTORIAL};
use refundd::store::catalog::snapshot;

async fn catalog(rig: &Rig, schema: &str) -> Vec<String> {
    snapshot(&rig.pool, schema).await.unwrap()
}

async fn every_state_through(shop: &'static ShopExample, schema: &str) {
    let (pool, _) = crate::common::empty_db().await;
    shop.create(&pool).await.unwrap();
    let shop_before = snapshot(&pool, schema).await.unwrap();
    let public_before = snapshot(&pool, "public").await.unwrap();
    drop(pool);

    let rig = Rig::in_shop(shop).await;
    // The shop's catalog as it was before refundd came (a fresh database of the same shape).
    assert_eq!(
        catalog(&rig, schema).await,
        shop_before,
        "migrate changed the shop's schema"
    );
    assert_eq!(
        catalog(&rig, "public").await,
        public_before,
        "migrate changed public"
    );
    // As in the engine's every-state test: the states one pass ends.
    let cases: Vec<&StateCase> = ended_in_one_pass().collect();
    rig.seed_cases(cases.iter().copied()).await;
    let s = rig.pass().await;
    assert_eq!(s.claimed, cases.len() as u64);
    for case in &cases {
        rig.assert_ended(case).await;
    }
    assert_eq!(rig.admin.duplicates().await.unwrap(), 0);
    // A second pass finds nothing to do; the settlement watch runs.
    rig.admin.run_batch().await.unwrap();
    assert_eq!(rig.pass().await.claimed, 0);
    assert_eq!(
        catalog(&rig, schema).await,
        shop_before,
        "the passes changed the shop's schema"
    );
    assert_eq!(
        catalog(&rig, "public").await,
        public_before,
        "the passes changed public"
    );
}

#[tokio::test]
async fn the_tutorial_shop_every_state_its_own_statuses_and_an_untouched_catalog() {
    every_state_through(&TUTORIAL, "shop").await;
}

#[tokio::test]
async fn the_codes_shop_every_state_its_own_statuses_and_an_untouched_catalog() {
    every_state_through(&CODES, "shop2").await;
}

/// oid, status, refund_total, refund_method, note
type TutorialRow = (String, String, Option<i32>, Option<String>, Option<String>);

#[tokio::test]
async fn the_tutorial_shop_reads_the_outcome_in_its_own_values() {
    let rig = Rig::in_shop(&TUTORIAL).await;
    rig.seed("T1", 1000, TxState::Settled, Some(400)).await;
    rig.seed("TF", 1000, TxState::AuthFailed, None).await;
    rig.pass().await;
    let rows: Vec<TutorialRow> = sqlx::query_as(
        "SELECT oid, status, refund_total, refund_method, note FROM shop.orders ORDER BY oid",
    )
    .fetch_all(&rig.pool)
    .await
    .unwrap();
    assert_eq!(rows[0].0, "T1");
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2, rows[0].3.as_deref()),
        ("已退款", Some(400), Some("refund"))
    );
    assert_eq!(rows[1].0, "TF");
    assert_eq!(rows[1].1, "退款失敗");
    assert!(rows[1].4.as_deref().is_some_and(|n| n.contains("state -1")));
}

#[tokio::test]
async fn the_codes_shop_reads_the_outcome_in_its_own_values() {
    let rig = Rig::in_shop(&CODES).await;
    rig.seed("C1", 1000, TxState::Authorised, Some(250)).await;
    rig.seed("CF", 1000, TxState::CaptureFailed, None).await;
    rig.pass().await;
    let rows: Vec<(String, i16, Option<String>)> = sqlx::query_as(
        "SELECT order_code::text, state, refunded::text FROM shop2.sales ORDER BY order_code",
    )
    .fetch_all(&rig.pool)
    .await
    .unwrap();
    assert_eq!(rows[0], ("C1".to_string(), 6, Some("250.00".to_string())));
    assert_eq!((rows[1].0.as_str(), rows[1].1), ("CF", 9));
    // The shop's own trigger logged both changes of state.
    let logged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM shop2.sales_log WHERE to_state IN (6, 9)")
            .fetch_one(&rig.pool)
            .await
            .unwrap();
    assert_eq!(logged, 2);
}
