// Claims, leases and every change the engine makes to an order. Each write is
// fenced to the lease owner and changes the row and its event in one
// statement, so a worker that lost an order cannot touch it, and an order's
// story in `refund_events` always matches its row.

use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// An order as the engine reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: i64,
    pub order_no: String,
    pub xid: Option<String>,
    pub auth_code: Option<String>,
    pub auth_amount: Option<i64>,
    pub currency: String,
    pub status: String,
    pub refund_amount: Option<i64>,
    pub claimed_amount: Option<i64>,
    pub attempts: i32,
    pub step: Option<String>,
    pub unknown_operation: Option<String>,
    pub unknown_since: Option<DateTime<Utc>>,
    pub refund_method: Option<String>,
    pub refunded_amount: Option<i64>,
    pub watch_until: Option<DateTime<Utc>>,
    /// How long ago, on the database's clock, the unknown call was about to be sent.
    pub unknown_age_ms: Option<i64>,
    /// refundd's own money-moving calls for this order, from its story.
    pub own_calls: sqlx::types::Json<Vec<OwnCallRecord>>,
}

/// One "about to send" event of the order's story and the last outcome or
/// note recorded for it before the next intent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct OwnCallRecord {
    pub operation: String,
    pub amount: Option<i64>,
    pub sent_at: DateTime<Utc>,
    pub outcome: Option<String>,
    /// The outcome's amount: what the bank said it moved, where it said so.
    pub moved: Option<i64>,
}

/// The `own_calls` column: every intent of the order with its last outcome.
const OWN_CALLS: &str = "(SELECT coalesce(json_agg(json_build_object(
            'operation', i.operation, 'amount', i.amount, 'sent_at', i.at,
            'outcome', f.outcome, 'moved', f.amount) ORDER BY i.id), '[]'::json)
       FROM (SELECT id, order_no, operation, amount, at, lead(id) OVER (ORDER BY id) AS next_intent
               FROM refund_events WHERE order_no = o.order_no AND kind = 'intent') i
       LEFT JOIN LATERAL (
             SELECT e.outcome, e.amount FROM refund_events e
              WHERE e.order_no = i.order_no AND e.kind IN ('outcome', 'note')
                AND e.operation = i.operation AND e.id > i.id
                AND (i.next_intent IS NULL OR e.id < i.next_intent)
              ORDER BY e.id DESC LIMIT 1) f ON true) AS own_calls";

const ORDER_COLUMNS: &str = "id, order_no, xid, auth_code, auth_amount, currency, status, refund_amount, \
     claimed_amount, attempts, step, unknown_operation, unknown_since, refund_method, refunded_amount, watch_until";

/// The columns a claim returns, from the updated row `o`.
fn claimed_columns() -> String {
    let mut cols: Vec<String> = ORDER_COLUMNS
        .split(", ")
        .map(|c| format!("o.{c}"))
        .collect();
    cols.push(
        "(extract(epoch FROM (now() - o.unknown_since)) * 1000)::bigint AS unknown_age_ms".into(),
    );
    cols.push(OWN_CALLS.into());
    cols.join(", ")
}

/// A call to the bank, as appended to the order's story.
#[derive(Debug, Clone, Default)]
pub struct GatewayEvent {
    /// intent | outcome | note
    pub kind: &'static str,
    pub operation: Option<&'static str>,
    pub outcome: Option<String>,
    pub amount: Option<i64>,
    pub bank_state: Option<String>,
    pub resp_code: Option<String>,
    pub err_code: Option<String>,
    pub message: Option<String>,
    pub elapsed_ms: Option<i32>,
}

/// How an order waits for a later attempt.
#[derive(Debug, Clone)]
pub struct Deferral {
    /// Back to `refund_requested` (nothing done yet) or stay `refunding` with the lease released.
    pub back_to_requested: bool,
    pub delay: Duration,
    pub count_attempt: bool,
    pub last_error: String,
    /// Keep the record of a money-moving call whose outcome is unknown.
    pub keep_unknown: bool,
}

