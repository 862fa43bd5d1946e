//! Unit tests of the simulated bank's books: every transition and refusal of
//! the state table, the call log, the batch and the load checks.

use super::transitions::{batch_locked, TRANSITIONS};
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
    let p = Ledger::prepare(vec![SimTx::new("O1", "X1", "A1", amount, state)], taipei()).unwrap();
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

/// Every operation in every state, as the state table says: what is
/// accepted and where it leads, what is a duplicate, and that a refusal never
/// changes the transaction.
#[test]
fn every_operation_in_every_state() {
    for s in TxState::all_known() {
        for rule in &TRANSITIONS {
            let op = rule.operation;
            let mut l = ledger_with(s.clone(), 1500);
            let amount = if op == Operation::Refund { 1500 } else { 0 };
            let before = l.transaction("O1").unwrap();
            let a = l.apply(now(), &call(op, 1500, amount), None);
            let accepted = s == rule.from;
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
    let mut l = Ledger::new("1234567");
    l.load(Ledger::prepare(vec![t], taipei()).unwrap());
    l
}

fn inquiry_of(l: &mut Ledger) -> crate::ctbc::Inquiry {
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
        let why = Ledger::prepare(vec![t], taipei()).unwrap_err();
        assert!(
            why.contains("other_authorisations[") && why.contains(expected),
            "{expected:?} in {why:?}"
        );
    }
    let mut t = SimTx::new("O1", "X1", "A1", 100, TxState::Settled);
    t.other_authorisations = vec![other("D0", "B2", "0")];
    assert!(Ledger::prepare(vec![t], taipei()).is_ok());
}
