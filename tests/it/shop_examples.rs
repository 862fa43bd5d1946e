//! The example shops run for real: each shop's query lists exactly the orders
//! its code asked back, under the column names refundd reads, and each
//! write-back marks its one order when bound as refundd binds it (every
//! parameter, whichever of them the statement uses), firing the shop's trigger.

use crate::common::fresh_db;
use refundd::ops::shop_examples::{ShopExample, CODES, EXAMPLES, TUTORIAL};
use refundd::store::shop_examples::{AskedBack, SeedOrder};
use sqlx::{Column, Executor, PgPool};

type Listed = (String, String, String, String, Option<String>);

async fn shop(ex: &ShopExample, n: usize) -> (PgPool, Vec<SeedOrder>) {
    let (pool, _) = fresh_db().await;
    ex.create(&pool).await.unwrap();
    let orders = ex.seed(&pool, n).await.unwrap();
    (pool, orders)
}

/// The shop's query as refundd reads it: amounts as whole numbers in text.
async fn listed(pool: &PgPool, ex: &ShopExample) -> Vec<Listed> {
    sqlx::query_as(&format!(
        "SELECT order_no, xid, auth_code,
                trim_scale(auth_amount::numeric)::text,
                trim_scale(refund_amount::numeric)::text
           FROM ({}) AS r ORDER BY order_no",
        ex.requests
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

fn asked_back(orders: &[SeedOrder]) -> Vec<Listed> {
    orders
        .iter()
        .filter_map(|o| {
            let refund = match o.refund {
                AskedBack::NotAsked => return None,
                AskedBack::Whole => None,
                AskedBack::Part(p) => Some(p.to_string()),
            };
            Some((
                o.order_no.clone(),
                o.xid.clone(),
                o.auth_code.clone(),
                o.amount.to_string(),
                refund,
            ))
        })
        .collect()
}

#[tokio::test]
async fn requests_list_what_each_shop_asked_back() {
    for ex in EXAMPLES {
        let (pool, orders) = shop(ex, 10).await;
        let columns: Vec<String> = pool
            .describe(ex.requests)
            .await
            .unwrap()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        for required in [
            "order_no",
            "xid",
            "auth_code",
            "auth_amount",
            "refund_amount",
        ] {
            assert!(
                columns.iter().any(|c| c == required),
                "{}: {columns:?}",
                ex.name
            );
        }
        let want = asked_back(&orders);
        assert_eq!(want.len(), 8, "{}", ex.name);
        assert_eq!(listed(&pool, ex).await, want, "{}", ex.name);
    }
}

#[tokio::test]
async fn the_tutorial_shop_written_back() {
    let (pool, orders) = shop(&TUTORIAL, 3).await;
    let (done, failed) = (&orders[0].order_no, &orders[1].order_no);
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT updated_at FROM shop.orders WHERE oid = $1")
            .bind(done)
            .fetch_one(&pool)
            .await
            .unwrap();

    let r = sqlx::query(TUTORIAL.on_refunded)
        .bind(done)
        .bind(orders[0].amount)
        .bind("capture_reversal+reversal")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    let r = sqlx::query(TUTORIAL.on_failed)
        .bind(failed)
        .bind("the bank refused: card closed")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);

    let row: (
        String,
        Option<i32>,
        Option<String>,
        bool,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "SELECT status, refund_total, refund_method, refunded_at IS NOT NULL, updated_at
               FROM shop.orders WHERE oid = $1",
    )
    .bind(done)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.0, "已退款");
    assert_eq!(row.1, Some(i32::try_from(orders[0].amount).unwrap()));
    assert_eq!(row.2.as_deref(), Some("capture_reversal+reversal"));
    assert!(row.3);
    assert!(row.4 > before, "the shop's trigger ran");

    let row: (String, Option<String>) =
        sqlx::query_as("SELECT status, note FROM shop.orders WHERE oid = $1")
            .bind(failed)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row.0, "退款失敗");
    assert_eq!(row.1.as_deref(), Some("the bank refused: card closed"));

    let still: Vec<String> = listed(&pool, &TUTORIAL)
        .await
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(still, [orders[2].order_no.clone()]);
}

#[tokio::test]
async fn the_codes_shop_written_back_with_a_subset_of_parameters() {
    let (pool, orders) = shop(&CODES, 3).await;
    let (done, failed) = (&orders[0].order_no, &orders[1].order_no);

    // refundd binds every parameter; the statements use $1 and $2, and $1.
    let r = sqlx::query(CODES.on_refunded)
        .bind(done)
        .bind(orders[0].amount)
        .bind("refund")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    let r = sqlx::query(CODES.on_failed)
        .bind(failed)
        .bind("the bank refused: card closed")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);

    let states: Vec<(String, i16, Option<String>)> = sqlx::query_as(
        "SELECT order_code, state, refunded::text FROM shop2.sales ORDER BY order_code",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        states,
        [
            (done.clone(), 6, Some(format!("{}.00", orders[0].amount))),
            (failed.clone(), 9, None),
            (orders[2].order_no.clone(), 5, None),
        ]
    );

    // The shop's own trigger logged every change of state, refundd's too.
    let log: Vec<(String, Option<i16>, i16)> = sqlx::query_as(
        "SELECT s.order_code, l.from_state, l.to_state
           FROM shop2.sales_log l JOIN shop2.sales s ON s.id = l.sale_id
          ORDER BY l.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        log,
        [
            (done.clone(), Some(1), 5),
            (failed.clone(), Some(1), 5),
            (orders[2].order_no.clone(), Some(1), 5),
            (done.clone(), Some(5), 6),
            (failed.clone(), Some(5), 9),
        ]
    );
}