impl Deferral {
    /// Waits for the next pass without counting a failed attempt (batch
    /// running, settlement pending, blackout).
    pub fn next_pass(reason: String, keep_unknown: bool) -> Self {
        Self {
            back_to_requested: true,
            delay: Duration::ZERO,
            count_attempt: false,
            last_error: reason,
            keep_unknown,
        }
    }

    /// A failed attempt, retried after `delay`.
    pub fn backoff(delay: Duration, reason: String, keep_unknown: bool) -> Self {
        Self {
            back_to_requested: true,
            delay,
            count_attempt: true,
            last_error: reason,
            keep_unknown,
        }
    }

    /// A money-moving call of unknown outcome: stays `refunding` until a recheck.
    pub fn recheck(delay: Duration, reason: String) -> Self {
        Self {
            back_to_requested: false,
            delay,
            count_attempt: false,
            last_error: reason,
            keep_unknown: true,
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Claims up to `batch` due orders: `refund_requested`, or `refunding` with a
/// free lease, whose next attempt is due by `due_by` (the pass's start on the
/// database's clock, so an order deferred in this pass waits for the next).
pub async fn claim(
    pool: &PgPool,
    worker: Uuid,
    lease: Duration,
    batch: i64,
    due_by: DateTime<Utc>,
) -> Result<Vec<OrderRow>, StoreError> {
    claim_where(
        pool,
        (worker, lease, batch, due_by),
        "(status = 'refund_requested'
          OR (status = 'refunding' AND (lease_expires_at IS NULL OR lease_expires_at < now())))",
        "status = 'refunding', claimed_amount = COALESCE(o.claimed_amount, o.refund_amount, o.auth_amount),",
    )
    .await
}

/// Claims refunded orders whose refund is still settling at the bank.
pub async fn claim_settlement_watch(
    pool: &PgPool,
    worker: Uuid,
    lease: Duration,
    batch: i64,
    due_by: DateTime<Utc>,
) -> Result<Vec<OrderRow>, StoreError> {
    claim_where(
        pool,
        (worker, lease, batch, due_by),
        "status = 'refunded' AND settlement = 'pending'
         AND (lease_expires_at IS NULL OR lease_expires_at < now())",
        "",
    )
    .await
}

/// One claim: due rows matching `which`, locked with SKIP LOCKED, leased to
/// `worker` on the database's clock, with `also_set` applied.
async fn claim_where(
    pool: &PgPool,
    (worker, lease, batch, due_by): (Uuid, Duration, i64, DateTime<Utc>),
    which: &str,
    also_set: &str,
) -> Result<Vec<OrderRow>, StoreError> {
    let sql = format!(
        "WITH due AS (
             SELECT id FROM orders
              WHERE {which}
                AND (next_attempt_at IS NULL OR next_attempt_at <= $4)
              ORDER BY next_attempt_at NULLS FIRST, id
              LIMIT $3
              FOR UPDATE SKIP LOCKED)
         UPDATE orders o
            SET {also_set} lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2)
           FROM due WHERE o.id = due.id
         RETURNING {}",
        claimed_columns()
    );
    Ok(sqlx::query_as::<_, OrderRow>(&sql)
        .bind(worker)
        .bind(secs(lease))
        .bind(batch)
        .bind(due_by)
        .fetch_all(pool)
        .await?)
}

/// Extends the leases this worker still holds; returns the ids it still holds.
pub async fn renew_leases(
    pool: &PgPool,
    worker: Uuid,
    ids: &[i64],
    lease: Duration,
) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "UPDATE orders SET lease_expires_at = now() + make_interval(secs => $3)
          WHERE id = ANY($2) AND lease_owner = $1
         RETURNING id",
    )
    .bind(worker)
    .bind(ids)
    .bind(secs(lease))
    .fetch_all(pool)
    .await?)
}

/// Appends an event (an inquiry's outcome, a note) if this worker still owns the order.
pub async fn record_event(
    pool: &PgPool,
    worker: Uuid,
    id: i64,
    ev: &GatewayEvent,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO refund_events (order_no, kind, operation, outcome, amount, bank_state, resp_code, err_code, message, elapsed_ms, worker)
         SELECT order_no, $3, $4, $5, $6, $7, $8, $9, $10, $11, $2 FROM orders WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(worker)
    .bind(ev.kind)
    .bind(ev.operation)
    .bind(&ev.outcome)
    .bind(ev.amount)
    .bind(&ev.bank_state)
    .bind(&ev.resp_code)
    .bind(&ev.err_code)
    .bind(&ev.message)
    .bind(ev.elapsed_ms)
    .execute(pool)
    .await?;
    lease_held(done.rows_affected())
}

