//! refundd's record of each order it was asked to refund: claims, leases and
//! every change the engine makes. Each write is fenced to the claim that holds
//! the lease (a token per claim, not per process) and changes the record and its
//! event in one statement, so a worker that lost an order cannot touch it and an
//! order's story in `refund_events` always matches its record. The writes that
//! many orders make at once (intents, step outcomes, endings) have modules of
//! their own and share commits (`group_commit`); the fenced single-order
//! writes (a deferral, a note, the settlement watch) and the event columns
//! they all use are here.

use super::endings::Ending;
use super::order_rows::ReadOrder;
use super::word_columns::text_of;
use super::writeback::WriteBack;
use super::{Store, StoreError};
use crate::domain::decide::Settlement;
use crate::domain::record::Deferral;
use crate::domain::record::GatewayEvent;
use crate::domain::record::Lease;
use crate::domain::record::OrderRecord;
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// The `own_calls` column: every intent of the refund with its last outcome.
pub(super) const OWN_CALLS: &str = "(SELECT coalesce(json_agg(json_build_object(
            'operation', i.operation, 'amount', i.amount, 'sent_at', i.at,
            'outcome', f.outcome, 'moved', f.amount) ORDER BY i.id), '[]'::json)
       FROM (SELECT id, order_no, refund_id, operation, amount, at, lead(id) OVER (ORDER BY id) AS next_intent
               FROM refundd.refund_events
              WHERE order_no = o.order_no AND refund_id = o.refund_id AND kind = 'intent') i
       LEFT JOIN LATERAL (
             SELECT e.outcome, e.amount FROM refundd.refund_events e
              WHERE e.order_no = i.order_no AND e.refund_id = i.refund_id
                AND e.kind IN ('outcome', 'note')
                AND e.operation = i.operation AND e.id > i.id
                AND (i.next_intent IS NULL OR e.id < i.next_intent)
              ORDER BY e.id DESC LIMIT 1) f ON true) AS own_calls";

/// The `others` column: the order's other refunds summed, NULL when record
/// `o` is its only one. What they gave back or may have: refunded (and not
/// failed at settlement), or a money-moving call of unknown outcome on
/// record; by reversal or by refund, by the method or the unknown call.
pub(super) const OTHER_REFUNDS: &str = "(SELECT CASE WHEN count(*) = 0 THEN NULL ELSE json_build_object(
            'committed', coalesce(sum(x.given), 0),
            'by_reversal', coalesce(sum(x.given) FILTER (WHERE x.how IN ('reversal', 'capture_reversal', 'capture_reversal+reversal')), 0),
            'by_refund', coalesce(sum(x.given) FILTER (WHERE x.how = 'refund'), 0)) END
       FROM (SELECT CASE WHEN s.status = 'refunded' THEN s.refunded_amount
                         WHEN s.unknown_operation IS NOT NULL THEN s.claimed_amount
                         ELSE 0 END AS given,
                    CASE WHEN s.status = 'refunded' THEN s.refund_method::text
                         ELSE s.unknown_operation::text END AS how
               FROM refundd.refunds s
              WHERE s.order_no = o.order_no AND s.refund_id <> o.refund_id) x) AS others";

const ORDER_COLUMNS: &str = "id, order_no, refund_id, merchant, xid, auth_code, auth_amount, currency, status, refund_amount, bad_input, \
     claimed_amount, attempts, step, unknown_operation, unknown_since, refund_method, refunded_amount, watch_until, lease_token, lidm";

/// `unknown_age_ms`: how long ago, on the database's clock, the call of
/// unknown outcome of record `o` could last have been on its way to the bank.
/// A call is sent only while its claim's lease is certain to outlast it
/// (`engine::turns`), so it is over by the time that lease lapsed (`lapsed`,
/// the previous claim's expiry) even if it left long after its intent.
pub(super) fn unknown_age(lapsed: &str) -> String {
    format!(
        "(extract(epoch FROM (now() - greatest(o.unknown_since, {lapsed}))) * 1000)::bigint AS unknown_age_ms"
    )
}

