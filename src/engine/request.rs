// A refund request as the engine works it: an order row that passed validation.
// Validation happens before anything is sent, so a bad row ends in
// `refund_failed` with its reason instead of reaching the bank.

use crate::ctbc::types::{AuthCode, Currency, Money, OrderNo, Xid};
use crate::ctbc::Operation;
use crate::store::OrderRow;
use std::time::Duration;

/// How the money went back, as recorded in `orders.refund_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefundMethod {
    /// The authorisation was cancelled (or lowered) before capture.
    Reversal,
    /// Taken out of the capture file, then the authorisation cancelled.
    CaptureReversalAndReversal,
    /// A refund of settled money.
    Refund,
}

impl RefundMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundMethod::Reversal => "reversal",
            RefundMethod::CaptureReversalAndReversal => "capture_reversal+reversal",
            RefundMethod::Refund => "refund",
        }
    }
}

/// The step an order has reached whose outcome is committed.
pub const STEP_CAPTURE_REVERSED: &str = "capture_reversed";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub id: i64,
    pub order_no: OrderNo,
    pub xid: Xid,
    pub auth_code: Option<AuthCode>,
    pub currency: Currency,
    /// What the shop recorded as authorised.
    pub authorised: i64,
    /// What is to be given back now; equal to `authorised` for a full refund.
    pub refund: i64,
    /// A capture reversal of ours is known (or, after a lost answer, likely) done.
    pub capture_reversed: bool,
    /// A money-moving call of ours whose outcome is unknown, and how long ago
    /// (on the database's clock, when the order was claimed) it was about to be sent.
    pub unknown: Option<(Operation, Duration)>,
    pub attempts: i32,
}

impl RefundRequest {
    pub fn is_full(&self) -> bool {
        self.refund == self.authorised
    }

    pub fn money(&self, amount: i64) -> Money {
        Money {
            currency: self.currency.code,
            amount,
            exponent: self.currency.exponent,
        }
    }

    /// Checks a claimed row; the error is the reason stored in `refund_error`.
    pub fn validate(row: &OrderRow) -> Result<RefundRequest, String> {
        let order_no = OrderNo::parse(&row.order_no).map_err(|e| format!("invalid row: {e}"))?;
        let xid = match row.xid.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(
                    "invalid row: xid is missing; set orders.xid to the authorisation's XID".into(),
                )
            }
            Some(x) => Xid::parse(x).map_err(|e| format!("invalid row: {e}"))?,
        };
        let auth_code = match row.auth_code.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(AuthCode::parse(a).map_err(|e| format!("invalid row: {e}"))?),
        };
        let currency = Currency::parse(&row.currency).map_err(|e| format!("invalid row: {e}"))?;
        let authorised = match row.auth_amount {
            Some(a) if a > 0 => a,
            Some(a) => {
                return Err(format!(
                "invalid row: auth_amount is {a}; it must be the authorised amount, more than 0"
            ))
            }
            None => {
                return Err(
                    "invalid row: auth_amount is missing; set it to the authorised amount".into(),
                )
            }
        };
        let wanted = row
            .claimed_amount
            .or(row.refund_amount)
            .unwrap_or(authorised);
        if wanted <= 0 || wanted > authorised {
            return Err(format!(
                "invalid row: refund_amount is {wanted}; it must be more than 0 and at most auth_amount ({authorised}), or NULL for the whole amount"
            ));
        }
        let unknown = row
            .unknown_operation
            .as_deref()
            .and_then(Operation::parse)
            .map(|op| {
                let age_ms = row.unknown_age_ms.unwrap_or(0).max(0) as u64;
                (op, Duration::from_millis(age_ms))
            });
        let capture_reversed = row.step.as_deref() == Some(STEP_CAPTURE_REVERSED)
            || matches!(unknown, Some((Operation::CaptureReversal, _)));
        Ok(RefundRequest {
            id: row.id,
            order_no,
            xid,
            auth_code,
            currency,
            authorised,
            refund: wanted,
            capture_reversed,
            unknown,
            attempts: row.attempts,
        })
    }
}
