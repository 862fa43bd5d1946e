//! An order with several refunds: the bank's books of it held against
//! refundd's records of its refunds, as the chaos run of the returns shop and
//! the model of several refunds check them once the passes are over. The bank
//! gave back what refundd's refunded records say, to the unit; each refund of
//! settled money the bank holds is one record's, with its amount and, where
//! refundd heard the answer, its references; no call moved money twice; never
//! more than was authorised; a refund over the order's balance failed with
//! nothing sent; and every record ended in a state that explains the books.
//!
//! One thing only the bank can settle: a later refund of settled money whose
//! answer was lost, on an order whose earlier refunds refundd sent too. The
//! bank's state (20 to 22) cannot tell that refund from the earlier ones, so
//! refundd gives it to a person, naming the call whose outcome is unknown;
//! its money may or may not be among the bank's refunds, and the balance
//! guard counts it as given. The books are explained either way, and the
//! check says which way the bank went.

use refundd::sim::{CallDisposition, CallRecord, SimTx};
use refundd::store::shop_examples::{returns_of, ReturnRow};
use sqlx::PgPool;

/// refundd's record of one refund of an order, with what its story holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundRecord {
    pub refund_id: String,
    pub status: String,
    pub refund_amount: Option<i64>,
    pub claimed_amount: Option<i64>,
    pub refunded_amount: Option<i64>,
    pub refund_method: Option<String>,
    pub refund_error: Option<String>,
    pub last_error: Option<String>,
    pub unknown_operation: Option<String>,
    /// A lease holds it.
    pub claimed: bool,
    /// The money-moving calls its story says were about to be sent.
    pub intents: i64,
    /// The RetrRef of each refund of its that the bank accepted and answered.
    pub retr_refs: Vec<String>,
}

/// The refunds of one order as refundd records them, oldest first (the
/// order in which they are worked).
pub async fn refund_records(pool: &PgPool, order_no: &str) -> Vec<RefundRecord> {
    sqlx::query_as(
        "SELECT r.refund_id, r.status, r.refund_amount, r.claimed_amount, r.refunded_amount,
                r.refund_method, r.refund_error, r.last_error, r.unknown_operation,
                r.lease_owner IS NOT NULL AS claimed,
                (SELECT count(*) FROM refund_events e
                  WHERE e.order_no = r.order_no AND e.refund_id = r.refund_id
                    AND e.kind = 'intent') AS intents,
                ARRAY(SELECT e.retr_ref FROM refund_events e
                       WHERE e.order_no = r.order_no AND e.refund_id = r.refund_id
                         AND e.kind = 'outcome' AND e.operation = 'refund'
                         AND e.outcome = 'accepted' AND e.retr_ref IS NOT NULL
                       ORDER BY e.id) AS retr_refs
           FROM refunds r WHERE r.order_no = $1 ORDER BY r.id",
    )
    .bind(order_no)
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("the refunds of {order_no}: {e}"))
}

/// What one record stands for in the bank's refunds of settled money.
#[derive(Debug, Clone, Copy)]
enum Filed<'a> {
    /// Refunded by a refund: the bank holds it, this amount.
    Surely(&'a RefundRecord, i64),
    /// Given to a person with its refund's outcome unknown: the bank may hold it.
    Perhaps(&'a RefundRecord, i64),
}

/// What the books of an order must agree with, summed from its records.
#[derive(Debug, Default)]
struct Expected<'a> {
    /// Given back by the records refunded.
    given: i64,
    /// The records' refunds of settled money, oldest first.
    refunds: Vec<Filed<'a>>,
    reversals: usize,
    capture_reversals: usize,
}

/// Every fact the books must show of order `order_no`, authorised for
/// `authorised`, given its records (oldest first), the bank's transaction and
/// the bank's calls for it. Panics naming the order and the whole picture.
pub fn assert_books_explained(
    order_no: &str,
    authorised: i64,
    records: &[RefundRecord],
    tx: &SimTx,
    calls: &[CallRecord],
) {
    let picture = || {
        format!("order {order_no} ({authorised} authorised)\nrecords: {records:#?}\nbank: {tx:#?}\ncalls: {calls:#?}")
    };
    let expected =
        expected_of(authorised, records).unwrap_or_else(|why| panic!("{why}\n{}", picture()));
    assert!(
        expected.given <= authorised,
        "refundd recorded {} given back of {authorised}\n{}",
        expected.given,
        picture()
    );
    assert!(
        tx.returned_amount <= authorised,
        "the bank gave back {} of {authorised}\n{}",
        tx.returned_amount,
        picture()
    );
    let sent_twice: Vec<&CallRecord> = calls.iter().filter(|c| c.duplicate).collect();
    assert!(
        sent_twice.is_empty(),
        "calls the bank took for repeats: {sent_twice:#?}\n{}",
        picture()
    );
    let matched =
        match_refunds(&expected.refunds, tx).unwrap_or_else(|why| panic!("{why}\n{}", picture()));
    assert_eq!(
        tx.returned_amount,
        expected.given + matched,
        "the bank's money given back against refundd's refunded records (plus {matched} of refunds a person was given with their outcome unknown)\n{}",
        picture()
    );
    let accepted = |op: &str| {
        calls
            .iter()
            .filter(|c| c.operation == op && c.outcome == CallDisposition::Accepted)
            .count()
    };
    let held = tx.refunds.len();
    assert_eq!(
        accepted("refund"),
        held,
        "accepted refunds against the bank's list\n{}",
        picture()
    );
    assert_eq!(
        (accepted("reversal"), accepted("capture_reversal"), accepted("refund_reversal")),
        (expected.reversals, expected.capture_reversals, 0),
        "accepted reversals, capture reversals and refund reversals against the records refunded by them\n{}",
        picture()
    );
}

