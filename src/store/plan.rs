//! What a pass started now would find, read for `refundd plan` without taking or
//! changing anything: the shop's requests merged with refundd's records as the
//! pass's intake would leave them, which of them a claim would take, and the
//! refunds the settlement watch would inquire. Everything is read in one READ
//! ONLY transaction, so PostgreSQL itself refuses a write (the shop's query
//! included), and `PlanReader` offers nothing else: the plan cannot write.

use super::intake::{RequestColumns, ShopRequest};
use super::refunds::{unknown_age, OrderRow, OWN_CALLS};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};

/// The read-only view of the database that `refundd plan` works from: the
/// store it wraps is private and never handed back.
#[derive(Debug, Clone)]
pub struct PlanReader(Store);

/// One order as the next pass would find it after reading the shop's requests.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    /// The record as a claim would return it (`id` 0 for a request refundd
    /// has not recorded yet; `lease_token` the current holder's, if any).
    #[sqlx(flatten)]
    pub row: OrderRow,
    /// The shop lists it and refundd has no record of it yet.
    pub new_request: bool,
    /// The shop stopped listing it and nothing was sent: the pass withdraws it.
    pub withdrawn: bool,
    /// The shop lists it again after refundd refunded it: never refunded twice.
    pub refunded_already: bool,
    /// A claim would take it now.
    pub due: bool,
    /// Another worker holds it under a live lease.
    pub held: bool,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A refund of settled money the settlement watch would inquire now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WatchRow {
    pub order_no: String,
    /// The order number the bank knows it by, when not `order_no`.
    pub lidm: Option<String>,
    pub refunded_amount: Option<i64>,
    /// The watch's days are over: a refund still settling is left unconfirmed.
    pub watch_over: bool,
}

/// The whole reading, taken in one snapshot.
#[derive(Debug, Clone)]
pub struct QueueReading {
    /// The database's clock when the reading was taken.
    pub at: DateTime<Utc>,
    pub orders: Vec<PlanRow>,
    pub watch: Vec<WatchRow>,
    /// Outcomes the shop's database refused before, which the pass tries again.
    pub write_backs_pending: i64,
}

impl WatchRow {
    /// The order number sent to the bank (see `OrderRow::bank_order_no`).
    pub fn bank_order_no(&self) -> &str {
        self.lidm.as_deref().unwrap_or(&self.order_no)
    }
}

impl PlanReader {
    pub fn new(store: Store) -> PlanReader {
        PlanReader(store)
    }

    /// Reads what a pass started now would find, writing nothing.
    pub async fn read(&self) -> Result<QueueReading, StoreError> {
        let store = &self.0;
        let mut tx = store.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let (at, snapshot, migrated): (DateTime<Utc>, String, bool) = sqlx::query_as(&store.sql(
            "SELECT now(), pg_current_snapshot()::text, to_regclass('refundd.refunds') IS NOT NULL",
        ))
        .fetch_one(&mut *tx)
        .await?;
        if !migrated {
            return Err(StoreError::NotMigrated(store.schema.to_string()));
        }
        let requests: Vec<ShopRequest> = sqlx::query_as(&store.requests_sql(false))
            .fetch_all(&mut *tx)
            .await?;
        let c = RequestColumns::of(&requests);
        let orders: Vec<PlanRow> = sqlx::query_as(&store.sql(&MERGED))
            .bind(c.order_no)
            .bind(c.xid)
            .bind(c.auth_code)
            .bind(c.auth_amount)
            .bind(c.refund_amount)
            .bind(c.currency)
            .bind(c.bad_input)
            .bind(snapshot)
            .bind(c.lidm)
            .fetch_all(&mut *tx)
            .await?;
        let watch: Vec<WatchRow> = sqlx::query_as(&store.sql(
            "SELECT order_no, lidm, refunded_amount, coalesce(watch_until < now(), false) AS watch_over
               FROM refundd.refunds
              WHERE status = 'refunded' AND settlement = 'pending'
                AND (lease_expires_at IS NULL OR lease_expires_at < now())
                AND (next_attempt_at IS NULL OR next_attempt_at <= now())
              ORDER BY next_attempt_at NULLS FIRST, id",
        ))
        .fetch_all(&mut *tx)
        .await?;
        let write_backs_pending: i64 = sqlx::query_scalar(
            &store.sql("SELECT count(*) FROM refundd.refunds WHERE writeback IS NOT NULL"),
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(QueueReading {
            at,
            orders,
            watch,
            write_backs_pending,
        })
    }
}

impl Store {
    /// Fails naming `refundd migrate` when refundd's schema is not in this database.
    pub async fn require_migrated(&self) -> Result<(), StoreError> {
        let migrated: bool =
            sqlx::query_scalar(&self.sql("SELECT to_regclass('refundd.refunds') IS NOT NULL"))
                .fetch_one(&self.pool)
                .await?;
        if migrated {
            Ok(())
        } else {
            Err(StoreError::NotMigrated(self.schema.to_string()))
        }
    }
}

/// The shop's requests (`$1` to `$7`, read in snapshot `$8`) laid over
/// refundd's records the way `intake` records them (`RECORD_REQUESTS`, then
/// `withdraw_unlisted`), and what a claim would make of the result. A change
/// to either of those statements must be made here too; `tests/plan.rs`
/// compares the plan with the pass that follows it.
static MERGED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    MERGED_TEMPLATE
        .replace("OWN_CALLS", OWN_CALLS)
        .replace("UNKNOWN_AGE", &unknown_age("o.lease_expires_at"))
});

