//! Chaos on the returns shop: orders given back in two or three parts (each
//! return a refund of its own, `refund_id`), some approved only once the
//! order's earlier returns have ended, some adding up to more than was
//! authorised, on a bank that holds the orders authorised (1), in the
//! capture file (10) or settled (12), runs its batch every few seconds,
//! between the passes, and fails one call in five in every way it can, while
//! two refundd processes are SIGKILLed at random and restarted. Afterwards
//! every order's books hold (`common::assert_books_explained`): the bank
//! gave back what refundd's refunded records say, to the unit, each refund
//! of settled money the bank holds is one record's, nothing was sent twice
//! or beyond what was authorised, every return over the balance failed with
//! nothing sent, and every record ended in a state that explains the books,
//! its outcome written back to the return's own row.

use super::{
    backlog, chaotic_bank, kill_and_restart, left_until, running, stop_as_an_operator, Daemons,
    DatabaseFaults, Site,
};
use crate::common::{
    assert_books_explained, assert_shop_told, bank_tx, empty_db, eventually, refund_records,
    request, test_pool, DbProxy, RefundRecord, DEFAULT_SCHEMA,
};
use rand::{Rng, SeedableRng};
use refundd::ctbc::TxState;
use refundd::ops::shop_examples::RETURNS;
use refundd::sim::{CallRecord, FaultPlan, SimServer, SimTx};
use refundd::store::shop_examples::{approve_return, AskedBack, SeedOrder};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One return of an order, as the shop's customer service will approve it.
#[derive(Debug, Clone)]
struct PlannedReturn {
    order_no: String,
    return_no: String,
    /// NT$; `None`: the whole order, or what its other returns left.
    amount: Option<i64>,
    /// Approved only once the order's earlier returns have ended.
    after_earlier: bool,
}

/// An order the bank holds and the returns the shop will approve of it.
struct ChaosOrder {
    tx: SimTx,
    returns: Vec<PlannedReturn>,
}

/// `orders` orders in states 1, 10 and 12, each with two or three returns.
fn orders_with_returns(orders: usize, rng: &mut impl Rng) -> Vec<ChaosOrder> {
    let states = [
        TxState::Authorised,
        TxState::CapturedNotSettled,
        TxState::Settled,
    ];
    (0..orders)
        .map(|i| {
            let order_no = format!("R{i}");
            let state = states[rng.gen_range(0..states.len())].clone();
            let amount = rng.gen_range(300..20_000i64);
            ChaosOrder {
                tx: bank_tx(&order_no, amount, state),
                returns: returns_of_order(&order_no, amount, rng),
            }
        })
        .collect()
}

/// Two or three returns of an order of `amount`: parts of it, now and then
/// the whole or the rest (no amount), and in about a third of the orders a
/// last one over what the others leave.
fn returns_of_order(order_no: &str, amount: i64, rng: &mut impl Rng) -> Vec<PlannedReturn> {
    let parts = rng.gen_range(2..=3usize);
    let over = rng.gen_bool(0.3);
    let mut left = amount;
    (0..parts)
        .map(|j| {
            let last = j + 1 == parts;
            // A first return now and then the whole order (in 10: a capture
            // reversal, then a reversal).
            let whole = if j == 0 { 0.2 } else { 0.1 };
            let asked = if rng.gen_bool(whole) {
                None
            } else if last && over {
                Some((left + rng.gen_range(1..=amount / 4)).min(amount))
            } else {
                Some(rng.gen_range(1..=amount / parts as i64))
            };
            left = asked.map_or(0, |a| (left - a).max(0));
            PlannedReturn {
                order_no: order_no.into(),
                return_no: format!("{order_no}-{j}"),
                amount: asked,
                after_earlier: j > 0 && rng.gen_bool(0.5),
            }
        })
        .collect()
}

