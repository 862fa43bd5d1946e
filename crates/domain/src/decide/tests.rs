//! Every branch of the decision, for every state of the bank's table.

use super::*;
use crate::bank::types::Xid;
use crate::refund_request::CallFate;
use crate::testing::{answer as bank, request as req, twd, with_call};

fn plan(v: Decision) -> Plan {
    match v {
        Decision::Act(p) => p,
        other => panic!("expected a plan, got {other:?}"),
    }
}

#[test]
fn unknown_order_needs_a_person_and_other_inquiry_failures_retry() {
    let unknown = CtbcError::UnknownOrder {
        resp_code: "99".into(),
        err_code: "01".into(),
        message: "Order not found".into(),
    };
    assert!(
        matches!(on_inquiry_error(&unknown), Conclusion::NeedsPerson(r) if r.contains("does not know"))
    );
    let down = CtbcError::Unavailable {
        operation: Operation::Inquiry,
        reason: "maintenance".into(),
    };
    assert!(matches!(on_inquiry_error(&down), Conclusion::Retry(_)));
    let bad = CtbcError::BadAnswer {
        operation: Operation::Inquiry,
        reason: "MAC".into(),
    };
    assert!(matches!(on_inquiry_error(&bad), Conclusion::Retry(_)));
}

#[test]
fn a_different_xid_needs_a_person_before_anything_else() {
    for state in TxState::all_known() {
        let mut b = bank(state.clone(), 1000);
        b.xid = Some(Xid::parse("OTHER").unwrap());
        assert!(
            matches!(decide(&req(1000, 1000), &b), Decision::Conclude(Conclusion::NeedsPerson(r)) if r.contains("XID")),
            "{state:?}"
        );
    }
}

#[test]
fn money_already_back_by_our_own_call_is_refunded_without_a_call() {
    for fate in [CallFate::Unknown, CallFate::Accepted] {
        let r = with_call(req(1000, 1000), Operation::Reversal, 0, fate);
        assert_eq!(
            decide(&r, &bank(TxState::AuthCancelled, 0)),
            Conclusion::Refunded {
                method: RefundMethod::Reversal,
                amount: twd(1000)
            }
        );
        let mut after_caprev = r.clone();
        after_caprev.capture_reversed = true;
        assert_eq!(
            decide(&after_caprev, &bank(TxState::AuthCancelled, 0)),
            Conclusion::Refunded {
                method: RefundMethod::CaptureReversalAndReversal,
                amount: twd(1000)
            }
        );
        for s in [TxState::RefundSettling, TxState::RefundSettled] {
            let r = with_call(req(1000, 300), Operation::Refund, 300, fate);
            assert_eq!(
                decide(&r, &bank(s, 1000)),
                Conclusion::Refunded {
                    method: RefundMethod::Refund,
                    amount: twd(300)
                }
            );
        }
        // A partial reversal already done: authorisation lowered by exactly the refund.
        let r = with_call(req(1000, 300), Operation::Reversal, 700, fate);
        assert_eq!(
            decide(&r, &bank(TxState::Authorised, 700)),
            Conclusion::Refunded {
                method: RefundMethod::Reversal,
                amount: twd(300)
            }
        );
    }
}

