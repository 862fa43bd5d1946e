//! The rights the guide gives refundd's own role are enough, and no more is
//! needed: the guide's very `GRANT` statements, then `refundd migrate`,
//! `check` and `once` as that role, through to an order refunded at the bank
//! and written back into the tutorial shop's tables.

use crate::common::{
    ask_for_refunds, bank_tx, empty_db, order_view, refundd_bin, request, succeeds, test_pool,
    DEFAULT_SCHEMA,
};
use refundd::ctbc::TxState;
use refundd::ops::shop_examples::TUTORIAL;
use refundd::sim::{SimConfig, SimServer, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};
use std::process::Command;

/// The statements of the guide's section on the role's rights, for the
/// database `database` (the guide's is `shop`).
fn the_guides_grants(database: &str) -> String {
    let guide = include_str!("../../docs/connect-your-shop.md");
    let section = guide
        .split("## The rights refundd's role needs")
        .nth(1)
        .expect("the guide has the section");
    let sql = section
        .split("```sql\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the section has its SQL");
    sql.replace("ON DATABASE shop ", &format!("ON DATABASE {database} "))
}

/// The password the guide's `CREATE ROLE` gives.
fn the_guides_password(grants: &str) -> &str {
    grants
        .split("PASSWORD '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("CREATE ROLE ... PASSWORD")
}

/// `refundd` as the guide's role, connected to the tutorial shop.
fn as_the_role(url: &str, command: &str) -> Command {
    let mut cmd = refundd_bin();
    cmd.arg(command)
        .env("REFUNDD__DATABASE__URL", url)
        .env("REFUNDD__SHOP__REQUESTS", TUTORIAL.requests)
        .env("REFUNDD__SHOP__ON_REFUNDED", TUTORIAL.on_refunded)
        .env("REFUNDD__SHOP__ON_FAILED", TUTORIAL.on_failed)
        .env("REFUNDD__HTTP__LISTEN", "off");
    cmd
}

#[tokio::test]
async fn the_guides_grants_are_enough_to_migrate_check_and_refund_as_refundds_own_role() {
    let (pool, url) = empty_db().await;
    TUTORIAL.create(&pool).await.unwrap();
    let database = url.rsplit('/').next().unwrap();
    let grants = the_guides_grants(database);
    sqlx::raw_sql(&grants).execute(&pool).await.unwrap();
    let role_url = url.replacen(
        "postgres://postgres@",
        &format!("postgres://refundd:{}@", the_guides_password(&grants)),
        1,
    );

    let sim = SimServer::start(SimConfig::for_tests()).await.unwrap();
    sim.admin()
        .load(&[bank_tx("GRANT1", 1500, TxState::Authorised)])
        .await
        .unwrap();
    ask_for_refunds(&pool, Some(&TUTORIAL), &[request("GRANT1", 1500, None)]).await;

    succeeds(as_the_role(&role_url, "migrate")).await;
    let with_the_bank = |command: &str| {
        let mut cmd = as_the_role(&role_url, command);
        cmd.env("REFUNDD__CTBC__BASE_URL", sim.base_url())
            .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
            .env("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY)
            .env("REFUNDD__CTBC__IV", REFERENCE_IV);
        cmd
    };
    let mut check = with_the_bank("check");
    check.arg("--bank");
    let checked = succeeds(check).await;
    assert!(
        checked.contains("1 rows requested, 1 valid, 0 invalid"),
        "{checked}"
    );
    assert!(checked.contains("the keys work"), "{checked}");
    let once = with_the_bank("once");
    let stdout = succeeds(once).await;
    assert!(stdout.contains("refunded 1"), "{stdout}");

    let records = test_pool(&url, DEFAULT_SCHEMA).await;
    order_view(&records, "GRANT1")
        .await
        .assert_refunded("reversal", 1500);
    let shop: (String, Option<i32>, Option<String>) = sqlx::query_as(
        "SELECT status, refund_total, refund_method FROM shop.orders WHERE oid = 'GRANT1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(shop, ("已退款".into(), Some(1500), Some("reversal".into())));
    // The role is the guide's and no more: it owns refundd's schema only.
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'refundd'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(owner, "refundd");
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'refundd'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!superuser);
}