/// Walks the records in the order they were worked: each asked what its
/// request says (or what the others left), judged against the balance they
/// left; refunded, failed for a reason the books explain, nothing else.
fn expected_of(authorised: i64, records: &[RefundRecord]) -> Result<Expected<'_>, String> {
    let mut e = Expected::default();
    // What the balance guard counts: given back, or perhaps given back.
    let mut committed = 0;
    let mut earlier_refund = false;
    for r in records {
        let id = &r.refund_id;
        let left = authorised - committed;
        let rest = (committed > 0 && left > 0).then_some(left);
        let asked = r
            .claimed_amount
            .or(r.refund_amount)
            .or(rest)
            .unwrap_or(authorised);
        let error = r.refund_error.as_deref().unwrap_or_default();
        let said_over = error.contains("over the order's balance");
        if asked > left {
            if r.status != "refund_failed" || !said_over || r.intents > 0 || r.claimed {
                return Err(format!("{id} asks {asked} with {left} left: it must fail over the balance with nothing sent"));
            }
            continue;
        }
        if said_over {
            return Err(format!(
                "{id} failed over the balance with {left} left for its {asked}"
            ));
        }
        if r.claimed {
            return Err(format!("{id} is still claimed"));
        }
        match (r.status.as_str(), r.refund_method.as_deref()) {
            ("refunded", method) => {
                if r.refunded_amount != Some(asked) {
                    return Err(format!(
                        "{id} refunded {:?} of the {asked} asked",
                        r.refunded_amount
                    ));
                }
                committed += asked;
                e.given += asked;
                match method {
                    Some("refund") => {
                        earlier_refund = true;
                        e.refunds.push(Filed::Surely(r, asked));
                    }
                    Some("reversal") => e.reversals += 1,
                    Some("capture_reversal+reversal") => {
                        e.reversals += 1;
                        e.capture_reversals += 1;
                    }
                    other => return Err(format!("{id} refunded by {other:?}")),
                }
            }
            ("refund_failed", _) => {
                let unknown_refund = r.unknown_operation.as_deref() == Some("refund");
                if !(unknown_refund && earlier_refund && error.contains("outcome is unknown")) {
                    return Err(format!(
                        "{id} failed for a reason the books do not explain: {error:?}"
                    ));
                }
                committed += asked;
                e.refunds.push(Filed::Perhaps(r, asked));
            }
            (other, _) => {
                return Err(format!(
                    "{id} still {other} ({:?}): not ended",
                    r.last_error
                ));
            }
        }
    }
    Ok(e)
}

/// Lays the bank's refunds over the records' in order: every record refunded
/// by a refund has its own (its amount, its RetrRef where refundd heard the
/// answer), a record given to a person perhaps, nothing else. Gives what the
/// bank holds of the latter.
fn match_refunds(filed: &[Filed<'_>], tx: &SimTx) -> Result<i64, String> {
    if tx.refunds.iter().any(|r| r.reversed) {
        return Err("the bank holds a reversed refund; refundd never reverses one".into());
    }
    let bank: Vec<(i64, &str)> = tx
        .refunds
        .iter()
        .map(|r| (r.amount, r.retr_ref.as_str()))
        .collect();
    lay_over(filed, &bank).ok_or_else(|| {
        format!("the bank's refunds {bank:?} are not the records' refunds, one each, in order")
    })
}

/// The bank's refunds `bank` (amount, RetrRef) as `filed`, in order: the sum
/// of the perhaps-refunds the bank holds, or `None` if no reading fits.
fn lay_over(filed: &[Filed<'_>], bank: &[(i64, &str)]) -> Option<i64> {
    let Some((first, rest)) = filed.split_first() else {
        return bank.is_empty().then_some(0);
    };
    let heard = |r: &RefundRecord, retr_ref: &str| {
        r.retr_refs.is_empty() || r.retr_refs.iter().any(|x| x == retr_ref)
    };
    match *first {
        Filed::Surely(r, amount) => {
            let (&(held, retr_ref), later) = bank.split_first()?;
            (held == amount && r.retr_refs.len() <= 1 && heard(r, retr_ref))
                .then(|| lay_over(rest, later))?
        }
        Filed::Perhaps(r, amount) => {
            let held = bank
                .split_first()
                .filter(|((held, retr_ref), _)| *held == amount && heard(r, retr_ref))
                .and_then(|(_, later)| lay_over(rest, later))
                .map(|more| more + amount);
            held.or_else(|| lay_over(rest, bank))
        }
    }
}

/// The returns shop was told each ended refund's outcome on its own row:
/// refunded with refundd's amount and method, or failed with a note.
pub async fn assert_shop_told(pool: &PgPool, order_no: &str, records: &[RefundRecord]) {
    let rows: Vec<ReturnRow> = returns_of(pool, order_no).await.unwrap();
    for r in records {
        let row = rows
            .iter()
            .find(|row| row.return_no == r.refund_id)
            .unwrap_or_else(|| panic!("no return {} of {order_no}: {rows:?}", r.refund_id));
        let refunded = row.refunded.map(i64::from);
        match r.status.as_str() {
            "refunded" => assert_eq!(
                (row.state.as_str(), refunded, row.method.as_deref()),
                ("refunded", r.refunded_amount, r.refund_method.as_deref()),
                "{order_no}: {row:?} against {r:?}"
            ),
            "refund_failed" => assert!(
                row.state == "refund_failed" && row.note.as_deref().is_some_and(|n| !n.is_empty()),
                "{order_no}: {row:?} against {r:?}"
            ),
            _ => assert_eq!(row.state, "approved", "{order_no}: {row:?} against {r:?}"),
        }
    }
}
