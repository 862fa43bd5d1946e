//! Unit tests of the simulated bank's books: every transition and refusal of
//! the state table, several refunds of one transaction and the reversal of
//! each, merchants, the call log, the batch and the load checks.

use super::transitions::{batch_locked, TRANSITIONS};
use super::*;
use chrono::TimeZone;

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 3, 4, 5).unwrap()
}

fn taipei() -> DateTime<FixedOffset> {
    now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
}

/// The merchants of these tests: the first, and another.
const MERCHANT: &str = "1234567";
const OTHER_MERCHANT: &str = "7654321";

fn prepare(txs: Vec<SimTx>) -> Result<Vec<PreparedTx>, String> {
    Ledger::prepare(txs, taipei(), &[MERCHANT.into(), OTHER_MERCHANT.into()])
}

pub(super) fn ledger_of(txs: Vec<SimTx>) -> Ledger {
    let mut l = Ledger::default();
    l.load(prepare(txs).unwrap());
    l
}

pub(super) fn ledger_with(state: TxState, amount: i64) -> Ledger {
    ledger_of(vec![SimTx::new("O1", "X1", "A1", amount, state)])
}

fn twd(a: i64) -> Money {
    Money::new(Currency::TWD, a).unwrap()
}

pub(super) fn call(op: Operation, org: i64, amount: i64) -> BankCall {
    BankCall {
        operation: op,
        mer_id: MERCHANT.into(),
        order_no: "O1".into(),
        xid: Some("X1".into()),
        auth_code: Some("A1".into()),
        org_amt: Some(twd(org)),
        amount: Some(twd(amount)),
        cred_batch: CredBatch::default(),
    }
}

pub(super) fn resp(a: &Answer) -> &str {
    a["RespCode"].as_str().unwrap()
}

pub(super) fn desc(a: &Answer) -> &str {
    a["ERRDESC"].as_str().unwrap()
}