/// Approves the returns held back whose order has no return still waiting
/// for refundd (each order's next one, one at a time); keeps the rest.
async fn approve_due(pool: &PgPool, held_back: &Mutex<Vec<PlannedReturn>>) {
    let mut waiting = std::mem::take(&mut *held_back.lock().unwrap());
    let busy: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT order_id FROM shop3.returns WHERE state = 'approved'")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut busy: HashSet<String> = busy.into_iter().collect();
    let mut kept = Vec::with_capacity(waiting.len());
    for r in waiting.drain(..) {
        if busy.insert(r.order_no.clone()) {
            approve_return(pool, &r.order_no, &r.return_no, r.amount)
                .await
                .unwrap();
        } else {
            kept.push(r);
        }
    }
    *held_back.lock().unwrap() = kept;
}

/// How the records of a run ended, for the summary and to see that the run
/// reached every case it is about.
#[derive(Debug, Default)]
struct Tally {
    by_method: BTreeMap<String, usize>,
    later_refunds: usize,
    over_balance: usize,
    outcome_unknown: usize,
    perhaps_given: i64,
}

impl Tally {
    fn count(&mut self, records: &[RefundRecord], tx: &SimTx) {
        let refunded: i64 = records.iter().filter_map(|r| r.refunded_amount).sum();
        self.perhaps_given += tx.returned_amount - refunded;
        for (n, r) in records.iter().enumerate() {
            let error = r.refund_error.as_deref().unwrap_or_default();
            if let Some(method) = &r.refund_method {
                *self.by_method.entry(method.clone()).or_default() += 1;
                self.later_refunds += usize::from(n > 0 && method == "refund");
            }
            self.over_balance += usize::from(error.contains("over the order's balance"));
            self.outcome_unknown += usize::from(error.contains("outcome is unknown"));
        }
    }
}

/// Every order's books against its records, once the daemons have stopped.
async fn assert_every_order_explained(
    pool: &PgPool,
    sim: &SimServer,
    orders: &[ChaosOrder],
) -> Tally {
    let admin = sim.admin();
    let held: BTreeMap<String, SimTx> = admin
        .all_transactions()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.order_no.clone(), t))
        .collect();
    let mut calls: BTreeMap<String, Vec<CallRecord>> = BTreeMap::new();
    for c in admin.calls().await.unwrap() {
        calls.entry(c.order_no.clone()).or_default().push(c);
    }
    let mut tally = Tally::default();
    for o in orders {
        let no = &o.tx.order_no;
        let records = refund_records(pool, no).await;
        assert_eq!(records.len(), o.returns.len(), "{no}: {records:#?}");
        let tx = &held[no];
        let of_order = calls.get(no).map_or(&[][..], Vec::as_slice);
        assert_books_explained(no, o.tx.original_amount, &records, tx, of_order);
        assert_shop_told(pool, no, &records).await;
        tally.count(&records, tx);
    }
    tally
}

