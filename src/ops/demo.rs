//! `refundd demo`: the whole job on throwaway parts, for a first look on a fresh
//! machine with no settings. It starts a throwaway PostgreSQL and the bank
//! simulator on loopback, creates a shop of the tutorial's shape with its own
//! tables, connects refundd to them through `shop.*` and prints those settings,
//! seeds about fifty orders across every bank state as the shop's code writes
//! them, runs a pass, lets the bank run its batch, runs a second pass, prints
//! each order's journey, the shop's rows as refundd wrote them back and the
//! bank's totals against refundd's records, and removes everything it started,
//! also on Ctrl-C.

use crate::cli::CliError;
use crate::ctbc::envelope::Envelope;
use crate::ctbc::types::MerId;
use crate::ctbc::Operation;
use crate::ctbc::TxState;
use crate::ctbc::{Client, ClientConfig};
use crate::engine::blackout::Blackout;
use crate::engine::clock::SystemClock;
use crate::engine::pass::{Engine, EngineSettings};
use crate::engine::summary::{PassCounters, PassSummary};
use crate::ops::shop_examples::TUTORIAL;
use crate::sim::{
    FaultPlan, FaultRule, LedgerReport, SimAdmin, SimConfig, SimServer, SimTx, REFERENCE_IV,
    REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};
use crate::store::shop_examples::{self as shop_sql, Refund, SeedOrder, TutorialOrder};
use crate::store::story::{OrderOutcomeRow, StoryEvent};
use crate::store::vocabulary::{
    CallOutcome, EventKind, RefundMethod, RefundStatus, SettlementState,
};
use crate::store::{self, Schema, ShopStatements, Store};
use crate::throwaway_pg::ThrowawayPostgres;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The settings that connect refundd to the tutorial shop, as an operator
/// writes them; a test of `ops::shop_examples` keeps them equal to the
/// statements the demo runs.
const SHOP_SETTINGS: &str = include_str!("../../config/shop-tutorial.toml");

/// The kinds of order whose shop row the demo shows after its passes: one
/// of each way an order ends, in the shop's own statuses.
const SHOWN_IN_SHOP: [&str; 7] = [
    "AUTH",
    "CAPT",
    "SETTLED_PART",
    "MAINT_SETTLED",
    "CANCELLED",
    "OTHER_XID",
    "NO_XID",
];

/// What the bank knows about a seeded order.
#[derive(Debug, Clone)]
enum AtBank {
    /// A transaction in this state.
    State(TxState),
    /// Already refunded (or cancelled) before the demo: the money is back.
    AlreadyBack(TxState),
    /// In this state, but the gateway answers with a maintenance page during pass 1.
    Maintenance(TxState, Maintenance),
    /// The bank knows the order under another XID.
    OtherXid(TxState),
    /// The bank has never heard of it.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
enum Maintenance {
    /// An HTML notice with status 200.
    Html200,
    /// A 5xx status with an HTML page.
    Html5xx,
}

/// One seeded order.
#[derive(Debug, Clone)]
struct Seed {
    order_no: String,
    at_bank: AtBank,
    amount: i64,
    /// None: the whole amount.
    part: Option<i64>,
    /// The shop's row lacks its XID (an invalid row).
    no_xid: bool,
}

/// The demo's orders: every bank state, partial refunds in 1, 10 and 12, a
/// maintenance page, an invalid row, money already back.
fn seeds() -> Vec<Seed> {
    use TxState::*;
    let mut plan: Vec<(&str, AtBank, bool, bool)> = Vec::new(); // label, bank, partial, no_xid
    let mut add = |n: usize, label: &'static str, bank: AtBank, partial: bool| {
        for _ in 0..n {
            plan.push((label, bank.clone(), partial, false));
        }
    };
    add(7, "AUTH", AtBank::State(Authorised), false);
    add(3, "AUTH_PART", AtBank::State(Authorised), true);
    add(10, "CAPT", AtBank::State(CapturedNotSettled), false);
    add(3, "CAPT_PART", AtBank::State(CapturedNotSettled), true);
    add(8, "SETTLED", AtBank::State(Settled), false);
    add(3, "SETTLED_PART", AtBank::State(Settled), true);
    add(2, "CAPT_BATCH", AtBank::State(CaptureBatchRunning), false);
    add(
        1,
        "REFUND_BATCH",
        AtBank::AlreadyBack(RefundBatchRunning),
        false,
    );
    add(2, "CANCELLED", AtBank::AlreadyBack(AuthCancelled), false);
    add(2, "REFUNDED", AtBank::AlreadyBack(RefundSettling), false);
    add(1, "REFUND_DONE", AtBank::AlreadyBack(RefundSettled), false);
    add(1, "AUTH_FAILED", AtBank::State(AuthFailed), false);
    add(1, "CAPT_FAILED", AtBank::State(CaptureFailed), false);
    add(1, "REFUND_FAILED", AtBank::State(RefundFailed), false);
    add(
        1,
        "MAINT_CAPT",
        AtBank::Maintenance(CapturedNotSettled, Maintenance::Html200),
        false,
    );
    add(
        1,
        "MAINT_SETTLED",
        AtBank::Maintenance(Settled, Maintenance::Html5xx),
        false,
    );
    add(1, "NOT_AT_BANK", AtBank::Unknown, false);
    add(1, "OTHER_XID", AtBank::OtherXid(CapturedNotSettled), false);
    plan.push(("NO_XID", AtBank::State(CapturedNotSettled), false, true));