#[test]
fn a_state_that_merely_looks_done_needs_a_person() {
    // The bank authorised 1,000, the row says 1,500 and asks 500 back.
    let v = decide(&req(1500, 500), &bank(TxState::Authorised, 1000));
    assert!(
        matches!(&v, Decision::Conclude(Conclusion::NeedsPerson(r)) if r.contains("1000") && r.contains("1500")),
        "{v:?}"
    );
    // A reversal of another amount does not explain it either.
    let other = with_call(req(1500, 500), Operation::Reversal, 0, CallFate::Unknown);
    assert!(matches!(
        decide(&other, &bank(TxState::Authorised, 1000)),
        Decision::Conclude(Conclusion::NeedsPerson(_))
    ));
    // Cancelled, refunded: not by refundd.
    let v = decide(&req(1000, 1000), &bank(TxState::AuthCancelled, 0));
    assert!(
        matches!(&v, Decision::Conclude(Conclusion::NeedsPerson(r)) if r.contains("state 0")),
        "{v:?}"
    );
    for s in [TxState::RefundSettling, TxState::RefundSettled] {
        let v = decide(&req(1000, 1000), &bank(s.clone(), 1000));
        assert!(
            matches!(&v, Decision::Conclude(Conclusion::NeedsPerson(r)) if r.contains("did not send")),
            "{v:?}"
        );
    }
    // Our refund that the bank took in another amount is not the amount asked now.
    let r = with_call(
        req(1000, 500),
        Operation::Refund,
        500,
        CallFate::AcceptedAs(twd(300)),
    );
    let v = decide(&r, &bank(TxState::RefundSettling, 1000));
    assert!(
        matches!(&v, Decision::Conclude(Conclusion::NeedsPerson(m)) if m.contains("300")),
        "{v:?}"
    );
    // A reversal of part does not explain a whole cancellation.
    let part = with_call(req(1000, 300), Operation::Reversal, 700, CallFate::Unknown);
    assert!(matches!(
        decide(&part, &bank(TxState::AuthCancelled, 0)),
        Decision::Conclude(Conclusion::NeedsPerson(_))
    ));
}

#[test]
fn a_different_authorised_amount_needs_a_person() {
    for s in [
        TxState::Authorised,
        TxState::CapturedNotSettled,
        TxState::Settled,
    ] {
        assert!(
            matches!(decide(&req(1000, 1000), &bank(s.clone(), 999)), Decision::Conclude(Conclusion::NeedsPerson(r)) if r.contains("authorised amount")),
            "{s:?}"
        );
    }
    // Lowered by something other than the requested part.
    assert!(matches!(
        decide(&req(1000, 300), &bank(TxState::Authorised, 500)),
        Decision::Conclude(Conclusion::NeedsPerson(_))
    ));
    let mut no_amount = bank(TxState::Settled, 1000);
    no_amount.auth_amount = None;
    assert!(matches!(
        decide(&req(1000, 1000), &no_amount),
        Decision::Conclude(Conclusion::Retry(_))
    ));
}

#[test]
fn authorised_is_reversed_whole_or_in_part() {
    let full = plan(decide(&req(1000, 1000), &bank(TxState::Authorised, 1000)));
    assert_eq!(
        full.steps,
        vec![Step::Reversal {
            new_auth_amount: twd(0)
        }]
    );
    assert_eq!(full.method, RefundMethod::Reversal);
    assert!(!full.completes_capture_reversal);
    let part = plan(decide(&req(1000, 300), &bank(TxState::Authorised, 1000)));
    assert_eq!(
        part.steps,
        vec![Step::Reversal {
            new_auth_amount: twd(700)
        }]
    );
    assert_eq!(part.amount, twd(300));
}

#[test]
fn captured_full_is_capture_reversed_then_reversed_and_partial_waits() {
    let full = plan(decide(
        &req(1000, 1000),
        &bank(TxState::CapturedNotSettled, 1000),
    ));
    assert_eq!(
        full.steps,
        vec![
            Step::CaptureReversal,
            Step::Reversal {
                new_auth_amount: twd(0)
            }
        ]
    );
    assert_eq!(full.method, RefundMethod::CaptureReversalAndReversal);
    assert_eq!(
        decide(&req(1000, 300), &bank(TxState::CapturedNotSettled, 1000)),
        Conclusion::Wait(WaitReason::SettlementPending)
    );
}

#[test]
fn after_a_capture_reversal_the_reversal_may_complete_it() {
    let mut r = req(1000, 1000);
    r.capture_reversed = true;
    let p = plan(decide(&r, &bank(TxState::Authorised, 1000)));
    assert_eq!(p.method, RefundMethod::CaptureReversalAndReversal);
    assert!(p.completes_capture_reversal);
}

