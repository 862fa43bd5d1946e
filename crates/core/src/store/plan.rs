//! What a pass started now would find, read for `refundd plan` without taking or
//! changing anything: the shop's requests merged with refundd's records as the
//! pass's intake would leave them, which of them a claim would take, and the
//! refunds the settlement watch would inquire. Everything is read in one READ
//! ONLY transaction, so PostgreSQL itself refuses a write (the shop's query
//! included), and `PlanReader` offers nothing else: the plan cannot write.

use super::intake::{RequestColumns, ShopRequest};
use super::order_rows::ReadOrder;
use super::queue_rules as rule;
use super::refunds::{unknown_age, OTHER_REFUNDS, OWN_CALLS};
use super::{Store, StoreError};
use crate::domain::record::OrderRecord;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

/// The read-only view of the database that `refundd plan` works from: the
/// store it wraps is private and never handed back.
#[derive(Debug, Clone)]
pub struct PlanReader(Store);

/// One order as the next pass would find it after reading the shop's requests.
#[derive(Debug, Clone)]
pub struct PlanRow {
    /// The record as a claim would return it (`id` 0 for a request refundd
    /// has not recorded yet; `lease_token` the current holder's, if any).
    pub row: OrderRecord,
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

impl<'r> FromRow<'r, sqlx::postgres::PgRow> for PlanRow {
    fn from_row(r: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(PlanRow {
            row: ReadOrder::from_row(r)?.0,
            new_request: r.try_get("new_request")?,
            withdrawn: r.try_get("withdrawn")?,
            refunded_already: r.try_get("refunded_already")?,
            due: r.try_get("due")?,
            held: r.try_get("held")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            lease_expires_at: r.try_get("lease_expires_at")?,
            last_error: r.try_get("last_error")?,
        })
    }
}

/// A refund of settled money the settlement watch would inquire now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WatchRow {
    pub order_no: String,
    /// Which refund of the order ('' for its only one).
    pub refund_id: String,
    /// The merchant the order was paid to, as the shop named it; `None`: the default.
    pub merchant: Option<String>,
    /// The order number the bank knows it by, when not `order_no`.
    pub lidm: Option<String>,
    /// The refunded authorisation's XID, as the shop gave it.
    pub xid: Option<String>,
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
    /// The order number sent to the bank (see `OrderRecord::bank_order_no`).
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
        let merged = store.sql(&MERGED);
        let orders: Vec<PlanRow> = c
            .bind_to(sqlx::query_as(&merged), &snapshot)
            .fetch_all(&mut *tx)
            .await?;
        let watch: Vec<WatchRow> = sqlx::query_as(&store.sql(
            &format!(
                "SELECT order_no, refund_id, merchant, lidm, xid, refunded_amount, coalesce(watch_until < now(), false) AS watch_over
                   FROM refundd.refunds f
                  WHERE {} AND {}
                  ORDER BY next_attempt_at NULLS FIRST, id",
                rule::settling("f"),
                rule::due_by("f", "now()")
            ),
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
    /// Fails naming `refundd migrate` when refundd's schema is not in this
    /// database, and refuses one a newer refundd migrated.
    pub async fn require_migrated(&self) -> Result<(), StoreError> {
        let migrated: bool =
            sqlx::query_scalar(&self.sql("SELECT to_regclass('refundd.refunds') IS NOT NULL"))
                .fetch_one(&self.pool)
                .await?;
        if !migrated {
            return Err(StoreError::NotMigrated(self.schema.to_string()));
        }
        self.require_not_newer().await
    }

    /// Refuses a schema a newer refundd migrated (`StoreError::NewerSchema`);
    /// one not migrated at all passes.
    pub async fn require_not_newer(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.refuse_newer_schema(&mut conn).await
    }
}

/// The shop's requests (`$1` to `$7`, `$9` to `$11`, read in snapshot `$8`) laid
/// over refundd's records by the intake's own rules (`queue_rules`: what
/// `RECORD_REQUESTS` and `withdraw_unlisted` do), and what a claim would make
/// of the result (`queue_rules::claimable`, `due_by`, `held`).
static MERGED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let (reopens, reopens_failed) = (rule::reopens("f", "$8"), rule::reopens_failed("f", "$8"));
    let (follows, asked_again) = (rule::follows_shop("f", "$8"), rule::asked_again("f", "$8"));
    let withdrawable = rule::withdrawable("f");
    let (claimable, due, held) = (
        format!("{} AND {}", rule::claimable("o"), rule::turn_of_order("o")),
        rule::due_by("o", "now()"),
        rule::held("o"),
    );
    let (listed, listed_as) = (super::intake::LISTED, super::intake::LISTED_AS);
    format!("
WITH u AS (
    SELECT DISTINCT ON (u.order_no, u.refund_id) u.*
      FROM {listed} AS u{listed_as}
     ORDER BY u.order_no, u.refund_id
),
j AS (
    SELECT f.*,
           u.xid AS s_xid, u.auth_code AS s_auth_code, u.auth_amount AS s_auth_amount,
           u.refund_amount AS s_refund_amount, u.currency AS s_currency, u.bad_input AS s_bad_input, u.lidm AS s_lidm,
           u.merchant AS s_merchant,
           u.order_no IS NOT NULL AND {reopens} AS reopened,
           u.order_no IS NOT NULL AND {reopens_failed} AS reopened_failed,
           u.order_no IS NOT NULL AND {follows} AS follows,
           u.order_no IS NULL AND {withdrawable} AS withdrawing,
           u.order_no IS NOT NULL AND {asked_again} AS asked_again
      FROM refundd.refunds f LEFT JOIN u ON u.order_no = f.order_no AND u.refund_id = f.refund_id
     WHERE f.status IN ('refund_requested', 'refunding')
        OR (f.order_no = ANY($1::text[]) AND u.order_no IS NOT NULL)
),
o AS (
    SELECT j.id, j.order_no, j.refund_id,
           CASE WHEN j.follows THEN j.s_xid ELSE j.xid END AS xid,
           CASE WHEN j.follows THEN j.s_auth_code ELSE j.auth_code END AS auth_code,
           CASE WHEN j.follows THEN j.s_auth_amount ELSE j.auth_amount END AS auth_amount,
           CASE WHEN j.follows THEN j.s_currency ELSE j.currency END AS currency,
           CASE WHEN j.withdrawing THEN 'withdrawn'
                WHEN j.reopened THEN 'refund_requested' ELSE j.status END AS status,
           CASE WHEN j.follows THEN j.s_refund_amount ELSE j.refund_amount END AS refund_amount,
           CASE WHEN j.follows THEN j.s_bad_input ELSE j.bad_input END AS bad_input,
           CASE WHEN j.follows THEN j.s_lidm ELSE j.lidm END AS lidm,
           CASE WHEN j.follows THEN j.s_merchant ELSE j.merchant END AS merchant,
           CASE WHEN j.reopened_failed THEN NULL ELSE j.claimed_amount END AS claimed_amount,
           CASE WHEN j.reopened THEN 0 ELSE j.attempts END AS attempts,
           j.step, j.unknown_operation, j.unknown_since, j.refund_method, j.refunded_amount,
           j.watch_until, j.lease_token,
           CASE WHEN j.reopened THEN NULL ELSE j.next_attempt_at END AS next_attempt_at,
           j.lease_expires_at,
           CASE WHEN j.reopened_failed THEN NULL ELSE j.last_error END AS last_error,
           false AS new_request, j.withdrawing AS withdrawn, j.asked_again AS refunded_already
      FROM j
    UNION ALL
    SELECT 0::bigint, u.order_no, u.refund_id, u.xid, u.auth_code, u.auth_amount, u.currency, 'refund_requested',
           u.refund_amount, u.bad_input, u.lidm, u.merchant, NULL::bigint, 0, NULL::text, NULL::text, NULL::timestamptz,
           NULL::text, NULL::bigint, NULL::timestamptz, NULL::uuid, NULL::timestamptz,
           NULL::timestamptz, NULL::text, true, false, false
      FROM u
     WHERE NOT EXISTS (SELECT 1 FROM refundd.refunds r
                        WHERE r.order_no = u.order_no AND r.refund_id = u.refund_id)
)
SELECT o.id, o.order_no, o.refund_id, o.xid, o.auth_code, o.auth_amount, o.currency, o.status, o.refund_amount,
       o.bad_input, o.lidm, o.merchant, o.claimed_amount, o.attempts, o.step, o.unknown_operation, o.unknown_since,
       o.refund_method, o.refunded_amount, o.watch_until, o.lease_token,
       {unknown_age},
       {own_calls},
       {others},
       o.new_request, o.withdrawn, o.refunded_already,
       {claimable} AND {due} AS due,
       {held} AS held,
       o.next_attempt_at, o.lease_expires_at, o.last_error
  FROM o
 WHERE o.status IN ('refund_requested', 'refunding') OR o.withdrawn OR o.refunded_already
 ORDER BY o.new_request, o.next_attempt_at NULLS FIRST, o.id, o.order_no, o.refund_id",
        unknown_age = unknown_age("o.lease_expires_at"),
        own_calls = OWN_CALLS,
        others = OTHER_REFUNDS,
    )
});
