//! The JSON shapes of the simulator's admin API that the ledger fills: a
//! transaction as loaded and shown, the call log and its pages, the ledger
//! report, what the capture batch moved, and the changes made at the bank's
//! own portal behind refundd's back. Shared by the server (`sim::admin`) and
//! its client (`sim::admin_client`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ctbc::types::{Currency, TxState};

/// A transaction as the admin API loads and shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SimTx {
    /// The merchant (MERID) the transaction belongs to: only that merchant's
    /// calls find it. Left out when loading: the simulator's first merchant;
    /// always shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mer_id: Option<String>,
    pub order_no: String,
    pub xid: String,
    pub auth_code: String,
    /// ISO 4217 numeric code; 901 is NT$.
    pub currency: u16,
    /// The amount first authorised.
    pub original_amount: i64,
    /// The authorisation as it stands now (lowered by partial reversals).
    pub auth_amount: i64,
    /// `CurrentState` code, e.g. "10".
    pub state: String,
    /// Refunded so far and not reversed: the sum of the live `refunds`.
    pub refunded_amount: i64,
    /// Money given back to the cardholder by accepted calls: a reversal adds
    /// what it took off the authorisation, a refund adds its amount, a refund
    /// reversal takes it away again, a capture reversal adds nothing.
    pub returned_amount: i64,
    /// Masked card number (first six, last four).
    pub pan: String,
    /// Other authorisations of the same order number, each with an XID of
    /// its own: a declined card retried, say. With any, an inquiry answers
    /// every record (`QueryCode` "2"); money-moving calls act on this
    /// transaction alone, by its XID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_authorisations: Vec<OtherAuthorisation>,
    /// Every refund of the transaction the bank holds, oldest first,
    /// reversed ones included. Left out when loading: the
    /// `refunded_amount`, if any, as one refund (settling in state 20 or 21,
    /// settled otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<SimRefund>,
}

/// One refund of a transaction: its amount, where the bank filed it (the
/// `BatchID`, `BatchSeq` and `RetrRef` of its answer, which a refund reversal
/// names it by), and what became of it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SimRefund {
    /// The amount refunded (`CredAmt`), in the transaction's currency.
    pub amount: i64,
    /// Left empty when loading, all three: the simulator gives them.
    #[serde(default)]
    pub batch_id: String,
    #[serde(default)]
    pub batch_seq: String,
    #[serde(default)]
    pub retr_ref: String,
    /// Cancelled by a refund reversal: its money came back to the balance.
    #[serde(default)]
    pub reversed: bool,
    /// Settled by the refund batch (21 -> 22): it can no longer be reversed.
    #[serde(default)]
    pub settled: bool,
}

/// Another authorisation of a transaction's order number, in a state no
/// call and no batch changes: declined (-1) or cancelled (0).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OtherAuthorisation {
    pub xid: String,
    /// Empty when the bank gave none, as for a declined card.
    #[serde(default)]
    pub auth_code: String,
    /// The amount asked, in the transaction's currency.
    pub amount: i64,
    /// `CurrentState` code: "-1" or "0".
    pub state: String,
    /// Made after the transaction's own authorisation: the latest of the
    /// order number, shown at the top of an inquiry's answer. Otherwise
    /// before it.
    #[serde(default)]
    pub later: bool,
}

impl SimTx {
    /// A NT$ transaction authorised for `amount`, nothing refunded yet.
    pub fn new(
        order_no: impl Into<String>,
        xid: impl Into<String>,
        auth_code: impl Into<String>,
        amount: i64,
        state: TxState,
    ) -> Self {
        Self {
            mer_id: None,
            order_no: order_no.into(),
            xid: xid.into(),
            auth_code: auth_code.into(),
            currency: Currency::TWD.code,
            original_amount: amount,
            auth_amount: amount,
            state: state.code().to_string(),
            refunded_amount: 0,
            returned_amount: 0,
            pan: "411111******1111".to_string(),
            other_authorisations: Vec::new(),
            refunds: Vec::new(),
        }
    }
}

/// How a call ended at the simulated bank.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallDisposition {
    /// The bank accepted it (`RespCode` "0"); for a mutating call, it applied.
    Accepted,
    /// The bank refused it; nothing changed.
    Refused,
    /// A fault or maintenance page stood in for the bank: nothing was looked at.
    NotProcessed,
}

