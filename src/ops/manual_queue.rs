//! `refundd request` and `refundd retry`: an operator puts one order into the
//! refund queue by hand, checked by the same rules the engine applies before it
//! sends anything, in one transaction with the order locked.

use crate::ctbc::types::{AmountProblem, OrderNo, RefundAmounts};
use crate::domain::refund_id::RefundId;
use crate::domain::words::{OrderStatus, RefundStatus};
use crate::store::manual_queue::{OrderToQueue, Reopened};
use crate::store::{Store, StoreError};

/// The note appended to the order's story by `refundd retry`.
pub const RETRY_NOTE: &str = "retry requested from the command line";
/// The note appended to the order's story by `refundd request`.
pub const REQUEST_NOTE: &str = "refund requested from the command line";

/// Why an order was not put in the queue. Everything but `Store` is the
/// operator's input (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0}")]
    InvalidOrderNo(String),
    #[error("order {0} does not exist in the orders table; check the order number")]
    UnknownOrder(String),
    #[error("order {0}: refundd has no record of a refund of this order; only an order whose refund failed can be retried (a paid order of the built-in table is asked for with `refundd request`)")]
    NoRefundRecord(String),
    #[error("requests come from the shop's own tables (shop.requests): mark the order for refund there; `refundd request` works on the built-in orders table only")]
    ShopMode,
    #[error("order {order_no} is {status}; {allowed}")]
    WrongStatus {
        order_no: String,
        status: OrderStatus,
        allowed: &'static str,
    },
    #[error("--amount {0}: the amount to refund must be more than 0 (leave --amount out to refund the whole amount)")]
    AmountNotPositive(i64),
    #[error("--amount {amount}: order {order_no} was authorised for {authorised}; a refund cannot be more than that")]
    AmountOverAuthorised {
        order_no: String,
        amount: i64,
        authorised: i64,
    },
    #[error("order {0} has no auth_amount; set orders.auth_amount to the authorised amount first")]
    NoAuthAmount(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueueError {
    /// Whether the fault is in what the operator asked (rather than the database).
    pub fn is_input(&self) -> bool {
        !matches!(self, QueueError::Store(_))
    }
}

/// What changed, and what the next pass would give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub order_no: String,
    /// The request's amounts as they were given, where they come from the shop.
    pub given: Given,
    /// What refundd would refund, or why it would refund nothing.
    pub refund: Result<RefundAmounts, String>,
}

/// Where a queued order's amounts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    /// The operator's `--amount` (or none) on the built-in table.
    ByOperator,
    /// The shop's query lists the order now: its amounts as the shop wrote them.
    ByShop {
        refund: Option<String>,
        authorised: Option<String>,
    },
    /// The shop's query no longer lists it: the amounts refundd last read,
    /// which the next pass works from; None: that row was not one to send
    /// (the reason, in `Queued::refund`, quotes it).
    LastRead {
        amounts: Option<(Option<i64>, Option<i64>)>,
    },
}

impl Queued {
    /// `order A1 back in the queue: refund_requested; the shop's request:
    /// NT$300.50 of NT$1,299.00 authorised; refundd would refund nothing: ...`
    pub fn line(&self, verb: &str) -> String {
        let given = match &self.given {
            Given::ByOperator => String::new(),
            Given::ByShop { refund, authorised } => format!(
                "; the shop's request: {}",
                asked(refund.as_deref().map(nt_text), authorised.as_deref().map(nt_text))
            ),
            Given::LastRead { amounts } => format!(
                "; the shop's requests no longer list it, so the next pass works from its request as refundd last read it{}",
                amounts.map_or(String::new(), |(refund, authorised)| {
                    format!(": {}", asked(refund.map(nt), authorised.map(nt)))
                })
            ),
        };
        let (would, next) = match &self.refund {
            Ok(a) if a.refund < a.authorised => (
                format!(
                    "{} of the {} authorised, a part",
                    nt(a.refund),
                    nt(a.authorised)
                ),
                "the next pass works it",
            ),
            Ok(a) => (
                format!("{}, the whole authorised amount", nt(a.refund)),
                "the next pass works it",
            ),
            Err(why) => (
                format!("nothing: {why}"),
                "the next pass fails it again unless the request is corrected",
            ),
        };
        format!(
            "order {} {verb}: refund_requested{given}; refundd would refund {would}; {next}",
            self.order_no
        )
    }
}

/// `NT$300.50 of NT$1,299.00 authorised`, or `all of ...`.
fn asked(refund: Option<String>, authorised: Option<String>) -> String {
    let authorised = authorised.unwrap_or_else(|| "no amount".into());
    match refund {
        Some(r) => format!("{r} of {authorised} authorised"),
        None => format!("all of {authorised} authorised"),
    }
}

