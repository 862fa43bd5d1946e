//! `refundd request` and `refundd retry`: an operator puts one order into the
//! refund queue by hand, checked by the same rules the engine applies before it
//! sends anything, in one transaction with the order locked.

use crate::ctbc::types::{AmountProblem, OrderNo, RefundAmounts};
use crate::store::manual_queue::OrderToQueue;
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
        status: String,
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

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub order_no: String,
    /// None: the whole authorised amount.
    pub amount: Option<i64>,
    pub authorised: Option<i64>,
}

impl Queued {
    pub fn line(&self, verb: &str) -> String {
        let how_much = match (self.amount, self.authorised) {
            (Some(a), Some(auth)) if a < auth => format!("{a} of {auth} (partial)"),
            (_, Some(auth)) => format!("the whole {auth}"),
            (Some(a), None) => a.to_string(),
            (None, None) => "the whole amount".to_string(),
        };
        format!(
            "order {} {verb}: refund_requested, {how_much}; the next pass works it",
            self.order_no
        )
    }
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
            check_amount(order, amount)
        })
        .await?;
    let order = found(order, &order_no)?;
    Ok(Queued {
        order_no: order.order_no,
        amount,
        authorised: order.auth_amount,
    })
}

/// Only a `paid` order can be requested.
fn requestable(order: &OrderToQueue) -> Result<(), QueueError> {
    if order.status == "paid" {
        return Ok(());
    }
    Err(QueueError::WrongStatus {
        order_no: order.order_no.clone(),
        allowed: match order.status.as_str() {
            "refund_failed" => "only a paid order can be requested; use `refundd retry` to put a refund_failed order back in the queue",
            "refund_requested" | "refunding" => "it is already in the refund queue; only a paid order can be requested",
            "refunded" => "it was already refunded, and an order is refunded once; only a paid order can be requested",
            _ => "only a paid order can be requested",
        },
        status: order.status.clone(),
    })
}

/// A `refund_failed` order back to `refund_requested`, attempts reset.
pub async fn retry(store: &Store, order_no: &str) -> Result<Queued, QueueError> {
    let order_no = parse_order_no(order_no)?;
    let order = store
        .retry_by_hand(order_no.as_str(), RETRY_NOTE, |order| {
            retryable(order)?;
            check_amount(order, order.refund_amount)
        })
        .await?
        .ok_or_else(|| QueueError::NoRefundRecord(order_no.to_string()))?;
    Ok(Queued {
        order_no: order.order_no,
        amount: order.refund_amount,
        authorised: order.auth_amount,
    })
}

/// Only a `refund_failed` order can be retried.
fn retryable(order: &OrderToQueue) -> Result<(), QueueError> {
    if order.status == "refund_failed" {
        return Ok(());
    }
    Err(QueueError::WrongStatus {
        order_no: order.order_no.clone(),
        allowed: match order.status.as_str() {
            "paid" => "only a refund_failed order can be retried; use `refundd request` to request a refund of a paid order",
            "refund_requested" | "refunding" => "it is already in the refund queue; only a refund_failed order can be retried",
            "refunded" => "it was already refunded, and an order is refunded once; only a refund_failed order can be retried",
            _ => "only a refund_failed order can be retried",
        },
        status: order.status.clone(),
    })
}
