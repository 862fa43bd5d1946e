//! Requests and answers for tests of the decision path, in one place for
//! every crate that tests it (`decide`'s own tests, the plan's in the core):
//! an order of NT$ with no auth code stored and nothing sent, and the bank's
//! answer about it in a given state. Built only for tests (`cfg(test)` or
//! the `testing` feature, which the core enables for its tests alone).

// Every value below is a literal known to parse.
#![allow(clippy::unwrap_used)]

use crate::bank::types::{Currency, Money, OrderNo, Xid};
use crate::bank::{Inquiry, Operation, TxState};
use crate::record::Lease;
use crate::refund_request::{CallFate, OwnCall, RefundRequest};

/// NT$`amount`.
pub fn twd(amount: i64) -> Money {
    Money::new(Currency::TWD, amount).unwrap()
}

/// Order `ORDER001` (XID `XID-1`) authorised for NT$`authorised`, asking
/// NT$`refund` back; no auth code stored, nothing sent, no claim held.
pub fn request(authorised: i64, refund: i64) -> RefundRequest {
    RefundRequest {
        lease: Lease::unheld(1),
        order_no: OrderNo::parse("ORDER001").unwrap(),
        xid: Xid::parse("XID-1").unwrap(),
        auth_code: None,
        currency: Currency::TWD,
        authorised: twd(authorised),
        refund: twd(refund),
        others: None,
        refund_id: Default::default(),
        capture_reversed: false,
        unknown: None,
        attempts: 0,
        own_calls: Vec::new(),
        unrecorded: Vec::new(),
        step_unrecorded: None,
    }
}

/// `r` with a call of its own on record, sent now, its amount field NT$`amount`.
pub fn with_call(
    mut r: RefundRequest,
    operation: Operation,
    amount: i64,
    fate: CallFate,
) -> RefundRequest {
    r.own_calls.push(OwnCall {
        operation,
        amount: twd(amount),
        fate,
        sent_at: chrono::Utc::now(),
    });
    r
}

/// The bank's answer about `request`'s transaction: in `state`, authorised
/// for `auth`.
pub fn answer(state: TxState, auth: i64) -> Inquiry {
    Inquiry {
        state,
        xid: Some(Xid::parse("XID-1").unwrap()),
        auth_code: None,
        auth_amount: Some(twd(auth)),
        pan: None,
        txn_date: None,
        txn_time: None,
        eci: None,
        err_code: "00".into(),
        records: Vec::new(),
    }
}
