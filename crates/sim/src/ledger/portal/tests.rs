//! Unit tests of the changes made at the bank's portal: each change where
//! its state allows it, what an inquiry then shows, each refusal (and that
//! it changes nothing), and that no change is ever logged as a call.

use super::super::tests::{
    call, inquiry_of, ledger_in, ledger_with, now, refund_of, resp, run_batch, state,
};
use super::*;
use crate::ctbc::Operation;
use crate::ledger::refusal;

fn make(l: &mut Ledger, change: PortalChange) -> Result<PortalApplied, PortalRefusal> {
    l.portal(now(), "O1", &change)
}

/// Makes `change`, which must be refused as not allowed in `state`, and
/// checks that it changed nothing and was not kept.
fn refused_in(l: &mut Ledger, change: PortalChange, state: &str) -> String {
    let before = l.transaction("O1");
    let kept = l.portal_changes().len();
    match make(l, change.clone()) {
        Err(PortalRefusal::NotAllowed { state: s, reason }) => {
            assert_eq!(s, state, "{change:?}: {reason}");
            assert_eq!(l.transaction("O1"), before, "{change:?} changed the books");
            assert_eq!(l.portal_changes().len(), kept, "{change:?} was kept");
            reason
        }
        other => panic!("{change:?} in {state}: {other:?}"),
    }
}

/// No call logged, no duplicate counted: the portal is not the caller.
fn no_calls_logged(l: &Ledger) {
    let r = l.report();
    assert_eq!((r.calls, r.duplicates, r.returned_by_calls), (0, 0, 0));
}

#[test]
fn a_refund_in_the_portal_is_filed_as_a_refund_call_would_be() {
    let mut l = ledger_with(TxState::Settled, 1500);
    let done = make(&mut l, PortalChange::Refund { amount: 400 }).unwrap();
    let tx = done.transaction.unwrap();
    assert_eq!((tx.state.as_str(), tx.refunded_amount), ("20", 400));
    assert_eq!(tx.returned_amount, 400);
    let [r] = &tx.refunds[..] else {
        panic!("one refund: {:?}", tx.refunds)
    };
    assert_eq!((r.amount, r.reversed, r.settled), (400, false, false));
    assert!(!r.batch_id.is_empty() && !r.batch_seq.is_empty() && !r.retr_ref.is_empty());
    let record = &done.applied;
    assert_eq!((record.seq, record.order_no.as_str()), (1, "O1"));
    assert_eq!(record.state_before, "12");
    assert_eq!(record.state_after.as_deref(), Some("20"));
    assert_eq!(record.returned_delta, 400);
    no_calls_logged(&l);
    let report = l.report();
    assert_eq!(report.returned_by_portal, 400);
    assert_eq!(report.portal_changes, vec![record.clone()]);
    // The books go on from there: the batch settles it, and a refund call
    // finds only the balance it left.
    run_batch(&mut l);
    assert_eq!(state(&l), "22");
    let a = l.apply(now(), &refund_of(1200), None);
    assert_eq!(resp(&a), refusal::AMOUNT, "{a:?}");
    assert_eq!(resp(&l.apply(now(), &refund_of(1100), None)), "0");
}

#[test]
fn a_refund_in_the_portal_needs_settled_money_and_a_balance() {
    for s in TxState::all_known() {
        let mut l = ledger_in(s.clone());
        if REFUND.accepted_in.contains(&s) {
            assert!(make(&mut l, PortalChange::Refund { amount: 100 }).is_ok());
            assert_eq!(state(&l), "20");
        } else {
            let why = refused_in(&mut l, PortalChange::Refund { amount: 100 }, s.code());
            assert!(why.contains(&format!("state {}", s.code())), "{why}");
            assert!(why.contains("12, 22"), "{why}");
        }
    }
    // In 22 with 500 of 1,500 refunded: 1,000 is left.
    let mut l = ledger_in(TxState::RefundSettled);
    let why = refused_in(&mut l, PortalChange::Refund { amount: 1001 }, "22");
    assert!(why.contains("1000 of the 1500"), "{why}");
    assert!(make(&mut l, PortalChange::Refund { amount: 1000 }).is_ok());
    assert_eq!(l.transaction("O1").unwrap().refunded_amount, 1500);
}

