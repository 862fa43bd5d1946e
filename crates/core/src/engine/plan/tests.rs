//! The plan's decisions after an inquiry, without a bank or a database: the
//! recheck delay, a capture reversal of unknown outcome, the attempt limit and
//! the local checks, as the pass applies them.

use super::*;
use crate::ctbc::types::AuthCode;
use crate::ctbc::{Operation, TxState};
use crate::domain::blackout::Blackout;
use crate::domain::decide::{Plan, Step};
use crate::domain::refund_request::CallFate;
use crate::domain::testing::{answer, request, twd, with_call};
use crate::domain::words::{RefundMethod, RefundStatus};
use std::time::Duration;

fn settings() -> EngineSettings {
    EngineSettings {
        concurrency: 2,
        batch_size: 10,
        lease: Duration::from_secs(30),
        max_attempts: 3,
        recheck: Duration::from_secs(300),
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(600),
        settlement_watch_days: 14,
        blackout: Blackout::default(),
        attention_after: Duration::from_secs(3600),
    }
}

/// The shared request, with an auth code stored, so its calls pass their local checks.
fn req(authorised: i64, refund: i64) -> RefundRequest {
    let mut r = request(authorised, refund);
    r.auth_code = Some(AuthCode::parse("A1B2C3").unwrap());
    r
}

/// `r` with a call of `operation` of unknown outcome sent `age` ago.
fn unknown(r: RefundRequest, operation: Operation, amount: i64, age: u64) -> RefundRequest {
    let mut r = with_call(r, operation, amount, CallFate::Unknown);
    r.unknown = Some((operation, Duration::from_secs(age)));
    r
}

fn bank(state: TxState, auth: i64) -> Result<Inquiry, CtbcError> {
    Ok(answer(state, auth))
}

fn refund_of(amount: i64) -> NextMove {
    NextMove::Send(Sending {
        plan: Plan {
            method: RefundMethod::Refund,
            amount: twd(amount),
            steps: vec![Step::Refund {
                amount: twd(amount),
            }],
            completes_capture_reversal: false,
        },
        authorised: twd(1000),
    })
}

#[test]
fn an_unknown_call_within_the_recheck_delay_is_skipped_and_after_it_sent() {
    let r = unknown(req(1000, 1000), Operation::Refund, 1000, 60);
    let (skip, action) = after_inquiry(r, &bank(TxState::Settled, 1000), &settings());
    assert_eq!(
        skip,
        Some(Skip::RecheckDelay {
            operation: Operation::Refund,
            left_secs: 240
        })
    );
    assert_eq!(action, refund_of(1000));

    let r = unknown(req(1000, 1000), Operation::Refund, 1000, 301);
    let (skip, action) = after_inquiry(r, &bank(TxState::Settled, 1000), &settings());
    assert_eq!((skip, action), (None, refund_of(1000)));
}

#[test]
fn an_unknown_call_the_bank_shows_done_is_recorded_without_a_call() {
    let r = unknown(req(1000, 1000), Operation::Refund, 1000, 10);
    let (skip, action) = after_inquiry(r, &bank(TxState::RefundSettling, 1000), &settings());
    assert_eq!(skip, None);
    assert_eq!(
        action,
        NextMove::Record(Record::Refunded {
            method: RefundMethod::Refund,
            amount: twd(1000)
        })
    );
}

#[test]
fn a_capture_reversal_the_bank_shows_done_is_completed_by_its_reversal_at_once() {
    let r = unknown(req(1000, 1000), Operation::CaptureReversal, 0, 10);
    let (skip, action) = after_inquiry(r, &bank(TxState::Authorised, 1000), &settings());
    assert_eq!(skip, None);
    assert_eq!(
        action,
        NextMove::Send(Sending {
            plan: Plan {
                method: RefundMethod::CaptureReversalAndReversal,
                amount: twd(1000),
                steps: vec![Step::Reversal {
                    new_auth_amount: twd(0)
                }],
                completes_capture_reversal: true,
            },
            authorised: twd(1000),
        })
    );
}

