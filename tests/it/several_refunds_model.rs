//! Several refunds of one order, checked on generated histories: returns of
//! the order (amounts within it, some over what the others left, some the
//! rest of it) approved between passes, a bank that holds the order
//! authorised (1), in the capture file (10) or settled (12), runs its batch
//! between passes (whole, or started before a pass and finished after it),
//! and loses answers, drops connections or fails with 5xx in some passes. The
//! real passes run against real PostgreSQL (the returns shop's own tables)
//! and the simulator; once the bank calms down and the passes have finished
//! the work, the books hold: never more given back than authorised, no
//! refund sent twice, every refund ended in a state that explains the bank's
//! books (`common::assert_books_explained`), and the shop told each outcome.
//! A small fixed set of histories is part of the normal suite; many random
//! ones are behind #[ignore].

use crate::common::{
    assert_books_explained, assert_shop_told, bank_tx, engine_settings, pass_of, refund_records,
    request, Rig,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use refundd::ctbc::{Operation, TxState};
use refundd::engine::clock::SystemClock;
use refundd::engine::pass::Engine;
use refundd::engine::settings::EngineSettings;
use refundd::ops::shop_examples::RETURNS;
use refundd::sim::{FaultPlan, FaultRule};
use refundd::store::shop_examples::{approve_return, AskedBack, SeedOrder};
use std::sync::Arc;
use std::time::Duration;

/// The order every history works on.
const ORDER: &str = "M1";

/// Passes after the last round, each followed by a batch, to finish the work
/// once the bank is calm: more than a history's refunds can need.
const CALM_PASSES: usize = 12;

/// Where the bank holds the order when the history starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    Authorised,
    InCaptureFile,
    Settled,
}

impl Start {
    fn state(self) -> TxState {
        match self {
            Start::Authorised => TxState::Authorised,
            Start::InCaptureFile => TxState::CapturedNotSettled,
            Start::Settled => TxState::Settled,
        }
    }
}

/// One return the shop's customer service approves.
#[derive(Debug, Clone)]
struct Return {
    /// NT$; `None`: the whole order, or what its other refunds left.
    amount: Option<i64>,
    /// Approved before the pass of this round.
    round: usize,
    /// Leads its return number, so the numbers' order is not the returns'.
    tag: char,
}

/// What the bank's batch does around a round's pass.
#[derive(Debug, Clone, Copy)]
enum Batch {
    No,
    /// Runs whole before the pass.
    Whole,
    /// Starts before the pass (11, 21) and finishes after it.
    Running,
}

/// What goes wrong at the bank during a round's pass, with every call it
/// concerns.
#[derive(Debug, Clone, Copy)]
enum Trouble {
    No,
    /// The bank acts, and its answer is lost on the way back.
    LostAnswer(Operation, Lost),
    /// The connection drops before the bank looks at the call.
    Reset(Operation),
    /// A 5xx page instead of the bank, for one operation or every one.
    ServerError(Option<Operation>),
}

impl Trouble {
    fn plan(self) -> FaultPlan {
        let rule = |operation: Option<Operation>| FaultRule {
            operation,
            order_no: Some(ORDER.into()),
            ..FaultRule::default()
        };
        let rules = match self {
            Trouble::No => vec![],
            Trouble::LostAnswer(op, how) => {
                let p = |lost: Lost| if how == lost { 1.0 } else { 0.0 };
                vec![FaultRule {
                    p_apply_then_drop: p(Lost::Dropped),
                    p_garbage: p(Lost::Garbage),
                    p_wrong_mac: p(Lost::WrongMac),
                    ..rule(Some(op))
                }]
            }
            Trouble::Reset(op) => vec![FaultRule {
                p_reset: 1.0,
                ..rule(Some(op))
            }],
            Trouble::ServerError(op) => vec![FaultRule {
                p_5xx: 1.0,
                ..rule(op)
            }],
        };
        FaultPlan { rules }
    }
}