#[test]
fn settled_is_refunded_whole_or_in_part() {
    let full = plan(decide(&req(1000, 1000), &bank(TxState::Settled, 1000)));
    assert_eq!(full.steps, vec![Step::Refund { amount: twd(1000) }]);
    let part = plan(decide(&req(1000, 300), &bank(TxState::Settled, 1000)));
    assert_eq!(part.steps, vec![Step::Refund { amount: twd(300) }]);
    assert_eq!(part.method, RefundMethod::Refund);
}

#[test]
fn batch_running_waits() {
    for s in [TxState::CaptureBatchRunning, TxState::RefundBatchRunning] {
        assert_eq!(
            decide(&req(1000, 1000), &bank(s, 1000)),
            Conclusion::Wait(WaitReason::BatchRunning)
        );
    }
}

#[test]
fn failed_and_unknown_states_need_a_person() {
    for s in [
        TxState::AuthFailed,
        TxState::CaptureFailed,
        TxState::RefundFailed,
        TxState::Unknown("42".into()),
    ] {
        assert!(
            matches!(decide(&req(1000, 1000), &bank(s.clone(), 1000)), Decision::Conclude(Conclusion::NeedsPerson(r)) if r.contains("needs a person")),
            "{s:?}"
        );
    }
}

#[test]
fn every_state_has_a_verdict_for_full_and_partial() {
    for s in TxState::all_known() {
        for refund in [1000, 300] {
            // No panic, and never an action the state does not allow.
            match decide(&req(1000, refund), &bank(s.clone(), 1000)) {
                Decision::Act(p) => {
                    let first = p.steps[0].operation();
                    let allowed = match s {
                        TxState::Authorised => first == Operation::Reversal,
                        TxState::CapturedNotSettled => first == Operation::CaptureReversal,
                        TxState::Settled => first == Operation::Refund,
                        _ => false,
                    };
                    assert!(allowed, "{s:?} planned {first:?}");
                }
                Decision::Conclude(Conclusion::Retry(r)) => panic!("{s:?}: unexpected retry {r}"),
                _ => {}
            }
        }
    }
}

#[test]
fn after_an_ambiguous_call_the_bank_decides_whether_to_carry_on() {
    let caprev = with_call(
        req(1000, 1000),
        Operation::CaptureReversal,
        0,
        CallFate::Unknown,
    );
    // Capture reversal took effect: go on with the reversal.
    let v = after_ambiguous(
        &caprev,
        Step::CaptureReversal,
        &bank(TxState::Authorised, 1000),
    );
    let p = plan(v.unwrap());
    assert_eq!(
        p.steps,
        vec![Step::Reversal {
            new_auth_amount: twd(0)
        }]
    );
    assert_eq!(p.method, RefundMethod::CaptureReversalAndReversal);
    assert!(p.completes_capture_reversal);
    // It did not: do not send it again now.
    assert_eq!(
        after_ambiguous(
            &caprev,
            Step::CaptureReversal,
            &bank(TxState::CapturedNotSettled, 1000)
        ),
        None
    );
    // A refund that took effect / did not.
    let refund = with_call(req(1000, 1000), Operation::Refund, 1000, CallFate::Unknown);
    assert_eq!(
        after_ambiguous(
            &refund,
            Step::Refund { amount: twd(1000) },
            &bank(TxState::RefundSettling, 1000)
        ),
        Some(Decision::Conclude(Conclusion::Refunded {
            method: RefundMethod::Refund,
            amount: twd(1000)
        }))
    );
    assert_eq!(
        after_ambiguous(
            &refund,
            Step::Refund { amount: twd(1000) },
            &bank(TxState::Settled, 1000)
        ),
        None
    );
    // A reversal that took effect / did not.
    let reversal = with_call(req(1000, 1000), Operation::Reversal, 0, CallFate::Unknown);
    assert!(matches!(
        after_ambiguous(
            &reversal,
            Step::Reversal {
                new_auth_amount: twd(0)
            },
            &bank(TxState::AuthCancelled, 0)
        ),
        Some(Decision::Conclude(Conclusion::Refunded { .. }))
    ));
    assert_eq!(
        after_ambiguous(
            &reversal,
            Step::Reversal {
                new_auth_amount: twd(0)
            },
            &bank(TxState::Authorised, 1000)
        ),
        None
    );
}

