//! The decision for an order's second and later refunds, for every state of
//! the bank's table: the balance guard, and what a state means once earlier
//! refunds of refundd's own explain part of it.

use super::*;
use crate::refund_request::{CallFate, OtherRefunds};
use crate::testing::{answer as bank, request, twd, with_call};

/// NT$1,000 authorised; this refund asks `refund` back after other refunds
/// that committed `committed`, `by_reversal` of it by reversals and
/// `by_refund` by refunds of settled money.
fn later(refund: i64, committed: i64, by_reversal: i64, by_refund: i64) -> RefundRequest {
    let mut r = request(1000, refund);
    r.others = Some(OtherRefunds {
        committed: twd(committed),
        by_reversal: twd(by_reversal),
        by_refund: twd(by_refund),
    });
    r
}

fn refund_of(amount: i64) -> Decision {
    Decision::Act(Plan {
        method: RefundMethod::Refund,
        steps: vec![Step::Refund {
            amount: twd(amount),
        }],
        amount: twd(amount),
        completes_capture_reversal: false,
    })
}

fn person(d: &Decision, needle: &str) -> bool {
    matches!(d, Decision::Conclude(Conclusion::NeedsPerson(r)) if r.contains(needle))
}

#[test]
fn after_an_earlier_refund_of_settled_money_each_bank_state_has_its_meaning() {
    // NT$300 refunded earlier by refundd, settled or settling; NT$200 now.
    let r = later(200, 300, 0, 300);
    for state in TxState::all_known() {
        let d = decide(&r, &bank(state.clone(), 1000));
        match state {
            TxState::Settled | TxState::RefundSettled => assert_eq!(d, refund_of(200)),
            TxState::RefundSettling => {
                assert_eq!(d, Conclusion::Wait(WaitReason::EarlierRefundSettling))
            }
            TxState::CaptureBatchRunning | TxState::RefundBatchRunning => {
                assert_eq!(d, Conclusion::Wait(WaitReason::BatchRunning))
            }
            TxState::CapturedNotSettled => {
                assert_eq!(d, Conclusion::Wait(WaitReason::SettlementPending))
            }
            TxState::Authorised => assert_eq!(
                d,
                Decision::Act(Plan {
                    method: RefundMethod::Reversal,
                    steps: vec![Step::Reversal {
                        new_auth_amount: twd(800)
                    }],
                    amount: twd(200),
                    completes_capture_reversal: false,
                }),
                "the bank's state does not fit the earlier refunds, but its amounts agree"
            ),
            TxState::AuthCancelled => assert!(person(&d, "no reversal"), "{d:?}"),
            TxState::AuthFailed => assert!(person(&d, "state -1"), "{d:?}"),
            TxState::CaptureFailed => assert!(person(&d, "state 13"), "{d:?}"),
            TxState::RefundFailed => assert!(person(&d, "state 23"), "{d:?}"),
            TxState::Unknown(_) => unreachable!("all_known lists known states"),
        }
    }
}

#[test]
fn this_refunds_own_call_shown_by_the_bank_is_done_unless_the_earlier_ones_explain_it_as_well() {
    for state in [TxState::RefundSettling, TxState::RefundSettled] {
        let accepted = with_call(
            later(200, 300, 0, 300),
            Operation::Refund,
            200,
            CallFate::Accepted,
        );
        assert_eq!(
            decide(&accepted, &bank(state.clone(), 1000)),
            Conclusion::Refunded {
                method: RefundMethod::Refund,
                amount: twd(200)
            }
        );
    }
    // A later refund is sent only on a state of 12 or 22, one refund of
    // the order at a time: a refund settling (20) after its call of
    // unknown outcome is that call's.
    let unknown = with_call(
        later(200, 300, 0, 300),
        Operation::Refund,
        200,
        CallFate::Unknown,
    );
    assert_eq!(
        decide(&unknown, &bank(TxState::RefundSettling, 1000)),
        Conclusion::Refunded {
            method: RefundMethod::Refund,
            amount: twd(200)
        }
    );
    // Settled (22), the earlier refunds explain it as well as the call of
    // unknown outcome would: a person looks, nothing is resent.
    let d = decide(&unknown, &bank(TxState::RefundSettled, 1000));
    assert!(person(&d, "outcome is unknown"), "{d:?}");
}