#[test]
fn a_reversal_in_the_portal_lowers_or_cancels_the_authorisation() {
    let mut l = ledger_with(TxState::Authorised, 1500);
    let done = make(&mut l, PortalChange::Reverse { amount: Some(500) }).unwrap();
    let tx = done.transaction.unwrap();
    assert_eq!((tx.state.as_str(), tx.auth_amount), ("1", 1000));
    assert_eq!(
        (tx.returned_amount, done.applied.returned_delta),
        (500, 500)
    );
    assert_eq!(
        inquiry_of(&mut l).auth_amount.map(|m| m.amount()),
        Some(1000)
    );
    let why = refused_in(&mut l, PortalChange::Reverse { amount: Some(1001) }, "1");
    assert!(why.contains("stands at 1000"), "{why}");
    // Left out, the amount is all that is authorised.
    let done = make(&mut l, PortalChange::Reverse { amount: None }).unwrap();
    let tx = done.transaction.unwrap();
    assert_eq!((tx.state.as_str(), tx.auth_amount), ("0", 0));
    assert_eq!(
        (tx.returned_amount, done.applied.returned_delta),
        (1500, 1000)
    );
    assert_eq!(l.report().returned_by_portal, 1500);
    // A refundd reversal now finds the authorisation cancelled.
    let a = l.apply(now(), &call(Operation::Reversal, 1500, 0), None);
    assert_eq!(resp(&a), refusal::DUPLICATE);
}

#[test]
fn a_reversal_in_the_portal_needs_an_authorisation_not_captured() {
    for s in TxState::all_known() {
        if s == TxState::Authorised {
            continue;
        }
        let mut l = ledger_in(s.clone());
        let why = refused_in(&mut l, PortalChange::Reverse { amount: None }, s.code());
        assert!(why.contains("only in 1"), "{why}");
    }
}

#[test]
fn a_refund_fails_at_settlement_from_20_21_or_22() {
    for s in TxState::all_known() {
        let mut l = ledger_in(s.clone());
        if REFUND_MADE.contains(&s) {
            let done = make(&mut l, PortalChange::FailRefund {}).unwrap();
            assert_eq!(done.applied.state_before, s.code());
            assert_eq!(done.applied.state_after.as_deref(), Some("23"));
            assert_eq!(inquiry_of(&mut l).state, TxState::RefundFailed);
            // The batch leaves a failed refund where it is.
            run_batch(&mut l);
            assert_eq!(state(&l), "23");
        } else {
            let why = refused_in(&mut l, PortalChange::FailRefund {}, s.code());
            assert!(why.contains("only in 20, 21, 22"), "{why}");
        }
    }
}

#[test]
fn the_bank_settles_another_amount_and_an_inquiry_shows_it() {
    let mut l = ledger_in(TxState::RefundSettled);
    let done = make(&mut l, PortalChange::SettleAmount { amount: 1200 }).unwrap();
    assert_eq!(done.applied.state_after.as_deref(), Some("22"));
    no_calls_logged(&l);
    let seen = inquiry_of(&mut l);
    assert_eq!(seen.state, TxState::RefundSettled);
    assert_eq!(seen.auth_amount.map(|m| m.amount()), Some(1200));
    // What is left to refund follows: 1,200 less the 500 refunded.
    let why = refused_in(&mut l, PortalChange::Refund { amount: 701 }, "22");
    assert!(why.contains("700 of the 1200"), "{why}");
    // Never above what was authorised, never below what was refunded.
    let why = refused_in(&mut l, PortalChange::SettleAmount { amount: 1501 }, "22");
    assert!(why.contains("up to the 1500 authorised"), "{why}");
    let why = refused_in(&mut l, PortalChange::SettleAmount { amount: 499 }, "22");
    assert!(why.contains("from the 500 refunded"), "{why}");
}

#[test]
fn only_captured_money_is_settled_differently() {
    for s in TxState::all_known() {
        let mut l = ledger_in(s.clone());
        let change = PortalChange::SettleAmount { amount: 1000 };
        if CAPTURED.contains(&s) {
            assert!(make(&mut l, change).is_ok(), "{s:?}");
            assert_eq!(state(&l), s.code());
        } else {
            refused_in(&mut l, change, s.code());
        }
    }
}

#[test]
fn a_forgotten_order_is_not_found() {
    let mut l = ledger_with(TxState::Settled, 1500);
    let done = make(&mut l, PortalChange::Forget {}).unwrap();
    assert_eq!(done.transaction, None);
    assert_eq!(done.applied.state_before, "12");
    assert_eq!(done.applied.state_after, None);
    let a = l.apply(now(), &call(Operation::Inquiry, 0, 0), None);
    assert_eq!(resp(&a), refusal::NOT_FOUND_RESP);
    assert_eq!(a["ErrCode"], refusal::NOT_FOUND_ERR);
    let report = l.report();
    assert_eq!(report.transactions, 0);
    assert_eq!(report.portal_changes.len(), 1, "still on the portal's list");
    assert_eq!(
        make(&mut l, PortalChange::Forget {}),
        Err(PortalRefusal::UnknownOrder("no transaction \"O1\"".into()))
    );
}

