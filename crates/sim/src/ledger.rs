//! The simulated bank's books: every transaction it knows, a log of every
//! call it was sent and a list of the changes made at its portal. The state
//! machine of the protocol document's table is `transitions` (the table) and
//! `operations` (one call applied); changes made behind the caller's back
//! are `portal`'s; the admin API's JSON shapes are `dto`. Pure (no I/O, no clock, no cryptography) so
//! every transition and refusal is tested directly, and so the server can keep
//! it behind one short-held lock.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value};

use crate::ctbc::types::{AuthCode, Currency, Money, OrderNo, TxState, Xid};
use crate::ctbc::Operation;

mod dto;
mod operations;
mod portal;
pub mod transitions;

pub use dto::{
    BatchMoved, CallDisposition, CallRecord, CallsPage, LedgerReport, OperationTotals,
    OtherAuthorisation, PortalApplied, PortalChange, PortalRecord, SimRefund, SimTx,
};
pub use operations::amount_field;
use operations::{apply_to, next_references, Change, Refusal};
pub use portal::PortalRefusal;
use transitions::{BatchStep, BATCH_FINISH, BATCH_START};

/// One parsed request, as the ledger needs it. `amount` is the operation's own
/// amount field: AuthNewAmt, CapRevAmt, CredAmt or CredRevAmt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankCall {
    pub operation: Operation,
    /// The merchant whose keys opened the call: it finds only its own
    /// transactions, and its answer names it.
    pub mer_id: String,
    pub order_no: String,
    pub xid: Option<String>,
    pub auth_code: Option<String>,
    pub org_amt: Option<Money>,
    pub amount: Option<Money>,
    /// The refund a refund reversal cancels, when it names one.
    pub cred_batch: CredBatch,
}

/// A refund reversal's `CredBatchID` and `CredBatchSeq`: the refund it
/// cancels, by the batch references of that refund's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredBatch {
    pub id: Option<String>,
    pub seq: Option<String>,
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
    mer_id: String,
    order_no: String,
    xid: String,
    auth_code: String,
    currency: u16,
    original_amount: i64,
    auth_amount: i64,
    state: TxState,
    returned_amount: i64,
    pan: String,
    authorised_at: DateTime<FixedOffset>,
    /// Every refund of the transaction, oldest first, reversed ones included.
    refunds: Vec<HeldRefund>,
    /// Other authorisations of the order number, as loaded.
    others: Vec<OtherAuth>,
}

/// One refund of a transaction as the books hold it.
#[derive(Clone, Debug)]
struct HeldRefund {
    amount: i64,
    refs: RefundRefs,
    reversed: bool,
    settled: bool,
}

/// Where the bank filed one refund: the references of its answer. All empty
/// for a refund loaded without them, until `Ledger::load` gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RefundRefs {
    batch_id: String,
    batch_seq: String,
    retr_ref: String,
}

impl RefundRefs {
    fn is_empty(&self) -> bool {
        self.batch_id.is_empty() && self.batch_seq.is_empty() && self.retr_ref.is_empty()
    }

    /// Whether `other` names the same refund: the same batch entry, or the
    /// same retrieval reference.
    fn clashes_with(&self, other: &RefundRefs) -> bool {
        (self.batch_id == other.batch_id && self.batch_seq == other.batch_seq)
            || self.retr_ref == other.retr_ref
    }
}

impl HeldRefund {
    /// Not reversed: its money is refunded, settled or not.
    fn live(&self) -> bool {
        !self.reversed
    }

    /// Not reversed and not settled yet: a refund reversal can still cancel it.
    fn settling(&self) -> bool {
        !self.reversed && !self.settled
    }

    fn to_sim(&self) -> SimRefund {
        SimRefund {
            amount: self.amount,
            batch_id: self.refs.batch_id.clone(),
            batch_seq: self.refs.batch_seq.clone(),
            retr_ref: self.refs.retr_ref.clone(),
            reversed: self.reversed,
            settled: self.settled,
        }
    }
}

/// Another authorisation of a transaction's order number, checked: its state
/// is one no call and no batch changes.
#[derive(Clone, Debug)]
struct OtherAuth {
    xid: String,
    auth_code: String,
    amount: i64,
    state: TxState,
    later: bool,
}

impl OtherAuth {
    fn to_sim(&self) -> OtherAuthorisation {
        OtherAuthorisation {
            xid: self.xid.clone(),
            auth_code: self.auth_code.clone(),
            amount: self.amount,
            state: self.state.code().to_string(),
            later: self.later,
        }
    }
}