#[test]
fn a_refund_over_the_balance_fails_alone_in_every_state_with_the_balance_in_its_reason() {
    // NT$900 given back or maybe given back already; NT$200 asked now.
    let r = later(200, 900, 0, 900);
    for state in TxState::all_known() {
        let d = decide(&r, &bank(state.clone(), 1000));
        assert!(
            person(
                &d,
                "this refund of 200 is over the order's balance: 100 left of the 1000 authorised"
            ),
            "{state:?}: {d:?}"
        );
        assert!(person(&d, "nothing was sent"));
    }
    // Exactly the balance is allowed.
    assert_eq!(
        decide(&later(100, 900, 0, 900), &bank(TxState::Settled, 1000)),
        refund_of(100)
    );
}

#[test]
fn after_an_earlier_reversal_the_authorisation_is_lowered_from_what_the_bank_holds() {
    // NT$300 taken off the authorisation earlier; the bank holds NT$700.
    let r = later(200, 300, 300, 0);
    assert_eq!(
        decide(&r, &bank(TxState::Authorised, 700)),
        Decision::Act(Plan {
            method: RefundMethod::Reversal,
            steps: vec![Step::Reversal {
                new_auth_amount: twd(500)
            }],
            amount: twd(200),
            completes_capture_reversal: false,
        })
    );
    // The bank still holding the whole amount is not what refundd's record
    // says: nothing is sent.
    let d = decide(&r, &bank(TxState::Authorised, 1000));
    assert!(
        person(
            &d,
            "the bank's authorised amount 1000 differs from the order's 700"
        ),
        "{d:?}"
    );
    // Lowered to 500 by this refund's own reversal: done, without a call.
    let lowered = with_call(r.clone(), Operation::Reversal, 500, CallFate::Unknown);
    assert_eq!(
        decide(&lowered, &bank(TxState::Authorised, 500)),
        Conclusion::Refunded {
            method: RefundMethod::Reversal,
            amount: twd(200)
        }
    );
    // A refund the bank shows is not explained by earlier reversals.
    let d = decide(&r, &bank(TxState::RefundSettled, 700));
    assert!(person(&d, "did not send"), "{d:?}");
}

#[test]
fn the_rest_of_a_lowered_authorisation_cancels_it_and_state_0_is_ours_only_by_our_own_call() {
    let rest = later(700, 300, 300, 0);
    assert_eq!(
        decide(&rest, &bank(TxState::Authorised, 700)),
        Decision::Act(Plan {
            method: RefundMethod::Reversal,
            steps: vec![Step::Reversal {
                new_auth_amount: twd(0)
            }],
            amount: twd(700),
            completes_capture_reversal: false,
        })
    );
    let cancelled = with_call(rest.clone(), Operation::Reversal, 0, CallFate::Unknown);
    assert_eq!(
        decide(&cancelled, &bank(TxState::AuthCancelled, 0)),
        Conclusion::Refunded {
            method: RefundMethod::Reversal,
            amount: twd(700)
        }
    );
    let d = decide(&rest, &bank(TxState::AuthCancelled, 0));
    assert!(person(&d, "no reversal"), "{d:?}");
}

#[test]
fn an_order_with_one_refund_decides_exactly_as_before() {
    // `others: None` and `others` with nothing in them are the same order.
    for state in TxState::all_known() {
        for (authorised, refund) in [(1000, 1000), (1000, 300)] {
            let alone = request(authorised, refund);
            let with_nothing = later(refund, 0, 0, 0);
            let answer = bank(state.clone(), authorised);
            assert_eq!(
                decide(&alone, &answer),
                decide(&with_nothing, &answer),
                "{state:?} {refund}"
            );
        }
    }
}
