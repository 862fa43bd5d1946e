//! The catalog snapshot that proves refundd leaves a shop's schema alone: it
//! must see every kind of change a careless migration could make to the shop's
//! tables, and nothing that is only data.

use crate::common::fresh_db;
use refundd::ops::shop_examples::{CODES, EXAMPLES, TUTORIAL};
use refundd::store::catalog::snapshot;
use sqlx::PgPool;

async fn with_both_shops() -> PgPool {
    let (pool, _) = fresh_db().await;
    for ex in EXAMPLES {
        ex.create(&pool).await.unwrap();
    }
    pool
}

fn mentions(lines: &[String], kind: &str, needle: &str) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with(&format!("{kind} ")) && l.contains(needle))
}

#[tokio::test]
async fn describes_the_shops_own_objects() {
    let pool = with_both_shops().await;

    let shop = snapshot(&pool, "shop").await.unwrap();
    assert!(!shop.is_empty());
    for (kind, needle) in [
        ("schema", "shop"),
        ("relation", "orders: kind r"),
        ("relation", "payment_results: kind r"),
        ("column", "orders.oid #1: text not null"),
        ("column", "orders.refund_total #4: integer, "),
        ("column", "orders.created_at #8: timestamp with time zone not null default now()"),
        ("constraint", "orders.orders_status_known: CHECK"),
        ("constraint", "申請退款"),
        ("constraint", "payment_results_oid_fkey: FOREIGN KEY (oid) REFERENCES shop.orders(oid)"),
        ("constraint", "payment_results_one_per_order: UNIQUE (oid)"),
        ("index", "orders_status_created: CREATE INDEX orders_status_created ON shop.orders"),
        ("trigger", "orders.orders_touch_updated_at: CREATE TRIGGER orders_touch_updated_at BEFORE UPDATE ON shop.orders"),
        ("function", "shop.touch_updated_at()"),
        ("function", "NEW.updated_at := now();"),
    ] {
        assert!(mentions(&shop, kind, needle), "no {kind} with {needle:?} in\n{shop:#?}");
    }

    let shop2 = snapshot(&pool, "shop2").await.unwrap();
    for (kind, needle) in [
        ("column", "sales.amount #4: numeric(12,2) not null"),
        ("column", "sales.id #1: bigint not null identity a"),
        ("sequence", "sales_id_seq: bigint start 1 increment 1"),
        ("sequence", "owned by shop2.sales.id"),
        ("sequence", "sales_log_id_seq"),
        ("index", "sales_open_refunds"),
        ("trigger", "sales.sales_log_state: CREATE TRIGGER sales_log_state AFTER UPDATE OF state ON shop2.sales"),
    ] {
        assert!(mentions(&shop2, kind, needle), "no {kind} with {needle:?} in\n{shop2:#?}");
    }

    // Each schema describes only itself.
    assert!(!shop.iter().any(|l| l.contains("shop2")), "{shop:#?}");
    assert!(!shop2.iter().any(|l| l.contains("shop.")), "{shop2:#?}");
}

#[tokio::test]
async fn the_same_schema_gives_the_same_snapshot() {
    let (pool, url) = fresh_db().await;
    let public_before = snapshot(&pool, "public").await.unwrap();
    assert!(!public_before.is_empty());
    for ex in EXAMPLES {
        ex.create(&pool).await.unwrap();
    }
    // Creating the shops' schemas does not touch public.
    assert_eq!(snapshot(&pool, "public").await.unwrap(), public_before);

    for schema in ["shop", "shop2", "public"] {
        let first = snapshot(&pool, schema).await.unwrap();
        assert_eq!(snapshot(&pool, schema).await.unwrap(), first, "{schema}");
    }

    // Rows, and the sequences' values they use, are data, not the schema.
    let shop = snapshot(&pool, "shop").await.unwrap();
    let shop2 = snapshot(&pool, "shop2").await.unwrap();
    TUTORIAL.seed(&pool, 12).await.unwrap();
    CODES.seed(&pool, 12).await.unwrap();
    assert_eq!(snapshot(&pool, "shop").await.unwrap(), shop);
    assert_eq!(snapshot(&pool, "shop2").await.unwrap(), shop2);

    // Whatever search_path a connection has, names come out the same.
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .options([("search_path", "shop2,shop,public")]);
    let other = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&other)
        .await
        .unwrap();
    assert_eq!(path, "shop2,shop,public");
    assert_eq!(snapshot(&other, "shop").await.unwrap(), shop);
    assert_eq!(snapshot(&other, "shop2").await.unwrap(), shop2);
}