pub(super) fn state(l: &Ledger) -> String {
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
fn answers_of_money_moving_calls_echo_the_call() {
    let cases = [
        (Operation::Reversal, TxState::Authorised, 0),
        (Operation::CaptureReversal, TxState::CapturedNotSettled, 0),
        (Operation::Refund, TxState::Settled, 600),
        (Operation::Refund, TxState::Authorised, 600),
    ];
    for (op, from, amount) in cases {
        let mut l = ledger_with(from.clone(), 1500);
        let a = l.apply(now(), &call(op, 1500, amount), None);
        let echoed = |k: &str| a.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        assert_eq!(
            [
                echoed("LID-M"),
                echoed("XID"),
                echoed("AuthCode"),
                echoed("OrgAmt")
            ],
            ["O1", "X1", "A1", "901 1500 0"],
            "{op} in {from}"
        );
        assert_eq!(echoed(amount_field(op)), format!("901 {amount} 0"), "{op}");
    }
    // A refused call's answer echoes what it was sent, not the books.
    let mut l = ledger_with(TxState::Settled, 1500);
    let mut other = call(Operation::Refund, 1500, 600);
    other.xid = Some("X2".into());
    let a = l.apply(now(), &other, None);
    assert_eq!(
        (resp(&a), &a["XID"]),
        (refusal::MISMATCH, &Value::from("X2"))
    );
    // An inquiry has no such fields to echo: its XID is the transaction's.
    let a = l.apply(now(), &call(Operation::Inquiry, 0, 0), None);
    assert_eq!(a["XID"], "X1");
    assert!(!a.contains_key("OrgAmt"));
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

/// `O1` for 1,500 in `state`; in a refund's states (20, 21, 22) with a
/// refund of 500 the bank holds, settling until the batch settles it.
pub(super) fn ledger_in(state: TxState) -> Ledger {
    let mut tx = SimTx::new("O1", "X1", "A1", 1500, state.clone());
    if [BATCH_START.refund, BATCH_FINISH.refund]
        .iter()
        .any(|(from, to)| *from == state || *to == state)
    {
        (tx.refunded_amount, tx.returned_amount) = (500, 500);
    }
    ledger_of(vec![tx])
}

/// Every operation in every state, as the state table says: what is
/// accepted and where it leads, what is a duplicate, and that a refusal never
/// changes the transaction.
#[test]
fn every_operation_in_every_state() {
    for s in TxState::all_known() {
        for rule in &TRANSITIONS {
            let op = rule.operation;
            let mut l = ledger_in(s.clone());
            let amount = if op == Operation::Refund { 500 } else { 0 };
            let before = l.transaction("O1").unwrap();
            let a = l.apply(now(), &call(op, 1500, amount), None);
            let accepted = rule.accepted_in.contains(&s);
            let duplicate = rule.duplicate_in.contains(&s);
            assert_eq!(resp(&a) == "0", accepted, "{op} in {s}: {a:?}");
            assert_eq!(l.duplicates() == 1, duplicate, "{op} in {s}: {a:?}");
            if !accepted {
                assert!(!desc(&a).is_empty());
                assert_eq!(l.transaction("O1").unwrap(), before, "{op} in {s}");
            }
            if batch_locked(&s) {
                assert_eq!(resp(&a), refusal::BATCH_RUNNING);
                assert!(desc(&a).contains("batch running"));
            }
            let expected_after = if accepted { &rule.to } else { &s };
            assert_eq!(state(&l), expected_after.code(), "{op} in {s}");
        }
        // Inquiry is answered in every state and changes nothing.
        let mut l = ledger_with(s.clone(), 1500);
        let a = l.apply(now(), &call(Operation::Inquiry, 0, 0), None);
        assert_eq!(a["CurrentState"], s.code());
    }
}

/// The table itself, against the protocol document: each money-moving
/// operation once, the batch locking exactly its two running states.
#[test]
fn the_table_has_each_operation_once() {
    for op in Operation::ALL {
        let rows = TRANSITIONS.iter().filter(|t| t.operation == op).count();
        assert_eq!(rows, usize::from(op != Operation::Inquiry), "{op}");
    }
    let locked: Vec<String> = TxState::all_known()
        .iter()
        .filter(|s| batch_locked(s))
        .map(|s| s.code().to_string())
        .collect();
    assert_eq!(locked, ["11", "21"]);
}

#[test]
fn batch_moves_states_and_locks_operations() {
    let mut l = ledger_of(vec![
        SimTx::new("C", "X", "A", 100, TxState::CapturedNotSettled),
        SimTx::new("R", "X", "A", 100, TxState::RefundSettling),
        SimTx::new("S", "X", "A", 100, TxState::Settled),
        SimTx::new("U", "X", "A", 100, TxState::Authorised),
    ]);
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
    l.refuse_unread(
        now(),
        MERCHANT,
        Operation::Refund,
        None,
        (refusal::MAC, "MAC"),
        None,
    );
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
    assert!(prepare(vec![t]).unwrap_err().contains("transaction 0"));
    let t = SimTx::new("O-1", "X1", "A1", 100, TxState::Settled);
    assert!(prepare(vec![t]).is_err());
    let mut t = SimTx::new("O1", "X1", "A1", 100, TxState::Settled);
    t.auth_amount = 200;
    assert!(prepare(vec![t]).is_err());
}

/// `O1` (X1, A1) in `state` for 1,500, declined once before as D0 and, when
/// `declined_after`, once more after as D2.
fn ledger_authorised_twice(state: TxState, declined_after: bool) -> Ledger {
    let declined = |xid: &str, later: bool| OtherAuthorisation {
        xid: xid.into(),
        auth_code: String::new(),
        amount: 1500,
        state: "-1".into(),
        later,
    };
    let mut t = SimTx::new("O1", "X1", "A1", 1500, state);
    t.other_authorisations.push(declined("D0", false));
    if declined_after {
        t.other_authorisations.push(declined("D2", true));
    }
    ledger_of(vec![t])
}

pub(super) fn inquiry_of(l: &mut Ledger) -> crate::ctbc::Inquiry {
    let a = l.apply(now(), &call(Operation::Inquiry, 0, 0), None);
    crate::ctbc::Inquiry::from_answer_json(&a).unwrap()
}

#[test]
fn an_order_number_authorised_more_than_once_answers_every_record() {
    let x1 = Xid::parse("X1").unwrap();
    for (declined_after, top) in [(false, "X1"), (true, "D2")] {
        let mut l = ledger_authorised_twice(TxState::Settled, declined_after);
        let a = l.apply(now(), &call(Operation::Inquiry, 0, 0), None);
        assert_eq!((&a["QueryCode"], &a["XID"]), (&"2".into(), &top.into()));
        let inquiry = inquiry_of(&mut l);
        let xids: Vec<String> = inquiry
            .records
            .iter()
            .map(|r| r.xid.as_ref().unwrap().to_string())
            .collect();
        let expected: &[&str] = match declined_after {
            true => &["D0", "X1", "D2"],
            false => &["D0", "X1"],
        };
        assert_eq!(xids, expected);
        let latest = inquiry.records.last().unwrap();
        assert_eq!(
            (&inquiry.state, inquiry.xid.as_ref()),
            (&latest.state, latest.xid.as_ref())
        );
        let ours = inquiry.for_xid(&x1);
        assert_eq!(
            (ours.state, ours.auth_amount),
            (TxState::Settled, Some(twd(1500)))
        );
        assert_eq!(inquiry.records[0].auth_code, None, "declined: no auth code");
    }
    // One authorisation: one record, as before.
    let mut l = ledger_with(TxState::Settled, 1500);
    assert!(inquiry_of(&mut l).records.is_empty());
}

#[test]
fn money_moves_only_on_the_transaction_its_call_names() {
    let mut l = ledger_authorised_twice(TxState::Settled, true);
    let mut declined = call(Operation::Refund, 1500, 1500);
    declined.xid = Some("D0".into());
    let a = l.apply(now(), &declined, None);
    assert_eq!(
        (resp(&a), desc(&a).contains("XID")),
        (refusal::MISMATCH, true)
    );
    let a = l.apply(now(), &call(Operation::Refund, 1500, 1500), None);
    assert_eq!(resp(&a), "0");
    l.batch_start();
    l.batch_finish();
    let inquiry = inquiry_of(&mut l);
    let states: Vec<&str> = inquiry.records.iter().map(|r| r.state.code()).collect();
    assert_eq!(states, ["-1", "22", "-1"]);
    assert_eq!(l.transaction("O1").unwrap().other_authorisations.len(), 2);
}

#[test]
fn other_authorisations_are_checked_on_loading() {
    let other = |xid: &str, auth_code: &str, state: &str| OtherAuthorisation {
        xid: xid.into(),
        auth_code: auth_code.into(),
        amount: 100,
        state: state.into(),
        later: false,
    };
    for (others, expected) in [
        (
            vec![other("D0", "", "12")],
            "declined (-1) or cancelled (0)",
        ),
        (vec![other("X1", "", "-1")], "already"),
        (vec![other("D0", "", "-1"), other("D0", "", "0")], "already"),
        (vec![other("D 0", "", "-1")], "xid"),
        (vec![other("D0", "A-1", "0")], "auth_code"),
    ] {
        let mut t = SimTx::new("O1", "X1", "A1", 100, TxState::Settled);
        t.other_authorisations = others;
        let why = prepare(vec![t]).unwrap_err();
        assert!(
            why.contains("other_authorisations[") && why.contains(expected),
            "{expected:?} in {why:?}"
        );
    }
    let mut t = SimTx::new("O1", "X1", "A1", 100, TxState::Settled);
    t.other_authorisations = vec![other("D0", "B2", "0")];
    assert!(prepare(vec![t]).is_ok());
}

/// A refund of `amount` of `O1`, `OrgAmt` its 1,500 as every refund sends it.
pub(super) fn refund_of(amount: i64) -> BankCall {
    call(Operation::Refund, 1500, amount)
}

/// Where an accepted refund's answer says the bank filed it.
fn filed(a: &Answer) -> [String; 3] {
    ["BatchID", "BatchSeq", "RetrRef"].map(|k| a[k].as_str().unwrap().to_string())
}

/// A refund reversal naming the refund `filed` under its batch references,
/// `OrgAmt` `org`, `CredRevAmt` 0.
fn reversal_naming(filed: &[String; 3], org: i64) -> BankCall {
    let mut c = call(Operation::RefundReversal, org, 0);
    c.cred_batch = CredBatch {
        id: Some(filed[0].clone()),
        seq: Some(filed[1].clone()),
    };
    c
}

pub(super) fn run_batch(l: &mut Ledger) {
    l.batch_start();
    l.batch_finish();
}

#[test]
fn several_refunds_of_one_transaction_within_its_balance() {
    let mut l = ledger_with(TxState::Settled, 1500);
    let first = l.apply(now(), &refund_of(600), None);
    assert_eq!((resp(&first), state(&l)), ("0", "20".to_string()));
    // While it settles, no further refund: what a resent one looks like.
    let a = l.apply(now(), &refund_of(300), None);
    assert_eq!(resp(&a), refusal::DUPLICATE);
    assert!(desc(&a).contains("still settling"), "{a:?}");
    run_batch(&mut l);
    assert_eq!(state(&l), "22");
    let second = l.apply(now(), &refund_of(700), None);
    assert_eq!(
        (resp(&second), &second["RefAmt"]),
        ("0", &"901 700 0".into())
    );
    assert_eq!(state(&l), "20");
    for (k, (a, b)) in filed(&first).iter().zip(filed(&second).iter()).enumerate() {
        if k > 0 {
            assert_ne!(a, b, "each refund is filed under references of its own");
        }
    }
    run_batch(&mut l);
    // A third over what is left: refused, naming what is left; nothing moves.
    let a = l.apply(now(), &refund_of(201), None);
    assert_eq!(resp(&a), refusal::AMOUNT);
    assert!(
        desc(&a).contains("over the balance") && desc(&a).contains("200 of the 1500"),
        "{a:?}"
    );
    let t = l.transaction("O1").unwrap();
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("22", 1300, 1300)
    );
    let held: Vec<(i64, bool, bool)> = t
        .refunds
        .iter()
        .map(|r| (r.amount, r.reversed, r.settled))
        .collect();
    assert_eq!(held, [(600, false, true), (700, false, true)]);
    let held_refs = |r: &SimRefund| [r.batch_id.clone(), r.batch_seq.clone(), r.retr_ref.clone()];
    assert_eq!(held_refs(&t.refunds[0]), filed(&first));
    assert_eq!(held_refs(&t.refunds[1]), filed(&second));
    let r = l.report();
    assert_eq!(
        (
            r.by_operation["refund"].accepted,
            r.by_operation["refund"].returned
        ),
        (2, 1300)
    );
    assert_eq!(r.duplicates, 1);
    // What is left, to the unit: accepted.
    assert_eq!(resp(&l.apply(now(), &refund_of(200), None)), "0");
}

#[test]
fn a_refund_reversal_cancels_the_refund_it_names_while_that_refund_settles() {
    let mut l = ledger_with(TxState::Settled, 1500);
    let first = filed(&l.apply(now(), &refund_of(600), None));
    run_batch(&mut l);
    let second = filed(&l.apply(now(), &refund_of(500), None));
    // The first settled in the batch: no reversal cancels it.
    let a = l.apply(now(), &reversal_naming(&first, 600), None);
    assert_eq!(resp(&a), refusal::STATE);
    assert!(desc(&a).contains("settled"), "{a:?}");
    // Nor a refund the transaction never had.
    let mut unknown = reversal_naming(&second, 500);
    unknown.cred_batch.seq = Some("999999".into());
    let a = l.apply(now(), &unknown, None);
    assert_eq!(resp(&a), refusal::MISMATCH);
    assert!(desc(&a).contains("name no refund"), "{a:?}");
    // OrgAmt: the original amount, or the cancelled refund's.
    let a = l.apply(now(), &reversal_naming(&second, 600), None);
    assert!(desc(&a).contains("OrgAmt"), "{a:?}");
    assert_eq!(
        resp(&l.apply(now(), &reversal_naming(&second, 500), None)),
        "0"
    );
    // Back where the refund found it, 22 (the first settled), its 500 back
    // in the balance.
    let t = l.transaction("O1").unwrap();
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("22", 600, 600)
    );
    assert_eq!(
        t.refunds.iter().map(|r| r.reversed).collect::<Vec<_>>(),
        [false, true]
    );
    // Reversed again: a duplicate, whichever OrgAmt it carries.
    let a = l.apply(now(), &reversal_naming(&second, 1500), None);
    assert_eq!(resp(&a), refusal::DUPLICATE);
    assert_eq!(l.duplicates(), 1);
    // In 22 the settled refund stays refused.
    let a = l.apply(now(), &reversal_naming(&first, 1500), None);
    assert_eq!(resp(&a), refusal::STATE);
    // The balance came back: 900 may be refunded.
    assert_eq!(
        resp(&l.apply(now(), &refund_of(901), None)),
        refusal::AMOUNT
    );
    assert_eq!(resp(&l.apply(now(), &refund_of(900), None)), "0");
    assert_eq!(l.report().returned_by_calls, 1500);
}

