//! Benchmarks of the decision core: `decide` for an order against an inquiry
//! answer in each bank state, full and partial. It runs once per order, so it
//! must stay far below the cost of the calls around it.

// A benchmark: a failure to set up is a panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use refundd::ctbc::types::{AuthCode, Currency, MaskedPan, Money, OrderNo, TxState, Xid};
use refundd::ctbc::Inquiry;
use refundd::domain::decide::decide;
use refundd::domain::refund_request::RefundRequest;

fn refundd_lease() -> refundd::domain::record::Lease {
    refundd::domain::record::Lease {
        id: 1,
        token: uuid::Uuid::nil(),
        worker: uuid::Uuid::nil(),
    }
}

fn request(refund: i64) -> RefundRequest {
    RefundRequest {
        lease: refundd_lease(),
        order_no: OrderNo::parse("A20261127000123").unwrap(),
        xid: Xid::parse("O-OBJECT-20261127101500-0001").unwrap(),
        auth_code: Some(AuthCode::parse("A1B2C3").unwrap()),
        currency: Currency::TWD,
        authorised: Money::new(Currency::TWD, 1500).unwrap(),
        refund: Money::new(Currency::TWD, refund).unwrap(),
        others: None,
        capture_reversed: false,
        unknown: None,
        attempts: 0,
        own_calls: Vec::new(),
        unrecorded: Vec::new(),
        step_unrecorded: None,
    }
}

fn answer(state: TxState) -> Inquiry {
    Inquiry {
        state,
        xid: Some(Xid::parse("O-OBJECT-20261127101500-0001").unwrap()),
        auth_code: Some(AuthCode::parse("A1B2C3").unwrap()),
        auth_amount: Some(Money::new(Currency::TWD, 1500).unwrap()),
        pan: Some(MaskedPan::from_bank("411111******1111")),
        txn_date: Some("20261127".into()),
        txn_time: Some("101500".into()),
        eci: Some("05".into()),
        err_code: "00".into(),
        records: Vec::new(),
    }
}

fn bench_decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for (kind, refund) in [("full", 1500), ("partial", 500)] {
        let req = request(refund);
        for state in TxState::all_known() {
            let bank = answer(state.clone());
            g.bench_function(format!("{kind}/state_{}", state.code()), |b| {
                b.iter(|| decide(black_box(&req), black_box(&bank)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
