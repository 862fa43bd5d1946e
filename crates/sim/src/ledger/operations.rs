//! One call applied to one transaction: the checks every money-moving call
//! must pass (batch lock, fields matching the record), then the row of the
//! state table (`transitions`) that says whether it is accepted, a duplicate
//! or refused in the transaction's state, then the money it moves. An
//! inquiry answers every authorisation of the order number.

use chrono::{DateTime, Utc};

use super::transitions::{batch_locked, transition, Transition};
use super::{refusal, Answer, BankCall, OtherAuth, Tx};
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

/// The state table's verdict: a duplicate (the money already moved, or the
/// call repeats the last accepted one), refused, or on to the money.
fn check_state(tx: &Tx, call: &BankCall, rule: &Transition) -> Result<(), Refusal> {
    if rule.duplicate_in.contains(&tx.state) {
        return Err(Refusal::duplicate(rule.duplicate_because));
    }
    if rule.repeat_in.as_ref() == Some(&tx.state) {
        if let Some(why) = repeated(tx, call) {
            return Err(Refusal::duplicate(why));
        }
    }
    if tx.state != rule.from {
        return Err(state_refusal(tx, rule.name));
    }
    Ok(())
}

/// Why the call repeats the last accepted call of its kind, if it does.
fn repeated(tx: &Tx, call: &BankCall) -> Option<String> {
    match call.operation {
        Operation::Reversal => (call_amount(call) == tx.auth_amount
            && tx.auth_amount < tx.original_amount)
            .then(|| format!("authorisation already lowered to {}", tx.auth_amount)),
        Operation::RefundReversal => tx
            .refund_reversed
            .then(|| "refund already reversed".to_string()),
        _ => None,
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
    let delta = tx.auth_amount - new_amt;
    tx.auth_amount = new_amt;
    tx.returned_amount += delta;
    if new_amt == 0 {
        tx.state = rule.to.clone();
    }
    Ok(Change {
        returned_delta: delta,
        fields: string_object([("AuthAmt", tx.money(tx.auth_amount))]),
    })
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

fn refund(
    tx: &mut Tx,
    call: &BankCall,
    rule: &Transition,
    refund_seq: &mut u64,
    now: DateTime<Utc>,
) -> Result<Change, Refusal> {
    let amt = call_amount(call);
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
    tx.state = rule.to.clone();
    *refund_seq += 1;
    Ok(Change {
        returned_delta: amt,
        fields: string_object([
            ("RefAmt", tx.money(amt)),
            ("RetrRef", format!("{:012}", *refund_seq)),
            ("BatchID", now.format("%Y%m%d").to_string()),
            ("BatchSeq", format!("{:06}", *refund_seq % 1_000_000)),
        ]),
    })
}

fn refund_reversal(tx: &mut Tx, call: &BankCall, rule: &Transition) -> Result<Change, Refusal> {
    let amt = call_amount(call);
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
    // `last_refund` stays: a repeated reversal naming it in OrgAmt is then
    // recognised as a duplicate.
    tx.refund_reversed = true;
    tx.state = rule.to.clone();
    Ok(Change {
        returned_delta: -delta,
        fields: Answer::new(),
    })
}