#[test]
fn a_capture_reversal_overtaken_by_the_batch_is_a_refund_and_keeps_no_exemption() {
    let caprev = with_call(
        req(1000, 1000),
        Operation::CaptureReversal,
        0,
        CallFate::Unknown,
    );
    let p = plan(
        after_ambiguous(
            &caprev,
            Step::CaptureReversal,
            &bank(TxState::Settled, 1000),
        )
        .unwrap(),
    );
    assert_eq!(p.steps, vec![Step::Refund { amount: twd(1000) }]);
    assert_eq!(p.method, RefundMethod::Refund);
    assert!(!p.completes_capture_reversal);
    assert!(!capture_reversal_took_effect(&bank(TxState::Settled, 1000)));
    assert!(capture_reversal_took_effect(&bank(
        TxState::Authorised,
        1000
    )));
}

#[test]
fn after_a_refusal_only_batch_and_done_are_not_failures() {
    let r = req(1000, 1000);
    assert_eq!(
        after_refusal(&r, &bank(TxState::CaptureBatchRunning, 1000), "batch"),
        Conclusion::Wait(WaitReason::BatchRunning)
    );
    assert!(matches!(
        after_refusal(
            &with_call(r.clone(), Operation::Refund, 1000, CallFate::Unknown),
            &bank(TxState::RefundSettling, 1000),
            "dup"
        ),
        Conclusion::Refunded { .. }
    ));
    assert!(matches!(
        after_refusal(&r, &bank(TxState::Settled, 1000), "交易失敗"),
        Conclusion::NeedsPerson(m) if m.contains("交易失敗")
    ));
}

#[test]
fn the_watch_settles_22_fails_23_and_gives_every_other_state_to_a_person() {
    for s in TxState::all_known() {
        let v = watch_verdict(&bank(s.clone(), 1000), &ours());
        match s {
            TxState::RefundSettling | TxState::RefundBatchRunning => {
                assert_eq!(v, Settlement::StillSettling)
            }
            TxState::RefundSettled => assert_eq!(v, Settlement::Settled),
            TxState::RefundFailed => {
                assert!(matches!(&v, Settlement::Failed(r) if r.contains("state 23")))
            }
            other => assert!(
                matches!(&v, Settlement::Failed(r) if r.contains(&format!("state {}", other.code()))),
                "{other:?}: {v:?}"
            ),
        }
    }
    assert!(matches!(
        watch_verdict(&bank(TxState::Unknown("42".into()), 1000), &ours()),
        Settlement::Failed(_)
    ));
}

/// The XID of `request`'s and `answer`'s transaction.
fn ours() -> Xid {
    Xid::parse("XID-1").unwrap()
}

#[test]
fn the_watch_never_judges_a_refund_by_another_authorisation_s_answer() {
    for s in TxState::all_known() {
        let mut b = bank(s.clone(), 1000);
        b.xid = Some(Xid::parse("OTHER").unwrap());
        assert!(
            matches!(&watch_verdict(&b, &ours()), Settlement::Failed(r) if r.contains("XID OTHER") && r.contains("(XID-1)")),
            "{s:?}"
        );
    }
    // An answer that names no XID is judged by its state, as before.
    let mut b = bank(TxState::RefundSettled, 1000);
    b.xid = None;
    assert_eq!(watch_verdict(&b, &ours()), Settlement::Settled);
}