const MERGED_TEMPLATE: &str = "
WITH s AS (
    SELECT DISTINCT ON (u.order_no) u.*
      FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $9::text[])
           AS u(order_no, xid, auth_code, auth_amount, refund_amount, currency, bad_input, lidm)
     ORDER BY u.order_no
),
k AS (
    SELECT r.*, s.order_no IS NOT NULL AS listed,
           s.xid AS s_xid, s.auth_code AS s_auth_code, s.auth_amount AS s_auth_amount,
           s.refund_amount AS s_refund_amount, s.currency AS s_currency, s.bad_input AS s_bad_input, s.lidm AS s_lidm,
           coalesce(pg_visible_in_snapshot(r.decided_xid, $8::pg_snapshot), false) AS seen
      FROM refundd.refunds r LEFT JOIN s ON s.order_no = r.order_no
     WHERE r.status IN ('refund_requested', 'refunding') OR r.order_no = ANY($1::text[])
),
j AS (
    SELECT k.*,
           k.listed AND ((k.status = 'withdrawn' AND k.seen)
                         OR (k.status = 'refund_failed' AND k.shop_told_failed AND k.seen)) AS reopened,
           k.listed AND (k.claimed_amount IS NULL
                         OR (k.status = 'refund_failed' AND k.shop_told_failed AND k.seen)) AS follows,
           NOT k.listed
             AND (k.status = 'refund_requested'
                  OR (k.status = 'refunding' AND (k.lease_expires_at IS NULL OR k.lease_expires_at < now())))
             AND k.claimed_amount IS NULL AND k.step IS NULL AND k.unknown_operation IS NULL
             AND NOT k.retried_by_operator AS withdrawing
      FROM k
),
o AS (
    SELECT j.id, j.order_no,
           CASE WHEN j.follows THEN j.s_xid ELSE j.xid END AS xid,
           CASE WHEN j.follows THEN j.s_auth_code ELSE j.auth_code END AS auth_code,
           CASE WHEN j.follows THEN j.s_auth_amount ELSE j.auth_amount END AS auth_amount,
           CASE WHEN j.follows THEN j.s_currency ELSE j.currency END AS currency,
           CASE WHEN j.withdrawing THEN 'withdrawn'
                WHEN j.reopened THEN 'refund_requested' ELSE j.status END AS status,
           CASE WHEN j.follows THEN j.s_refund_amount ELSE j.refund_amount END AS refund_amount,
           CASE WHEN j.follows THEN j.s_bad_input ELSE j.bad_input END AS bad_input,
           CASE WHEN j.follows THEN j.s_lidm ELSE j.lidm END AS lidm,
           CASE WHEN j.reopened AND j.status = 'refund_failed' THEN NULL ELSE j.claimed_amount END AS claimed_amount,
           CASE WHEN j.reopened THEN 0 ELSE j.attempts END AS attempts,
           j.step, j.unknown_operation, j.unknown_since, j.refund_method, j.refunded_amount,
           j.watch_until, j.lease_token,
           CASE WHEN j.reopened THEN NULL ELSE j.next_attempt_at END AS next_attempt_at,
           j.lease_expires_at,
           CASE WHEN j.reopened AND j.status = 'refund_failed' THEN NULL ELSE j.last_error END AS last_error,
           false AS new_request, j.withdrawing AS withdrawn,
           j.listed AND j.status = 'refunded' AND j.writeback IS NULL AND j.seen AS refunded_already
      FROM j
    UNION ALL
    SELECT 0::bigint, s.order_no, s.xid, s.auth_code, s.auth_amount, s.currency, 'refund_requested',
           s.refund_amount, s.bad_input, s.lidm, NULL::bigint, 0, NULL::text, NULL::text, NULL::timestamptz,
           NULL::text, NULL::bigint, NULL::timestamptz, NULL::uuid, NULL::timestamptz,
           NULL::timestamptz, NULL::text, true, false, false
      FROM s
     WHERE NOT EXISTS (SELECT 1 FROM refundd.refunds r WHERE r.order_no = s.order_no)
)
SELECT o.id, o.order_no, o.xid, o.auth_code, o.auth_amount, o.currency, o.status, o.refund_amount,
       o.bad_input, o.lidm, o.claimed_amount, o.attempts, o.step, o.unknown_operation, o.unknown_since,
       o.refund_method, o.refunded_amount, o.watch_until, o.lease_token,
       UNKNOWN_AGE,
       OWN_CALLS,
       o.new_request, o.withdrawn, o.refunded_already,
       (o.status = 'refund_requested'
        OR (o.status = 'refunding' AND (o.lease_expires_at IS NULL OR o.lease_expires_at < now())))
         AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now()) AS due,
       o.status = 'refunding' AND coalesce(o.lease_expires_at >= now(), false) AS held,
       o.next_attempt_at, o.lease_expires_at, o.last_error
  FROM o
 WHERE o.status IN ('refund_requested', 'refunding') OR o.withdrawn OR o.refunded_already
 ORDER BY o.new_request, o.next_attempt_at NULLS FIRST, o.id, o.order_no";
