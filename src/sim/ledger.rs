//! The simulated bank's books: every transaction it knows, the state machine of
//! the protocol document's table, and a log of every call it was sent. Pure (no
//! I/O, no clock, no cryptography) so every transition and refusal is tested
//! directly, and so the server can keep it behind one short-held lock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ctbc::answer::QUERY_CODE_ONE_RECORD;
use crate::ctbc::types::{AuthCode, Currency, Money, OrderNo, TxState, Xid};
use crate::ctbc::Operation;

/// A transaction as the admin API loads and shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SimTx {
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
    /// Refunded so far and not reversed.
    pub refunded_amount: i64,
    /// Money given back to the cardholder by accepted calls: a reversal adds
    /// what it took off the authorisation, a refund adds its amount, a refund
    /// reversal takes it away again, a capture reversal adds nothing.
    pub returned_amount: i64,
    /// Masked card number (first six, last four).
    pub pan: String,
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
        }
    }
}

/// One parsed request, as the ledger needs it. `amount` is the operation's own
/// amount field: AuthNewAmt, CapRevAmt, CredAmt or CredRevAmt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankCall {
    pub operation: Operation,
    pub order_no: String,
    pub xid: Option<String>,
    pub auth_code: Option<String>,
    pub org_amt: Option<Money>,
    pub amount: Option<Money>,
}

/// How a call ended at the simulated bank.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
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
    pub outcome: CallOutcome,
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
    /// Calls refused because the money they would move had already moved.
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

/// The answer JSON the server seals: a flat object of strings.
pub type Answer = Map<String, Value>;

/// Refusal codes of the simulated bank. `RespCode` and `ErrCode` carry the same code.
pub mod refusal {
    pub const MERCHANT: &str = "03";
    pub const MISMATCH: &str = "12";
    pub const AMOUNT: &str = "13";
    pub const FORMAT: &str = "30";
    pub const STATE: &str = "57";
    pub const BATCH_RUNNING: &str = "91";
    pub const DUPLICATE: &str = "94";
    pub const MAC: &str = "96";
    pub const NOT_FOUND_RESP: &str = "99";
    pub const NOT_FOUND_ERR: &str = "01";
}

#[derive(Clone, Debug)]
struct Tx {
    order_no: String,
    xid: String,
    auth_code: String,
    currency: u16,
    original_amount: i64,
    auth_amount: i64,
    state: TxState,
    refunded_amount: i64,
    returned_amount: i64,
    pan: String,
    authorised_at: DateTime<FixedOffset>,
    /// Amount of the last refund: the one a refund reversal cancels (or,
    /// once reversed, the one it cancelled).
    last_refund: i64,
    /// The last money call was a refund reversal: a second one is a duplicate.
    refund_reversed: bool,
}

impl Tx {
    fn to_sim(&self) -> SimTx {
        SimTx {
            order_no: self.order_no.clone(),
            xid: self.xid.clone(),
            auth_code: self.auth_code.clone(),
            currency: self.currency,
            original_amount: self.original_amount,
            auth_amount: self.auth_amount,
            state: self.state.code().to_string(),
            refunded_amount: self.refunded_amount,
            returned_amount: self.returned_amount,
            pan: self.pan.clone(),
        }
    }

    /// An amount of this transaction as the wire writes it (`"901 1500 0"`).
    fn money(&self, amount: i64) -> String {
        let exponent = Currency::parse(&self.currency.to_string())
            .map(|c| c.exponent)
            .unwrap_or(0);
        format!("{} {amount} {exponent}", self.currency)
    }
}

/// A refusal decided by the state machine.
struct Refusal {
    code: &'static str,
    errdesc: String,
    duplicate: bool,
}

impl Refusal {
    fn new(code: &'static str, errdesc: impl Into<String>) -> Self {
        Self {
            code,
            errdesc: errdesc.into(),
            duplicate: false,
        }
    }

    fn duplicate(errdesc: impl Into<String>) -> Self {
        Self {
            code: refusal::DUPLICATE,
            errdesc: format!("重複交易 duplicate: {}", errdesc.into()),
            duplicate: true,
        }
    }
}

/// An accepted change to one transaction.
struct Change {
    returned_delta: i64,
    fields: Vec<(&'static str, String)>,
}

/// Builds a refusal answer (also used by the server for envelope problems).
pub fn refusal_answer(mer_id: &str, resp_code: &str, err_code: &str, errdesc: &str) -> Answer {
    let mut a = Answer::new();
    a.insert("MERID".into(), mer_id.into());
    a.insert("RespCode".into(), resp_code.into());
    a.insert("ErrCode".into(), err_code.into());
    a.insert("ERRDESC".into(), errdesc.into());
    a
}

/// The simulated bank's books.
#[derive(Debug, Default)]
pub struct Ledger {
    mer_id: String,
    txs: HashMap<String, Tx>,
    calls: Vec<CallRecord>,
    duplicates: u64,
    refund_seq: u64,
}

impl Ledger {
    pub fn new(mer_id: &str) -> Self {
        Self {
            mer_id: mer_id.to_string(),
            ..Self::default()
        }
    }