/// One entry of the call log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub operation: String,
    pub order_no: String,
    pub org_amt: Option<i64>,
    /// AuthNewAmt, CapRevAmt, CredAmt or CredRevAmt as sent.
    pub amount: Option<i64>,
    pub outcome: CallDisposition,
    pub resp_code: Option<String>,
    pub errdesc: Option<String>,
    pub duplicate: bool,
    /// The injected fault or "maintenance", if one fired.
    pub fault: Option<String>,
    /// How long a latency fault held the answer back, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Money this call gave back to the cardholder (negative for a refund reversal).
    pub returned_delta: i64,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
}

/// Per-operation counts in the ledger report.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationTotals {
    pub calls: u64,
    pub accepted: u64,
    pub refused: u64,
    pub not_processed: u64,
    pub duplicates: u64,
    /// Sum of `returned_delta` of the accepted calls.
    pub returned: i64,
}

/// The summary the admin API serves at `/admin/ledger`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerReport {
    /// Number of transactions the bank knows.
    pub transactions: u64,
    /// Number of calls logged.
    pub calls: u64,
    /// Calls refused because the money they would move had already moved,
    /// or as a resent one looks: a refund while an earlier refund of its
    /// transaction is settling, a reversal of a refund already reversed.
    pub duplicates: u64,
    pub accepted: u64,
    pub refused: u64,
    pub not_processed: u64,
    pub by_operation: BTreeMap<String, OperationTotals>,
    /// How often each fault fired (and "maintenance").
    pub faults: BTreeMap<String, u64>,
    /// Sum of `returned_amount` over all transactions.
    pub returned_total: i64,
    /// Sum of `returned_delta` over all accepted calls; equals `returned_total`
    /// when every returned amount came from a call (nothing loaded pre-returned).
    pub returned_by_calls: i64,
    /// Sum of `refunded_amount` over all transactions.
    pub refunded_total: i64,
    /// `returned_amount` of every transaction where it is not zero.
    pub returned_by_order: BTreeMap<String, i64>,
    /// The most calls the bank was answering at one moment.
    #[serde(default)]
    pub most_calls_at_once: u64,
    /// Money the changes made at the bank's portal gave back: its refunds
    /// and reversals. None of it is in `returned_by_calls`.
    #[serde(default)]
    pub returned_by_portal: i64,
    /// Every change made at the bank's portal, oldest first: none of them is
    /// a call of refundd's, so none is in the call log or its counts.
    #[serde(default)]
    pub portal_changes: Vec<PortalRecord>,
}

/// What the capture batch moved.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchMoved {
    pub captures: u64,
    pub refunds: u64,
}

/// A page of the call log.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CallsPage {
    /// Calls matching the filter, before paging.
    pub total: u64,
    pub offset: u64,
    pub calls: Vec<CallRecord>,
}

/// A change made at the bank's own portal, as the bank's staff or the
/// merchant's colleagues make them, behind refundd's back: the body of
/// `POST /admin/portal/{order_no}`, e.g. `{"change": "refund", "amount": 200}`.
/// Amounts are in the transaction's minor units.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum PortalChange {
    /// A refund made in the portal: in 12 or 22, within what the refunds not
    /// reversed leave of the captured amount; filed under references of its
    /// own, the transaction then 20, as after a refund call.
    Refund { amount: i64 },
    /// A reversal made in the portal, in 1: takes `amount` off the
    /// authorisation (left out: all of it, which cancels it, 0).
    Reverse {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<i64>,
    },
    /// The refund failed at settlement: 23, from 20, 21 or 22. (The change
    /// takes no field; `{}` so that serde refuses one given.)
    FailRefund {},
    /// The bank settled another amount: the authorised and captured amount
    /// an inquiry shows (`AuthAmt`) becomes `amount`; the state stays.
    SettleAmount { amount: i64 },
    /// The bank no longer knows the order: an inquiry is refused as for any
    /// order it never held.
    Forget {},
    /// The bank shows another state, any `CurrentState` code: `"12"`.
    SetState { state: String },
}

/// One change made at the bank's portal, as the books keep it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PortalRecord {
    /// 1 for the first change made at the portal, counted apart from calls.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub order_no: String,
    /// The change as it was asked for.
    pub change: PortalChange,
    pub state_before: String,
    /// `None`: the bank forgot the order.
    pub state_after: Option<String>,
    /// Money the change gave back to the cardholder: a refund's or a
    /// reversal's amount, 0 for the others.
    pub returned_delta: i64,
}

/// The answer of `POST /admin/portal/{order_no}`: the change as the books
/// keep it, and the transaction after it (`None` once forgotten).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PortalApplied {
    pub applied: PortalRecord,
    pub transaction: Option<SimTx>,
}
