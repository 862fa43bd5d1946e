//! Reconciliation's verdict on one order: does what refundd's records say it
//! gave back match what the bank holds now? A pure function of refundd's
//! side (the order's refunds, summed by how the money went back) and the
//! bank's (a fresh inquiry's state and authorised amount for the order's own
//! XID), so every bank state is tested here without a bank or a database.

use crate::bank::types::TxState;
use serde::{Deserialize, Serialize};

/// What refundd's records say of one order: its refunds that ended, summed
/// (minor units of the order's currency).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnSide {
    /// The amount the shop's request gave as authorised; `None` when the
    /// shop's row gave none (it failed as invalid, nothing was sent).
    pub authorised: Option<i64>,
    /// Given back by reversals (the authorisation lowered or cancelled).
    pub reversed: i64,
    /// Given back by refunds of settled money.
    pub refunded: i64,
    /// A refund of settled money still watched until the bank settles it.
    pub settling: bool,
    /// refundd's settlement watch saw every one of its refunds settled (22).
    pub settled_seen: bool,
    /// What refundd's last inquiry about the order showed: for an order it
    /// ended without giving money back, the bank's side it decided on.
    pub last_seen: Option<BankSide>,
    /// A further refund of the order is requested or under way: the bank's
    /// state may move under it.
    pub under_way: bool,
}

impl OwnSide {
    /// Everything refundd's records say went back.
    pub fn given_back(&self) -> i64 {
        self.reversed + self.refunded
    }

    /// The authorisation the bank should show: what is left after reversals.
    fn authorisation_left(&self) -> Option<i64> {
        self.authorised.map(|a| (a - self.reversed).max(0))
    }

    /// refundd reversed the whole authorisation.
    fn reversed_whole(&self) -> bool {
        self.reversed > 0 && self.authorised.is_some_and(|a| self.reversed >= a)
    }
}

/// What a fresh inquiry showed of the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankSide {
    /// The bank's state and authorised amount for the order's own XID.
    Holds {
        state: TxState,
        auth_amount: Option<i64>,
    },
    /// The bank refused the inquiry as an order number it does not know.
    UnknownOrder,
}

/// Where the cardholder's money is, as a state says; the bank's batches
/// move a transaction within one (10 to 12, 20 to 22), never across.
#[derive(Debug, PartialEq, Eq)]
enum Money<'a> {
    WithTheShop,
    Back,
    NeverTaken,
    RefundFailed,
    Unlisted(&'a str),
}

fn money_of(state: &TxState) -> Money<'_> {
    use TxState::*;
    match state {
        Authorised | CapturedNotSettled | CaptureBatchRunning | Settled => Money::WithTheShop,
        AuthCancelled | RefundSettling | RefundBatchRunning | RefundSettled => Money::Back,
        AuthFailed | CaptureFailed => Money::NeverTaken,
        RefundFailed => Money::RefundFailed,
        Unknown(code) => Money::Unlisted(code),
    }
}

impl BankSide {
    /// The money where it was, for the same amount when both sides give one
    /// (or the same order unknown), whatever the batches since.
    fn same_state(&self, other: &BankSide) -> bool {
        match (self, other) {
            (
                BankSide::Holds {
                    state: a,
                    auth_amount: x,
                },
                BankSide::Holds {
                    state: b,
                    auth_amount: y,
                },
            ) => money_of(a) == money_of(b) && (x.is_none() || y.is_none() || x == y),
            (BankSide::UnknownOrder, BankSide::UnknownOrder) => true,
            _ => false,
        }
    }

    fn in_words(&self) -> String {
        match self {
            BankSide::Holds { state, .. } => format!("state {}", state.code()),
            BankSide::UnknownOrder => "no such order".to_string(),
        }
    }
}

/// The three classes of a reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The bank holds what refundd's records say.
    Matched,
    /// Not final yet, as refundd already knows (a batch to come).
    Expected,
    /// Anything else: a person should look at it.
    Mismatch,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Matched, Class::Expected, Class::Mismatch];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Matched => "matched",
            Class::Expected => "expected",
            Class::Mismatch => "mismatch",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// A class with the reason a person reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub class: Class,
    pub reason: String,
}

impl Verdict {
    fn new(class: Class, reason: impl Into<String>) -> Self {
        Verdict {
            class,
            reason: reason.into(),
        }
    }
}

/// Classifies one order: refundd's side against the bank's.
pub fn reconcile(own: &OwnSide, bank: &BankSide) -> Verdict {
    if own.under_way {
        return Verdict::new(
            Class::Expected,
            "a further refund of the order is under way: the next run checks it",
        );
    }
    if own.given_back() == 0
        && own
            .last_seen
            .as_ref()
            .is_some_and(|seen| seen.same_state(bank))
    {
        return Verdict::new(
            Class::Matched,
            format!(
                "nothing given back by refundd, and the bank shows {}, where the money was when refundd ended the order (a person had it then)",
                bank.in_words()
            ),
        );
    }
    let (state, auth_amount) = match bank {
        BankSide::UnknownOrder => {
            return Verdict::new(
                Class::Mismatch,
                "the bank does not know the order: check the order number with the bank",
            )
        }
        BankSide::Holds { state, auth_amount } => (state, *auth_amount),
    };
    match state {
        TxState::AuthCancelled => cancelled_whole(own),
        TxState::Authorised
        | TxState::CapturedNotSettled
        | TxState::CaptureBatchRunning
        | TxState::Settled => still_held(own, state, auth_amount),
        TxState::RefundSettling | TxState::RefundBatchRunning => settling(own, state),
        TxState::RefundSettled => refund_settled(own, auth_amount),
        TxState::RefundFailed => Verdict::new(
            Class::Mismatch,
            "the refund failed at the bank's settlement (state 23): the cardholder has not had the money back; ask the bank and refund again",
        ),
        TxState::AuthFailed | TxState::CaptureFailed | TxState::Unknown(_) => {
            nothing_to_hold(own, state)
        }
    }
}

