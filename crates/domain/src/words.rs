//! The closed sets of words refundd's record is written in: an order's status,
//! the step it reached, how its money went back, the kinds and outcomes of the
//! events of its story, the settlement watch's states and how a pass ended.
//! Each is an enum that the store reads and writes as the same text the
//! tables have always held, so no string of these sets crosses the store's
//! boundary, and a value the code does not know is an error where it is read.

use super::bank::{CtbcError, Operation};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A word of one of the sets: its text in the tables, and back.
pub trait Word: Sized + Copy + 'static {
    /// Which set, for error messages.
    const SET: &'static str;
    fn as_str(self) -> &'static str;
    fn parse(text: &str) -> Option<Self>;
}

/// Defines an enum of words with its text, and its column type.
macro_rules! words {
    ($(#[$meta:meta])* pub enum $name:ident ($set:literal) {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                <Self as Word>::as_str(self)
            }
        }

        impl Word for $name {
            const SET: &'static str = $set;
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
            fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        /// A word read back from its text (a column, a file).
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                parse_word(&text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(Word::as_str(*self))
            }
        }

        json_word!($name);
    };
}

/// A word as a JSON string.
macro_rules! json_word {
    ($name:ty) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(Word::as_str(*self))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                parse_word(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Reads a word, or says which set it is not in.
pub fn parse_word<W: Word>(text: &str) -> Result<W, String> {
    W::parse(text).ok_or_else(|| not_known(text, W::SET))
}

/// Says `text` is not a word of `set`, showing no control characters.
fn not_known(text: &str, set: &str) -> String {
    let shown: String = text.chars().filter(|c| !c.is_control()).take(40).collect();
    format!("{shown:?} is not a known {set}")
}

words! {
    /// Where refundd's record of an order stands.
    pub enum RefundStatus ("refund status") {
        /// Asked for; nothing sent yet, or given back to the queue.
        RefundRequested = "refund_requested",
        /// The shop stopped asking before anything was sent.
        Withdrawn = "withdrawn",
        /// A worker holds it, or a call of ours is under way.
        Refunding = "refunding",
        Refunded = "refunded",
        /// Nothing more refundd can do: a person decides.
        RefundFailed = "refund_failed",
        /// A refund refundd made, cancelled before the bank's batch at an
        /// operator's request (`refundd cancel-refund`): the money stays with the shop.
        Cancelled = "cancelled",
    }
}

words! {
    /// The step an order has reached whose outcome is committed.
    pub enum StepReached ("step") {
        /// Out of the capture file; the reversal of the authorisation follows.
        CaptureReversed = "capture_reversed",
        Done = "done",
    }
}

words! {
    /// How the money went back.
    pub enum RefundMethod ("refund method") {
        /// The authorisation was cancelled (or lowered) before capture.
        Reversal = "reversal",
        /// Taken out of the capture file, then the authorisation cancelled.
        CaptureReversalAndReversal = "capture_reversal+reversal",
        /// A refund of settled money.
        Refund = "refund",
    }
}

words! {
    /// What an event of an order's story records.
    #[derive(Default)]
    pub enum EventKind ("event kind") {
        /// The record's status changed (written by the database itself).
        Status = "status",
        /// A money-moving call is about to be sent.
        Intent = "intent",
        /// What came of a call.
        Outcome = "outcome",
        /// Something learned about a call later, or about the record.
        #[default]
        Note = "note",
    }
}

words! {
    /// What came of a call to the bank, or what was learned of it later;
    /// for a note without a call, what became of the request.
    pub enum CallOutcome ("call outcome") {
        Accepted = "accepted",
        Refused = "refused",
        /// Sent, and no answer says whether the bank acted.
        Ambiguous = "ambiguous",
        /// The bank could not be reached: nothing happened.
        Unavailable = "unavailable",
        /// Refused locally: nothing was sent.
        Invalid = "invalid",
        /// The bank refunded another amount than asked.
        AmountMismatch = "amount_mismatch",
        UnknownOrder = "unknown_order",
        BadAnswer = "bad_answer",
        /// A fresh inquiry showed a call of unknown outcome took effect.
        TookEffect = "took_effect",
        /// A fresh inquiry showed a call of unknown outcome did not.
        DidNotTakeEffect = "did_not_take_effect",
        /// The shop's database refused the write-back.
        WriteBackRefused = "write_back_refused",
        /// Its intent was recorded, then it was held back (a blackout window
        /// or a stop began while it waited for its turn): nothing was sent.
        NotSent = "not_sent",
        /// The shop stopped asking before anything was sent (a note).
        Withdrawn = "withdrawn",
    }
}

words! {
    /// The settlement watch of a refund of settled money.
    pub enum SettlementState ("settlement state") {
        /// Watched until the bank settles it.
        Pending = "pending",
        Settled = "settled",
        Failed = "failed",
        /// The watch ran out before the bank settled it.
        Unconfirmed = "unconfirmed",
    }
}

words! {
    /// How a pass ended.
    #[derive(Default)]
    pub enum PassOutcome ("pass outcome") {
        #[default]
        Completed = "completed",
        /// Asked to stop; the orders in hand were finished.
        Stopped = "stopped",
        /// The database was lost.
        Failed = "failed",
        /// Inside a blackout window: nothing money-moving was started.
        Blackout = "blackout",
        /// The shop's rows failed alike (a mapping mistake): nothing was
        /// sent or written back; the summary's `problem` says what to fix.
        SettingsProblem = "settings_problem",
        /// The bank's answers stopped opening with refundd's keys: the
        /// pass stopped claiming and sending; the summary's `problem` says so.
        BankKeysWrong = "bank_keys_wrong",
    }
}

words! {
    /// What a notification (an event of the outbox, a webhook's `type`) tells.
    pub enum NotificationType ("notification type") {
        /// The money is back (`refunded`).
        Succeeded = "refund.succeeded",
        /// The bank settled a refund of settled money.
        Settled = "refund.settled",
        /// `refund_failed`: a person decides.
        Failed = "refund.failed",
        /// The shop stopped asking before anything was sent.
        Withdrawn = "refund.withdrawn",
        /// An order waits on something a person should look at.
        NeedsAttention = "refund.needs_attention",
        /// A refund cancelled before the bank's batch (`cancelled`).
        Cancelled = "refund.cancelled",
        /// A reconciliation found the bank holding something else than
        /// refundd's records say (`refundd reconcile`).
        Mismatch = "refund.mismatch",
        /// `refundd notify test`: stands for no order, never stored.
        Test = "refund.test",
    }
}

/// An order as `refundd request` and `retry` find it: paid and not asked
/// back yet (the built-in orders table's own status), or where refundd's
/// record of its refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Paid,
    Refund(RefundStatus),
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Paid => "paid",
            OrderStatus::Refund(s) => s.as_str(),
        }
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "paid" => Ok(OrderStatus::Paid),
            other => <RefundStatus as Word>::parse(other)
                .map(OrderStatus::Refund)
                .ok_or_else(|| not_known(other, "order status")),
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CallOutcome {
    /// What a call that got no verdict from the bank came to.
    pub fn of_error(e: &CtbcError) -> Self {
        match e {
            CtbcError::Unavailable { .. } => CallOutcome::Unavailable,
            CtbcError::Ambiguous { .. } => CallOutcome::Ambiguous,
            CtbcError::Refused { .. } => CallOutcome::Refused,
            CtbcError::UnknownOrder { .. } => CallOutcome::UnknownOrder,
            CtbcError::BadAnswer { .. } => CallOutcome::BadAnswer,
            CtbcError::RefundAmountMismatch { .. } => CallOutcome::AmountMismatch,
            CtbcError::Invalid(_) => CallOutcome::Invalid,
        }
    }
}

impl Word for Operation {
    const SET: &'static str = "bank operation";
    fn as_str(self) -> &'static str {
        Operation::as_str(self)
    }
    fn parse(text: &str) -> Option<Self> {
        Operation::parse(text)
    }
}

