//! The queue's rules in SQL, each written once: which records a claim takes,
//! which the settlement watch takes, what a reading of the shop's requests
//! does to a record (follow its values, reopen it, withdraw it, mark it asked
//! again). The pass's statements (`intake`, `refunds`, `status`) and the plan's
//! read-only reading (`plan`) are built from these, so `refundd plan` cannot
//! apply a rule the pass does not, or miss one it does.
//!
//! Each rule is a boolean expression over one record of `refundd.refunds`,
//! written against the alias it is given.

/// Worked by a claim now: requested, or under way with its lease lapsed.
pub(super) fn claimable(a: &str) -> String {
    format!(
        "({a}.status = 'refund_requested'
          OR ({a}.status = 'refunding' AND ({a}.lease_expires_at IS NULL OR {a}.lease_expires_at < now())))"
    )
}

/// The order's turn has come to this refund: its refunds are worked one at
/// a time, oldest first (by record, `id`; a request not yet recorded, `id`
/// 0, is the newest), so no other refund of the order is under way, nor an
/// older one waiting. Never two money-moving calls for one order in flight.
/// Written as a scalar subquery whose status test no partial index's
/// condition follows from, so that it stays one look-up by the order's key
/// per candidate, whatever the statistics say (an anti-join, or a scan of
/// the queue's index, would read every record waiting).
pub(super) fn turn_of_order(a: &str) -> String {
    format!(
        "(SELECT 1 FROM refundd.refunds s
           WHERE s.order_no = {a}.order_no AND s.refund_id <> {a}.refund_id
             AND CASE s.status WHEN 'refunding' THEN true
                               WHEN 'refund_requested' THEN s.id < {a}.id OR {a}.id = 0
                               ELSE false END
           LIMIT 1) IS NULL"
    )
}

/// Its next attempt is due by `by` (an SQL expression: `now()`, a parameter):
/// one range of `due_order`, so the queue's index (`refunds_due`) gives the
/// due records in their order and a claim reads no more of them than it takes.
pub(super) fn due_by(a: &str, by: &str) -> String {
    format!("({} <= {by})", due_order(a))
}

/// The order records fall due in: no next attempt (due at once) first.
pub(super) fn due_order(a: &str) -> String {
    format!("coalesce({a}.next_attempt_at, '-infinity'::timestamptz)")
}

/// Another worker holds it under a live lease.
pub(super) fn held(a: &str) -> String {
    format!("({a}.status = 'refunding' AND coalesce({a}.lease_expires_at >= now(), false))")
}

/// A refund of settled money the settlement watch inquires (when due).
pub(super) fn settling(a: &str) -> String {
    format!(
        "({a}.status = 'refunded' AND {a}.settlement = 'pending'
          AND ({a}.lease_expires_at IS NULL OR {a}.lease_expires_at < now()))"
    )
}

/// Nothing of refundd's was sent or may have been, and no operator asked for
/// it by hand: a request the shop stops listing is withdrawn.
pub(super) fn withdrawable(a: &str) -> String {
    format!(
        "({} AND {a}.claimed_amount IS NULL AND {a}.step IS NULL
          AND {a}.unknown_operation IS NULL AND NOT {a}.retried_by_operator)",
        claimable(a)
    )
}

/// A reading taken in snapshot `snapshot` saw the transaction that ended
/// refundd's work on the record: only then does the shop listing it count as
/// asking again.
pub(super) fn seen(a: &str, snapshot: &str) -> String {
    format!("coalesce(pg_visible_in_snapshot({a}.decided_xid, {snapshot}::pg_snapshot), false)")
}

/// A failed refund the shop was told of, listed again: a new request.
pub(super) fn reopens_failed(a: &str, snapshot: &str) -> String {
    format!(
        "({a}.status = 'refund_failed' AND {a}.shop_told_failed AND {})",
        seen(a, snapshot)
    )
}

/// A withdrawn request, or a failed one the shop was told of, listed again:
/// a new request (attempts from 0, due now).
pub(super) fn reopens(a: &str, snapshot: &str) -> String {
    format!(
        "(({a}.status = 'withdrawn' AND {}) OR {})",
        seen(a, snapshot),
        reopens_failed(a, snapshot)
    )
}

/// The record takes the shop's values: until its first money-moving intent
/// fixes the amount, or when a failed refund reopens.
pub(super) fn follows_shop(a: &str, snapshot: &str) -> String {
    format!(
        "({a}.claimed_amount IS NULL OR {})",
        reopens_failed(a, snapshot)
    )
}

/// The shop lists again an order refundd refunded and wrote back: it is
/// refunded once, and only marked asked again.
pub(super) fn asked_again(a: &str, snapshot: &str) -> String {
    format!(
        "({a}.status = 'refunded' AND {a}.writeback IS NULL AND {})",
        seen(a, snapshot)
    )
}

/// Requested, and nothing intended, sent or asked for by hand yet: the rows
/// a mapping mistake is judged on (`engine::mapping`).
pub(super) fn not_started(a: &str) -> String {
    format!(
        "({a}.status = 'refund_requested' AND {a}.claimed_amount IS NULL AND {a}.step IS NULL
          AND {a}.unknown_operation IS NULL AND NOT {a}.retried_by_operator)"
    )
}