    plan.into_iter()
        .enumerate()
        .map(|(i, (label, at_bank, partial, no_xid))| {
            // Amounts from NT$300 to NT$9,900 in steps of 10, the same every run.
            let amount = 300 + ((i as i64 * 1_370) % 9_600) / 10 * 10;
            Seed {
                order_no: format!("D{:02}_{label}", i + 1),
                at_bank,
                amount,
                part: partial.then_some(amount * 2 / 5),
                no_xid,
            }
        })
        .collect()
}

fn xid_of(order_no: &str) -> String {
    format!("X{order_no}")
}

const AUTH_CODE: &str = "A1B2C3";

/// What the demo started, removed in `tear_down` however the demo ends.
#[derive(Default)]
struct Started {
    cluster: Option<ThrowawayPostgres>,
    sim: Option<SimServer>,
    pool: Option<PgPool>,
}

/// Runs the demo; Ctrl-C stops it and still removes what it started.
pub async fn command() -> Result<ExitCode, CliError> {
    super::logging::quiet_unless_asked();
    let mut started = Started::default();
    let outcome = tokio::select! {
        r = run(&mut started) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    if outcome.is_none() {
        println!("\ninterrupted: removing the throwaway PostgreSQL and the simulator");
    }
    tear_down(started).await;
    match outcome {
        None => Ok(ExitCode::from(130)),
        Some(r) => r,
    }
}

async fn tear_down(started: Started) {
    if let Some(pool) = started.pool {
        pool.close().await;
    }
    if let Some(sim) = started.sim {
        sim.shutdown().await;
    }
    if let Some(cluster) = started.cluster {
        // Stopping the server and removing its directory blocks briefly.
        let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    }
}

fn runtime(what: &str) -> impl Fn(String) -> CliError + '_ {
    move |e| CliError::Runtime(format!("demo: {what}: {e}"))
}

