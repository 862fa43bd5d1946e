//! Benchmarks of the decision core: `decide` for an order against an inquiry
//! answer in each bank state, full and partial. It runs once per order, so it
//! must stay far below the cost of the calls around it.

// A benchmark: a failure to set up is a panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use refundd::ctbc::types::{AuthCode, TxState};
use refundd::domain::decide::decide;
use refundd::domain::refund_request::RefundRequest;
use refundd_domain::testing::{answer, request as order};

/// NT$1,500 authorised, `refund` asked back, the auth code stored.
fn request(refund: i64) -> RefundRequest {
    let mut r = order(1500, refund);
    r.auth_code = Some(AuthCode::parse("A1B2C3").unwrap());
    r
}

fn bench_decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for (kind, refund) in [("full", 1500), ("partial", 500)] {
        let req = request(refund);
        for state in TxState::all_known() {
            let bank = answer(state.clone(), 1500);
            g.bench_function(format!("{kind}/state_{}", state.code()), |b| {
                b.iter(|| decide(black_box(&req), black_box(&bank)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