fn lease_held(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::LeaseLost)
    } else {
        Ok(())
    }
}

/// Runs `UPDATE orders SET <set> WHERE id = $1 AND lease_owner = $2 [AND <extra>]`
/// together with the event, in one statement. `$3..` are the caller's binds
/// (at most six), events bind after them.
macro_rules! fenced_update {
    ($pool:expr, $worker:expr, $id:expr, $ev:expr, $set:expr, $extra:expr $(, $bind:expr)* $(,)?) => {{
        let ev: Option<&GatewayEvent> = $ev;
        let n_binds = 2 $( + { let _ = &$bind; 1 } )*;
        let p = |k: usize| format!("${}", n_binds + k);
        let sql = match ev {
            None => format!(
                "UPDATE orders SET {set}, updated_at = now() WHERE id = $1 AND lease_owner = $2 {extra}",
                set = $set, extra = $extra
            ),
            Some(_) => format!(
                "WITH o AS (UPDATE orders SET {set}, updated_at = now() WHERE id = $1 AND lease_owner = $2 {extra} RETURNING order_no)
                 INSERT INTO refund_events (order_no, kind, operation, outcome, amount, bank_state, resp_code, err_code, message, elapsed_ms, worker)
                 SELECT order_no, {a}, {b}, {c}, {d}, {e}, {f}, {g}, {h}, {i}, $2 FROM o",
                set = $set, extra = $extra,
                a = p(1), b = p(2), c = p(3), d = p(4), e = p(5), f = p(6), g = p(7), h = p(8), i = p(9)
            ),
        };
        let mut q = sqlx::query(&sql).bind($id).bind($worker);
        $( q = q.bind($bind); )*
        if let Some(ev) = ev {
            q = q
                .bind(ev.kind)
                .bind(ev.operation)
                .bind(ev.outcome.clone())
                .bind(ev.amount)
                .bind(ev.bank_state.clone())
                .bind(ev.resp_code.clone())
                .bind(ev.err_code.clone())
                .bind(ev.message.clone())
                .bind(ev.elapsed_ms);
        }
        let done = q.execute($pool).await?;
        lease_held(done.rows_affected())
    }};
}

/// Right before a money-moving call: checks on the database that this worker
/// still holds a live lease, renews it, marks the call's outcome unknown until
/// it is recorded, and commits the "about to send" event.
pub async fn record_intent(
    pool: &PgPool,
    worker: Uuid,
    id: i64,
    lease: Duration,
    ev: &GatewayEvent,
) -> Result<(), StoreError> {
    fenced_update!(
        pool,
        worker,
        id,
        Some(ev),
        "unknown_operation = $3, unknown_since = now(), lease_expires_at = now() + make_interval(secs => $4)",
        "AND lease_expires_at > now()",
        ev.operation,
        secs(lease),
    )
}

/// A money-moving call came back accepted (and, for a capture reversal, the
/// step reached is committed before the next call is sent).
pub async fn record_step_done(
    pool: &PgPool,
    worker: Uuid,
    id: i64,
    ev: &GatewayEvent,
    step: Option<&str>,
) -> Result<(), StoreError> {
    fenced_update!(
        pool,
        worker,
        id,
        Some(ev),
        "unknown_operation = NULL, unknown_since = NULL, step = COALESCE($3, step)",
        "",
        step,
    )
}

/// The money is back: `refunded`, with the method and amount; a refund of
/// settled money is then watched until the bank settles it.
pub async fn finish_refunded(
    pool: &PgPool,
    worker: Uuid,
    id: i64,
    ev: Option<&GatewayEvent>,
    method: &str,
    amount: i64,
    watch_days: Option<u32>,
) -> Result<(), StoreError> {
    let watch = watch_days.map(|d| d as i32);
    fenced_update!(
        pool,
        worker,
        id,
        ev,
        "status = 'refunded', refunded_at = now(), refund_method = $3, refunded_amount = $4,
         lease_owner = NULL, lease_expires_at = NULL, unknown_operation = NULL, unknown_since = NULL,
         step = 'done', last_error = NULL, next_attempt_at = now(),
         settlement = CASE WHEN $5::int IS NULL THEN NULL ELSE 'pending' END,
         watch_until = CASE WHEN $5::int IS NULL THEN NULL ELSE now() + make_interval(days => $5::int) END",
        "",
        method,
        amount,
        watch,
    )
}