impl Tx {
    fn to_sim(&self) -> SimTx {
        SimTx {
            mer_id: Some(self.mer_id.clone()),
            order_no: self.order_no.clone(),
            xid: self.xid.clone(),
            auth_code: self.auth_code.clone(),
            currency: self.currency,
            original_amount: self.original_amount,
            auth_amount: self.auth_amount,
            state: self.state.code().to_string(),
            refunded_amount: self.refunded(),
            returned_amount: self.returned_amount,
            pan: self.pan.clone(),
            other_authorisations: self.others.iter().map(OtherAuth::to_sim).collect(),
            refunds: self.refunds.iter().map(HeldRefund::to_sim).collect(),
        }
    }

    /// Refunded and not reversed: what the balance of a further refund
    /// leaves out.
    fn refunded(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.live())
            .map(|r| r.amount)
            .sum()
    }

    /// What a further refund may take: the captured amount less the
    /// refunds not reversed.
    fn refund_balance(&self) -> i64 {
        self.auth_amount - self.refunded()
    }

    /// An amount of this transaction as the wire writes it (`"901 1500 0"`).
    fn money(&self, amount: i64) -> String {
        let exponent = Currency::parse(&self.currency.to_string())
            .map(|c| c.exponent)
            .unwrap_or(0);
        format!("{} {amount} {exponent}", self.currency)
    }

    /// An amount of this transaction as a `Money` (its currency is checked
    /// on loading).
    fn amount(&self, amount: i64) -> Option<Money> {
        let currency = Currency::from_code(self.currency).ok()?;
        Money::new(currency, amount).ok()
    }
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

/// What the call log notes about one call, built where the call ends.
struct CallEntry<'a> {
    operation: Operation,
    /// The call as read; `None` when it could not be read.
    call: Option<&'a BankCall>,
    outcome: CallDisposition,
    resp_code: Option<String>,
    errdesc: Option<String>,
    duplicate: bool,
    fault: Option<String>,
    returned_delta: i64,
    state_before: Option<String>,
    state_after: Option<String>,
}

/// The simulated bank's books. One transaction per order number, whichever
/// merchant it belongs to.
#[derive(Debug, Default)]
pub struct Ledger {
    txs: HashMap<String, Tx>,
    calls: Vec<CallRecord>,
    duplicates: u64,
    refund_seq: u64,
    /// The changes made at the bank's portal: never calls of the caller's.
    portal: Vec<PortalRecord>,
}

impl Ledger {
    /// Forgets every transaction, call and change made at the portal.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Checks transactions for loading; returns them ready to insert, or the
    /// first problem with its index. `merchants` are the MERIDs the
    /// simulator serves, the first (a transaction's when it names none)
    /// first. Runs outside the lock.
    pub fn prepare(
        txs: Vec<SimTx>,
        now: DateTime<FixedOffset>,
        merchants: &[String],
    ) -> Result<Vec<PreparedTx>, String> {
        txs.into_iter()
            .enumerate()
            .map(|(i, t)| {
                prepare_one(t, now, merchants).map_err(|e| format!("transaction {i}: {e}"))
            })
            .collect()
    }

