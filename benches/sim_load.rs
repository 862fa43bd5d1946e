//! Benchmark of the simulator's bulk load: 100,000 transactions put on its
//! books through the admin API over loopback HTTP, as the load harness and
//! the chaos runs seed it. The test suite checks that such a ledger answers
//! inquiries correctly; how long loading it takes is measured here.

// A benchmark: a failure to set up is a panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use refundd::ctbc::TxState;
use refundd::sim::{SimConfig, SimServer, SimTx};
use std::time::Duration;

const TRANSACTIONS: usize = 100_000;

fn transactions() -> Vec<SimTx> {
    (0..TRANSACTIONS as i64)
        .map(|i| {
            let order_no = format!("BULK{i:06}");
            let xid = format!("X{order_no}");
            SimTx::new(
                &order_no,
                xid,
                "AB1234",
                100 + i % 5000,
                TxState::CapturedNotSettled,
            )
        })
        .collect()
}

fn load(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = rt
        .block_on(SimServer::start(SimConfig::for_tests()))
        .expect("simulator");
    let admin = sim.admin();
    let txs = transactions();
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(TRANSACTIONS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("load 100,000 transactions", |b| {
        b.iter_batched(
            // Each load goes into empty books.
            || rt.block_on(admin.reset()).expect("reset"),
            |()| {
                let loaded = rt.block_on(admin.load(&txs)).expect("load");
                assert_eq!(loaded, TRANSACTIONS as u64);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    rt.block_on(sim.shutdown());
}

criterion_group!(benches, load);
criterion_main!(benches);