/// The columns a claim returns, from the updated record `o` and the lease
/// it had before (`due.lapsed_at`).
pub(super) fn claimed_columns() -> String {
    let mut cols: Vec<String> = ORDER_COLUMNS
        .split(", ")
        .map(|c| format!("o.{}", c.trim()))
        .collect();
    cols.push(unknown_age("due.lapsed_at"));
    cols.push(OWN_CALLS.into());
    cols.push(OTHER_REFUNDS.into());
    cols.join(", ")
}

/// A claim reads the due records in the order they fall due through the
/// queue's index and stops at what it takes, checking each candidate's
/// order on the way (`queue_rules::turn_of_order`): its transaction tells
/// the planner not to read every waiting record and sort them instead,
/// which statistics taken before a backlog was claimed make look cheaper.
pub(super) const CLAIM_PLANNER: &str =
    "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)";

/// A claim of due records matching `which` (`$1` worker, `$2` lease in
/// seconds, `$3` how many, `$4` due by), with `also_set` applied.
pub(super) fn claim_sql(which: &str, also_set: &str) -> String {
    format!(
        "WITH due AS (
             SELECT id, lease_expires_at AS lapsed_at FROM refundd.refunds f
              WHERE {which} AND {due}
              ORDER BY {order}, id
              LIMIT $3
              FOR UPDATE SKIP LOCKED)
         UPDATE refundd.refunds o
            SET {also_set} lease_owner = $1, lease_token = gen_random_uuid(),
                lease_expires_at = now() + make_interval(secs => $2)
           FROM due WHERE o.id = due.id
         RETURNING {}",
        claimed_columns(),
        due = super::queue_rules::due_by("f", "$4"),
        order = super::queue_rules::due_order("f"),
    )
}

/// The queue's claim: a refund requested or lapsed, its order's turn.
#[cfg(test)]
pub(super) fn queue_claim_sql() -> String {
    let which = format!(
        "{} AND {}",
        super::queue_rules::claimable("f"),
        super::queue_rules::turn_of_order("f")
    );
    claim_sql(&which, "status = 'refunding',")
}

/// The database refused a second refund of one order under way at once.
fn one_under_way(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "refunds_one_under_way_per_order")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Runs `UPDATE refundd.refunds SET <set> WHERE id = $1 AND lease_token = $2
/// [AND <extra>] RETURNING order_no` with the events appended to the order's
/// story in the same statement, on `$conn`, and gives the order number; no row
/// means the lease is lost. `$3` is the worker (for the events); `$4..` are the
/// caller's binds, the events' columns (one array each) after them.
macro_rules! fenced_update {
    ($store:expr, $conn:expr, $lease:expr, $events:expr, $set:expr, $extra:expr $(, $bind:expr)* $(,)?) => {{
        let events: &[GatewayEvent] = $events;
        let lease: &Lease = $lease;
        let n_binds = 3 $( + { let _ = &$bind; 1 } )*;
        let sql = fenced_sql(&$store.sql(&fenced_template(n_binds, !events.is_empty(), $set)), $extra);
        let mut q = sqlx::query_as::<_, (String,)>(&sql).bind(lease.id).bind(lease.token).bind(lease.worker);
        $( q = q.bind($bind); )*
        if !events.is_empty() {
            q = KeyedEvents::of([(lease, events)]).bind_to(q);
        }
        let found: Option<(String,)> = q.fetch_optional($conn).await?;
        found.map(|(order_no,)| order_no).ok_or(StoreError::LeaseLost)
    }};
}
pub(super) use fenced_update;

/// The statement of a fenced write, with `__EXTRA__` where the caller's extra
/// condition goes.
pub(super) fn fenced_template(n_binds: usize, with_events: bool, set: &str) -> String {
    let update = format!(
        "UPDATE refundd.refunds SET {set} WHERE id = $1 AND lease_token = $2 AND $3::uuid IS NOT NULL __EXTRA__ RETURNING id, order_no, refund_id, $2::uuid AS token"
    );
    if !with_events {
        return format!("WITH o AS ({update}) SELECT order_no FROM o");
    }
    format!(
        "WITH o AS ({update}), {} SELECT order_no FROM o",
        events_cte(n_binds + 1)
    )
}