    /// Adds (or replaces, by order number) checked transactions; a refund
    /// loaded without references gets them here, as the bank gave them.
    pub fn load(&mut self, txs: Vec<PreparedTx>) -> u64 {
        let n = txs.len() as u64;
        self.txs.reserve(txs.len());
        for PreparedTx(mut tx) in txs {
            let day = tx.authorised_at.format("%Y%m%d").to_string();
            for i in 0..tx.refunds.len() {
                if tx.refunds[i].refs.is_empty() {
                    tx.refunds[i].refs = next_references(&mut self.refund_seq, &day, &tx.refunds);
                }
            }
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
            returned_by_portal: self.portal.iter().map(|p| p.returned_delta).sum(),
            portal_changes: self.portal.clone(),
            ..LedgerReport::default()
        };
        for c in &self.calls {
            let op = r.by_operation.entry(c.operation.clone()).or_default();
            op.calls += 1;
            match c.outcome {
                CallDisposition::Accepted => {
                    r.accepted += 1;
                    op.accepted += 1;
                    op.returned += c.returned_delta;
                    r.returned_by_calls += c.returned_delta;
                }
                CallDisposition::Refused => {
                    r.refused += 1;
                    op.refused += 1;
                }
                CallDisposition::NotProcessed => {
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
            r.refunded_total += t.refunded();
            if t.returned_amount != 0 {
                r.returned_by_order
                    .insert(t.order_no.clone(), t.returned_amount);
            }
        }
        r
    }

    /// Capture batch start: 10 -> 11 and 20 -> 21.
    pub fn batch_start(&mut self) -> BatchMoved {
        self.move_states(&BATCH_START)
    }

    /// Capture batch finish: 11 -> 12 and 21 -> 22, the refunds settling
    /// settled.
    pub fn batch_finish(&mut self) -> BatchMoved {
        self.move_states(&BATCH_FINISH)
    }

    fn move_states(&mut self, step: &BatchStep) -> BatchMoved {
        let mut moved = BatchMoved::default();
        for t in self.txs.values_mut() {
            if t.state == step.capture.0 {
                t.state = step.capture.1.clone();
                moved.captures += 1;
            } else if t.state == step.refund.0 {
                t.state = step.refund.1.clone();
                moved.refunds += 1;
                if step.settles_refunds {
                    for r in t.refunds.iter_mut().filter(|r| r.live()) {
                        r.settled = true;
                    }
                }
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
            CallEntry {
                operation,
                call,
                outcome: CallDisposition::NotProcessed,
                resp_code: None,
                errdesc: None,
                duplicate: false,
                fault: Some(fault.to_string()),
                returned_delta: 0,
                state_before: None,
                state_after: None,
            },
        );
    }

    /// Logs a request refused before the books were consulted (bad envelope,
    /// unknown MERID, malformed fields) and returns its answer, as merchant
    /// `mer_id` gets it.
    pub fn refuse_unread(
        &mut self,
        now: DateTime<Utc>,
        mer_id: &str,
        operation: Operation,
        call: Option<&BankCall>,
        (code, errdesc): (&str, &str),
        fault: Option<&str>,
    ) -> Answer {
        self.push_call(
            now,
            CallEntry {
                operation,
                call,
                outcome: CallDisposition::Refused,
                resp_code: Some(code.to_string()),
                errdesc: Some(errdesc.to_string()),
                duplicate: false,
                fault: fault.map(str::to_string),
                returned_delta: 0,
                state_before: None,
                state_after: None,
            },
        );
        refusal_answer(mer_id, code, code, errdesc)
    }

    /// Applies one call to the books, logs it (with the fault that will spoil
    /// its answer, if any) and returns the answer JSON. Another merchant's
    /// transaction is not found, as the bank holds no such order for the
    /// caller.
    pub fn apply(&mut self, now: DateTime<Utc>, call: &BankCall, fault: Option<&str>) -> Answer {
        let Some(tx) = (self.txs.get_mut(&call.order_no)).filter(|t| t.mer_id == call.mer_id)
        else {
            return self.not_found(now, call, fault);
        };
        let before = tx.state.code().to_string();
        let result = apply_to(tx, call, &mut self.refund_seq, now);
        let after = tx.state.code().to_string();
        let order_no = tx.order_no.clone();
        let (entry, mut answer) = match result {
            Ok(change) => self.accepted(call, change, order_no),
            Err(r) => self.refused(call, r, order_no),
        };
        echo_call(&mut answer, call);
        self.push_call(
            now,
            CallEntry {
                fault: fault.map(str::to_string),
                state_before: Some(before),
                state_after: Some(after),
                ..entry
            },
        );
        answer
    }

    /// An order the bank does not know.
    fn not_found(&mut self, now: DateTime<Utc>, call: &BankCall, fault: Option<&str>) -> Answer {
        let errdesc = "Order not found";
        self.push_call(
            now,
            CallEntry {
                operation: call.operation,
                call: Some(call),
                outcome: CallDisposition::Refused,
                resp_code: Some(refusal::NOT_FOUND_RESP.into()),
                errdesc: Some(errdesc.into()),
                duplicate: false,
                fault: fault.map(str::to_string),
                returned_delta: 0,
                state_before: None,
                state_after: None,
            },
        );
        refusal_answer(
            &call.mer_id,
            refusal::NOT_FOUND_RESP,
            refusal::NOT_FOUND_ERR,
            errdesc,
        )
    }

    /// An accepted call's log entry (without fault and states) and answer.
    fn accepted<'a>(
        &self,
        call: &'a BankCall,
        change: Change,
        order_no: String,
    ) -> (CallEntry<'a>, Answer) {
        let entry = CallEntry {
            operation: call.operation,
            call: Some(call),
            outcome: CallDisposition::Accepted,
            resp_code: Some("0".into()),
            errdesc: None,
            duplicate: false,
            fault: None,
            returned_delta: change.returned_delta,
            state_before: None,
            state_after: None,
        };
        let mut a = Answer::new();
        a.insert("MERID".into(), call.mer_id.clone().into());
        a.insert("LID-M".into(), order_no.into());
        a.insert("RespCode".into(), "0".into());
        a.insert("ErrCode".into(), "00".into());
        a.insert("ERRDESC".into(), "".into());
        for (k, v) in change.fields {
            a.insert(k, v);
        }
        (entry, a)
    }

    /// A refused call's log entry (without fault and states) and answer;
    /// counts a duplicate.
    fn refused<'a>(
        &mut self,
        call: &'a BankCall,
        r: Refusal,
        order_no: String,
    ) -> (CallEntry<'a>, Answer) {
        if r.duplicate {
            self.duplicates += 1;
        }
        let mut a = refusal_answer(&call.mer_id, r.code, r.code, &r.errdesc);
        a.insert("LID-M".into(), order_no.into());
        let entry = CallEntry {
            operation: call.operation,
            call: Some(call),
            outcome: CallDisposition::Refused,
            resp_code: Some(r.code.into()),
            errdesc: Some(r.errdesc),
            duplicate: r.duplicate,
            fault: None,
            returned_delta: 0,
            state_before: None,
            state_after: None,
        };
        (entry, a)
    }

    fn push_call(&mut self, now: DateTime<Utc>, entry: CallEntry<'_>) {
        let seq = self.calls.len() as u64 + 1;
        let call = entry.call;
        self.calls.push(CallRecord {
            seq,
            at: now,
            operation: entry.operation.as_str().to_string(),
            order_no: call.map(|c| c.order_no.clone()).unwrap_or_default(),
            org_amt: call.and_then(|c| c.org_amt).map(|m| m.amount()),
            amount: call.and_then(|c| c.amount).map(|m| m.amount()),
            outcome: entry.outcome,
            resp_code: entry.resp_code,
            errdesc: entry.errdesc,
            duplicate: entry.duplicate,
            fault: entry.fault,
            latency_ms: 0,
            returned_delta: entry.returned_delta,
            state_before: entry.state_before,
            state_after: entry.state_after,
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

/// A money-moving call's own fields (`XID`, `AuthCode`, `OrgAmt` and its
/// amount) echoed in its answer, accepted or refused, as the request carried
/// them: the client checks every such field an answer carries against its
/// call (`ctbc::answer::check_binding`), so every call to the simulator
/// exercises that check. The answer's `LID-M` is the transaction's, which
/// is the request's.
fn echo_call(answer: &mut Answer, call: &BankCall) {
    if !call.operation.moves_money() {
        return;
    }
    let texts = [("XID", &call.xid), ("AuthCode", &call.auth_code)];
    for (key, value) in texts {
        if let Some(value) = value {
            answer.insert(key.into(), value.clone().into());
        }
    }
    let amounts = [
        ("OrgAmt", call.org_amt),
        (amount_field(call.operation), call.amount),
    ];
    for (key, value) in amounts {
        if let Some(value) = value {
            answer.insert(key.into(), value.to_string().into());
        }
    }
}

/// A transaction that passed the load checks.
#[derive(Debug)]
pub struct PreparedTx(Tx);

fn prepare_one(
    t: SimTx,
    now: DateTime<FixedOffset>,
    merchants: &[String],
) -> Result<PreparedTx, String> {
    OrderNo::parse(&t.order_no).map_err(|e| e.to_string())?;
    let mer_id = merchant_of(&t, merchants)?;
    Xid::parse(&t.xid).map_err(|e| e.to_string())?;
    AuthCode::parse(&t.auth_code).map_err(|e| e.to_string())?;
    Currency::parse(&t.currency.to_string()).map_err(|e| e.to_string())?;
    let state = TxState::from_code(&t.state);
    if let TxState::Unknown(code) = &state {
        return Err(format!(
            "state {code:?} is not a CurrentState of the protocol table"
        ));
    }
    let others = prepare_others(&t)?;
    if t.original_amount < 0 || t.auth_amount < 0 || t.refunded_amount < 0 {
        return Err("amounts must be zero or more".into());
    }
    if t.auth_amount > t.original_amount {
        return Err("auth_amount must not exceed original_amount".into());
    }
    if t.refunded_amount > t.auth_amount {
        return Err("refunded_amount must not exceed auth_amount".into());
    }
    let refunds = prepare_refunds(&t, &state)?;
    Ok(PreparedTx(Tx {
        mer_id,
        order_no: t.order_no,
        xid: t.xid,
        auth_code: t.auth_code,
        currency: t.currency,
        original_amount: t.original_amount,
        auth_amount: t.auth_amount,
        state,
        returned_amount: t.returned_amount,
        pan: crate::ctbc::types::MaskedPan::from_bank(&t.pan)
            .as_str()
            .to_string(),
        authorised_at: now,
        refunds,
        others,
    }))
}

/// The merchant a transaction belongs to: the one it names, which the
/// simulator must serve, or the first.
fn merchant_of(t: &SimTx, merchants: &[String]) -> Result<String, String> {
    let Some(named) = &t.mer_id else {
        return merchants
            .first()
            .cloned()
            .ok_or_else(|| "the simulator serves no merchant".to_string());
    };
    if merchants.contains(named) {
        return Ok(named.clone());
    }
    Err(format!(
        "mer_id {named:?} of order {:?} is not a merchant of the simulator, which serves {}",
        t.order_no,
        merchants.join(", ")
    ))
}

/// Checks a transaction's refunds. Loaded without any, what it has refunded
/// is one refund, settling while the transaction is in the refund batch's
/// states before settling (20, 21), settled otherwise.
fn prepare_refunds(t: &SimTx, state: &TxState) -> Result<Vec<HeldRefund>, String> {
    if t.refunds.is_empty() {
        let settling = *state == BATCH_START.refund.0 || *state == BATCH_START.refund.1;
        return Ok((t.refunded_amount > 0)
            .then(|| HeldRefund {
                amount: t.refunded_amount,
                refs: RefundRefs::default(),
                reversed: false,
                settled: !settling,
            })
            .into_iter()
            .collect());
    }
    let mut refunds: Vec<HeldRefund> = Vec::with_capacity(t.refunds.len());
    for (i, r) in t.refunds.iter().enumerate() {
        let held = prepare_refund(r, &refunds).map_err(|e| format!("refunds[{i}]: {e}"))?;
        refunds.push(held);
    }
    let live: i64 = refunds.iter().filter(|r| r.live()).map(|r| r.amount).sum();
    if live != t.refunded_amount {
        return Err(format!(
            "refunded_amount {} is not {live}, the sum of the refunds not reversed",
            t.refunded_amount
        ));
    }
    Ok(refunds)
}

/// One refund of a transaction, checked against the ones before it.
fn prepare_refund(r: &SimRefund, before: &[HeldRefund]) -> Result<HeldRefund, String> {
    if r.amount <= 0 {
        return Err("the amount must be above 0".into());
    }
    if r.reversed && r.settled {
        return Err(
            "a reversed refund never settles: reversed and settled are not both true".into(),
        );
    }
    let refs = RefundRefs {
        batch_id: r.batch_id.trim().to_string(),
        batch_seq: r.batch_seq.trim().to_string(),
        retr_ref: r.retr_ref.trim().to_string(),
    };
    let given = [&refs.batch_id, &refs.batch_seq, &refs.retr_ref]
        .iter()
        .filter(|v| !v.is_empty())
        .count();
    if given != 0 && given != 3 {
        return Err("give batch_id, batch_seq and retr_ref together, or none of them (the simulator then gives them)".into());
    }
    if given == 3 && before.iter().any(|b| b.refs.clashes_with(&refs)) {
        return Err(
            "its batch_id and batch_seq, or its retr_ref, are another refund's of the transaction"
                .into(),
        );
    }
    Ok(HeldRefund {
        amount: r.amount,
        refs,
        reversed: r.reversed,
        settled: r.settled,
    })
}

/// Checks a transaction's other authorisations: each XID its own, each in a
/// state that no call and no batch changes, so the transaction alone moves.
fn prepare_others(t: &SimTx) -> Result<Vec<OtherAuth>, String> {
    let mut xids = vec![t.xid.as_str()];
    let mut others = Vec::with_capacity(t.other_authorisations.len());
    for (i, o) in t.other_authorisations.iter().enumerate() {
        let problem = |e: String| format!("other_authorisations[{i}]: {e}");
        Xid::parse(&o.xid).map_err(|e| problem(e.to_string()))?;
        if xids.contains(&o.xid.as_str()) {
            return Err(problem(format!(
                "the XID {:?} is already the order number's",
                o.xid
            )));
        }
        xids.push(&o.xid);
        if !o.auth_code.is_empty() {
            AuthCode::parse(&o.auth_code).map_err(|e| problem(e.to_string()))?;
        }
        if o.amount < 0 {
            return Err(problem("the amount must be zero or more".into()));
        }
        let state = TxState::from_code(&o.state);
        if !matches!(state, TxState::AuthFailed | TxState::AuthCancelled) {
            return Err(problem(format!(
                "state {:?}: another authorisation is declined (-1) or cancelled (0)",
                o.state
            )));
        }
        others.push(OtherAuth {
            xid: o.xid.clone(),
            auth_code: o.auth_code.clone(),
            amount: o.amount,
            state,
            later: o.later,
        });
    }
    Ok(others)
}

#[cfg(test)]
mod tests;
