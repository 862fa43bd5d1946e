// The orders contract as PostgreSQL enforces it: migrations, status CHECK,
// one refund per order, fresh bookkeeping on a new request, events.

mod common;

use common::fresh_db;
use sqlx::Row;

async fn insert_paid(pool: &sqlx::PgPool, order_no: &str) {
    sqlx::query("INSERT INTO orders (order_no, xid, auth_code, auth_amount, status) VALUES ($1, 'X1', 'A1', 1500, 'paid')")
        .bind(order_no)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn migrations_applied_twice_are_a_no_op() {
    let (pool, _) = fresh_db().await;
    refundd::store::migrate(&pool).await.unwrap();
    refundd::store::migrate(&pool).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n as usize, refundd::store::MIGRATOR.iter().count());
}

#[tokio::test]
async fn unknown_status_is_rejected() {
    let (pool, _) = fresh_db().await;
    let err = sqlx::query("INSERT INTO orders (order_no, status) VALUES ('O1', 'cancelled')")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("orders_status_known"), "{err}");
}

#[tokio::test]
async fn a_refunded_order_cannot_be_requested_again() {
    let (pool, _) = fresh_db().await;
    insert_paid(&pool, "O2").await;
    sqlx::query(
        "UPDATE orders SET status = 'refunded', refunded_amount = 1500 WHERE order_no = 'O2'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = sqlx::query("UPDATE orders SET status = 'refund_requested' WHERE order_no = 'O2'")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already refunded"), "{err}");
}

#[tokio::test]
async fn a_new_request_resets_bookkeeping_and_is_recorded() {
    let (pool, _) = fresh_db().await;
    insert_paid(&pool, "O3").await;
    sqlx::query("UPDATE orders SET attempts = 7, last_error = 'x' WHERE order_no = 'O3'")
        .execute(&pool)
        .await
        .unwrap();
    // The shop's documented request.
    sqlx::query("UPDATE orders SET status = 'refund_requested', refund_amount = 500 WHERE order_no = 'O3' AND status = 'paid'")
        .execute(&pool)
        .await
        .unwrap();
    let row = sqlx::query("SELECT attempts, last_error, refund_requested_at IS NOT NULL AS stamped FROM orders WHERE order_no = 'O3'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<i32, _>("attempts"), 0);
    assert_eq!(row.get::<Option<String>, _>("last_error"), None);
    assert!(row.get::<bool, _>("stamped"));
    // The daemon's own deferral keeps its attempt count.
    sqlx::query("UPDATE orders SET status = 'refunding', attempts = 2 WHERE order_no = 'O3'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET status = 'refund_requested' WHERE order_no = 'O3'")
        .execute(&pool)
        .await
        .unwrap();
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM orders WHERE order_no = 'O3'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
    let story: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT from_status, to_status FROM refund_events WHERE order_no = 'O3' AND kind = 'status' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        story,
        vec![
            (None, "paid".to_string()),
            (Some("paid".into()), "refund_requested".into()),
            (Some("refund_requested".into()), "refunding".into()),
            (Some("refunding".into()), "refund_requested".into()),
        ]
    );
}

#[tokio::test]
async fn events_are_append_only() {
    let (pool, _) = fresh_db().await;
    insert_paid(&pool, "O4").await;
    let err = sqlx::query("DELETE FROM refund_events WHERE order_no = 'O4'")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}
