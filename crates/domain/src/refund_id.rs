//! Which refund of an order a record is: the shop's own id of it (a return
//! number), from the optional column `refund_id` of the shop's requests. An
//! order's refunds are separate records, worked one at a time, each with its
//! own amount, story and write-back; a shop without the column has one
//! refund per order, whose id is empty.

use std::fmt;

/// The shop's id of one refund of an order; empty for an order's only refund.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefundId(String);

/// The longest id refundd keeps (it is a key of its record and of every
/// event): a longer one is a mistake in the shop's query.
pub const REFUND_ID_MAX_CHARS: usize = 64;

impl RefundId {
    /// The id as refundd's record holds it ('' for an order's only refund).
    pub fn of_record(text: &str) -> Self {
        Self(text.to_string())
    }

    /// The id as the shop's query gave it: NULL and '' are the order's only
    /// refund. A longer id than refundd keeps is kept cut to its length,
    /// with the reason the row fails (nothing is sent for it).
    pub fn from_shop(text: Option<&str>) -> (Self, Option<String>) {
        // Only spaces are dropped, as PostgreSQL's btrim does (`store::intake`).
        let text = text.map(|t| t.trim_matches(' ')).unwrap_or("");
        let chars = text.chars().count();
        if chars > REFUND_ID_MAX_CHARS {
            let kept: String = text.chars().take(REFUND_ID_MAX_CHARS).collect();
            let why = format!(
                "invalid row: refund_id is {chars} characters long; a refund's id is at most {REFUND_ID_MAX_CHARS} (the shop's return or refund number), nothing was sent"
            );
            return (Self(kept), Some(why));
        }
        (Self(text.to_string()), None)
    }

    /// What the record and the write-backs' `$4` hold: '' for the only refund.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `None` for an order's only refund (no id given by the shop).
    pub fn given(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }
}

/// An operator reads " (refund R-2)" after the order number, or nothing.
impl fmt::Display for RefundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.given() {
            Some(id) => write!(f, " (refund {id})"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_without_ids_has_one_refund_and_a_long_id_is_refused() {
        assert_eq!(RefundId::from_shop(None), (RefundId::default(), None));
        assert_eq!(RefundId::from_shop(Some("  ")).0.given(), None);
        let (id, bad) = RefundId::from_shop(Some(" R-2 "));
        assert_eq!((id.given(), bad), (Some("R-2"), None));
        assert_eq!(id.to_string(), " (refund R-2)");
        assert_eq!(RefundId::default().to_string(), "");
        let long = "x".repeat(REFUND_ID_MAX_CHARS + 1);
        let (id, bad) = RefundId::from_shop(Some(&long));
        assert_eq!(id.as_str().len(), REFUND_ID_MAX_CHARS);
        assert!(bad.is_some_and(|w| w.contains("refund_id is 65 characters")));
    }
}