/// `e AS (INSERT ...)`: appends the events bound from `$first` on (see
/// `KeyedEvents`) to the stories of the records in `o` (`id`, `order_no`,
/// `refund_id`, `token`: the claim whose write held) they are keyed to, in the order
/// given. An event of a claim not in `o` (its lease lost, or another claim of
/// the same record) is not written.
pub(super) fn events_cte(first: usize) -> String {
    let p: Vec<String> = (0..15).map(|k| format!("${}", first + k)).collect();
    format!(
        "e AS (INSERT INTO refundd.refund_events (order_no, refund_id, kind, operation, outcome, amount, bank_state, resp_code, err_code, message, elapsed_ms, worker, retr_ref, batch_id, batch_seq)
               SELECT o.order_no, o.refund_id, ev.kind, ev.operation, ev.outcome, ev.amount, ev.bank_state, ev.resp_code, ev.err_code, ev.message, ev.elapsed_ms, ev.worker, ev.retr_ref, ev.batch_id, ev.batch_seq
                 FROM unnest({}::bigint[], {}::uuid[], {}::text[], {}::text[], {}::text[], {}::bigint[], {}::text[], {}::text[], {}::text[], {}::text[], {}::int[], {}::uuid[], {}::text[], {}::text[], {}::text[])
                      WITH ORDINALITY AS ev(id, worker, kind, operation, outcome, amount, bank_state, resp_code, err_code, message, elapsed_ms, token, retr_ref, batch_id, batch_seq, n)
                 JOIN o ON o.id = ev.id AND o.token = ev.token
                ORDER BY ev.n)",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14]
    )
}

/// The extra condition goes in after refundd's names are placed: it may hold
/// a statement of the shop's, which runs exactly as written.
pub(super) fn fenced_sql(template: &str, extra: &str) -> String {
    template.replace("__EXTRA__", extra)
}

/// Events of one or many records as one array per column, for `unnest` in
/// `events_cte`: each keyed to its claim (record and lease token), with the
/// claim's worker.
#[derive(Default)]
pub(super) struct KeyedEvents<'a> {
    id: Vec<i64>,
    worker: Vec<Uuid>,
    kind: Vec<&'static str>,
    operation: Vec<Option<&'static str>>,
    outcome: Vec<Option<&'static str>>,
    amount: Vec<Option<i64>>,
    bank_state: Vec<Option<&'a str>>,
    resp_code: Vec<Option<&'a str>>,
    err_code: Vec<Option<&'a str>>,
    message: Vec<Option<&'a str>>,
    elapsed_ms: Vec<Option<i32>>,
    token: Vec<Uuid>,
    retr_ref: Vec<Option<&'a str>>,
    batch_id: Vec<Option<&'a str>>,
    batch_seq: Vec<Option<&'a str>>,
}

impl<'a> KeyedEvents<'a> {
    pub(super) fn of(orders: impl IntoIterator<Item = (&'a Lease, &'a [GatewayEvent])>) -> Self {
        let mut all = KeyedEvents::default();
        for (lease, events) in orders {
            for e in events {
                all.id.push(lease.id);
                all.worker.push(lease.worker);
                all.kind.push(e.kind.as_str());
                all.operation.push(text_of(e.operation));
                all.outcome.push(text_of(e.outcome));
                all.amount.push(e.amount);
                all.bank_state.push(e.bank_state.as_deref());
                all.resp_code.push(e.resp_code.as_deref());
                all.err_code.push(e.err_code.as_deref());
                all.message.push(e.message.as_deref());
                all.elapsed_ms.push(e.elapsed_ms);
                all.token.push(lease.token);
                all.retr_ref.push(e.references.retr_ref.as_deref());
                all.batch_id.push(e.references.batch_id.as_deref());
                all.batch_seq.push(e.references.batch_seq.as_deref());
            }
        }
        all
    }