/// How an answer the bank made is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// The connection closes.
    Dropped,
    /// Text that is no envelope.
    Garbage,
    /// A MAC that does not match.
    WrongMac,
}

/// One round: the batch, the trouble, then a pass of each worker at once.
#[derive(Debug, Clone, Copy)]
struct Round {
    batch: Batch,
    trouble: Trouble,
    /// Two workers pass at once (their claims meet), or one.
    two_workers: bool,
}

/// A generated history of one order.
#[derive(Debug, Clone)]
struct History {
    start: Start,
    authorised: i64,
    returns: Vec<Return>,
    rounds: Vec<Round>,
}

fn money_moving() -> impl Strategy<Value = Operation> {
    prop::sample::select(vec![
        Operation::Reversal,
        Operation::CaptureReversal,
        Operation::Refund,
    ])
}

fn any_call() -> impl Strategy<Value = Operation> {
    prop_oneof![3 => money_moving(), 1 => Just(Operation::Inquiry)]
}

fn lost() -> impl Strategy<Value = Lost> {
    prop_oneof![
        Just(Lost::Dropped),
        Just(Lost::Garbage),
        Just(Lost::WrongMac)
    ]
}

fn trouble() -> impl Strategy<Value = Trouble> {
    prop_oneof![
        4 => Just(Trouble::No),
        3 => (any_call(), lost()).prop_map(|(op, how)| Trouble::LostAnswer(op, how)),
        1 => any_call().prop_map(Trouble::Reset),
        1 => Just(Trouble::ServerError(None)),
        1 => any_call().prop_map(|op| Trouble::ServerError(Some(op))),
    ]
}

fn round() -> impl Strategy<Value = Round> {
    let batch = prop_oneof![
        2 => Just(Batch::No),
        2 => Just(Batch::Whole),
        1 => Just(Batch::Running),
    ];
    (batch, trouble(), prop::bool::weighted(0.3)).prop_map(|(batch, trouble, two_workers)| Round {
        batch,
        trouble,
        two_workers,
    })
}

fn history() -> impl Strategy<Value = History> {
    let start = prop_oneof![
        Just(Start::Authorised),
        Just(Start::InCaptureFile),
        Just(Start::Settled)
    ];
    (start, 100i64..=5000, 2usize..=6)
        .prop_flat_map(|(start, authorised, rounds)| {
            // Mostly parts of up to a third, so several fit; some of any size,
            // some the whole order or the rest of it.
            let amount = prop_oneof![
                3 => (1..=authorised / 3 + 1).prop_map(Some),
                2 => (1..=authorised).prop_map(Some),
                1 => Just(None),
            ];
            let ret = (amount, 0..rounds, prop::char::range('a', 'z'))
                .prop_map(|(amount, round, tag)| Return { amount, round, tag });
            (
                Just(start),
                Just(authorised),
                prop::collection::vec(ret, 1..=4),
                prop::collection::vec(round(), rounds),
            )
        })
        .prop_map(|(start, authorised, returns, rounds)| History {
            start,
            authorised,
            returns,
            rounds,
        })
}

/// The pass's settings for a history: nothing waits on the clock (a recheck
/// or a backoff is due by the next pass), and no number of failed attempts
/// gives an order up.
fn eager() -> EngineSettings {
    EngineSettings {
        recheck: Duration::ZERO,
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
        max_attempts: 1000,
        ..engine_settings()
    }
}

/// The return number of the `i`-th return `r`: its tag, then its place.
fn return_no(i: usize, r: &Return) -> String {
    format!("{ORDER}-{}{i}", r.tag)
}