async fn run(started: &mut Started) -> Result<ExitCode, CliError> {
    let clock = Instant::now();
    println!("refundd demo: throwaway PostgreSQL and the CTBC simulator on loopback; nothing outside this process is touched.\n");

    println!("starting a throwaway PostgreSQL ...");
    let cluster = tokio::task::spawn_blocking(ThrowawayPostgres::start)
        .await
        .map_err(|e| runtime("PostgreSQL")(e.to_string()))?
        .map_err(|e| runtime("PostgreSQL")(e.to_string()))?;
    let url = cluster.url("postgres");
    started.cluster = Some(cluster);
    let pool = store::connect(&url, 10).await?;
    started.pool = Some(pool.clone());
    // A shop of the tutorial's shape, with its own tables, as it was before refundd.
    TUTORIAL.create(&pool).await?;
    let pool = Store::new(
        pool,
        Schema::default(),
        ShopStatements::of_shop(
            TUTORIAL.requests.into(),
            TUTORIAL.on_refunded.into(),
            Some(TUTORIAL.on_failed.into()),
        ),
    );
    pool.migrate().await?;
    pool.check_shop().await?;
    println!(
        "the shop's own tables: shop.orders (申請退款 → 已退款 / 退款失敗) and shop.payment_results;\nrefundd reads and writes them only through these settings (config/shop-tutorial.toml):\n"
    );
    println!("{}", SHOP_SETTINGS.trim_end());
    println!();

    let sim = SimServer::start(SimConfig::for_tests())
        .await
        .map_err(|e| runtime("simulator")(e.to_string()))?;
    let base_url = sim.base_url();
    let admin = sim.admin();
    started.sim = Some(sim);
    println!("bank simulator at {base_url}\n");

    let seeds = seeds();
    seed_orders(&pool, &admin, &seeds).await?;
    println!(
        "seeded {} orders, all marked refund requested (申請退款); {} get a maintenance page in pass 1\n",
        seeds.len(),
        seeds
            .iter()
            .filter(|s| matches!(s.at_bank, AtBank::Maintenance(..)))
            .count()
    );

    let engine = Engine::new(
        pool.clone(),
        client(&base_url)?,
        demo_engine_settings(),
        Arc::new(SystemClock),
    );
    let t0 = pool.now().await?;
    let pass1 = pass(&engine).await?;
    println!("pass 1: {}", pass1.line());

    admin
        .set_faults(&FaultPlan::none())
        .await
        .map_err(|e| runtime("simulator")(e.to_string()))?;
    let batch = admin
        .run_batch()
        .await
        .map_err(|e| runtime("simulator")(e.to_string()))?;
    println!("the bank runs its batch: {batch:?}; the maintenance is over");

    let t1 = pool.now().await?;
    let pass2 = pass(&engine).await?;
    println!("pass 2: {}\n", pass2.line());
    let t2 = pool.now().await? + chrono::Duration::seconds(1);

    let p1 = by_order(pool.events_between(t0, t1).await?);
    let p2 = by_order(pool.events_between(t1, t2).await?);
    let orders: BTreeMap<String, OrderOutcomeRow> = pool
        .all_orders()
        .await?
        .into_iter()
        .map(|o| (o.order_no.clone(), o))
        .collect();
    print!("{}", journey_table(&seeds, &orders, &p1, &p2));
    let statuses = shop_sql::tutorial_statuses(pool.pool()).await?;
    let shown = shop_sql::tutorial_orders(pool.pool(), &shown_in_shop(&seeds, &orders)).await?;
    print!("{}", shop_table(&statuses, &shown));

    let ledger = admin
        .ledger()
        .await
        .map_err(|e| runtime("simulator")(e.to_string()))?;
    let db_total = pool.refunded_total().await?;
    let (text, matches) = totals(&ledger, db_total);
    print!("{text}");
    println!(
        "\nremoving the throwaway PostgreSQL and the simulator (demo took {:.1} s)",
        clock.elapsed().as_secs_f64()
    );
    if matches {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::Runtime(
            "demo: the bank's and the database's totals differ".into(),
        ))
    }
}

/// The engine as `refundd once` would run it, with the backoff shortened so
/// the order behind a maintenance page is tried again in pass 2.
fn demo_engine_settings() -> EngineSettings {
    EngineSettings {
        concurrency: 8,
        batch_size: 100,
        lease: Duration::from_secs(60),
        max_attempts: 5,
        recheck: Duration::from_secs(300),
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
        settlement_watch_days: 14,
        attention_after: Duration::from_secs(3600),
        blackout: Blackout::default(),
    }
}

