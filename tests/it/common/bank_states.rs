//! Every state the bank can report for an order, as one table the suites
//! share: the engine's every-state pass, `refundd plan`'s every-state plan,
//! each example shop's every-state pass, money already back before refundd,
//! and the chaos run's judgement of where each order may end.

use super::{OrderView, Rig};
use refundd::ctbc::TxState;

/// What one pass makes of an order the bank holds in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// Refunded: the method (`capture_reversal+reversal` for two calls)
    /// and the amount given back.
    Refunded(&'static str, i64),
    /// Still requested: the bank's batch has to run first.
    Waits,
    /// Failed, for a person: there is nothing refundd may send.
    NeedsPerson,
    /// Failed, for a person: the money was back at the bank before refundd
    /// sent anything (someone else gave it back); the bank moves nothing.
    BackBeforeRefundd,
}

/// One order of the table, authorised at the bank for `AMOUNT`.
#[derive(Debug)]
pub struct StateCase {
    pub order_no: &'static str,
    pub state: TxState,
    /// The part asked back; None: the whole `AMOUNT`.
    pub part: Option<i64>,
    /// Where one pass leaves it.
    pub ends: Ends,
    /// What `refundd plan` prints of it after `{order_no}: ` (the start).
    pub plan: &'static str,
}

/// What each order of the table was authorised for.
pub const AMOUNT: i64 = 1000;

const fn case(
    order_no: &'static str,
    state: TxState,
    part: Option<i64>,
    ends: Ends,
    plan: &'static str,
) -> StateCase {
    StateCase {
        order_no,
        state,
        part,
        ends,
        plan,
    }
}

/// Every state the bank reports, whole and, where it changes what is sent,
/// in part.
pub const EVERY_BANK_STATE: &[StateCase] = &[
    case(
        "S1",
        TxState::Authorised,
        None,
        Ends::Refunded("reversal", 1000),
        "state 1 → reversal 1000",
    ),
    case(
        "S1P",
        TxState::Authorised,
        Some(300),
        Ends::Refunded("reversal", 300),
        "state 1 → reversal 300 (the authorisation lowered from 1000 to 700)",
    ),
    case(
        "S10",
        TxState::CapturedNotSettled,
        None,
        Ends::Refunded("capture_reversal+reversal", 1000),
        "state 10 → capture reversal 1000, then reversal",
    ),
    case(
        "S10P",
        TxState::CapturedNotSettled,
        Some(400),
        Ends::Waits,
        "state 10 → waits for a later pass: a partial refund waits until the capture settles",
    ),
    case(
        "S11",
        TxState::CaptureBatchRunning,
        None,
        Ends::Waits,
        "state 11 → waits for a later pass: the bank's batch is running",
    ),
    case(
        "S12",
        TxState::Settled,
        None,
        Ends::Refunded("refund", 1000),
        "state 12 → refund 1000",
    ),
    case(
        "S12P",
        TxState::Settled,
        Some(250),
        Ends::Refunded("refund", 250),
        "state 12 → refund 250",
    ),
    case(
        "S0",
        TxState::AuthCancelled,
        None,
        Ends::BackBeforeRefundd,
        "state 0 → needs a person: the bank shows the authorisation cancelled",
    ),
    case(
        "S20",
        TxState::RefundSettling,
        None,
        Ends::BackBeforeRefundd,
        "state 20 → needs a person: the bank shows a refund (state 20) that refundd did not send",
    ),
    case(
        "S21",
        TxState::RefundBatchRunning,
        None,
        Ends::Waits,
        "state 21 → waits for a later pass: the bank's batch is running",
    ),
    case(
        "S22",
        TxState::RefundSettled,
        None,
        Ends::BackBeforeRefundd,
        "state 22 → needs a person: the bank shows a refund (state 22) that refundd did not send",
    ),
    case(
        "SF1",
        TxState::AuthFailed,
        None,
        Ends::NeedsPerson,
        "state -1 → needs a person: the authorisation failed (state -1), there is nothing to refund",
    ),
    case(
        "S13",
        TxState::CaptureFailed,
        None,
        Ends::NeedsPerson,
        "state 13 → needs a person: the capture failed (state 13)",
    ),
    case(
        "S23",
        TxState::RefundFailed,
        None,
        Ends::NeedsPerson,
        "state 23 → needs a person: a refund failed at the bank (state 23)",
    ),
];

/// The cases one pass ends: all but those that wait for the bank's batch.
pub fn ended_in_one_pass() -> impl Iterator<Item = &'static StateCase> {
    EVERY_BANK_STATE.iter().filter(|c| c.ends != Ends::Waits)
}

/// The cases that end as `ends` does (`Ends::Refunded` of any method and amount).
pub fn ending_as(ends: Ends) -> impl Iterator<Item = &'static StateCase> {
    let kind = std::mem::discriminant(&ends);
    EVERY_BANK_STATE
        .iter()
        .filter(move |c| std::mem::discriminant(&c.ends) == kind)
}

/// Where a whole refund of an order the bank holds in the state coded
/// `code` ends, if the table holds that state.
pub fn whole_refund_in(code: &str) -> Option<Ends> {
    EVERY_BANK_STATE
        .iter()
        .find(|c| c.part.is_none() && c.state.code() == code)
        .map(|c| c.ends)
}

impl Rig {
    /// Each case's order, known to the bank in its state and requested.
    pub async fn seed_cases(&self, cases: impl IntoIterator<Item = &'static StateCase>) {
        for c in cases {
            self.seed(c.order_no, AMOUNT, c.state.clone(), c.part).await;
        }
    }

    /// The case's order ended where the table says, as refundd records it
    /// and, but for a refund, with no money-moving call at the bank.
    pub async fn assert_ended(&self, case: &StateCase) {
        let no = case.order_no;
        let order = self.order(no).await;
        if let Ends::Refunded(method, amount) = case.ends {
            order.assert_refunded(method, amount);
            return;
        }
        let OrderView {
            status,
            refund_method: method,
            refunded_amount: amount,
            ..
        } = &order;
        let status_wanted = match case.ends {
            Ends::Waits => "refund_requested",
            _ => "refund_failed",
        };
        assert_eq!(
            (status.as_str(), method.as_deref(), *amount),
            (status_wanted, None, None),
            "{no}: {order:?}"
        );
        if case.ends != Ends::Waits {
            let error = order.refund_error.as_deref().unwrap_or_default();
            assert!(error.contains("needs a person"), "{no}: {order:?}");
        }
        let calls = self.money_calls(no).await;
        assert!(calls.is_empty(), "{no}: money-moving calls {calls:?}");
    }
}