#[test]
fn no_verdict_retries_until_the_attempt_limit_then_a_person() {
    let down: Result<Inquiry, CtbcError> = Err(CtbcError::Unavailable {
        operation: Operation::Inquiry,
        reason: "maintenance".into(),
    });
    let (_, action) = after_inquiry(req(1000, 1000), &down, &settings());
    assert!(
        matches!(
            action,
            NextMove::Record(Record::RetryLater {
                attempt: 1,
                max_attempts: 3,
                ..
            })
        ),
        "{action:?}"
    );
    let mut last = req(1000, 1000);
    last.attempts = 2;
    let (_, action) = after_inquiry(last, &down, &settings());
    assert!(
        matches!(&action, NextMove::Record(Record::NeedsPerson { reason }) if reason.starts_with("gave up after 3 attempts")),
        "{action:?}"
    );
    // Never while a call's outcome is unknown.
    let mut doubt = unknown(req(1000, 1000), Operation::Refund, 1000, 900);
    doubt.attempts = 2;
    let (_, action) = after_inquiry(doubt, &down, &settings());
    assert!(
        matches!(
            action,
            NextMove::Record(Record::RetryLater { attempt: 3, .. })
        ),
        "{action:?}"
    );
}

#[test]
fn a_call_that_fails_its_local_checks_goes_to_a_person() {
    let mut r = req(1000, 1000);
    r.auth_code = None;
    let (skip, action) = after_inquiry(r, &bank(TxState::Settled, 1000), &settings());
    assert_eq!(skip, None);
    assert!(
        matches!(&action, NextMove::Record(Record::NeedsPerson { reason }) if reason.contains("invalid refund request, nothing sent") && reason.contains("auth_code")),
        "{action:?}"
    );
}

/// A refund of order `order_no` as the plan's reading gives it: record `id`
/// (0: not recorded yet), due or not by the claim's rules.
fn reading_row(
    order_no: &str,
    refund_id: &str,
    id: i64,
    status: RefundStatus,
    due: bool,
) -> PlanRow {
    PlanRow {
        row: crate::domain::record::OrderRecord {
            id,
            order_no: order_no.into(),
            refund_id: refund_id.into(),
            merchant: None,
            xid: Some("X1".into()),
            auth_code: Some("A1B2C3".into()),
            auth_amount: Some(1000),
            currency: "901".into(),
            status,
            refund_amount: Some(100),
            bad_input: None,
            claimed_amount: None,
            attempts: 0,
            step: None,
            unknown_operation: None,
            unknown_since: None,
            refund_method: None,
            refunded_amount: None,
            watch_until: None,
            lease_token: None,
            lidm: None,
            unknown_age_ms: None,
            own_calls: Vec::new(),
            others: None,
        },
        new_request: id == 0,
        withdrawn: false,
        refunded_already: false,
        due,
        held: false,
        next_attempt_at: None,
        lease_expires_at: None,
        last_error: None,
    }
}

#[test]
fn a_refund_the_claim_leaves_for_its_turn_waits_for_the_earlier_one_named() {
    let now = Utc::now();
    let rows = [
        reading_row("N1", "A1", 7, RefundStatus::Refunding, true),
        reading_row("N1", "A2", 9, RefundStatus::RefundRequested, false),
        reading_row("N1", "A3", 0, RefundStatus::RefundRequested, false),
        reading_row("N2", "", 8, RefundStatus::RefundRequested, true),
    ];
    let turns = turns_of_orders(&rows, now);
    assert_eq!(
        turns,
        [None, Some(Some("A1".into())), Some(Some("A1".into())), None]
    );
}

#[test]
fn of_several_requests_not_recorded_yet_the_first_is_worked_and_the_others_wait() {
    let now = Utc::now();
    let rows = [
        reading_row("N1", "B1", 0, RefundStatus::RefundRequested, true),
        reading_row("N1", "B2", 0, RefundStatus::RefundRequested, true),
        reading_row("N1", "B3", 0, RefundStatus::RefundRequested, true),
        reading_row("N2", "B1", 0, RefundStatus::RefundRequested, true),
    ];
    let turns = turns_of_orders(&rows, now);
    assert_eq!(
        turns,
        [None, Some(Some("B1".into())), Some(Some("B1".into())), None]
    );
}

#[test]
fn a_refund_not_due_yet_is_not_due_whatever_its_order() {
    let now = Utc::now();
    let mut later = reading_row("N1", "A2", 9, RefundStatus::RefundRequested, false);
    later.next_attempt_at = Some(now + chrono::Duration::minutes(5));
    let rows = [
        reading_row("N1", "A1", 7, RefundStatus::RefundRequested, true),
        later,
    ];
    assert_eq!(turns_of_orders(&rows, now), [None, None]);
    assert!(matches!(
        not_taken(&rows[1], None),
        Some(Skip::NotDue { .. })
    ));
}
