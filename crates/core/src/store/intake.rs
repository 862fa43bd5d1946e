//! Reading the shop's requests into refundd's own records, at the start of every
//! pass: the shop's query (`shop.requests`) streamed in chunks, each chunk
//! recorded idempotently (any number of daemons may read at once), then the
//! requests the shop stopped asking for before anything was sent are withdrawn.
//! What a shop's row means over time is decided here, in SQL, in one place.

use super::queue_rules as rule;
use super::{Store, StoreError};
use crate::domain::record::Lease;
use crate::domain::refund_id::{RefundId, REFUND_ID_MAX_CHARS};
use futures::TryStreamExt;

/// One row of the shop's requests, every value as text as the shop gave it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ShopRequest {
    order_no: Option<String>,
    xid: Option<String>,
    auth_code: Option<String>,
    auth_amount: Option<String>,
    refund_amount: Option<String>,
    currency: Option<String>,
    /// The order number the bank knows the order by, when it is not `order_no`.
    lidm: Option<String>,
    /// The shop's id of this refund of the order (several refunds of one order).
    refund_id: Option<String>,
    /// The merchant the order was paid to (`[ctbc.merchants.NAME]`); none: the default.
    merchant: Option<String>,
    /// How many rows the shop's query returned for this order number and refund.
    rows_for_order: i64,
}

/// Why an order the shop's query lists more than once is not worked: which
/// row is the request would depend on the query's row order.
fn doubled(rows: i64) -> String {
    format!(
        "invalid row: the requests query returned {rows} rows for this order; make it return one (a JOIN to several payment attempts is the usual cause), or, for several refunds of one order, return each refund's own id in the column refund_id; nothing was sent"
    )
}

/// What one reading of the shop's requests did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntakeReport {
    /// Rows the shop's query returned.
    pub read: u64,
    /// Orders refundd had no record of.
    pub new: u64,
    /// Orders the shop asked again after refundd refunded them (never refunded twice).
    pub asked_again_after_refund: u64,
    /// Requests the shop stopped listing before anything was sent.
    pub withdrawn: u64,
}

/// Where the shop's request for one order stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestNow {
    /// No longer listed: withdrawn, nothing was sent.
    Withdrawn,
    /// Listed with other values: they are taken, and the order is worked again.
    Changed,
}

/// An amount as the shop's query gave it, as a whole number; `Err` says why
/// it is not one (the row then fails with that reason and nothing is sent).
fn whole_amount(column: &str, text: Option<&str>) -> Result<Option<i64>, String> {
    let Some(text) = text else { return Ok(None) };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.bytes().any(|b| b != b'0') {
        return Err(format!(
            "invalid row: {column} is {text}, which has a fraction; amounts are whole units of the currency (NT$ has no cents at the bank), nothing was sent"
        ));
    }
    whole.parse::<i64>().map(Some).map_err(|_| {
        format!("invalid row: {column} is {text}, which is not an amount refundd can send")
    })
}

/// The shop's rows as refundd records them, column by column (`$1` to `$7` of
/// the statements that take them): rows without an order number left out,
/// amounts read as whole numbers, and a row's problem kept as its `bad_input`.
#[derive(Debug, Default)]
pub(super) struct RequestColumns {
    pub order_no: Vec<String>,
    pub xid: Vec<Option<String>>,
    pub auth_code: Vec<Option<String>>,
    pub auth_amount: Vec<Option<i64>>,
    pub refund_amount: Vec<Option<i64>>,
    pub currency: Vec<String>,
    pub bad_input: Vec<Option<String>>,
    pub lidm: Vec<Option<String>>,
    pub refund_id: Vec<String>,
    pub merchant: Vec<Option<String>>,
}