json_word!(Operation);

impl TryFrom<String> for Operation {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        parse_word(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<W: Word + PartialEq + std::fmt::Debug>(all: &[W]) {
        for w in all {
            assert_eq!(W::parse(w.as_str()), Some(*w));
        }
    }

    #[test]
    fn every_word_reads_back_as_itself() {
        round_trips(RefundStatus::ALL);
        round_trips(StepReached::ALL);
        round_trips(RefundMethod::ALL);
        round_trips(EventKind::ALL);
        round_trips(CallOutcome::ALL);
        round_trips(SettlementState::ALL);
        round_trips(PassOutcome::ALL);
        round_trips(&Operation::ALL);
        round_trips(NotificationType::ALL);
    }

    #[test]
    fn an_order_is_paid_or_where_its_refund_stands() {
        let read = |t: &str| OrderStatus::try_from(t.to_string());
        assert_eq!(read("paid"), Ok(OrderStatus::Paid));
        for s in RefundStatus::ALL {
            assert_eq!(read(s.as_str()), Ok(OrderStatus::Refund(*s)));
            assert_eq!(OrderStatus::Refund(*s).as_str(), s.as_str());
        }
        assert_eq!(
            read("shipped"),
            Err("\"shipped\" is not a known order status".into())
        );
    }

    #[test]
    fn an_unknown_word_names_its_set_and_hides_control_characters() {
        let e = parse_word::<RefundStatus>("refundedd\u{0}").unwrap_err();
        assert_eq!(e, "\"refundedd\" is not a known refund status");
    }
}
