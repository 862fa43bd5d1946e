// What can go wrong when refundd talks to CTBC, sorted by what the engine must do
// next: try later, inquire before anything else, give up on this request, or ask
// a person. Every message is written for the operator reading the log.

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

/// Masks anything in free text that looks like a full card number (a run of
/// 13 to 19 digits, spaces or dashes allowed between them), keeping the first
/// six and last four digits as the bank does. Bank-provided text goes through
/// this before it reaches an error, a log line or the database.
pub fn mask_card_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run of digits, possibly grouped by single spaces or dashes.
        let start = i;
        let mut end = i;
        let mut digits = 0;
        let mut j = i;
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if (chars[j] == ' ' || chars[j] == '-')
                && j + 1 < chars.len()
                && chars[j + 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        let run = &chars[start..end];
        if (13..=19).contains(&digits) {
            let mut seen = 0;
            for &c in run {
                if c.is_ascii_digit() {
                    seen += 1;
                    if seen <= 6 || seen > digits - 4 {
                        out.push(c);
                    } else {
                        out.push('*');
                    }
                } else {
                    out.push(c);
                }
            }
        } else {
            out.extend(run);
        }
        i = end;
    }
    out
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

    #[test]
    fn card_numbers_in_text_are_masked() {
        assert_eq!(
            mask_card_numbers("card 4111111111111111 declined"),
            "card 411111******1111 declined"
        );
        assert_eq!(
            mask_card_numbers("卡號 4111-1111-1111-1111。"),
            "卡號 4111-11**-****-1111。"
        );
        assert_eq!(
            mask_card_numbers("order 20240101 amount 1500"),
            "order 20240101 amount 1500"
        );
        assert_eq!(mask_card_numbers("411111******1111"), "411111******1111");
    }
}