impl RequestColumns {
    /// Binds the columns as `LISTED` reads them (`$1` to `$7`, `$9` to `$11`), with the
    /// reading's snapshot as `$8`.
    pub(super) fn bind_to<'q, O>(
        self,
        q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
        snapshot: &'q str,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        q.bind(self.order_no)
            .bind(self.xid)
            .bind(self.auth_code)
            .bind(self.auth_amount)
            .bind(self.refund_amount)
            .bind(self.currency)
            .bind(self.bad_input)
            .bind(snapshot)
            .bind(self.lidm)
            .bind(self.refund_id)
            .bind(self.merchant)
    }

    /// An order listed more than once is recorded once, with the reason it
    /// is not worked; whichever of its rows comes first gives the rest.
    pub(super) fn of(batch: &[ShopRequest]) -> RequestColumns {
        let mut c = RequestColumns::default();
        let mut seen = std::collections::HashSet::new();
        for r in batch {
            let Some(order_no) = r.order_no.clone() else {
                continue;
            };
            let (refund_id, bad_id) = RefundId::from_shop(r.refund_id.as_deref());
            if r.rows_for_order > 1 && !seen.insert((order_no.clone(), refund_id.clone())) {
                continue;
            }
            let auth = whole_amount("auth_amount", r.auth_amount.as_deref());
            let refund = whole_amount("refund_amount", r.refund_amount.as_deref());
            let bad = if r.rows_for_order > 1 {
                Some(doubled(r.rows_for_order))
            } else {
                (auth.as_ref().err().or(refund.as_ref().err()).cloned()).or(bad_id)
            };
            c.order_no.push(order_no);
            c.xid.push(r.xid.clone());
            c.auth_code.push(r.auth_code.clone());
            c.auth_amount.push(auth.unwrap_or(None));
            c.refund_amount.push(refund.unwrap_or(None));
            c.currency
                .push(r.currency.clone().unwrap_or_else(|| "901".into()));
            c.bad_input.push(bad);
            c.lidm.push(r.lidm.clone());
            c.refund_id.push(refund_id.as_str().to_string());
            c.merchant
                .push(r.merchant.clone().filter(|m| !m.is_empty()));
        }
        c
    }
}

impl Store {
    /// The shop's query, with the columns refundd reads, as text, and how
    /// many rows it returned for each order number and refund (the optional
    /// columns read from the row as JSON, once per row), in the query's own
    /// order: an order's refunds new in one reading are recorded, and so
    /// worked, in the order the shop lists them. With `only_one`,
    /// only the refund `$1` (order number), `$2` (refund id, '' for none).
    pub(super) fn requests_sql(&self, only_one: bool) -> String {
        let key = refund_key("o.j");
        format!(
            "SELECT r.order_no::text AS order_no, r.xid::text AS xid, r.auth_code::text AS auth_code,
                    r.auth_amount::numeric::text AS auth_amount,
                    r.refund_amount::numeric::text AS refund_amount,
                    coalesce(o.j ->> 'currency', '901') AS currency,
                    o.j ->> 'lidm' AS lidm,
                    o.j ->> 'refund_id' AS refund_id,
                    o.j ->> 'merchant' AS merchant,
                    count(*) OVER (PARTITION BY r.order_no::text, {key}) AS rows_for_order
               FROM (SELECT s.*, row_number() OVER () AS refundd_shop_row FROM ({}) AS s) AS r
                    CROSS JOIN LATERAL (SELECT to_jsonb(r) AS j) AS o{}
              ORDER BY r.refundd_shop_row",
            self.shop.requests,
            if only_one {
                format!(" WHERE r.order_no::text = $1 AND {key} = $2")
            } else {
                String::new()
            }
        )
    }