/// Plays `h` against a fresh shop and bank and checks the books.
async fn play(h: History) {
    let rig = Rig::in_shop_in(&RETURNS, crate::SCHEMA).await;
    rig.admin
        .load(&[bank_tx(ORDER, h.authorised, h.start.state())])
        .await
        .unwrap();
    let paid = SeedOrder {
        refund: AskedBack::NotAsked,
        ..request(ORDER, h.authorised, None)
    };
    RETURNS.seed_orders(&rig.pool, &[paid]).await.unwrap();
    let engine = || rig.engine_with(eager(), Arc::new(SystemClock), Duration::from_secs(10));
    let workers = [engine(), engine()];
    for n in 0..h.rounds.len() {
        play_round(&rig, &workers, &h, n).await;
    }
    let engine = &workers[0];
    // The bank calms down; the passes finish what is left, a batch after each.
    for _ in 0..CALM_PASSES {
        pass_of(engine).await;
        if all_ended(&rig).await {
            break;
        }
        rig.admin.run_batch().await.unwrap();
    }

    let records = refund_records(&rig.pool, ORDER).await;
    assert_eq!(records.len(), h.returns.len(), "{records:#?}");
    let tx = rig.admin.transaction(ORDER).await.unwrap().unwrap();
    let calls = rig.admin.calls_of(ORDER).await.unwrap();
    assert_books_explained(ORDER, h.authorised, &records, &tx, &calls);
    assert_shop_told(&rig.pool, ORDER, &records).await;
    let ended: Vec<(&str, Option<i64>, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r.status.as_str(),
                r.refunded_amount,
                r.refund_error.as_deref(),
            )
        })
        .collect();
    println!(
        "{h:?}\n  ended {ended:?}, the bank gave back {}",
        tx.returned_amount
    );
    close(rig).await;
}

/// Round `n` of `h`: its returns approved, the bank's batch and trouble,
/// and a pass of one worker or of both at once.
async fn play_round(rig: &Rig, workers: &[Engine; 2], h: &History, n: usize) {
    let round = h.rounds[n];
    for (i, r) in h.returns.iter().enumerate().filter(|(_, r)| r.round == n) {
        approve_return(&rig.pool, ORDER, &return_no(i, r), r.amount)
            .await
            .unwrap();
    }
    match round.batch {
        Batch::No => {}
        Batch::Whole => {
            rig.admin.run_batch().await.unwrap();
        }
        Batch::Running => {
            rig.admin.batch_start().await.unwrap();
        }
    }
    rig.admin.set_faults(&round.trouble.plan()).await.unwrap();
    if round.two_workers {
        tokio::join!(pass_of(&workers[0]), pass_of(&workers[1]));
    } else {
        pass_of(&workers[0]).await;
    }
    rig.admin.set_faults(&FaultPlan::none()).await.unwrap();
    if let Batch::Running = round.batch {
        rig.admin.batch_finish().await.unwrap();
    }
}

/// Every refund of the order ended (refunded or failed), and its settlement
/// watched to the end.
async fn all_ended(rig: &Rig) -> bool {
    let working: i64 = rig
        .scalar(
            "SELECT count(*) FROM refunds
              WHERE order_no = $1
                AND (status IN ('refund_requested', 'refunding') OR lease_owner IS NOT NULL)",
            ORDER,
        )
        .await;
    working == 0
}

/// Lets go of the rig's connections and its bank, so many histories in one
/// process do not hold the cluster's connections.
async fn close(rig: Rig) {
    rig.pool.close().await;
    rig.store.pool().close().await;
    rig.sim.shutdown().await;
}

/// Runs `cases` histories drawn by `rng`, each on its own runtime thread pool
/// shared by the runner (the property itself is synchronous).
fn check_histories(cases: u32, rng: TestRng) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let outcome = runner.run(&history(), |h| {
        rt.block_on(play(h));
        Ok::<(), TestCaseError>(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[test]
fn a_few_histories_of_several_refunds_explain_the_books() {
    check_histories(12, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
}

#[test]
#[ignore = "long: 300 random histories; run with cargo nextest run --test it many_histories --run-ignored all"]
fn many_histories_of_several_refunds_explain_the_books() {
    let seed: [u8; 32] = rand::random();
    println!("seed {seed:?}");
    check_histories(300, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
}