async fn chaos_of_returns(orders: usize, min_kills: usize, seed: u64) {
    let (plain, db_url) = empty_db().await;
    RETURNS.create(&plain).await.unwrap();
    let store = refundd::store::Store::new(
        plain,
        refundd::store::Schema::parse(DEFAULT_SCHEMA).unwrap(),
        refundd::store::ShopStatements::of_shop(
            RETURNS.requests.into(),
            RETURNS.on_refunded.into(),
            Some(RETURNS.on_failed.into()),
        ),
    );
    store.migrate().await.unwrap();
    let pool = test_pool(&db_url, DEFAULT_SCHEMA).await;
    let sim = SimServer::start(chaotic_bank(seed)).await.unwrap();
    let admin = sim.admin();

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let planned = orders_with_returns(orders, &mut rng);
    let txs: Vec<SimTx> = planned.iter().map(|o| o.tx.clone()).collect();
    admin.load(&txs).await.unwrap();
    let paid: Vec<SeedOrder> = planned
        .iter()
        .map(|o| SeedOrder {
            refund: AskedBack::NotAsked,
            ..request(&o.tx.order_no, o.tx.original_amount, None)
        })
        .collect();
    RETURNS.seed_orders(&pool, &paid).await.unwrap();
    let mut held_back = Vec::new();
    for r in planned.iter().flat_map(|o| &o.returns) {
        if r.after_earlier || held_back_of(&held_back, r) {
            held_back.push(r.clone());
        } else {
            approve_return(&pool, &r.order_no, &r.return_no, r.amount)
                .await
                .unwrap();
        }
    }
    let held_back = Mutex::new(held_back);

    let logs = tempfile::tempdir().unwrap();
    let bank_url = sim.base_url();
    let proxy = DbProxy::start(DbProxy::upstream_of(&db_url)).await;
    let daemons_db_url = proxy.url_through(&db_url);
    let site = Site {
        db_url: &daemons_db_url,
        bank_url: &bank_url,
        hook: None,
        shop: Some(&RETURNS),
        schema: DEFAULT_SCHEMA,
    };
    let mut daemons = Daemons::two(&site, logs.path());
    let mut kills = 0;
    let mut db_faults = DatabaseFaults::default();
    let deadline = Instant::now() + Duration::from_secs(90 + orders as u64 / 5);
    let (p, waiting, shop) = (&pool, &held_back, site.shop);
    let work_left = move || async move {
        approve_due(p, waiting).await;
        !waiting.lock().unwrap().is_empty() || backlog(p, shop).await > 0
    };
    // Kill at random moments, at least `min_kills` times, while work remains,
    // with a database fault between kills as in `chaos`; returns held back
    // are approved as their orders' earlier ones end.
    while kills < min_kills || (work_left().await && kills < min_kills * 3) {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..1200))).await;
        db_faults.strike(kills, &mut rng, &pool, &proxy).await;
        kills += 1;
        let log = kill_and_restart(&mut daemons, &site, logs.path(), &mut rng, kills);
        running(&log, deadline).await;
        assert!(Instant::now() < deadline, "chaos phase overran");
    }
    // The bank calms down; the daemons finish the work, unknown outcomes included.
    admin.set_faults(&FaultPlan::none()).await.unwrap();
    eventually(
        left_until(deadline),
        "every return refunded or failed",
        || async { !work_left().await },
    )
    .await;
    stop_as_an_operator(&mut daemons, logs.path(), deadline).await;
    assert!(kills >= min_kills);
    assert!(
        db_faults.connections_cut > 0 && db_faults.outages > 0 && db_faults.read_only > 0,
        "database faults: {db_faults:?}"
    );

    let ledger = admin.ledger().await.unwrap();
    assert!(
        ledger.faults.values().sum::<u64>() > 0,
        "faults fired: {:?}",
        ledger.faults
    );
    assert_eq!(ledger.duplicates, 0, "a refund was attempted twice");
    let tally = assert_every_order_explained(&pool, &sim, &planned).await;
    println!(
        "chaos of returns: {orders} orders, {kills} kills, database {db_faults:?}, {tally:?}, faults {:?}",
        ledger.faults
    );
    // The run reached what it is about: parts given back by reversal and by
    // refund, later parts of settled money, and returns over the balance.
    for method in ["reversal", "refund"] {
        assert!(
            tally.by_method.contains_key(method),
            "none by {method}: {tally:?}"
        );
    }
    assert!(tally.later_refunds > 0, "{tally:?}");
    assert!(tally.over_balance > 0, "{tally:?}");
    sim.shutdown().await;
}

/// Whether an earlier return of `r`'s order is held back: `r` then waits too,
/// so an order's returns are approved in their order.
fn held_back_of(held_back: &[PlannedReturn], r: &PlannedReturn) -> bool {
    held_back.iter().any(|h| h.order_no == r.order_no)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_small_with_several_refunds_per_order() {
    chaos_of_returns(120, 10, 21).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 2,000 orders; run with cargo test --release --test it chaos_full_with_several -- --ignored"]
async fn chaos_full_with_several_refunds_per_order() {
    chaos_of_returns(2_000, 12, 23).await;
}