/// State 0: the whole authorisation was cancelled.
fn cancelled_whole(own: &OwnSide) -> Verdict {
    if own.refunded == 0 && own.reversed_whole() {
        return Verdict::new(
            Class::Matched,
            "reversed whole, as the bank shows (state 0)",
        );
    }
    unexplained(own, "the whole authorisation cancelled (state 0)")
}

/// States 1, 10, 11, 12: the bank holds the authorisation (captured or not).
fn still_held(own: &OwnSide, state: &TxState, auth_amount: Option<i64>) -> Verdict {
    let code = state.code();
    if own.refunded > 0 {
        return Verdict::new(
            Class::Mismatch,
            format!(
                "refundd refunded {} and the bank shows the money still with the shop (state {code}): the refund is not at the bank; ask the bank",
                own.refunded
            ),
        );
    }
    if own.reversed_whole() {
        return Verdict::new(
            Class::Mismatch,
            format!("refundd reversed the whole {} and the bank shows the authorisation still standing (state {code}); ask the bank", own.reversed),
        );
    }
    let Some(expected) = own.authorisation_left() else {
        // Only a row that failed as invalid has no amount: nothing was sent.
        return nothing_to_hold(own, state);
    };
    match auth_amount {
        Some(bank) if bank == expected => Verdict::new(
            Class::Matched,
            if own.reversed > 0 {
                format!("authorisation lowered to {expected} (state {code})")
            } else {
                format!("nothing given back, as refundd's record says (state {code})")
            },
        ),
        Some(bank) if bank < expected => unexplained(
            own,
            &format!("the authorisation at {bank} (state {code}), less than the {expected} refundd's calls leave"),
        ),
        Some(bank) => Verdict::new(
            Class::Mismatch,
            format!("the amount differs: the bank shows {bank} authorised (state {code}), refundd's calls leave {expected}; ask the bank"),
        ),
        None => Verdict::new(
            Class::Mismatch,
            format!("the bank's answer gave no authorised amount (state {code}): it cannot be checked against refundd's {expected}"),
        ),
    }
}

/// States 20 and 21: a refund settling at the bank.
fn settling(own: &OwnSide, state: &TxState) -> Verdict {
    if own.refunded == 0 {
        return unexplained(own, &format!("a refund settling (state {})", state.code()));
    }
    if own.settling {
        return Verdict::new(
            Class::Expected,
            format!(
                "refunded {}, settling at the bank (state {}) within the settlement watch",
                own.refunded,
                state.code()
            ),
        );
    }
    if own.settled_seen {
        // A settled refund does not go back to settling: this is another one.
        return unexplained(
            own,
            &format!(
                "a refund settling (state {}) after refundd's own had settled",
                state.code()
            ),
        );
    }
    Verdict::new(
        Class::Mismatch,
        format!(
            "refunded {} and the bank has still not settled it (state {}) after the settlement watch; ask the bank",
            own.refunded,
            state.code()
        ),
    )
}

/// State 22: a refund settled.
fn refund_settled(own: &OwnSide, auth_amount: Option<i64>) -> Verdict {
    if own.refunded == 0 {
        return unexplained(own, "a refund settled (state 22)");
    }
    match (auth_amount, own.authorisation_left()) {
        (Some(bank), Some(expected)) if bank != expected => Verdict::new(
            Class::Mismatch,
            format!("the amount differs: the bank shows {bank} authorised and settled, refundd's record {expected}; ask the bank"),
        ),
        _ => Verdict::new(
            Class::Matched,
            format!("refunded {}, settled at the bank (state 22)", own.refunded),
        ),
    }
}

/// States -1, 13 and codes the protocol does not list (nothing to refund), and
/// any state for a row that failed as invalid (refundd sent nothing).
fn nothing_to_hold(own: &OwnSide, state: &TxState) -> Verdict {
    if own.given_back() == 0 {
        return Verdict::new(
            Class::Matched,
            format!(
                "nothing given back, as refundd's record says (state {})",
                state.code()
            ),
        );
    }
    Verdict::new(
        Class::Mismatch,
        format!(
            "refundd gave back {} and the bank shows state {}, where nothing was taken; ask the bank",
            own.given_back(),
            state.code()
        ),
    )
}

/// The bank shows more money back than refundd's calls explain.
fn unexplained(own: &OwnSide, shows: &str) -> Verdict {
    if own.given_back() == 0 {
        return Verdict::new(
            Class::Mismatch,
            format!("refundd says nothing was given back (failed or cancelled) and the bank shows {shows}: a refund made elsewhere, or the shop's books are wrong"),
        );
    }
    Verdict::new(
        Class::Mismatch,
        format!(
            "the bank shows {shows}, more than refundd's calls explain (reversed {}, refunded {}): a refund made elsewhere (the bank's portal?)",
            own.reversed, own.refunded
        ),
    )
}

#[cfg(test)]
mod tests;