#[tokio::test]
async fn an_absent_schema_is_empty() {
    let (pool, _) = fresh_db().await;
    assert!(snapshot(&pool, "shop").await.unwrap().is_empty());
}

#[tokio::test]
async fn every_kind_of_change_shows() {
    let pool = with_both_shops().await;
    let changes = [
        ("shop", "CREATE INDEX orders_note ON shop.orders (note)"),
        (
            "shop",
            "CREATE TRIGGER orders_touch_again BEFORE UPDATE ON shop.orders
             FOR EACH ROW EXECUTE FUNCTION shop.touch_updated_at()",
        ),
        ("shop", "ALTER TABLE shop.orders ALTER COLUMN total TYPE bigint"),
        ("shop", "ALTER TABLE shop.orders ALTER COLUMN note SET DEFAULT ''"),
        ("shop", "ALTER TABLE shop.orders ALTER COLUMN note SET NOT NULL"),
        ("shop", "ALTER TABLE shop.orders ADD COLUMN refundd_state text"),
        ("shop", "ALTER TABLE shop.orders DROP COLUMN refundd_state"),
        ("shop", "ALTER TABLE shop.orders DISABLE TRIGGER orders_touch_again"),
        ("shop", "ALTER TABLE shop.orders ADD CONSTRAINT note_short CHECK (length(note) < 500)"),
        ("shop", "ALTER TABLE shop.payment_results DROP CONSTRAINT payment_results_one_per_order"),
        ("shop", "COMMENT ON TABLE shop.orders IS 'refundd was here'"),
        ("shop", "COMMENT ON COLUMN shop.orders.status IS 'refundd was here'"),
        ("shop", "GRANT SELECT ON shop.orders TO PUBLIC"),
        (
            "shop",
            "CREATE OR REPLACE FUNCTION shop.touch_updated_at() RETURNS trigger
             LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$",
        ),
        ("shop", "CREATE VIEW shop.to_refund AS SELECT oid FROM shop.orders"),
        (
            "shop",
            "CREATE OR REPLACE VIEW shop.to_refund AS SELECT oid FROM shop.orders WHERE status = '申請退款'",
        ),
        ("shop", "CREATE TYPE shop.mood AS ENUM ('ok')"),
        ("shop", "ALTER TYPE shop.mood ADD VALUE 'not ok'"),
        ("shop", "ALTER TABLE shop.orders ENABLE ROW LEVEL SECURITY"),
        ("shop2", "ALTER SEQUENCE shop2.sales_log_id_seq INCREMENT BY 2"),
        ("shop2", "ALTER TABLE shop2.sales ALTER COLUMN amount TYPE numeric(14,2)"),
        ("shop2", "CREATE TABLE shop2.refundd_outbox (id bigint)"),
        ("shop2", "DROP INDEX shop2.sales_open_refunds"),
        ("public", "CREATE TABLE public.refundd_leftover (id int)"),
        ("public", "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
    ];
    for (schema, change) in changes {
        let before = snapshot(&pool, schema).await.unwrap();
        sqlx::raw_sql(change).execute(&pool).await.unwrap();
        let after = snapshot(&pool, schema).await.unwrap();
        assert_ne!(before, after, "{change}");
    }
}