#[test]
fn the_bank_shows_another_state() {
    let mut l = ledger_with(TxState::Authorised, 1500);
    make(&mut l, PortalChange::Reverse { amount: None }).unwrap();
    let done = make(&mut l, PortalChange::SetState { state: "12".into() }).unwrap();
    assert_eq!(done.applied.state_before, "0");
    assert_eq!(inquiry_of(&mut l).state, TxState::Settled);
    assert_eq!(l.portal_changes().len(), 2);
    assert_eq!(l.portal_changes()[1].seq, 2);
}

#[test]
fn a_change_that_is_wrong_in_itself_is_refused_before_the_books_are_read() {
    let bad = [
        PortalChange::Refund { amount: 0 },
        PortalChange::Refund { amount: -5 },
        PortalChange::Reverse { amount: Some(0) },
        PortalChange::SettleAmount { amount: -1 },
        PortalChange::SetState { state: "7".into() },
        PortalChange::SetState { state: "".into() },
    ];
    for change in bad {
        let mut l = ledger_with(TxState::Authorised, 1500);
        let before = l.transaction("O1");
        assert!(
            matches!(
                make(&mut l, change.clone()),
                Err(PortalRefusal::BadChange(_))
            ),
            "{change:?}"
        );
        // Of an order the bank does not know too: the change is wrong first.
        assert!(matches!(
            l.portal(now(), "NOPE", &change),
            Err(PortalRefusal::BadChange(_))
        ));
        assert_eq!(l.transaction("O1"), before);
        assert!(l.portal_changes().is_empty());
    }
}

#[test]
fn a_change_to_an_order_the_bank_does_not_know_is_refused() {
    let mut l = ledger_with(TxState::Settled, 1500);
    let changes = [
        PortalChange::Refund { amount: 1 },
        PortalChange::Reverse { amount: None },
        PortalChange::FailRefund {},
        PortalChange::SettleAmount { amount: 1 },
        PortalChange::Forget {},
        PortalChange::SetState { state: "0".into() },
    ];
    for change in changes {
        assert_eq!(
            l.portal(now(), "NOPE", &change),
            Err(PortalRefusal::UnknownOrder(
                "no transaction \"NOPE\"".into()
            ))
        );
    }
    assert!(l.portal_changes().is_empty());
    assert_eq!(state(&l), "12");
}

#[test]
fn a_reset_forgets_the_portals_changes() {
    let mut l = ledger_with(TxState::Settled, 1500);
    make(&mut l, PortalChange::Refund { amount: 10 }).unwrap();
    l.reset();
    assert!(l.portal_changes().is_empty());
    assert_eq!(l.report().returned_by_portal, 0);
}

#[test]
fn the_body_names_one_change() {
    let read = |json: &str| serde_json::from_str::<PortalChange>(json);
    let cases = [
        (
            r#"{"change":"refund","amount":200}"#,
            PortalChange::Refund { amount: 200 },
        ),
        (
            r#"{"change":"reverse"}"#,
            PortalChange::Reverse { amount: None },
        ),
        (
            r#"{"change":"reverse","amount":5}"#,
            PortalChange::Reverse { amount: Some(5) },
        ),
        (r#"{"change":"fail_refund"}"#, PortalChange::FailRefund {}),
        (
            r#"{"change":"settle_amount","amount":900}"#,
            PortalChange::SettleAmount { amount: 900 },
        ),
        (r#"{"change":"forget"}"#, PortalChange::Forget {}),
        (
            r#"{"change":"set_state","state":"12"}"#,
            PortalChange::SetState { state: "12".into() },
        ),
    ];
    for (json, change) in cases {
        assert_eq!(read(json).unwrap(), change, "{json}");
        assert_eq!(
            read(&serde_json::to_string(&change).unwrap()).unwrap(),
            change
        );
    }
    for wrong in [
        r#"{"change":"refund"}"#,
        r#"{"change":"refund","amount":1.5}"#,
        r#"{"change":"refund","amount":"200"}"#,
        r#"{"change":"refund","amount":200,"currency":901}"#,
        r#"{"change":"forget","amount":1}"#,
        r#"{"change":"capture"}"#,
        r#"{"amount":200}"#,
    ] {
        assert!(read(wrong).is_err(), "{wrong} was read");
    }
}