/// `O1` for 1,500 in 20, holding a refund settled (300, `B/1`) and two settling
/// (400 `B/2`, 500 `B/3`), as the bank could.
fn ledger_with_refunds_settling() -> Ledger {
    let refund = |amount: i64, seq: &str, settled: bool| SimRefund {
        amount,
        batch_id: "B".into(),
        batch_seq: seq.into(),
        retr_ref: format!("R{seq}"),
        reversed: false,
        settled,
    };
    let mut tx = SimTx::new("O1", "X1", "A1", 1500, TxState::RefundSettling);
    tx.refunds = vec![
        refund(300, "1", true),
        refund(400, "2", false),
        refund(500, "3", false),
    ];
    (tx.refunded_amount, tx.returned_amount) = (1200, 1200);
    ledger_of(vec![tx])
}

#[test]
fn a_refund_reversal_naming_no_refund_needs_exactly_one_settling() {
    let mut l = ledger_with_refunds_settling();
    let a = l.apply(now(), &call(Operation::RefundReversal, 1500, 0), None);
    assert_eq!(resp(&a), refusal::FORMAT);
    assert!(
        desc(&a).contains("CredBatchID") && desc(&a).contains("2 refunds"),
        "{a:?}"
    );
    let b3 = ["B".to_string(), "3".to_string(), String::new()];
    assert_eq!(resp(&l.apply(now(), &reversal_naming(&b3, 500), None)), "0");
    // Another refund still settles: the transaction stays in 20.
    assert_eq!(state(&l), "20");
    assert_eq!(l.transaction("O1").unwrap().refunded_amount, 700);
    // One settling: a reversal naming none cancels it, as refundd's client sends it.
    let a = l.apply(now(), &call(Operation::RefundReversal, 1500, 400), None);
    assert_eq!(resp(&a), "0");
    let t = l.transaction("O1").unwrap();
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("22", 300, 300)
    );
    // Sent again: the reversal of a refund already reversed.
    let a = l.apply(now(), &call(Operation::RefundReversal, 1500, 0), None);
    assert_eq!(resp(&a), refusal::DUPLICATE);
    // Half a name is none.
    let mut half = reversal_naming(&b3, 1500);
    half.cred_batch.seq = None;
    let a = l.apply(now(), &half, None);
    assert_eq!(resp(&a), refusal::FORMAT);
    assert!(desc(&a).contains("CredBatchSeq"), "{a:?}");
}

