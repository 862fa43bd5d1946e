//! One call applied to one transaction: the checks every money-moving call
//! must pass (batch lock, fields matching the record), then the row of the
//! state table (`transitions`) that says whether it is accepted, a duplicate
//! or refused in the transaction's state, then the money it moves: a refund
//! within the balance its earlier refunds leave, a refund reversal of the
//! one refund it names (or the one settling). An inquiry answers every
//! authorisation of the order number.

use chrono::{DateTime, Utc};

use super::transitions::{batch_locked, transition, Transition, BATCH_FINISH};
use super::{refusal, Answer, BankCall, HeldRefund, OtherAuth, RefundRefs, Tx};
use crate::ctbc::types::{AuthCode, MaskedPan, OrderNo, TxState, Xid};
use crate::ctbc::wire::string_object;
use crate::ctbc::{Inquiry, InquiryRecord, Operation};

/// A refusal decided by the state machine.
pub(super) struct Refusal {
    pub(super) code: &'static str,
    pub(super) errdesc: String,
    pub(super) duplicate: bool,
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
pub(super) struct Change {
    pub(super) returned_delta: i64,
    /// The answer's own fields, beside the verdict.
    pub(super) fields: Answer,
}

/// Applies one call to its transaction: the answer's fields, or the refusal.
pub(super) fn apply_to(
    tx: &mut Tx,
    call: &BankCall,
    refund_seq: &mut u64,
    now: DateTime<Utc>,
) -> Result<Change, Refusal> {
    let Some(rule) = transition(call.operation) else {
        return Ok(inquiry(tx));
    };
    check_call(tx, call, rule)?;
    check_state(tx, call, rule)?;
    match call.operation {
        Operation::Reversal => reversal(tx, call, rule),
        Operation::CaptureReversal => capture_reversal(tx, call, rule),
        Operation::Refund => refund(tx, call, rule, refund_seq, now),
        Operation::RefundReversal => refund_reversal(tx, call, rule),
        Operation::Inquiry => Ok(inquiry(tx)),
    }
}

/// Where the order number stands: its transaction, or with other
/// authorisations every record, oldest first (`QueryCode` "2"), the latest
/// at the top as the bank shows it.
fn inquiry(tx: &Tx) -> Change {
    let own = record(tx, (&tx.xid, &tx.auth_code), tx.auth_amount, &tx.state);
    let other = |o: &OtherAuth| record(tx, (&o.xid, &o.auth_code), o.amount, &o.state);
    let records: Vec<InquiryRecord> = (tx.others.iter().filter(|o| !o.later).map(other))
        .chain([own.clone()])
        .chain(tx.others.iter().filter(|o| o.later).map(other))
        .collect();
    let latest = records.last().cloned().unwrap_or(own);
    let answer = Inquiry {
        state: latest.state,
        xid: latest.xid,
        auth_code: latest.auth_code,
        auth_amount: latest.auth_amount,
        pan: latest.pan,
        txn_date: Some(tx.authorised_at.format("%Y/%m/%d").to_string()),
        txn_time: Some(tx.authorised_at.format("%H:%M:%S").to_string()),
        eci: latest.eci,
        err_code: "00".to_string(),
        records: if tx.others.is_empty() {
            Vec::new()
        } else {
            records
        },
    };
    Change {
        returned_delta: 0,
        fields: answer.to_answer_json(),
    }
}

/// One authorisation of the transaction's order number as an inquiry shows
/// it; its values were checked on loading (an empty auth code is none).
fn record(tx: &Tx, (xid, auth_code): (&str, &str), amount: i64, state: &TxState) -> InquiryRecord {
    InquiryRecord {
        order_no: OrderNo::parse(&tx.order_no).ok(),
        state: state.clone(),
        xid: Xid::parse(xid).ok(),
        auth_code: AuthCode::parse(auth_code).ok(),
        auth_amount: tx.amount(amount),
        pan: Some(MaskedPan::from_bank(&tx.pan)),
        eci: Some("05".to_string()),
        retr_ref: None,
        batch_id: None,
        batch_seq: None,
    }
}

/// Checks what every mutating call must carry and match, and the batch lock.
fn check_call(tx: &Tx, call: &BankCall, rule: &Transition) -> Result<(), Refusal> {
    if batch_locked(&tx.state) {
        let mut r = Refusal::new(
            refusal::BATCH_RUNNING,
            format!(
                "請款批次作業中，請稍後再試 capture batch running (state {})",
                tx.state.code()
            ),
        );
        // A refund of a transaction whose refund is already in the batch
        // would move money that already moved.
        r.duplicate = rule.duplicate_in.contains(&tx.state);
        return Err(r);
    }
    let mismatch = |field: &str| {
        Refusal::new(
            refusal::MISMATCH,
            format!("交易資料不符 {field} does not match the transaction"),
        )
    };
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
    // The refund a refund reversal names must be one of the transaction's.
    let target = match call.operation {
        Operation::RefundReversal => reversal_target(tx, call)?,
        _ => None,
    };
    match &call.org_amt {
        None => return Err(missing("OrgAmt")),
        Some(m) if m.currency_code() != tx.currency || !org_amt_matches(tx, target, m.amount()) => {
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

fn missing(field: &str) -> Refusal {
    Refusal::new(refusal::FORMAT, format!("欄位缺少 {field} is missing"))
}

/// The state table's verdict: a duplicate (the money already moved, or the
/// call repeats an accepted one), refused, or on to the money.
fn check_state(tx: &Tx, call: &BankCall, rule: &Transition) -> Result<(), Refusal> {
    if rule.duplicate_in.contains(&tx.state) {
        return Err(Refusal::duplicate(rule.duplicate_because));
    }
    if rule.repeat_in.contains(&tx.state) {
        if let Some(why) = repeated(tx, call) {
            return Err(Refusal::duplicate(why));
        }
    }
    if !rule.accepted_in.contains(&tx.state) {
        return Err(state_refusal(tx, rule.name));
    }
    Ok(())
}

/// Why the call repeats an accepted call of its kind, if it does.
fn repeated(tx: &Tx, call: &BankCall) -> Option<String> {
    match call.operation {
        Operation::Reversal => (call_amount(call) == tx.auth_amount
            && tx.auth_amount < tx.original_amount)
            .then(|| format!("authorisation already lowered to {}", tx.auth_amount)),
        Operation::RefundReversal => reversal_target(tx, call)
            .ok()
            .flatten()
            .and_then(|i| tx.refunds.get(i))
            .filter(|r| r.reversed)
            .map(|r| format!("refund {} already reversed", shown(&r.refs))),
        _ => None,
    }
}

/// `OrgAmt` is the amount first authorised, in every call and every refund
/// of a transaction. For a refund reversal the bank's own libraries and the
/// public adapters send the amount of the refund being cancelled (`target`)
/// instead, with `CredRevAmt` 0: both are accepted.
fn org_amt_matches(tx: &Tx, target: Option<usize>, amount: i64) -> bool {
    amount == tx.original_amount
        || target
            .and_then(|i| tx.refunds.get(i))
            .is_some_and(|r| r.amount == amount)
}

/// The refund a refund reversal cancels, by its index: the one its
/// `CredBatchID` and `CredBatchSeq` name, or, naming none, the one refund of
/// the transaction still settling (the last one, already reversed, when none
/// is: then the call repeats that reversal; else none). Several settling: it
/// must name one.
fn reversal_target(tx: &Tx, call: &BankCall) -> Result<Option<usize>, Refusal> {
    match (&call.cred_batch.id, &call.cred_batch.seq) {
        (Some(id), Some(seq)) => tx
            .refunds
            .iter()
            .position(|r| r.refs.batch_id == *id && r.refs.batch_seq == *seq)
            .map(Some)
            .ok_or_else(|| {
                Refusal::new(
                    refusal::MISMATCH,
                    format!(
                        "交易資料不符 CredBatchID {id} / CredBatchSeq {seq} name no refund of this transaction"
                    ),
                )
            }),
        (Some(_), None) => Err(missing("CredBatchSeq")),
        (None, Some(_)) => Err(missing("CredBatchID")),
        (None, None) => {
            let settling: Vec<usize> = (0..tx.refunds.len())
                .filter(|&i| tx.refunds[i].settling())
                .collect();
            match settling[..] {
                [one] => Ok(Some(one)),
                [] => Ok(tx
                    .refunds
                    .iter()
                    .rposition(|r| r.reversed)
                    .filter(|&i| i + 1 == tx.refunds.len())),
                _ => Err(Refusal::new(
                    refusal::FORMAT,
                    format!(
                        "欄位缺少 CredBatchID/CredBatchSeq: {} refunds of this transaction are settling; name the one to cancel",
                        settling.len()
                    ),
                )),
            }
        }
    }
}

fn nothing_settling(tx: &Tx) -> Refusal {
    Refusal::new(
        refusal::STATE,
        format!(
            "交易狀態不允許 refund reversal not allowed in state {}: no refund of this transaction is settling",
            tx.state.code()
        ),
    )
}

/// A refund as refusals name it: `BatchID/BatchSeq`.
fn shown(refs: &RefundRefs) -> String {
    format!("{}/{}", refs.batch_id, refs.batch_seq)
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

fn reversal(tx: &mut Tx, call: &BankCall, rule: &Transition) -> Result<Change, Refusal> {
    let new_amt = call_amount(call);
    if new_amt < 0 || new_amt >= tx.auth_amount {
        return Err(Refusal::new(
            refusal::AMOUNT,
            format!(
                "金額錯誤 AuthNewAmt {new_amt} must be below the authorised {}",
                tx.auth_amount
            ),
        ));
    }
    let delta = lower_authorisation(tx, new_amt, rule);
    Ok(Change {
        returned_delta: delta,
        fields: string_object([("AuthAmt", tx.money(tx.auth_amount))]),
    })
}

/// Lowers the authorisation to `new_amt`, the money taken off given back;
/// lowered to 0 it is cancelled (where the reversal's `rule` leads). Returns
/// the money given back.
pub(super) fn lower_authorisation(tx: &mut Tx, new_amt: i64, rule: &Transition) -> i64 {
    let delta = tx.auth_amount - new_amt;
    tx.auth_amount = new_amt;
    tx.returned_amount += delta;
    if new_amt == 0 {
        tx.state = rule.to.clone();
    }
    delta
}

fn capture_reversal(tx: &mut Tx, call: &BankCall, rule: &Transition) -> Result<Change, Refusal> {
    let amt = call_amount(call);
    if amt != 0 && amt != tx.auth_amount {
        return Err(Refusal::new(
            refusal::AMOUNT,
            format!(
                "金額錯誤 CapRevAmt {amt}: only the whole capture (0 or {}) can be taken back",
                tx.auth_amount
            ),
        ));
    }
    tx.state = rule.to.clone();
    Ok(Change {
        returned_delta: 0,
        fields: Answer::new(),
    })
}

/// A refund within the balance: what was captured less the refunds not
/// reversed. Each accepted refund is filed under references of its own.
fn refund(
    tx: &mut Tx,
    call: &BankCall,
    rule: &Transition,
    refund_seq: &mut u64,
    now: DateTime<Utc>,
) -> Result<Change, Refusal> {
    let amt = call_amount(call);
    if amt <= 0 {
        return Err(Refusal::new(
            refusal::AMOUNT,
            format!("金額錯誤 CredAmt {amt} must be above 0"),
        ));
    }
    let left = tx.refund_balance();
    if amt > left {
        return Err(Refusal::new(
            refusal::AMOUNT,
            format!(
                "金額錯誤 CredAmt {amt} is over the balance: {left} of the {} captured is left to refund",
                tx.auth_amount
            ),
        ));
    }
    let refs = file_refund(tx, amt, rule, (refund_seq, now));
    Ok(Change {
        returned_delta: amt,
        fields: string_object([
            ("RefAmt", tx.money(amt)),
            ("RetrRef", refs.retr_ref),
            ("BatchID", refs.batch_id),
            ("BatchSeq", refs.batch_seq),
        ]),
    })
}

/// Files a refund of `amount` under references of its own, given on the
/// day of `now`: its money goes back, and the transaction goes where the
/// refund's `rule` leads (20) until the batch settles it.
pub(super) fn file_refund(
    tx: &mut Tx,
    amount: i64,
    rule: &Transition,
    (refund_seq, now): (&mut u64, DateTime<Utc>),
) -> RefundRefs {
    let refs = next_references(refund_seq, &now.format("%Y%m%d").to_string(), &tx.refunds);
    tx.refunds.push(HeldRefund {
        amount,
        refs: refs.clone(),
        reversed: false,
        settled: false,
    });
    tx.returned_amount += amount;
    tx.state = rule.to.clone();
    refs
}

/// The references of the bank's next refund, on `day` (`YYYYMMDD`): none
/// of them another refund's of the same transaction.
pub(super) fn next_references(
    refund_seq: &mut u64,
    day: &str,
    others: &[HeldRefund],
) -> RefundRefs {
    loop {
        *refund_seq += 1;
        let refs = RefundRefs {
            batch_id: day.to_string(),
            batch_seq: format!("{:06}", *refund_seq % 1_000_000),
            retr_ref: format!("{:012}", *refund_seq),
        };
        if !others.iter().any(|o| o.refs.clashes_with(&refs)) {
            return refs;
        }
    }
}

/// Cancels the refund the call names (or the one settling), while it is
/// settling; its amount comes back to the balance. The transaction stays
/// in 20 while another refund settles, else goes back to where the refund
/// found it: 12, or 22 when earlier refunds settled.
fn refund_reversal(tx: &mut Tx, call: &BankCall, rule: &Transition) -> Result<Change, Refusal> {
    let Some((i, target)) =
        reversal_target(tx, call)?.and_then(|i| tx.refunds.get(i).map(|r| (i, r)))
    else {
        return Err(nothing_settling(tx));
    };
    if !target.settling() {
        return Err(Refusal::new(
            refusal::STATE,
            format!(
                "交易狀態不允許 refund reversal: the refund {} settled in the batch already",
                shown(&target.refs)
            ),
        ));
    }
    let amt = call_amount(call);
    if amt != 0 && amt != target.amount {
        return Err(Refusal::new(
            refusal::AMOUNT,
            format!(
                "金額錯誤 CredRevAmt {amt}: only the whole refund (0 or {}) can be reversed",
                target.amount
            ),
        ));
    }
    let delta = target.amount;
    if let Some(target) = tx.refunds.get_mut(i) {
        target.reversed = true;
    }
    tx.returned_amount -= delta;
    if !tx.refunds.iter().any(HeldRefund::settling) {
        let settled_before = tx.refunds.iter().any(|r| r.live() && r.settled);
        tx.state = match settled_before {
            true => BATCH_FINISH.refund.1.clone(),
            false => rule.to.clone(),
        };
    }
    Ok(Change {
        returned_delta: -delta,
        fields: Answer::new(),
    })
}