    /// Binds the fifteen arrays, in `events_cte`'s order.
    pub(super) fn bind_to<'q, O>(
        self,
        q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        q.bind(self.id)
            .bind(self.worker)
            .bind(self.kind)
            .bind(self.operation)
            .bind(self.outcome)
            .bind(self.amount)
            .bind(self.bank_state)
            .bind(self.resp_code)
            .bind(self.err_code)
            .bind(self.message)
            .bind(self.elapsed_ms)
            .bind(self.token)
            .bind(self.retr_ref)
            .bind(self.batch_id)
            .bind(self.batch_seq)
    }
}

impl Store {
    /// Claims up to `batch` due orders: `refund_requested`, or `refunding` with
    /// a free lease, whose next attempt is due by `due_by` (the pass's start on
    /// the database's clock, so an order deferred in this pass waits for the next).
    pub async fn claim(
        &self,
        worker: Uuid,
        lease: Duration,
        batch: i64,
        due_by: DateTime<Utc>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let which = format!(
            "{} AND {}",
            super::queue_rules::claimable("f"),
            super::queue_rules::turn_of_order("f")
        );
        let mut meetings = 0;
        loop {
            let claim = (worker, lease, batch, due_by);
            match self
                .claim_where(claim, &which, "status = 'refunding',")
                .await
            {
                // Two claims met on one order's refunds (each saw the other's
                // refund not yet under way): the database took one; claim again.
                Err(StoreError::Database(e)) if one_under_way(&e) && meetings < 3 => meetings += 1,
                done => return done,
            }
        }
    }