/// A whole amount of NT$, in words: `NT$1,299`.
fn nt(amount: i64) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}NT${}", group(&amount.unsigned_abs().to_string()))
}

/// An amount as the shop wrote it, in NT$ words: `1299.00` is `NT$1,299.00`.
fn nt_text(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    match digits.split_once('.') {
        Some((whole, fraction)) => format!("{sign}NT${}.{fraction}", group(whole)),
        None => format!("{sign}NT${}", group(digits)),
    }
}

/// Digits grouped by thousands: `1299` is `1,299`.
fn group(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a pass would refund of these amounts, or why nothing: the row's
/// problem as read, else the rule every refund keeps (`RefundAmounts`).
fn would_refund(
    authorised: Option<i64>,
    refund: Option<i64>,
    bad_input: Option<&str>,
) -> Result<RefundAmounts, String> {
    if let Some(why) = bad_input {
        return Err(why.to_string());
    }
    RefundAmounts::check(authorised, refund).map_err(|p| match p {
        AmountProblem::NoAuthorised => "the request names no authorised amount".to_string(),
        AmountProblem::AuthorisedNotPositive(a) => format!("the authorised amount is {}", nt(a)),
        AmountProblem::RefundNotPositive { refund, .. } => {
            format!("the amount to refund is {}, not more than 0", nt(refund))
        }
        AmountProblem::RefundOverAuthorised { refund, authorised } => format!(
            "the amount to refund, {}, is more than the {} authorised",
            nt(refund),
            nt(authorised)
        ),
    })
}

fn parse_order_no(raw: &str) -> Result<OrderNo, QueueError> {
    OrderNo::parse(raw).map_err(|e| QueueError::InvalidOrderNo(e.to_string()))
}

fn found(order: Option<OrderToQueue>, order_no: &OrderNo) -> Result<OrderToQueue, QueueError> {
    order.ok_or_else(|| QueueError::UnknownOrder(order_no.to_string()))
}

/// Checks `--amount` against the authorisation, as the engine does before it
/// sends anything: `0 < amount <= auth_amount`.
pub fn check_amount(order: &OrderToQueue, amount: Option<i64>) -> Result<(), QueueError> {
    match RefundAmounts::check(order.auth_amount, amount) {
        Ok(_) => Ok(()),
        Err(AmountProblem::NoAuthorised | AmountProblem::AuthorisedNotPositive(_)) => {
            Err(QueueError::NoAuthAmount(order.order_no.clone()))
        }
        Err(AmountProblem::RefundNotPositive { refund, .. }) => {
            Err(QueueError::AmountNotPositive(refund))
        }
        Err(AmountProblem::RefundOverAuthorised { refund, authorised }) => {
            Err(QueueError::AmountOverAuthorised {
                order_no: order.order_no.clone(),
                amount: refund,
                authorised,
            })
        }
    }
}

/// A `paid` order to `refund_requested`, for `amount` or all of it.
pub async fn request(
    store: &Store,
    order_no: &str,
    amount: Option<i64>,
) -> Result<Queued, QueueError> {
    if !store.shop().is_builtin() {
        return Err(QueueError::ShopMode);
    }
    let order_no = parse_order_no(order_no)?;
    let order = store
        .request_by_hand(order_no.as_str(), amount, REQUEST_NOTE, |order| {
            requestable(order)?;
            check_amount(&with_balance(order), amount)
        })
        .await?;
    let order = with_balance(&found(order, &order_no)?);
    Ok(Queued {
        order_no: order.order_no,
        given: Given::ByOperator,
        refund: would_refund(order.auth_amount, amount, None),
    })
}

/// The order as a further part is checked against: what is left of its
/// authorised amount once its refunds so far are counted.
fn with_balance(order: &OrderToQueue) -> OrderToQueue {
    let mut left = order.clone();
    if order.status == OrderStatus::Refund(RefundStatus::Refunded) {
        left.auth_amount = order
            .auth_amount
            .map(|a| a - order.refunded_amount.unwrap_or(0));
    }
    left
}

/// A `paid` order can be requested, and an order refunded in part asked a
/// further part.
fn requestable(order: &OrderToQueue) -> Result<(), QueueError> {
    // Refunded without a figure of what it had back: taken as whole.
    let whole = match (order.refunded_amount, order.auth_amount) {
        (Some(back), Some(authorised)) => back >= authorised,
        _ => true,
    };
    let allowed = match order.status {
        OrderStatus::Paid => return Ok(()),
        OrderStatus::Refund(RefundStatus::Refunded) if !whole => return Ok(()),
        OrderStatus::Refund(RefundStatus::RefundFailed) => "only a paid order can be requested; use `refundd retry` to put a refund_failed order back in the queue",
        OrderStatus::Refund(RefundStatus::RefundRequested | RefundStatus::Refunding) => "it is already in the refund queue; only a paid order can be requested",
        OrderStatus::Refund(RefundStatus::Refunded) => "it was already refunded whole; only a paid order, or one refunded in part, can be requested",
        OrderStatus::Refund(RefundStatus::Withdrawn) => "only a paid order can be requested",
        OrderStatus::Refund(RefundStatus::Cancelled) => "its refund was cancelled before the bank's batch; only a paid order can be requested",
    };
    Err(QueueError::WrongStatus {
        order_no: order.order_no.clone(),
        allowed,
        status: order.status,
    })
}

/// A `refund_failed` refund back to `refund_requested`, attempts reset:
/// the order's only refund, or the one `refund` names (`--refund`).
pub async fn retry(
    store: &Store,
    order_no: &str,
    refund: Option<&str>,
) -> Result<Queued, QueueError> {
    let order_no = parse_order_no(order_no)?;
    let (refund_id, _) = RefundId::from_shop(refund);
    let which = format!("{}{refund_id}", order_no.as_str());
    let reopened = store
        .retry_by_hand((order_no.as_str(), &refund_id), RETRY_NOTE, |order| {
            retryable(order)?;
            check_amount(order, order.refund_amount)
        })
        .await?
        .ok_or(QueueError::NoRefundRecord(which.clone()))?;
    let mut queued = as_the_next_pass_reads(reopened);
    queued.order_no = which;
    Ok(queued)
}

/// A reopened order's request as the next pass reads it: the shop's row if
/// its query lists the order, else refundd's record.
fn as_the_next_pass_reads(reopened: Reopened) -> Queued {
    let Reopened { order, shop_now } = reopened;
    let (given, refund) = match shop_now {
        Some(now) => (
            Given::ByShop {
                refund: now.refund_text,
                authorised: now.auth_text,
            },
            would_refund(now.auth_amount, now.refund_amount, now.bad_input.as_deref()),
        ),
        None => (
            Given::LastRead {
                amounts: order
                    .bad_input
                    .is_none()
                    .then_some((order.refund_amount, order.auth_amount)),
            },
            would_refund(
                order.auth_amount,
                order.refund_amount,
                order.bad_input.as_deref(),
            ),
        ),
    };
    Queued {
        order_no: order.order_no,
        given,
        refund,
    }
}

/// Only a `refund_failed` order can be retried.
fn retryable(order: &OrderToQueue) -> Result<(), QueueError> {
    let allowed = match order.status {
        OrderStatus::Refund(RefundStatus::RefundFailed) => return Ok(()),
        OrderStatus::Paid => "only a refund_failed order can be retried; use `refundd request` to request a refund of a paid order",
        OrderStatus::Refund(RefundStatus::RefundRequested | RefundStatus::Refunding) => "it is already in the refund queue; only a refund_failed order can be retried",
        OrderStatus::Refund(RefundStatus::Refunded) => "it was already refunded, and an order is refunded once; only a refund_failed order can be retried",
        OrderStatus::Refund(RefundStatus::Withdrawn) => "only a refund_failed order can be retried",
        OrderStatus::Refund(RefundStatus::Cancelled) => "its refund was cancelled at an operator's request and is not retried; only a refund_failed order can be retried",
    };
    Err(QueueError::WrongStatus {
        order_no: order.order_no.clone(),
        allowed,
        status: order.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_said_in_nt_dollars_as_given() {
        assert_eq!(nt(1299), "NT$1,299");
        assert_eq!(nt(300), "NT$300");
        assert_eq!(nt(1_000_000), "NT$1,000,000");
        assert_eq!(nt_text("300.50"), "NT$300.50");
        assert_eq!(nt_text("1299.00"), "NT$1,299.00");
        assert_eq!(nt_text("-5"), "-NT$5");
    }

    #[test]
    fn a_line_says_what_was_asked_and_what_would_be_refunded() {
        let queued = Queued {
            order_no: "HALF".into(),
            given: Given::ByShop {
                refund: Some("300.50".into()),
                authorised: Some("1299.00".into()),
            },
            refund: Err("invalid row: refund_amount is 300.50, which has a fraction".into()),
        };
        assert_eq!(
            queued.line("back in the queue"),
            "order HALF back in the queue: refund_requested; the shop's request: NT$300.50 of NT$1,299.00 authorised; refundd would refund nothing: invalid row: refund_amount is 300.50, which has a fraction; the next pass fails it again unless the request is corrected"
        );
        let queued = Queued {
            order_no: "A1".into(),
            given: Given::ByOperator,
            refund: would_refund(Some(1000), None, None),
        };
        assert_eq!(
            queued.line("requested"),
            "order A1 requested: refund_requested; refundd would refund NT$1,000, the whole authorised amount; the next pass works it"
        );
    }
}