#[test]
fn the_batch_settles_the_refunds_settling() {
    let mut l = ledger_with_refunds_settling();
    l.batch_start();
    let settled = |l: &Ledger| {
        let t = l.transaction("O1").unwrap();
        t.refunds.iter().map(|r| r.settled).collect::<Vec<_>>()
    };
    assert_eq!(
        settled(&l),
        [true, false, false],
        "in the batch, not settled yet"
    );
    let a = l.apply(now(), &call(Operation::RefundReversal, 1500, 0), None);
    assert_eq!(resp(&a), refusal::BATCH_RUNNING);
    l.batch_finish();
    assert_eq!(settled(&l), [true, true, true]);
    assert_eq!(state(&l), "22");
}

#[test]
fn another_merchants_transaction_is_not_found() {
    let mut theirs = SimTx::new("O1", "X1", "A1", 1500, TxState::Settled);
    theirs.mer_id = Some(OTHER_MERCHANT.into());
    let mut l = ledger_of(vec![theirs]);
    for op in Operation::ALL {
        let a = l.apply(now(), &call(op, 1500, 500), None);
        assert_eq!(
            (resp(&a), &a["ErrCode"], desc(&a), &a["MERID"]),
            ("99", &"01".into(), "Order not found", &MERCHANT.into()),
            "{op}"
        );
    }
    let mut own = refund_of(500);
    own.mer_id = OTHER_MERCHANT.into();
    let a = l.apply(now(), &own, None);
    assert_eq!((resp(&a), &a["MERID"]), ("0", &OTHER_MERCHANT.into()));
    let t = l.transaction("O1").unwrap();
    assert_eq!(
        (t.mer_id.as_deref(), t.refunded_amount),
        (Some(OTHER_MERCHANT), 500)
    );
    // Named by none: the first merchant's.
    let l = ledger_with(TxState::Settled, 100);
    assert_eq!(
        l.transaction("O1").unwrap().mer_id.as_deref(),
        Some(MERCHANT)
    );
}