    /// A read-only transaction in one snapshot, and that snapshot, so a
    /// reading of the shop's requests can be compared with what refundd did.
    pub(super) async fn read_in_one_snapshot(
        &self,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, String), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
            .fetch_one(&mut *tx)
            .await?;
        Ok((tx, snapshot))
    }

    /// Reads every request of the shop's in chunks of `chunk` rows and records
    /// it; then withdraws what the shop no longer lists and nothing was sent for.
    /// The shop's query runs in one snapshot, and a reading counts against an
    /// order's outcome only if that snapshot saw the outcome's transaction.
    pub async fn intake(&self, chunk: usize) -> Result<IntakeReport, StoreError> {
        let (mut tx, snapshot) = self.read_in_one_snapshot().await?;
        let sql = self.requests_sql(false);
        let mut report = IntakeReport::default();
        {
            let mut rows = sqlx::query_as::<_, ShopRequest>(&sql)
                .fetch(&mut *tx)
                .try_chunks(chunk.max(1));
            while let Some(batch) = rows.try_next().await.map_err(|e| e.1)? {
                report.read += batch.len() as u64;
                let (new, again) = self.record_requests(&batch, &snapshot).await?;
                report.new += new;
                report.asked_again_after_refund += again;
            }
        }
        tx.commit().await?;
        report.withdrawn = self.withdraw_unlisted().await?;
        Ok(report)
    }

    /// Records one chunk read in `snapshot`; returns (new orders, orders
    /// asked again after their refund).
    async fn record_requests(
        &self,
        batch: &[ShopRequest],
        snapshot: &str,
    ) -> Result<(u64, u64), StoreError> {
        let c = RequestColumns::of(batch);
        let rows: Vec<(bool, bool)> = c
            .bind_to(sqlx::query_as(&self.sql(&RECORD_REQUESTS)), snapshot)
            .fetch_all(&self.pool)
            .await?;
        let new = rows.iter().filter(|(n, _)| *n).count() as u64;
        let again = rows.iter().filter(|(_, a)| *a).count() as u64;
        Ok((new, again))
    }

    /// Withdraws the requests the shop's query no longer lists and nothing
    /// was sent for (asked now, not from the reading that just ended).
    async fn withdraw_unlisted(&self) -> Result<u64, StoreError> {
        let sql = self
            .sql(
                "WITH w AS (
                 UPDATE refundd.refunds f
                    SET status = 'withdrawn', lease_owner = NULL, lease_token = NULL,
                        lease_expires_at = NULL, next_attempt_at = NULL
                  WHERE WITHDRAWABLE
                    AND NOT EXISTS (SELECT 1 FROM (__REQUESTS__) AS r
                                     WHERE r.order_no::text = f.order_no
                                       AND __KEY__ = f.refund_id)
                 RETURNING order_no, refund_id)
             INSERT INTO refundd.refund_events (order_no, refund_id, kind, outcome, message)
             SELECT order_no, refund_id, 'note', 'withdrawn',
                    'the shop''s requests no longer list this order and nothing was sent: withdrawn'
               FROM w",
            )
            .replace("WITHDRAWABLE", &rule::withdrawable("f"))
            .replace("__KEY__", &refund_key("to_jsonb(r)"))
            .replace("__REQUESTS__", &self.shop.requests);
        let done = sqlx::query(&sql).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Asks the shop's query about one claimed refund whose request changed
    /// before anything was sent: withdrawn, or taken with its new values and
    /// given back to be worked again.
    pub async fn recheck_request(&self, lease: &Lease) -> Result<RequestNow, StoreError> {
        let (mut tx, snapshot) = self.read_in_one_snapshot().await?;
        // The shop's keys of the refund (its order number, not the bank's LID-M).
        let keys: Option<(String, String)> = sqlx::query_as(
            &self.sql("SELECT order_no, refund_id FROM refundd.refunds WHERE id = $1"),
        )
        .bind(lease.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((order_no, refund_id)) = keys else {
            return Err(StoreError::LeaseLost);
        };
        let now: Option<ShopRequest> = sqlx::query_as(&self.requests_sql(true))
            .bind(&order_no)
            .bind(&refund_id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        let Some(r) = now else {
            if self.withdraw_claimed(lease).await? {
                return Ok(RequestNow::Withdrawn);
            }
            // A call of refundd's is on record (of unknown outcome, or a step
            // reached): never withdrawn, refundd finishes what it started.
            return match self.release(std::slice::from_ref(lease)).await? {
                0 => Err(StoreError::LeaseLost),
                _ => Ok(RequestNow::Changed),
            };
        };
        self.record_requests(std::slice::from_ref(&r), &snapshot)
            .await?;
        self.release(std::slice::from_ref(lease)).await?;
        Ok(RequestNow::Changed)
    }

    /// Withdraws a claimed order the shop no longer lists, if nothing of
    /// refundd's was sent or may have been for it.
    async fn withdraw_claimed(&self, lease: &Lease) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.sql(
            "WITH w AS (
                     UPDATE refundd.refunds SET status = 'withdrawn', lease_owner = NULL,
                            lease_token = NULL, lease_expires_at = NULL, next_attempt_at = NULL
                      WHERE id = $1 AND lease_token = $2 AND claimed_amount IS NULL
                        AND step IS NULL AND unknown_operation IS NULL
                     RETURNING order_no, refund_id)
                 INSERT INTO refundd.refund_events (order_no, refund_id, kind, outcome, message, worker)
                 SELECT order_no, refund_id, 'note', 'withdrawn',
                        'the shop withdrew the request before anything was sent', $3 FROM w",
        ))
        .bind(lease.id)
        .bind(lease.token)
        .bind(lease.worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Records requests: new orders are inserted; an existing record follows the
/// shop's values until its first money-moving intent; a withdrawn request, or
/// a failed one the shop was told of, asked again is a new request; an order
/// refundd refunded is never reopened, only marked asked again. "Asked again"
/// counts only when the reading's snapshot (`$8`) saw the transaction that
/// ended the work, so a reading taken before it is never mistaken for a new
/// request. The rules are `queue_rules`', shared with `plan`'s reading.
static RECORD_REQUESTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let (reopens, reopens_failed) = (rule::reopens("f", "$8"), rule::reopens_failed("f", "$8"));
    let follows = rule::follows_shop("f", "$8");
    let asked_again = rule::asked_again("f", "$8");
    let take = |column: &str| {
        format!("{column} = CASE WHEN {follows} THEN EXCLUDED.{column} ELSE f.{column} END")
    };
    let taken: Vec<String> = SHOP_VALUES.iter().map(|c| take(c)).collect();
    // The rows in the order the shop listed them (`n`), so new records are numbered so.
    let listed_in_order = LISTED_AS.replace(')', ", n)");
    format!(
        "
INSERT INTO refundd.refunds AS f
       (order_no, refund_id, xid, auth_code, auth_amount, refund_amount, currency, bad_input, lidm, merchant)
SELECT u.order_no, u.refund_id, u.xid, u.auth_code, u.auth_amount, u.refund_amount, u.currency, u.bad_input, u.lidm, u.merchant
  FROM {LISTED} WITH ORDINALITY AS u{listed_in_order}
  LEFT JOIN refundd.refunds f ON f.order_no = u.order_no AND f.refund_id = u.refund_id
 -- only what is new or has something to change: a row left alone is not locked,
 -- so a reading never waits for the workers
 WHERE f.order_no IS NULL
    OR (f.claimed_amount IS NULL
        AND (f.xid, f.auth_code, f.auth_amount, f.refund_amount, f.currency, f.bad_input, f.lidm, f.merchant)
            IS DISTINCT FROM (u.xid, u.auth_code, u.auth_amount, u.refund_amount, u.currency, u.bad_input, u.lidm, u.merchant))
    OR {reopens}
    OR ({asked_again} AND f.requested_again_at IS NULL)
 ORDER BY u.n
ON CONFLICT (order_no, refund_id) DO UPDATE SET
    status = CASE WHEN {reopens} THEN 'refund_requested' ELSE f.status END,
    attempts = CASE WHEN {reopens} THEN 0 ELSE f.attempts END,
    next_attempt_at = CASE WHEN {reopens} THEN NULL ELSE f.next_attempt_at END,
    refund_error = CASE WHEN {reopens_failed} THEN NULL ELSE f.refund_error END,
    last_error = CASE WHEN {reopens_failed} THEN NULL ELSE f.last_error END,
    claimed_amount = CASE WHEN {reopens_failed} THEN NULL ELSE f.claimed_amount END,
    shop_told_failed = CASE WHEN {reopens_failed} THEN false ELSE f.shop_told_failed END,
    requested_at = CASE WHEN {reopens} THEN now() ELSE f.requested_at END,
    {},
    -- (a refund whose write-back the shop refused is still listed: not asked again)
    requested_again_at = CASE WHEN {asked_again}
                              THEN coalesce(f.requested_again_at, now())
                              ELSE f.requested_again_at END
RETURNING (xmax = 0) AS inserted,
          coalesce(f.status = 'refunded' AND f.requested_again_at = now(), false) AS asked_again",
        taken.join(",\n    ")
    )
});

/// The shop's values a record takes while it follows the shop.
const SHOP_VALUES: [&str; 8] = [
    "xid",
    "auth_code",
    "auth_amount",
    "refund_amount",
    "currency",
    "bad_input",
    "lidm",
    "merchant",
];

/// The shop's rows of one reading as a relation (`$1` to `$7`, `$9` to
/// `$11`, as `RequestColumns` binds them), its columns named by `LISTED_AS`.
pub(super) const LISTED: &str = "unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $9::text[], $10::text[], $11::text[])";

/// The names of `LISTED`'s columns.
pub(super) const LISTED_AS: &str = "(order_no, xid, auth_code, auth_amount, refund_amount, currency, bad_input, lidm, refund_id, merchant)";

/// The refund id of a row of the shop's query (`row` its JSON) as refundd
/// keys it, as `RefundId::from_shop` reads it: spaces around it dropped, at
/// most `REFUND_ID_MAX_CHARS` characters, NULL and blanks the order's only refund.
pub(super) fn refund_key(row: &str) -> String {
    format!("left(btrim(coalesce({row} ->> 'refund_id', '')), {REFUND_ID_MAX_CHARS})")
}