    /// Forgets every transaction and call.
    pub fn reset(&mut self) {
        *self = Self::new(&self.mer_id);
    }

    /// Checks transactions for loading; returns them ready to insert, or the
    /// first problem with its index. Runs outside the lock.
    pub fn prepare(txs: Vec<SimTx>, now: DateTime<FixedOffset>) -> Result<Vec<PreparedTx>, String> {
        txs.into_iter()
            .enumerate()
            .map(|(i, t)| prepare_one(t, now).map_err(|e| format!("transaction {i}: {e}")))
            .collect()
    }

    /// Adds (or replaces, by order number) checked transactions.
    pub fn load(&mut self, txs: Vec<PreparedTx>) -> u64 {
        let n = txs.len() as u64;
        self.txs.reserve(txs.len());
        for PreparedTx(tx) in txs {
            self.txs.insert(tx.order_no.clone(), tx);
        }
        n
    }

    pub fn transaction(&self, order_no: &str) -> Option<SimTx> {
        self.txs.get(order_no).map(Tx::to_sim)
    }

    /// Transactions in order-number order, paged.
    pub fn transactions(&self, offset: usize, limit: usize) -> Vec<SimTx> {
        let mut keys: Vec<&String> = self.txs.keys().collect();
        keys.sort();
        keys.into_iter()
            .skip(offset)
            .take(limit)
            .filter_map(|k| self.txs.get(k).map(Tx::to_sim))
            .collect()
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Calls, optionally of one order, paged.
    pub fn calls(&self, order_no: Option<&str>, offset: usize, limit: usize) -> CallsPage {
        let matching = |c: &&CallRecord| order_no.is_none_or(|o| c.order_no == o);
        let total = self.calls.iter().filter(matching).count() as u64;
        let calls = self
            .calls
            .iter()
            .filter(matching)
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        CallsPage {
            total,
            offset: offset as u64,
            calls,
        }
    }

    pub fn report(&self) -> LedgerReport {
        let mut r = LedgerReport {
            transactions: self.txs.len() as u64,
            calls: self.calls.len() as u64,
            duplicates: self.duplicates,
            ..LedgerReport::default()
        };
        for c in &self.calls {
            let op = r.by_operation.entry(c.operation.clone()).or_default();
            op.calls += 1;
            match c.outcome {
                CallOutcome::Accepted => {
                    r.accepted += 1;
                    op.accepted += 1;
                    op.returned += c.returned_delta;
                    r.returned_by_calls += c.returned_delta;
                }
                CallOutcome::Refused => {
                    r.refused += 1;
                    op.refused += 1;
                }
                CallOutcome::NotProcessed => {
                    r.not_processed += 1;
                    op.not_processed += 1;
                }
            }
            if c.duplicate {
                op.duplicates += 1;
            }
            if let Some(f) = &c.fault {
                *r.faults.entry(f.clone()).or_default() += 1;
            }
        }
        for t in self.txs.values() {
            r.returned_total += t.returned_amount;
            r.refunded_total += t.refunded_amount;
            if t.returned_amount != 0 {
                r.returned_by_order
                    .insert(t.order_no.clone(), t.returned_amount);
            }
        }
        r
    }

    /// Capture batch start: 10 -> 11 and 20 -> 21.
    pub fn batch_start(&mut self) -> BatchMoved {
        self.move_states(
            TxState::CapturedNotSettled,
            TxState::CaptureBatchRunning,
            TxState::RefundSettling,
            TxState::RefundBatchRunning,
        )
    }

    /// Capture batch finish: 11 -> 12 and 21 -> 22.
    pub fn batch_finish(&mut self) -> BatchMoved {
        self.move_states(
            TxState::CaptureBatchRunning,
            TxState::Settled,
            TxState::RefundBatchRunning,
            TxState::RefundSettled,
        )
    }

    fn move_states(
        &mut self,
        cap_from: TxState,
        cap_to: TxState,
        ref_from: TxState,
        ref_to: TxState,
    ) -> BatchMoved {
        let mut moved = BatchMoved::default();
        for t in self.txs.values_mut() {
            if t.state == cap_from {
                t.state = cap_to.clone();
                moved.captures += 1;
            } else if t.state == ref_from {
                t.state = ref_to.clone();
                moved.refunds += 1;
            }
        }
        moved
    }

    /// Logs a call that never reached the books (fault, maintenance, or a
    /// request that could not be read). `order_no` is empty when unknown.
    pub fn record_unprocessed(
        &mut self,
        now: DateTime<Utc>,
        operation: Operation,
        call: Option<&BankCall>,
        fault: &str,
    ) {
        self.push_call(
            now,
            operation,
            call,
            CallOutcome::NotProcessed,
            None,
            None,
            false,
            Some(fault.to_string()),
            0,
            None,
            None,
        );
    }

    /// Logs a request refused before the books were consulted (bad envelope,
    /// wrong MERID, malformed fields) and returns its answer.
    pub fn refuse_unread(
        &mut self,
        now: DateTime<Utc>,
        operation: Operation,
        call: Option<&BankCall>,
        code: &str,
        errdesc: &str,
        fault: Option<&str>,
    ) -> Answer {
        self.push_call(
            now,
            operation,
            call,
            CallOutcome::Refused,
            Some(code.to_string()),
            Some(errdesc.to_string()),
            false,
            fault.map(str::to_string),
            0,
            None,
            None,
        );
        refusal_answer(&self.mer_id, code, code, errdesc)
    }

    /// Applies one call to the books, logs it (with the fault that will spoil
    /// its answer, if any) and returns the answer JSON.
    pub fn apply(&mut self, now: DateTime<Utc>, call: &BankCall, fault: Option<&str>) -> Answer {
        let Some(tx) = self.txs.get_mut(&call.order_no) else {
            let errdesc = "Order not found";
            self.push_call(
                now,
                call.operation,
                Some(call),
                CallOutcome::Refused,
                Some(refusal::NOT_FOUND_RESP.into()),
                Some(errdesc.into()),
                false,
                fault.map(str::to_string),
                0,
                None,
                None,
            );
            return refusal_answer(
                &self.mer_id,
                refusal::NOT_FOUND_RESP,
                refusal::NOT_FOUND_ERR,
                errdesc,
            );
        };
        let before = tx.state.code().to_string();
        let result = match call.operation {
            Operation::Inquiry => Ok(inquiry(tx)),
            op => check_call(tx, call).and_then(|()| match op {
                Operation::Reversal => reversal(tx, call),
                Operation::CaptureReversal => capture_reversal(tx, call),
                Operation::Refund => refund(tx, call, &mut self.refund_seq, now),
                Operation::RefundReversal => refund_reversal(tx, call),
                Operation::Inquiry => Ok(inquiry(tx)),
            }),
        };
        let after = tx.state.code().to_string();
        let order_no = tx.order_no.clone();
        match result {
            Ok(change) => {
                self.push_call(
                    now,
                    call.operation,
                    Some(call),
                    CallOutcome::Accepted,
                    Some("0".into()),
                    None,
                    false,
                    fault.map(str::to_string),
                    change.returned_delta,
                    Some(before),
                    Some(after),
                );
                let mut a = Answer::new();
                a.insert("MERID".into(), self.mer_id.clone().into());
                a.insert("LID-M".into(), order_no.into());
                a.insert("RespCode".into(), "0".into());
                a.insert("ErrCode".into(), "00".into());
                a.insert("ERRDESC".into(), "".into());
                for (k, v) in change.fields {
                    a.insert(k.into(), v.into());
                }
                a
            }
            Err(r) => {
                if r.duplicate {
                    self.duplicates += 1;
                }
                self.push_call(
                    now,
                    call.operation,
                    Some(call),
                    CallOutcome::Refused,
                    Some(r.code.into()),
                    Some(r.errdesc.clone()),
                    r.duplicate,
                    fault.map(str::to_string),
                    0,
                    Some(before),
                    Some(after),
                );
                let mut a = refusal_answer(&self.mer_id, r.code, r.code, &r.errdesc);
                a.insert("LID-M".into(), order_no.into());
                a
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_call(
        &mut self,
        now: DateTime<Utc>,
        operation: Operation,
        call: Option<&BankCall>,
        outcome: CallOutcome,
        resp_code: Option<String>,
        errdesc: Option<String>,
        duplicate: bool,
        fault: Option<String>,
        returned_delta: i64,
        state_before: Option<String>,
        state_after: Option<String>,
    ) {
        let seq = self.calls.len() as u64 + 1;
        self.calls.push(CallRecord {
            seq,
            at: now,
            operation: operation.as_str().to_string(),
            order_no: call.map(|c| c.order_no.clone()).unwrap_or_default(),
            org_amt: call.and_then(|c| c.org_amt).map(|m| m.amount()),
            amount: call.and_then(|c| c.amount).map(|m| m.amount()),
            outcome,
            resp_code,
            errdesc,
            duplicate,
            fault,
            latency_ms: 0,
            returned_delta,
            state_before,
            state_after,
        });
    }

    /// Notes on the call just logged that a latency fault held its answer
    /// back for `latency`.
    pub fn held_back(&mut self, latency: Duration) {
        if let Some(last) = self.calls.last_mut() {
            last.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        }
    }
}

/// A transaction that passed the load checks.
#[derive(Debug)]
pub struct PreparedTx(Tx);

fn prepare_one(t: SimTx, now: DateTime<FixedOffset>) -> Result<PreparedTx, String> {
    OrderNo::parse(&t.order_no).map_err(|e| e.to_string())?;
    Xid::parse(&t.xid).map_err(|e| e.to_string())?;
    AuthCode::parse(&t.auth_code).map_err(|e| e.to_string())?;
    Currency::parse(&t.currency.to_string()).map_err(|e| e.to_string())?;
    let state = TxState::from_code(&t.state);
    if let TxState::Unknown(code) = &state {
        return Err(format!(
            "state {code:?} is not a CurrentState of the protocol table"
        ));
    }
    if t.original_amount < 0 || t.auth_amount < 0 || t.refunded_amount < 0 {
        return Err("amounts must be zero or more".into());
    }
    if t.auth_amount > t.original_amount {
        return Err("auth_amount must not exceed original_amount".into());
    }
    if t.refunded_amount > t.auth_amount {
        return Err("refunded_amount must not exceed auth_amount".into());
    }
    Ok(PreparedTx(Tx {
        order_no: t.order_no,
        xid: t.xid,
        auth_code: t.auth_code,
        currency: t.currency,
        original_amount: t.original_amount,
        auth_amount: t.auth_amount,
        state,
        refunded_amount: t.refunded_amount,
        returned_amount: t.returned_amount,
        pan: crate::ctbc::types::MaskedPan::from_bank(&t.pan)
            .as_str()
            .to_string(),
        authorised_at: now,
        last_refund: t.refunded_amount,
        refund_reversed: false,
    }))
}

fn inquiry(tx: &Tx) -> Change {
    Change {
        returned_delta: 0,
        fields: vec![
            ("QueryCode", QUERY_CODE_ONE_RECORD.to_string()),
            ("CurrentState", tx.state.code().to_string()),
            ("XID", tx.xid.clone()),
            ("AuthCode", tx.auth_code.clone()),
            ("AuthAmt", tx.money(tx.auth_amount)),
            ("PAN", tx.pan.clone()),
            ("Txn_date", tx.authorised_at.format("%Y/%m/%d").to_string()),
            ("Txn_time", tx.authorised_at.format("%H:%M:%S").to_string()),
            ("ECI", "05".to_string()),
        ],
    }
}

/// Checks what every mutating call must carry and match, and the batch lock.
fn check_call(tx: &Tx, call: &BankCall) -> Result<(), Refusal> {
    if matches!(
        tx.state,
        TxState::CaptureBatchRunning | TxState::RefundBatchRunning
    ) {
        let mut r = Refusal::new(
            refusal::BATCH_RUNNING,
            format!(
                "請款批次作業中，請稍後再試 capture batch running (state {})",
                tx.state.code()
            ),
        );
        // A refund of a transaction whose refund is already in the batch
        // would move money that already moved.
        r.duplicate =
            call.operation == Operation::Refund && tx.state == TxState::RefundBatchRunning;
        return Err(r);
    }
    let mismatch = |field: &str| {
        Refusal::new(
            refusal::MISMATCH,
            format!("交易資料不符 {field} does not match the transaction"),
        )
    };
    let missing =
        |field: &str| Refusal::new(refusal::FORMAT, format!("欄位缺少 {field} is missing"));
    match &call.xid {
        None => return Err(missing("XID")),
        Some(x) if *x != tx.xid => return Err(mismatch("XID")),
        Some(_) => {}
    }
    match &call.auth_code {
        None => return Err(missing("AuthCode")),
        Some(a) if *a != tx.auth_code => return Err(mismatch("AuthCode")),
        Some(_) => {}
    }
    match &call.org_amt {
        None => return Err(missing("OrgAmt")),
        Some(m)
            if m.currency_code() != tx.currency
                || !org_amt_matches(tx, call.operation, m.amount()) =>
        {
            return Err(mismatch("OrgAmt"))
        }
        Some(_) => {}
    }
    match &call.amount {
        None => Err(missing(amount_field(call.operation))),
        Some(m) if m.currency_code() != tx.currency => Err(mismatch(amount_field(call.operation))),
        Some(_) => Ok(()),
    }
}

/// `OrgAmt` is the amount first authorised. For a refund reversal the public
/// adapters send the refund being cancelled instead (with `CredRevAmt` 0),
/// and the bank's own reading is not documented: both are accepted.
fn org_amt_matches(tx: &Tx, operation: Operation, amount: i64) -> bool {
    amount == tx.original_amount
        || (operation == Operation::RefundReversal
            && tx.last_refund > 0
            && amount == tx.last_refund)
}

/// The wire name of the operation's own amount field.
pub fn amount_field(op: Operation) -> &'static str {
    match op {
        Operation::Inquiry => "",
        Operation::Reversal => "AuthNewAmt",
        Operation::CaptureReversal => "CapRevAmt",
        Operation::Refund => "CredAmt",
        Operation::RefundReversal => "CredRevAmt",
    }
}

fn state_refusal(tx: &Tx, what: &str) -> Refusal {
    Refusal::new(
        refusal::STATE,
        format!(
            "交易狀態不允許 {what} not allowed in state {}",
            tx.state.code()
        ),
    )
}

fn call_amount(call: &BankCall) -> i64 {
    call.amount.map(|m| m.amount()).unwrap_or(0)
}

fn reversal(tx: &mut Tx, call: &BankCall) -> Result<Change, Refusal> {
    let new_amt = call_amount(call);
    match tx.state {
        TxState::AuthCancelled => Err(Refusal::duplicate("authorisation already cancelled")),
        TxState::Authorised => {
            if new_amt == tx.auth_amount && tx.auth_amount < tx.original_amount {
                return Err(Refusal::duplicate(format!(
                    "authorisation already lowered to {}",
                    tx.auth_amount
                )));
            }
            if new_amt < 0 || new_amt >= tx.auth_amount {
                return Err(Refusal::new(
                    refusal::AMOUNT,
                    format!(
                        "金額錯誤 AuthNewAmt {new_amt} must be below the authorised {}",
                        tx.auth_amount
                    ),
                ));
            }
            let delta = tx.auth_amount - new_amt;
            tx.auth_amount = new_amt;
            tx.returned_amount += delta;
            if new_amt == 0 {
                tx.state = TxState::AuthCancelled;
            }
            Ok(Change {
                returned_delta: delta,
                fields: vec![("AuthAmt", tx.money(tx.auth_amount))],
            })
        }
        _ => Err(state_refusal(tx, "reversal")),
    }
}

fn capture_reversal(tx: &mut Tx, call: &BankCall) -> Result<Change, Refusal> {
    let amt = call_amount(call);
    match tx.state {
        TxState::Authorised | TxState::AuthCancelled => Err(Refusal::duplicate(
            "not in the capture file (already taken out)",
        )),
        TxState::CapturedNotSettled => {
            if amt != 0 && amt != tx.auth_amount {
                return Err(Refusal::new(
                    refusal::AMOUNT,
                    format!(
                        "金額錯誤 CapRevAmt {amt}: only the whole capture (0 or {}) can be taken back",
                        tx.auth_amount
                    ),
                ));
            }
            tx.state = TxState::Authorised;
            Ok(Change {
                returned_delta: 0,
                fields: vec![],
            })
        }
        _ => Err(state_refusal(tx, "capture reversal")),
    }
}

fn refund(
    tx: &mut Tx,
    call: &BankCall,
    refund_seq: &mut u64,
    now: DateTime<Utc>,
) -> Result<Change, Refusal> {
    let amt = call_amount(call);
    match tx.state {
        TxState::RefundSettling | TxState::RefundBatchRunning | TxState::RefundSettled => {
            Err(Refusal::duplicate("already refunded"))
        }
        TxState::Settled => {
            let left = tx.auth_amount - tx.refunded_amount;
            if amt <= 0 || amt > left {
                return Err(Refusal::new(
                    refusal::AMOUNT,
                    format!("金額錯誤 CredAmt {amt} must be 1 to the {left} left to refund"),
                ));
            }
            tx.refunded_amount += amt;
            tx.returned_amount += amt;
            tx.last_refund = amt;
            tx.refund_reversed = false;
            tx.state = TxState::RefundSettling;
            *refund_seq += 1;
            Ok(Change {
                returned_delta: amt,
                fields: vec![
                    ("RefAmt", tx.money(amt)),
                    ("RetrRef", format!("{:012}", *refund_seq)),
                    ("BatchID", now.format("%Y%m%d").to_string()),
                    ("BatchSeq", format!("{:06}", *refund_seq % 1_000_000)),
                ],
            })
        }
        _ => Err(state_refusal(tx, "refund")),
    }
}

fn refund_reversal(tx: &mut Tx, call: &BankCall) -> Result<Change, Refusal> {
    let amt = call_amount(call);
    match tx.state {
        TxState::Settled if tx.refund_reversed => {
            Err(Refusal::duplicate("refund already reversed"))
        }
        TxState::RefundSettling => {
            if amt != 0 && amt != tx.last_refund {
                return Err(Refusal::new(
                    refusal::AMOUNT,
                    format!(
                        "金額錯誤 CredRevAmt {amt}: only the whole refund (0 or {}) can be reversed",
                        tx.last_refund
                    ),
                ));
            }
            let delta = tx.last_refund;
            tx.refunded_amount -= delta;
            tx.returned_amount -= delta;
            // `last_refund` stays: a repeated reversal naming it in OrgAmt is
            // then recognised as a duplicate.
            tx.refund_reversed = true;
            tx.state = TxState::Settled;
            Ok(Change {
                returned_delta: -delta,
                fields: vec![],
            })
        }
        _ => Err(state_refusal(tx, "refund reversal")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 3, 4, 5).unwrap()
    }

    fn taipei() -> DateTime<FixedOffset> {
        now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
    }

    fn ledger_with(state: TxState, amount: i64) -> Ledger {
        let mut l = Ledger::new("1234567");
        let p =
            Ledger::prepare(vec![SimTx::new("O1", "X1", "A1", amount, state)], taipei()).unwrap();
        l.load(p);
        l
    }

    fn twd(a: i64) -> Money {
        Money::new(Currency::TWD, a).unwrap()
    }

    fn call(op: Operation, org: i64, amount: i64) -> BankCall {
        BankCall {
            operation: op,
            order_no: "O1".into(),
            xid: Some("X1".into()),
            auth_code: Some("A1".into()),
            org_amt: Some(twd(org)),
            amount: Some(twd(amount)),
        }
    }

    fn resp(a: &Answer) -> &str {
        a["RespCode"].as_str().unwrap()
    }

    fn desc(a: &Answer) -> &str {
        a["ERRDESC"].as_str().unwrap()
    }

    fn state(l: &Ledger) -> String {
        l.transaction("O1").unwrap().state
    }

    #[test]
    fn inquiry_shows_the_transaction() {
        let mut l = ledger_with(TxState::CapturedNotSettled, 1500);
        let a = l.apply(now(), &call(Operation::Inquiry, 0, 0), None);
        assert_eq!(resp(&a), "0");
        assert_eq!(a["ErrCode"], "00");
        assert_eq!(a["QueryCode"], "1");
        assert_eq!(a["CurrentState"], "10");
        assert_eq!(a["XID"], "X1");
        assert_eq!(a["AuthCode"], "A1");
        assert_eq!(a["AuthAmt"], "901 1500 0");
        assert_eq!(a["PAN"], "411111******1111");
        assert_eq!(a["Txn_date"], "2024/05/01");
        assert_eq!(a["Txn_time"], "11:04:05");
        assert!(a.contains_key("ECI"));
    }

    #[test]
    fn unknown_order_is_not_found() {
        let mut l = ledger_with(TxState::Authorised, 100);
        for op in Operation::ALL {
            let mut c = call(op, 100, 0);
            c.order_no = "NOPE".into();
            let a = l.apply(now(), &c, None);
            assert_eq!(resp(&a), "99");
            assert_eq!(a["ErrCode"], "01");
            assert_eq!(desc(&a), "Order not found");
        }
        assert_eq!(l.report().refused, 5);
    }

    #[test]
    fn full_reversal_cancels_the_authorisation() {
        let mut l = ledger_with(TxState::Authorised, 1500);
        let a = l.apply(now(), &call(Operation::Reversal, 1500, 0), None);
        assert_eq!(resp(&a), "0");
        let t = l.transaction("O1").unwrap();
        assert_eq!(
            (t.state.as_str(), t.auth_amount, t.returned_amount),
            ("0", 0, 1500)
        );
        // A second one is a duplicate.
        let a = l.apply(now(), &call(Operation::Reversal, 1500, 0), None);
        assert_eq!(resp(&a), refusal::DUPLICATE);
        assert_eq!(l.duplicates(), 1);
        assert_eq!(l.transaction("O1").unwrap().returned_amount, 1500);
    }

    #[test]
    fn partial_reversal_lowers_the_authorisation() {
        let mut l = ledger_with(TxState::Authorised, 1500);
        let a = l.apply(now(), &call(Operation::Reversal, 1500, 1000), None);
        assert_eq!(resp(&a), "0");
        assert_eq!(a["AuthAmt"], "901 1000 0");
        let t = l.transaction("O1").unwrap();
        assert_eq!(
            (t.state.as_str(), t.auth_amount, t.returned_amount),
            ("1", 1000, 500)
        );
        // Repeating the same lowering is a duplicate.
        let a = l.apply(now(), &call(Operation::Reversal, 1500, 1000), None);
        assert_eq!(resp(&a), refusal::DUPLICATE);
        assert_eq!(l.duplicates(), 1);
        // Raising it is refused, not a duplicate.
        let a = l.apply(now(), &call(Operation::Reversal, 1500, 1200), None);
        assert_eq!(resp(&a), refusal::AMOUNT);
        assert_eq!(l.duplicates(), 1);
        // Lowering further, then cancelling, works.
        assert_eq!(
            resp(&l.apply(now(), &call(Operation::Reversal, 1500, 0), None)),
            "0"
        );
        let t = l.transaction("O1").unwrap();
        assert_eq!((t.state.as_str(), t.returned_amount), ("0", 1500));
    }

    #[test]
    fn reversal_to_the_same_amount_without_lowering_is_refused() {
        let mut l = ledger_with(TxState::Authorised, 1500);
        let a = l.apply(now(), &call(Operation::Reversal, 1500, 1500), None);
        assert_eq!(resp(&a), refusal::AMOUNT);
        assert_eq!(l.duplicates(), 0);
    }

    #[test]
    fn capture_reversal_takes_it_out_of_the_capture_file() {
        let mut l = ledger_with(TxState::CapturedNotSettled, 1500);
        let a = l.apply(now(), &call(Operation::CaptureReversal, 1500, 0), None);
        assert_eq!(resp(&a), "0");
        let t = l.transaction("O1").unwrap();
        assert_eq!((t.state.as_str(), t.returned_amount), ("1", 0));
        // Again on 1: duplicate; then reversal, and again on 0: duplicate.
        assert_eq!(
            resp(&l.apply(now(), &call(Operation::CaptureReversal, 1500, 0), None)),
            refusal::DUPLICATE
        );
        assert_eq!(
            resp(&l.apply(now(), &call(Operation::Reversal, 1500, 0), None)),
            "0"
        );
        assert_eq!(
            resp(&l.apply(now(), &call(Operation::CaptureReversal, 1500, 0), None)),
            refusal::DUPLICATE
        );
        assert_eq!(l.duplicates(), 2);
        assert_eq!(l.transaction("O1").unwrap().returned_amount, 1500);
    }

    #[test]
    fn capture_reversal_accepts_the_whole_amount_only() {
        let mut l = ledger_with(TxState::CapturedNotSettled, 1500);
        let a = l.apply(now(), &call(Operation::CaptureReversal, 1500, 700), None);
        assert_eq!(resp(&a), refusal::AMOUNT);
        let a = l.apply(now(), &call(Operation::CaptureReversal, 1500, 1500), None);
        assert_eq!(resp(&a), "0");
    }

    #[test]
    fn refund_and_partial_refund() {
        let mut l = ledger_with(TxState::Settled, 1500);
        let a = l.apply(now(), &call(Operation::Refund, 1500, 1600), None);
        assert_eq!(resp(&a), refusal::AMOUNT);
        let a = l.apply(now(), &call(Operation::Refund, 1500, 0), None);
        assert_eq!(resp(&a), refusal::AMOUNT);
        let a = l.apply(now(), &call(Operation::Refund, 1500, 600), None);
        assert_eq!(resp(&a), "0");
        assert_eq!(a["RefAmt"], "901 600 0");
        for k in ["RetrRef", "BatchID", "BatchSeq"] {
            assert!(a.contains_key(k), "{k}");
        }
        let t = l.transaction("O1").unwrap();
        assert_eq!(
            (t.state.as_str(), t.refunded_amount, t.returned_amount),
            ("20", 600, 600)
        );
        // Any refund on 20 is a duplicate.
        let a = l.apply(now(), &call(Operation::Refund, 1500, 600), None);
        assert_eq!(resp(&a), refusal::DUPLICATE);
        assert_eq!(l.duplicates(), 1);
    }

    #[test]
    fn refund_reversal_and_its_duplicate() {
        let mut l = ledger_with(TxState::Settled, 1500);
        // Nothing to reverse yet: refused, not a duplicate.
        let a = l.apply(now(), &call(Operation::RefundReversal, 1500, 0), None);
        assert_eq!(resp(&a), refusal::STATE);
        assert!(desc(&a).contains("交易狀態不允許"));
        assert_eq!(
            resp(&l.apply(now(), &call(Operation::Refund, 1500, 500), None)),
            "0"
        );
        let a = l.apply(now(), &call(Operation::RefundReversal, 1500, 400), None);
        assert_eq!(resp(&a), refusal::AMOUNT);
        let a = l.apply(now(), &call(Operation::RefundReversal, 1500, 500), None);
        assert_eq!(resp(&a), "0");
        let t = l.transaction("O1").unwrap();
        assert_eq!(
            (t.state.as_str(), t.refunded_amount, t.returned_amount),
            ("12", 0, 0)
        );
        let a = l.apply(now(), &call(Operation::RefundReversal, 1500, 0), None);
        assert_eq!(resp(&a), refusal::DUPLICATE);
        assert_eq!(l.duplicates(), 1);
        // Refunding again after the reversal is fine, and can be reversed with 0.
        assert_eq!(
            resp(&l.apply(now(), &call(Operation::Refund, 1500, 1500), None)),
            "0"
        );
        assert_eq!(
            resp(&l.apply(now(), &call(Operation::RefundReversal, 1500, 0), None)),
            "0"
        );
        let r = l.report();
        assert_eq!(r.returned_total, 0);
        assert_eq!(r.returned_by_calls, 0);
    }

    #[test]
    fn fields_must_match_the_record() {
        let mut l = ledger_with(TxState::Authorised, 1500);
        let mut c = call(Operation::Reversal, 1500, 0);
        c.xid = Some("X2".into());
        assert!(desc(&l.apply(now(), &c, None)).contains("XID"));
        let mut c = call(Operation::Reversal, 1500, 0);
        c.auth_code = Some("B1".into());
        assert!(desc(&l.apply(now(), &c, None)).contains("AuthCode"));
        let c = call(Operation::Reversal, 1400, 0);
        let a = l.apply(now(), &c, None);
        assert_eq!(resp(&a), refusal::MISMATCH);
        assert!(desc(&a).contains("OrgAmt"));
        let mut c = call(Operation::Reversal, 1500, 0);
        c.amount = None;
        assert!(desc(&l.apply(now(), &c, None)).contains("AuthNewAmt"));
        let mut c = call(Operation::Reversal, 1500, 0);
        c.xid = None;
        assert_eq!(resp(&l.apply(now(), &c, None)), refusal::FORMAT);
        assert_eq!(state(&l), "1");
        assert_eq!(l.duplicates(), 0);
    }

    /// Every operation in every state: what is accepted, what is a duplicate,
    /// and that a refusal never changes the transaction.
    #[test]
    fn every_operation_in_every_state() {
        use TxState::*;
        for s in TxState::all_known() {
            for op in [
                Operation::Reversal,
                Operation::CaptureReversal,
                Operation::Refund,
                Operation::RefundReversal,
            ] {
                let mut l = ledger_with(s.clone(), 1500);
                let amount = if op == Operation::Refund { 1500 } else { 0 };
                let before = l.transaction("O1").unwrap();
                let a = l.apply(now(), &call(op, 1500, amount), None);
                let accepted = matches!(
                    (op, &s),
                    (Operation::Reversal, Authorised)
                        | (Operation::CaptureReversal, CapturedNotSettled)
                        | (Operation::Refund, Settled)
                        | (Operation::RefundReversal, RefundSettling)
                );
                let duplicate = matches!(
                    (op, &s),
                    (Operation::Reversal, AuthCancelled)
                        | (Operation::CaptureReversal, Authorised | AuthCancelled)
                        | (
                            Operation::Refund,
                            RefundSettling | RefundBatchRunning | RefundSettled
                        )
                );
                assert_eq!(resp(&a) == "0", accepted, "{op} in {s}: {a:?}");
                assert_eq!(l.duplicates() == 1, duplicate, "{op} in {s}: {a:?}");
                if !accepted {
                    assert!(!desc(&a).is_empty());
                    assert_eq!(l.transaction("O1").unwrap(), before, "{op} in {s}");
                }
                if matches!(s, CaptureBatchRunning | RefundBatchRunning) {
                    assert_eq!(resp(&a), refusal::BATCH_RUNNING);
                    assert!(desc(&a).contains("batch running"));
                }
                let expected_after = match (op, &s) {
                    (Operation::Reversal, Authorised) => "0",
                    (Operation::CaptureReversal, CapturedNotSettled) => "1",
                    (Operation::Refund, Settled) => "20",
                    (Operation::RefundReversal, RefundSettling) => "12",
                    _ => s.code(),
                };
                assert_eq!(state(&l), expected_after, "{op} in {s}");
            }
            // Inquiry is answered in every state and changes nothing.
            let mut l = ledger_with(s.clone(), 1500);
            let a = l.apply(now(), &call(Operation::Inquiry, 0, 0), None);
            assert_eq!(a["CurrentState"], s.code());
        }
    }

    #[test]
    fn batch_moves_states_and_locks_operations() {
        let mut l = Ledger::new("1234567");
        let p = Ledger::prepare(
            vec![
                SimTx::new("C", "X", "A", 100, TxState::CapturedNotSettled),
                SimTx::new("R", "X", "A", 100, TxState::RefundSettling),
                SimTx::new("S", "X", "A", 100, TxState::Settled),
                SimTx::new("U", "X", "A", 100, TxState::Authorised),
            ],
            taipei(),
        )
        .unwrap();
        l.load(p);
        assert_eq!(
            l.batch_start(),
            BatchMoved {
                captures: 1,
                refunds: 1
            }
        );
        assert_eq!(l.transaction("C").unwrap().state, "11");
        assert_eq!(l.transaction("R").unwrap().state, "21");
        let mut c = call(Operation::CaptureReversal, 100, 0);
        c.order_no = "C".into();
        c.xid = Some("X".into());
        c.auth_code = Some("A".into());
        let a = l.apply(now(), &c, None);
        assert_eq!(resp(&a), refusal::BATCH_RUNNING);
        assert_eq!(l.transaction("C").unwrap().state, "11");
        assert_eq!(
            l.batch_finish(),
            BatchMoved {
                captures: 1,
                refunds: 1
            }
        );
        assert_eq!(l.transaction("C").unwrap().state, "12");
        assert_eq!(l.transaction("R").unwrap().state, "22");
        assert_eq!(l.transaction("S").unwrap().state, "12");
        assert_eq!(l.transaction("U").unwrap().state, "1");
    }

    #[test]
    fn calls_are_logged_with_faults_and_paged() {
        let mut l = ledger_with(TxState::Authorised, 1500);
        l.record_unprocessed(now(), Operation::Inquiry, None, "5xx");
        l.apply(
            now(),
            &call(Operation::Reversal, 1500, 0),
            Some("apply_then_drop"),
        );
        l.refuse_unread(now(), Operation::Refund, None, refusal::MAC, "MAC", None);
        let r = l.report();
        assert_eq!(
            (r.calls, r.accepted, r.refused, r.not_processed),
            (3, 1, 1, 1)
        );
        assert_eq!(r.faults["5xx"], 1);
        assert_eq!(r.faults["apply_then_drop"], 1);
        assert_eq!(r.returned_by_order["O1"], 1500);
        assert_eq!(r.by_operation["reversal"].returned, 1500);
        let page = l.calls(Some("O1"), 0, 10);
        assert_eq!(page.total, 1);
        assert_eq!(page.calls[0].amount, Some(0));
        assert_eq!(page.calls[0].org_amt, Some(1500));
        assert_eq!(page.calls[0].state_after.as_deref(), Some("0"));
        assert_eq!(l.calls(None, 1, 10).calls.len(), 2);
        l.reset();
        assert_eq!(l.report(), LedgerReport::default());
    }

    #[test]
    fn bad_loads_are_refused() {
        let mut t = SimTx::new("O1", "X1", "A1", 100, TxState::Settled);
        t.state = "7".into();
        assert!(Ledger::prepare(vec![t], taipei())
            .unwrap_err()
            .contains("transaction 0"));
        let t = SimTx::new("O-1", "X1", "A1", 100, TxState::Settled);
        assert!(Ledger::prepare(vec![t], taipei()).is_err());
        let mut t = SimTx::new("O1", "X1", "A1", 100, TxState::Settled);
        t.auth_amount = 200;
        assert!(Ledger::prepare(vec![t], taipei()).is_err());
    }
}