#[test]
fn refunds_are_checked_on_loading_and_filed_as_the_bank_would() {
    let refunded = |no: &str, state: TxState, amount: i64| {
        let mut t = SimTx::new(no, "X1", "A1", 1000, state);
        (t.refunded_amount, t.returned_amount) = (amount, amount);
        t
    };
    let l = ledger_of(vec![
        refunded("S20", TxState::RefundSettling, 300),
        refunded("S22", TxState::RefundSettled, 1000),
        refunded("S12", TxState::Settled, 0),
    ]);
    let only = |no: &str| l.transaction(no).unwrap().refunds;
    let (s20, s22) = (&only("S20")[0], &only("S22")[0]);
    assert_eq!((s20.amount, s20.settled), (300, false));
    assert_eq!((s22.amount, s22.settled), (1000, true));
    assert!(only("S12").is_empty());
    for r in [s20, s22] {
        assert!(!r.batch_id.is_empty() && !r.batch_seq.is_empty() && !r.retr_ref.is_empty());
    }
    assert_ne!(s20.retr_ref, s22.retr_ref);
    // A transaction as the books show it loads back the same.
    let shown = l.transaction("S20").unwrap();
    assert_eq!(
        ledger_of(vec![shown.clone()]).transaction("S20").unwrap(),
        shown
    );

    let with = |edit: &dyn Fn(&mut SimTx)| {
        let mut t = shown.clone();
        edit(&mut t);
        prepare(vec![t]).unwrap_err()
    };
    for (why, edit) in [
        (
            "not a merchant",
            &(|t: &mut SimTx| t.mer_id = Some("1111111".into())) as &dyn Fn(&mut SimTx),
        ),
        ("above 0", &|t: &mut SimTx| t.refunds[0].amount = 0),
        ("never settles", &|t: &mut SimTx| {
            t.refunds[0].reversed = true;
            t.refunds[0].settled = true;
        }),
        ("together", &|t: &mut SimTx| t.refunds[0].retr_ref.clear()),
        ("another refund's", &|t: &mut SimTx| {
            t.refunds.push(t.refunds[0].clone());
            t.refunds[1].reversed = true;
        }),
        ("sum of the refunds", &|t: &mut SimTx| {
            t.refunded_amount = 400
        }),
    ] {
        let problem = with(edit);
        assert!(problem.contains(why), "{why:?} in {problem:?}");
    }
}
