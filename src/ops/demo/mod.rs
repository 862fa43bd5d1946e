//! `refundd demo`: the whole job on throwaway parts, for a first look on a fresh
//! machine with no settings. It starts a throwaway PostgreSQL and the bank
//! simulator on loopback, creates a shop of the tutorial's shape with its own
//! tables, connects refundd to them through `shop.*` and prints those settings,
//! seeds about fifty orders across every bank state as the shop's code writes
//! them, runs a pass, lets the bank run its batch, runs a second pass, prints
//! each order's journey and the shop's rows as refundd wrote them back. Then a
//! second shop beside it, of returns (`returns`): an order refunded in two
//! parts, and orders of a second merchant id the simulator also serves. Then
//! the bank's totals against refundd's records of both shops; last, changes
//! made at the bank's portal behind refundd's back, found by a reconciliation
//! (`reconciling`). It removes everything it started, also on Ctrl-C.

mod reconciling;
mod report;
mod returns;
mod scenario;

use crate::engine::clock::SystemClock;
use crate::engine::pass::Engine;
use crate::ops::exit::CliError;
use crate::ops::shop_examples::TUTORIAL;
use crate::sim::{FaultPlan, SimConfig, SimServer};
use crate::store::shop_examples::{self as shop_sql};
use crate::store::story::OrderOutcomeRow;
use crate::store::{self, Schema, ShopStatements, Store};
use crate::throwaway_pg::ThrowawayPostgres;
use report::*;
use scenario::*;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// The settings that connect refundd to the tutorial shop, as an operator
/// writes them; a test of `ops::shop_examples` keeps them equal to the
/// statements the demo runs.
const SHOP_SETTINGS: &str = include_str!("../../../config/shop-tutorial.toml");

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

    // The simulator serves the shop's two merchant ids, each with its keys.
    let bank = SimConfig {
        other_merchants: vec![returns::brand_at_bank()?],
        ..SimConfig::for_tests()
    };
    let sim = SimServer::start(bank)
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
    println!(
        "the bank runs its batch: {}; the maintenance is over",
        batch_in_words(&batch)
    );

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
    let returned_by_returns = returns::run(pool.pool(), &admin, &base_url).await?;

    let ledger = admin
        .ledger()
        .await
        .map_err(|e| runtime("simulator")(e.to_string()))?;
    let db_total = pool.refunded_total().await? + returned_by_returns;
    let (text, matches) = totals(&ledger, db_total);
    print!("{text}");
    if matches {
        reconciling::run(&pool, &admin, &base_url, &seeds).await?;
    }
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
    fn the_returns_shop_has_an_order_in_two_parts_and_a_second_merchants_orders() {
        let orders = returns::returns_orders();
        let in_parts = orders.iter().find(|o| o.returns.len() == 2).unwrap();
        assert!(
            in_parts.returns.iter().any(|r| r.2 == 2),
            "a part approved before pass 2"
        );
        let asked: i64 = in_parts.returns.iter().filter_map(|r| r.1).sum();
        assert!(asked < in_parts.amount, "{in_parts:?}");
        assert!(orders.iter().filter(|o| o.at_brand).count() >= 2);
        assert!(orders
            .iter()
            .all(|o| o.order_no.len() <= 19 && !o.order_no.starts_with('D')));
        // The demo's tutorial table reads its orders by their D prefix.
        assert!(orders.iter().any(|o| o.shop_says == Some("outlet")));
    }

    #[test]
    fn every_kind_shown_in_the_shop_is_seeded() {
        let seeds = seeds();
        let shown = shown_in_shop(&seeds, &BTreeMap::new());
        assert_eq!(shown.len(), SHOWN_IN_SHOP.len(), "{shown:?}");
    }

    #[test]
    fn the_batch_is_told_in_words() {
        use crate::sim::BatchMoved;
        let run = crate::sim::admin::BatchRun {
            started: BatchMoved {
                captures: 6,
                refunds: 1,
            },
            finished: BatchMoved {
                captures: 8,
                refunds: 1,
            },
        };
        assert_eq!(
            batch_in_words(&run),
            "8 captures settled (state 12) and 1 refund settled (state 22); 6 and 1 of them entered the batch now, the rest were in it already"
        );
    }

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(pad_wide("已退款", 9), "已退款   ");
        assert_eq!(pad_wide("status", 9), "status   ");
        assert_eq!(pad_wide("申請退款申請退款", 9), "申請退款申請退款");
    }
}