/// Nothing more refundd can do: `refund_failed` with the reason for a person.
/// A call whose outcome is unknown stays on the row, so `status` keeps
/// listing it until a person has looked.
pub async fn fail(
    pool: &PgPool,
    worker: Uuid,
    id: i64,
    ev: Option<&GatewayEvent>,
    reason: &str,
    refunded_amount: Option<i64>,
) -> Result<(), StoreError> {
    fenced_update!(
        pool,
        worker,
        id,
        ev,
        "status = 'refund_failed', refund_error = $3, refunded_amount = COALESCE($4, refunded_amount),
         lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL, last_error = $3",
        "",
        reason,
        refunded_amount,
    )
}

/// The order waits for a later attempt.
pub async fn defer(
    pool: &PgPool,
    worker: Uuid,
    id: i64,
    ev: Option<&GatewayEvent>,
    d: &Deferral,
) -> Result<(), StoreError> {
    fenced_update!(
        pool,
        worker,
        id,
        ev,
        "status = CASE WHEN $3 AND step IS NULL AND (unknown_operation IS NULL OR NOT $6) THEN 'refund_requested' ELSE 'refunding' END,
         next_attempt_at = now() + make_interval(secs => $4),
         attempts = CASE WHEN $5 AND attempts < 2147483647 THEN attempts + 1 ELSE attempts END,
         last_error = $7,
         unknown_operation = CASE WHEN $6 THEN unknown_operation ELSE NULL END,
         unknown_since = CASE WHEN $6 THEN unknown_since ELSE NULL END,
         lease_owner = NULL, lease_expires_at = NULL",
        "",
        d.back_to_requested,
        secs(d.delay),
        d.count_attempt,
        d.keep_unknown,
        d.last_error.clone(),
    )
}

/// Gives back claimed orders this worker has not started (shutdown, blackout).
pub async fn release(pool: &PgPool, worker: Uuid, ids: &[i64]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE orders
            SET status = CASE WHEN status = 'refunding' AND step IS NULL AND unknown_operation IS NULL
                              THEN 'refund_requested' ELSE status END,
                lease_owner = NULL, lease_expires_at = NULL
          WHERE id = ANY($2) AND lease_owner = $1",
    )
    .bind(worker)
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Outcome of a settlement watch inquiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Settled,
    /// The refund will not settle (state 23, or a state that cannot follow an
    /// accepted refund): `refund_failed` with this reason.
    Failed(String),
    StillSettling,
}

/// Records what the settlement watch learned.
pub async fn record_settlement(
    pool: &PgPool,
    worker: Uuid,
    id: i64,
    ev: Option<&GatewayEvent>,
    outcome: Settlement,
    recheck: Duration,
) -> Result<(), StoreError> {
    match outcome {
        Settlement::Settled => fenced_update!(
            pool,
            worker,
            id,
            ev,
            "settlement = 'settled', settled_at = now(), lease_owner = NULL, lease_expires_at = NULL",
            "",
        ),
        Settlement::Failed(reason) => fenced_update!(
            pool,
            worker,
            id,
            ev,
            "status = 'refund_failed', settlement = 'failed', refund_error = $3, last_error = $3,
             lease_owner = NULL, lease_expires_at = NULL",
            "",
            reason,
        ),
        Settlement::StillSettling => fenced_update!(
            pool,
            worker,
            id,
            ev,
            "settlement = CASE WHEN watch_until IS NOT NULL AND watch_until < now() THEN 'unconfirmed' ELSE 'pending' END,
             next_attempt_at = now() + make_interval(secs => $3),
             lease_owner = NULL, lease_expires_at = NULL",
            "",
            secs(recheck),
        ),
    }
}
