//! The plans PostgreSQL makes for the group commit's batch statements: each
//! finds its records by key, also when the table's statistics were taken
//! before the backlog was claimed, as they are at the start of a pass (see
//! `connect` on the LIMIT of their arrays).

use super::{connect, Store};
use crate::throwaway_pg::ThrowawayPostgres;
use serde_json::Value;
use sqlx::PgPool;

impl Store {
    fn batch_statements(&self) -> [(&'static str, String); 4] {
        [
            ("intents", self.intents_sql()),
            ("step outcomes", self.steps_sql()),
            ("refunded", self.refunded_sql()),
            ("failed", self.failed_sql()),
        ]
    }
}

/// The generic plan of `sql` (refundd's sessions plan only generic ones),
/// planned after `before` (a statement setting the planner's settings, as
/// the statement's own transaction does).
async fn generic_plan(pool: &PgPool, before: Option<&str>, sql: &str) -> Value {
    let mut conn = pool.acquire().await.unwrap().detach();
    if let Some(before) = before {
        sqlx::query(before).execute(&mut conn).await.unwrap();
    }
    sqlx::query(&format!("PREPARE batch_plan AS {sql}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let params: i32 = sqlx::query_scalar(
        "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'batch_plan'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let nulls = vec!["NULL"; params as usize].join(", ");
    let plan: Value = sqlx::query_scalar(&format!(
        "EXPLAIN (FORMAT JSON) EXECUTE batch_plan({nulls})"
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query("DEALLOCATE batch_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    plan
}

/// How each plan node reads refundd's records: (node type, index).
fn reads_of_records(node: &Value, out: &mut Vec<(String, String)>) {
    let field = |k: &str| {
        node.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if field("Relation Name") == "refunds" && field("Node Type") != "ModifyTable" {
        out.push((field("Node Type"), field("Index Name")));
    }
    for child in node
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        reads_of_records(child, out);
    }
}

/// A database with 3,000 requests recorded and the statistics of a backlog
/// nobody works on yet: no record is 'refunding'.
async fn backlog() -> (Store, PgPool) {
    let pg = ThrowawayPostgres::shared().unwrap();
    let pool = connect(&pg.fresh_database().await.unwrap(), 2)
        .await
        .unwrap();
    let store = Store::builtin(pool.clone());
    store.migrate().await.unwrap();
    sqlx::query(
        "INSERT INTO orders (order_no, xid, auth_code, auth_amount, status)
         SELECT 'P' || g, 'XP' || g, 'A1B2C3', 1000, 'refund_requested'
           FROM generate_series(1, 3000) AS g",
    )
    .execute(&pool)
    .await
    .unwrap();
    store.intake(1000).await.unwrap();
    sqlx::query("ANALYZE refundd.refunds")
        .execute(&pool)
        .await
        .unwrap();
    (store, pool)
}

#[tokio::test]
async fn batch_writes_find_their_records_by_key_whatever_the_statistics() {
    let (store, pool) = backlog().await;

    for (name, sql) in store.batch_statements() {
        let plan = generic_plan(&pool, None, &sql).await;
        let mut reads = Vec::new();
        reads_of_records(&plan[0]["Plan"], &mut reads);
        assert!(
            !reads.is_empty(),
            "{name}: no read of the records in {plan}"
        );
        for (node, index) in reads {
            assert_eq!(
                (node.as_str(), index.as_str()),
                ("Index Scan", "refunds_pkey"),
                "{name} reads the records without their key: {plan:#}"
            );
        }
    }
}

/// With `database.schema` set, every batch statement names only that schema:
/// prepared in a database where refundd's tables live elsewhere, none of
/// them can reach for `refundd.<table>`.
#[tokio::test]
async fn batch_writes_name_only_the_configured_schema() {
    let pg = ThrowawayPostgres::shared().unwrap();
    let pool = connect(&pg.fresh_database().await.unwrap(), 2)
        .await
        .unwrap();
    let schema = super::Schema::parse("refund_records").unwrap();
    let store = Store::new(pool.clone(), schema, super::ShopStatements::builtin());
    store.migrate().await.unwrap();
    for (name, sql) in store.batch_statements() {
        assert!(!sql.contains("refundd."), "{name} names refundd.: {sql}");
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query(&format!("PREPARE batch_in_schema AS {sql}"))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{name} in schema refund_records: {e}"));
        sqlx::query("DEALLOCATE batch_in_schema")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

/// The queue's claim reads its candidates in the order they are due and
/// each one's other refunds by the order's key: never every record.
#[tokio::test]
async fn a_claim_reads_an_orders_other_refunds_by_its_key() {
    let (_, pool) = backlog().await;
    // As a claim plans it: its transaction's planner settings first.
    let claim = super::refunds::queue_claim_sql();
    let plan = generic_plan(&pool, Some(super::refunds::CLAIM_PLANNER), &claim).await;
    let mut reads = Vec::new();
    reads_of_records(&plan[0]["Plan"], &mut reads);
    assert!(
        reads.contains(&("Index Scan".into(), "refunds_due".into())),
        "the claim does not read the due records in their order: {plan:#}"
    );
    for (node, index) in &reads {
        assert!(
            node == "Index Scan" && !index.is_empty(),
            "the claim reads the records without an index in order ({node}): {plan:#}"
        );
    }
}