fn client(base_url: &str) -> Result<Client, CliError> {
    let fail = runtime("client");
    let url = url::Url::parse(base_url).map_err(|e| fail(e.to_string()))?;
    let mer_id = MerId::parse(REFERENCE_MER_ID).map_err(|e| fail(e.to_string()))?;
    let envelope = Envelope::new(REFERENCE_MAC_KEY.as_bytes(), REFERENCE_IV.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut cfg = ClientConfig::new(url, mer_id, envelope);
    cfg.timeout = Duration::from_secs(10);
    Client::new(cfg).map_err(|e| fail(e.to_string()))
}

async fn pass(engine: &Engine) -> Result<PassSummary, CliError> {
    Ok(engine
        .run_pass(&CancellationToken::new(), Arc::new(PassCounters::default()))
        .await?)
}

async fn seed_orders(pool: &Store, admin: &SimAdmin, seeds: &[Seed]) -> Result<(), CliError> {
    let mut txs = Vec::new();
    let mut faults = Vec::new();
    for s in seeds {
        let xid = xid_of(&s.order_no);
        let state = match &s.at_bank {
            AtBank::State(st) | AtBank::AlreadyBack(st) | AtBank::OtherXid(st) => Some(st),
            AtBank::Maintenance(st, kind) => {
                faults.push(FaultRule {
                    order_no: Some(s.order_no.clone()),
                    p_html_200: matches!(kind, Maintenance::Html200) as u8 as f64,
                    p_5xx: matches!(kind, Maintenance::Html5xx) as u8 as f64,
                    ..FaultRule::default()
                });
                Some(st)
            }
            AtBank::Unknown => None,
        };
        let Some(state) = state else { continue };
        let bank_xid = match s.at_bank {
            AtBank::OtherXid(_) => format!("Y{}", s.order_no),
            _ => xid.clone(),
        };
        let mut tx = SimTx::new(&s.order_no, bank_xid, AUTH_CODE, s.amount, state.clone());
        if let AtBank::AlreadyBack(st) = &s.at_bank {
            // The money went back before the demo, by an earlier run or by hand.
            tx.returned_amount = s.amount;
            if *st != TxState::AuthCancelled {
                tx.refunded_amount = s.amount;
            }
        }
        txs.push(tx);
    }
    admin
        .load(&txs)
        .await
        .map_err(|e| runtime("simulator")(e.to_string()))?;
    admin
        .set_faults(&FaultPlan { rules: faults })
        .await
        .map_err(|e| runtime("simulator")(e.to_string()))?;
    // As the shop's own code writes them: paid, then 申請退款 (all, or a part).
    let orders: Vec<SeedOrder> = seeds
        .iter()
        .map(|s| SeedOrder {
            order_no: s.order_no.clone(),
            // The shop's row with no XID: an empty one, which refundd refuses.
            xid: if s.no_xid {
                String::new()
            } else {
                xid_of(&s.order_no)
            },
            auth_code: AUTH_CODE.into(),
            amount: s.amount,
            refund: s.part.map_or(Refund::Whole, Refund::Part),
        })
        .collect();
    TUTORIAL.seed_orders(pool.pool(), &orders).await?;
    Ok(())
}

fn by_order(events: Vec<StoryEvent>) -> BTreeMap<String, Vec<StoryEvent>> {
    let mut m: BTreeMap<String, Vec<StoryEvent>> = BTreeMap::new();
    for e in events {
        m.entry(e.order_no.clone()).or_default().push(e);
    }
    m
}

fn short_op(op: &str) -> &str {
    match op {
        "inquiry" => "ask",
        "capture_reversal" => "cap-rev",
        "reversal" => "rev",
        "refund_reversal" => "refund-rev",
        other => other,
    }
}

/// What one pass did to one order, from its events: `ask:10, cap-rev ok, rev ok => refunded`.
fn pass_story(events: Option<&Vec<StoryEvent>>) -> String {
    let Some(events) = events else {
        return "-".into();
    };
    let mut steps: Vec<String> = Vec::new();
    let mut ending = "";
    for e in events {
        match e.kind {
            EventKind::Outcome => {
                let op = short_op(e.operation.map_or("?", Operation::as_str));
                let outcome = e.outcome.map_or("?", CallOutcome::as_str);
                if op == "ask" {
                    match (outcome, &e.bank_state) {
                        ("accepted", Some(st)) => steps.push(format!("ask:{st}")),
                        _ => steps.push(format!("ask:{outcome}")),
                    }
                } else {
                    let o = if outcome == "accepted" { "ok" } else { outcome };
                    steps.push(format!("{op} {o}"));
                }
            }
            EventKind::Status => match e.to_status {
                Some(RefundStatus::Refunded) => ending = "=> refunded",
                Some(RefundStatus::RefundFailed) => ending = "=> failed",
                Some(RefundStatus::RefundRequested) if !steps.is_empty() => ending = "=> wait",
                _ => {}
            },
            _ => {}
        }
    }
    let story = [steps.join(", "), ending.to_string()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if story.is_empty() {
        "-".into()
    } else {
        story
    }
}

fn bank_at_start(s: &Seed) -> String {
    let code = |st: &TxState| st.code().to_string();
    match &s.at_bank {
        AtBank::State(st) => code(st),
        AtBank::AlreadyBack(st) => format!("{} (back)", code(st)),
        AtBank::Maintenance(st, Maintenance::Html200) => format!("{} +html200", code(st)),
        AtBank::Maintenance(st, Maintenance::Html5xx) => format!("{} +html5xx", code(st)),
        AtBank::OtherXid(st) => format!("{} other XID", code(st)),
        AtBank::Unknown => "unknown".into(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn journey_table(
    seeds: &[Seed],
    orders: &BTreeMap<String, OrderOutcomeRow>,
    p1: &BTreeMap<String, Vec<StoryEvent>>,
    p2: &BTreeMap<String, Vec<StoryEvent>>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<15} {:>10} {:<38} {:<32} {:<18} {:<25} {:>8}  why",
        "order", "bank at start", "asked", "pass 1", "pass 2", "final", "method", "refunded"
    );
    let _ = writeln!(out, "{}", "-".repeat(175));
    for s in seeds {
        let o = orders.get(&s.order_no);
        let asked = match s.part {
            Some(p) => format!("{p}/{}", s.amount),
            None => s.amount.to_string(),
        };
        let final_status = match (o.map(|o| o.status), o.and_then(|o| o.settlement)) {
            (Some(RefundStatus::Refunded), Some(SettlementState::Settled)) => {
                "refunded, settled".to_string()
            }
            (Some(RefundStatus::Refunded), Some(SettlementState::Pending)) => {
                "refunded, settling".to_string()
            }
            (Some(st), _) => st.to_string(),
            (None, _) => "?".to_string(),
        };
        let why = o
            .and_then(|o| {
                o.refund_error.clone().or_else(|| {
                    (o.status != RefundStatus::Refunded)
                        .then(|| o.last_error.clone())
                        .flatten()
                })
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<18} {:<15} {:>10} {:<38} {:<32} {:<18} {:<25} {:>8}  {}",
            s.order_no,
            bank_at_start(s),
            asked,
            pass_story(p1.get(&s.order_no)),
            pass_story(p2.get(&s.order_no)),
            final_status,
            o.and_then(|o| o.refund_method)
                .map_or("", RefundMethod::as_str),
            o.and_then(|o| o.refunded_amount)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            truncate(&why, 70)
        );
    }
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for o in orders.values() {
        *by_status.entry(o.status.as_str()).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "\n{} orders: {}",
        orders.len(),
        by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

/// One order of each kind in `SHOWN_IN_SHOP`, then any the shop still asks
/// back (none, when both passes went as planned).
fn shown_in_shop(seeds: &[Seed], orders: &BTreeMap<String, OrderOutcomeRow>) -> Vec<String> {
    let mut shown: Vec<String> = SHOWN_IN_SHOP
        .iter()
        .filter_map(|kind| {
            let suffix = format!("_{kind}");
            seeds.iter().find(|s| s.order_no.ends_with(&suffix))
        })
        .map(|s| s.order_no.clone())
        .collect();
    shown.extend(
        orders
            .values()
            .filter(|o| o.status == RefundStatus::RefundRequested)
            .map(|o| o.order_no.clone())
            .filter(|no| !shown.contains(no))
            .take(3)
            .collect::<Vec<_>>(),
    );
    shown
}

/// Pads to `cols` terminal columns, counting a CJK character as two.
fn pad_wide(s: &str, cols: usize) -> String {
    let width: usize = s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{s}{}", " ".repeat(cols.saturating_sub(width)))
}

/// The shop's own statuses after the passes, and a few of its rows.
fn shop_table(statuses: &[(String, i64)], rows: &[TutorialOrder]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nthe shop's own table shop.orders, as refundd wrote it back: {}",
        statuses
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "  {:<18} {} {:>6} {:>12} {:<25} note",
        "oid",
        pad_wide("status", 9),
        "total",
        "refund_total",
        "refund_method"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<18} {} {:>6} {:>12} {:<25} {}",
            r.oid,
            pad_wide(&r.status, 9),
            r.total,
            r.refund_total.map(|a| a.to_string()).unwrap_or_default(),
            r.refund_method.as_deref().unwrap_or_default(),
            truncate(r.note.as_deref().unwrap_or_default(), 60)
        );
    }
    out
}

/// The bank's ledger against the database; the second value says whether the
/// money returned agrees.
fn totals(ledger: &LedgerReport, db_total: i64) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(out, "\nthe bank's ledger (calls by operation):");
    let _ = writeln!(
        out,
        "  {:<18} {:>6} {:>9} {:>8} {:>14} {:>11} {:>10}",
        "operation", "calls", "accepted", "refused", "not processed", "duplicates", "returned"
    );
    for (op, t) in &ledger.by_operation {
        let _ = writeln!(
            out,
            "  {:<18} {:>6} {:>9} {:>8} {:>14} {:>11} {:>10}",
            op, t.calls, t.accepted, t.refused, t.not_processed, t.duplicates, t.returned
        );
    }
    let _ = writeln!(
        out,
        "  {:<18} {:>6} {:>9} {:>8} {:>14} {:>11} {:>10}",
        "all",
        ledger.calls,
        ledger.accepted,
        ledger.refused,
        ledger.not_processed,
        ledger.duplicates,
        ledger.returned_by_calls
    );
    if !ledger.faults.is_empty() {
        let _ = writeln!(
            out,
            "  answered by a notice page instead of the bank: {}",
            ledger
                .faults
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // refundd records refunded only what its own calls explain; money that was
    // back before the demo went to a person instead.
    let matches = ledger.returned_by_calls == db_total;
    let _ = writeln!(
        out,
        "\nduplicates (money asked back twice): {}",
        ledger.duplicates
    );
    let _ = writeln!(
        out,
        "money returned per the bank:     NT${} by refundd's calls (NT${} in all: the rest was back before the demo, not by refundd, and went to a person)",
        ledger.returned_by_calls, ledger.returned_total
    );
    let _ = writeln!(
        out,
        "money returned per the database: NT${db_total} (sum of refunded_amount of refunded orders)"
    );
    let _ = writeln!(
        out,
        "{}",
        if matches {
            "totals match."
        } else {
            "TOTALS DIFFER: the bank and the database disagree."
        }
    );
    (out, matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_cover_every_bank_state_and_the_special_cases() {
        let seeds = seeds();
        assert!((45..=55).contains(&seeds.len()));
        for code in [
            "-1", "0", "1", "10", "11", "12", "13", "20", "21", "22", "23",
        ] {
            assert!(
                seeds
                    .iter()
                    .any(|s| bank_at_start(s).starts_with(&format!("{code} "))
                        || bank_at_start(s) == code),
                "state {code} missing"
            );
        }
        for code in ["1", "10", "12"] {
            assert!(seeds
                .iter()
                .any(|s| s.part.is_some() && bank_at_start(s) == code));
        }
        assert!(seeds.iter().any(|s| s.no_xid));
        assert!(seeds.iter().all(|s| s.order_no.len() <= 19));
        assert!(seeds.iter().all(|s| s.amount > 0));
    }

    #[test]
    fn every_kind_shown_in_the_shop_is_seeded() {
        let seeds = seeds();
        let shown = shown_in_shop(&seeds, &BTreeMap::new());
        assert_eq!(shown.len(), SHOWN_IN_SHOP.len(), "{shown:?}");
    }

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(pad_wide("已退款", 9), "已退款   ");
        assert_eq!(pad_wide("status", 9), "status   ");
        assert_eq!(pad_wide("申請退款申請退款", 9), "申請退款申請退款");
    }
}
