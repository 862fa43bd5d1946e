//! What can go wrong when refundd talks to CTBC, sorted by what the engine must do
//! next: try later, inquire before anything else, give up on this request, or ask
//! a person. Every message is written for the operator reading the log.

use super::operation::Operation;
use super::types::{InvalidField, Money};

#[derive(Debug, thiserror::Error)]
pub enum CtbcError {
    /// Nothing reached the bank, or an inquiry failed in any way: no verdict on
    /// the order, try again later.
    #[error(
        "CTBC gateway unavailable for the {operation}: {reason}; nothing was decided about the order, try again later"
    )]
    Unavailable {
        operation: Operation,
        reason: String,
    },
    /// A money-moving call was sent and no well-formed answer came back: the
    /// bank may have acted. Never repeat it before an inquiry shows it did not
    /// happen.
    #[error(
        "the {operation} was sent to CTBC but no readable answer came back ({reason}); the bank may have carried it out, so inquire before sending anything else for this order"
    )]
    Ambiguous {
        operation: Operation,
        reason: String,
    },
    /// The bank answered and said no.
    #[error("CTBC refused the {operation}: RespCode {resp_code}, ErrCode {err_code}: {message}")]
    Refused {
        operation: Operation,
        resp_code: String,
        err_code: String,
        message: String,
    },
    /// The bank does not know the order number it was asked about.
    #[error(
        "CTBC does not know this order number (RespCode {resp_code}, ErrCode {err_code}: {message}); check the order number against the shop's payment records"
    )]
    UnknownOrder {
        resp_code: String,
        err_code: String,
        message: String,
    },
    /// An inquiry answer that came back as an envelope but cannot be trusted or
    /// read: no verdict on the order.
    #[error(
        "CTBC's answer to the {operation} could not be used ({reason}); no verdict on the order, try again later, and check the MAC key and IV in the settings if this persists"
    )]
    BadAnswer {
        operation: Operation,
        reason: String,
    },
    /// The bank accepted a refund of another amount than the one asked.
    #[error(
        "CTBC accepted the refund but reports {refunded} refunded instead of the {asked} asked; a person must reconcile this order with the bank"
    )]
    RefundAmountMismatch { asked: Money, refunded: Money },
    /// Our own request breaks a documented limit; nothing was sent.
    #[error("request not sent to CTBC: {0}")]
    Invalid(#[from] InvalidField),
}

impl CtbcError {
    /// Short stable name of the error class, for metrics labels and events.
    pub fn kind(&self) -> &'static str {
        match self {
            CtbcError::Unavailable { .. } => "unavailable",
            CtbcError::Ambiguous { .. } => "ambiguous",
            CtbcError::Refused { .. } => "refused",
            CtbcError::UnknownOrder { .. } => "unknown_order",
            CtbcError::BadAnswer { .. } => "bad_answer",
            CtbcError::RefundAmountMismatch { .. } => "refund_amount_mismatch",
            CtbcError::Invalid(_) => "invalid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable() {
        let e = CtbcError::Ambiguous {
            operation: Operation::Refund,
            reason: "timed out".into(),
        };
        assert_eq!(e.kind(), "ambiguous");
        assert!(e.to_string().contains("inquire"));
        let e = CtbcError::Invalid(InvalidField::new("amount", "negative"));
        assert_eq!(e.kind(), "invalid");
    }
}