    /// Up to `limit` requests refundd has not started (nothing intended or
    /// sent, no operator's retry), as a claim would read them, without
    /// claiming them: for judging the shop's rows together before a pass.
    pub async fn requests_not_started(&self, limit: i64) -> Result<Vec<OrderRecord>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS}, NULL::bigint AS unknown_age_ms, '[]'::json AS own_calls,
                    NULL::json AS others
               FROM refundd.refunds f
              WHERE {}
              ORDER BY id LIMIT $1",
            super::queue_rules::not_started("f")
        );
        let rows: Vec<ReadOrder> = sqlx::query_as(&self.sql(&sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Claims refunded orders whose refund is still settling at the bank.
    pub async fn claim_settlement_watch(
        &self,
        worker: Uuid,
        lease: Duration,
        batch: i64,
        due_by: DateTime<Utc>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.claim_where(
            (worker, lease, batch, due_by),
            &super::queue_rules::settling("f"),
            "",
        )
        .await
    }

    /// One claim: due records matching `which`, locked with SKIP LOCKED,
    /// leased to `worker` under a fresh token per record on the database's
    /// clock, with `also_set` applied.
    async fn claim_where(
        &self,
        (worker, lease, batch, due_by): (Uuid, Duration, i64, DateTime<Utc>),
        which: &str,
        also_set: &str,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let sql = claim_sql(which, also_set);
        let mut tx = self.pool.begin().await?;
        // Only the queue's claim has an index in the order records fall due.
        if !also_set.is_empty() {
            sqlx::query(CLAIM_PLANNER).execute(&mut *tx).await?;
        }
        let rows: Vec<ReadOrder> = sqlx::query_as(&self.sql(&sql))
            .bind(worker)
            .bind(secs(lease))
            .bind(batch)
            .bind(due_by)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Extends the leases these claims still hold; returns the ids renewed.
    /// A record another transaction has locked at that moment (a batch of
    /// this worker writing it) is skipped rather than waited for, and renewed
    /// at the next tick: the renewer never waits on a lock, so it can never be
    /// half of a deadlock with a batch.
    pub async fn renew_leases(
        &self,
        leases: &[(i64, Uuid)],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, tokens): (Vec<i64>, Vec<Uuid>) = leases.iter().copied().unzip();
        Ok(sqlx::query_scalar(&self.sql(
            "WITH free AS (
                 SELECT f.id FROM refundd.refunds f
                   JOIN (SELECT * FROM unnest($1::bigint[], $2::uuid[]) LIMIT cardinality($1)) AS held(id, token)
                     ON f.id = held.id AND f.lease_token = held.token
                    FOR UPDATE OF f SKIP LOCKED)
             UPDATE refundd.refunds f SET lease_expires_at = now() + make_interval(secs => $3)
               FROM free WHERE f.id = free.id
             RETURNING f.id",
        ))
        .bind(ids)
        .bind(tokens)
        .bind(secs(lease))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Appends events (an inquiry's outcome, a note) if this claim still holds the order.
    pub async fn record_events(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
    ) -> Result<(), StoreError> {
        let sql = format!(
            "WITH o AS (SELECT id, order_no, refund_id, lease_token AS token FROM refundd.refunds WHERE id = $1 AND lease_token = $2), {}
             SELECT id FROM o",
            events_cte(3)
        );
        let sql = self.sql(&sql);
        let q = sqlx::query_as::<_, (i64,)>(&sql)
            .bind(lease.id)
            .bind(lease.token);
        let held = KeyedEvents::of([(lease, events)])
            .bind_to(q)
            .fetch_optional(&self.pool)
            .await?;
        held.map(|_| ()).ok_or(StoreError::LeaseLost)
    }

    /// The order waits for a later attempt.
    pub async fn defer(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        d: &Deferral,
    ) -> Result<(), StoreError> {
        fenced_update!(
            self,
            &self.pool,
            lease,
            events,
            "status = CASE WHEN $4 AND step IS NULL AND (unknown_operation IS NULL OR NOT $7) THEN 'refund_requested' ELSE 'refunding' END,
             next_attempt_at = now() + make_interval(secs => $5),
             attempts = CASE WHEN $6 AND attempts < 2147483647 THEN attempts + 1 ELSE attempts END,
             last_error = $8,
             unknown_operation = CASE WHEN $7 THEN unknown_operation ELSE NULL END,
             unknown_since = CASE WHEN $7 THEN unknown_since ELSE NULL END,
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL",
            "",
            d.back_to_requested,
            secs(d.delay),
            d.count_attempt,
            d.keep_unknown,
            d.last_error.as_str(),
        )
        .map(|_| ())
    }

    /// Gives back claimed orders not started (shutdown, blackout).
    pub async fn release(&self, leases: &[Lease]) -> Result<u64, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
        let tokens: Vec<Uuid> = leases.iter().map(|l| l.token).collect();
        let done = sqlx::query(&self.sql(
            "UPDATE refundd.refunds f
                SET status = CASE WHEN f.status = 'refunding' AND f.step IS NULL AND f.unknown_operation IS NULL
                                  THEN 'refund_requested' ELSE f.status END,
                    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
               FROM (SELECT * FROM unnest($1::bigint[], $2::uuid[]) LIMIT cardinality($1)) AS held(id, token)
              WHERE f.id = held.id AND f.lease_token = held.token",
        ))
        .bind(ids)
        .bind(tokens)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records what the settlement watch learned; a refund that will not
    /// settle is written back to the shop as failed in the same transaction.
    pub async fn record_settlement(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        outcome: Settlement,
        recheck: Duration,
    ) -> Result<WriteBack, StoreError> {
        match outcome {
            Settlement::Settled => fenced_update!(
                self,
                &self.pool,
                lease,
                events,
                "settlement = 'settled', settled_at = now(), lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL",
                "",
            )
            .map(|_| WriteBack::Done),
            Settlement::Failed(reason) => {
                let ending = Ending::FailedAtSettlement { reason };
                self.end(lease, events, ending).await
            }
            Settlement::StillSettling => fenced_update!(
                self,
                &self.pool,
                lease,
                events,
                "settlement = CASE WHEN watch_until IS NOT NULL AND watch_until < now() THEN 'unconfirmed' ELSE 'pending' END,
                 next_attempt_at = now() + make_interval(secs => $4),
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL",
                "",
                secs(recheck),
            )
            .map(|_| WriteBack::Done),
        }
    }
}
