//! refundd's database as PostgreSQL enforces it: everything of refundd's in a
//! schema of its own, the built-in orders table only where there is no shop
//! table of that name, a refund never undone, every status change an event.

use crate::common::{empty_db, fresh_db};
use refundd::store::vocabulary::EventKind;
use refundd::store::{Schema, ShopStatements, Store, StoreError};

async fn tables_in(pool: &sqlx::PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migrations_live_in_refundds_schema_and_a_second_run_is_a_no_op() {
    let (pool, _) = fresh_db().await;
    let store = Store::builtin(pool.clone());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM refundd._sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n as usize, refundd::store::MIGRATOR.iter().count());
    assert_eq!(
        tables_in(&pool, "refundd").await,
        [
            "_sqlx_migrations",
            "events",
            "outbox",
            "refund_events",
            "refund_passes",
            "refunds"
        ]
    );
    // The built-in mode adds the orders table to the default schema, and nothing else.
    assert_eq!(tables_in(&pool, "public").await, ["orders"]);
}

#[tokio::test]
async fn a_schema_of_the_operators_choice_holds_everything_and_public_stays_empty() {
    let (pool, _) = empty_db().await;
    let shop = ShopStatements::of_shop(
        "SELECT 'A1'::text AS order_no, 'X'::text AS xid, 'C'::text AS auth_code, 1::int AS auth_amount, NULL::int AS refund_amount".into(),
        "SELECT $1::text".into(),
        None,
    );
    let store = Store::new(
        pool.clone(),
        Schema::parse("billing_refunds").unwrap(),
        shop,
    );
    store.migrate().await.unwrap();
    assert!(tables_in(&pool, "billing_refunds")
        .await
        .contains(&"refunds".to_string()));
    assert!(tables_in(&pool, "public").await.is_empty());
    assert!(tables_in(&pool, "refundd").await.is_empty());
}

#[tokio::test]
async fn a_shops_own_orders_table_is_never_taken_for_the_built_in_one() {
    let (pool, _) = empty_db().await;
    sqlx::query("CREATE TABLE orders (oid text PRIMARY KEY, status text)")
        .execute(&pool)
        .await
        .unwrap();
    let err = Store::builtin(pool.clone()).migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::ForeignOrdersTable), "{err}");
    assert!(err.to_string().contains("shop.requests"));
    assert!(err.is_settings_problem());
    assert!(
        tables_in(&pool, "refundd").await.is_empty(),
        "nothing created"
    );
}

#[tokio::test]
async fn the_built_in_orders_table_refuses_an_unknown_status() {
    let (pool, _) = fresh_db().await;
    let err = sqlx::query("INSERT INTO orders (order_no, status) VALUES ('O1', 'cancelled')")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("orders_status_known"), "{err}");
}

#[tokio::test]
async fn refundds_record_of_a_refund_is_never_undone_and_every_status_change_is_an_event() {
    let (pool, _) = fresh_db().await;
    sqlx::query("INSERT INTO refundd.refunds (order_no, auth_amount) VALUES ('O2', 1500)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE refundd.refunds SET status = 'refunded', refunded_amount = 1500 WHERE order_no = 'O2'")
        .execute(&pool)
        .await
        .unwrap();
    let err =
        sqlx::query("UPDATE refundd.refunds SET status = 'refund_requested' WHERE order_no = 'O2'")
            .execute(&pool)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("already refunded"), "{err}");
    let story: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT from_status, to_status FROM refundd.refund_events WHERE order_no = 'O2' AND kind = 'status' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        story,
        [
            (None, Some("refund_requested".to_string())),
            (
                Some("refund_requested".to_string()),
                Some("refunded".to_string())
            )
        ]
    );
    let err = sqlx::query("DELETE FROM refundd.refund_events")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[tokio::test]
async fn the_built_in_statements_pass_their_own_checks() {
    let (pool, _) = fresh_db().await;
    Store::builtin(pool).check_shop().await.unwrap();
}

#[tokio::test]
async fn the_checks_can_run_again_on_the_same_connection() {
    let (_, url) = fresh_db().await;
    // One connection: whatever a check leaves on it, the next check meets.
    let pool = refundd::store::connect(&url, 1).await.unwrap();
    let store = Store::builtin(pool);
    store.check_shop().await.unwrap();
    store.check_shop().await.unwrap();
}

#[tokio::test]
async fn migrate_tells_a_schema_the_administrator_created_from_one_it_created() {
    let (pool, _) = empty_db().await;
    sqlx::query("CREATE SCHEMA billing_refunds")
        .execute(&pool)
        .await
        .unwrap();
    let shop = ShopStatements::of_shop(
        "SELECT 'A1'::text AS order_no, 'X'::text AS xid, 'C'::text AS auth_code, 1::int AS auth_amount, NULL::int AS refund_amount".into(),
        "SELECT $1::text".into(),
        None,
    );
    let store = Store::new(pool, Schema::parse("billing_refunds").unwrap(), shop);
    let n = refundd::store::MIGRATOR.iter().count();
    let first = store.migrate().await.unwrap();
    assert!(!first.created_schema && !first.created_orders_table);
    assert_eq!(
        first.to_string(),
        format!("applied {n} migrations to schema billing_refunds")
    );
    let again = store.migrate().await.unwrap();
    assert_eq!((again.applied, again.applied_before), (0, n as u64));
}

#[tokio::test]
async fn a_withdrawn_requests_note_reads_back_in_the_story() {
    let (pool, _) = fresh_db().await;
    let store = Store::builtin(pool.clone());
    sqlx::query(
        "INSERT INTO orders (order_no, xid, auth_code, auth_amount, status)
         VALUES ('W1', 'X1', 'A1', 1000, 'refund_requested')",
    )
    .execute(&pool)
    .await
    .unwrap();
    store.intake(1000).await.unwrap();
    sqlx::query("UPDATE orders SET status = 'paid' WHERE order_no = 'W1'")
        .execute(&pool)
        .await
        .unwrap();
    store.intake(1000).await.unwrap();
    let from = chrono::Utc::now() - chrono::Duration::hours(1);
    let to = chrono::Utc::now() + chrono::Duration::hours(1);
    let story = store.events_between(from, to).await.unwrap();
    let note = story.iter().find(|e| e.kind == EventKind::Note).unwrap();
    assert_eq!(note.outcome.map(|o| o.as_str()), Some("withdrawn"));
}
