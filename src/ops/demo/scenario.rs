//! The demo's scenario: the orders it seeds (one per bank state and special
//! case), as the shop's code and the bank would hold them, and the engine it
//! runs on them.

use super::runtime;
use crate::ctbc::envelope::Envelope;
use crate::ctbc::types::MerId;
use crate::ctbc::TxState;
use crate::ctbc::{Client, ClientConfig};
use crate::domain::blackout::Blackout;
use crate::engine::pass::Engine;
use crate::engine::settings::EngineSettings;
use crate::engine::summary::{PassCounters, PassSummary};
use crate::ops::exit::CliError;
use crate::ops::shop_examples::TUTORIAL;
use crate::sim::{
    FaultPlan, FaultRule, SimAdmin, SimTx, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};
use crate::store::shop_examples::{AskedBack, SeedOrder};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the bank knows about a seeded order.
#[derive(Debug, Clone)]
pub(super) enum AtBank {
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
pub(super) enum Maintenance {
    /// An HTML notice with status 200.
    Html200,
    /// A 5xx status with an HTML page.
    Html5xx,
}

/// One seeded order.
#[derive(Debug, Clone)]
pub(super) struct Seed {
    pub(super) order_no: String,
    pub(super) at_bank: AtBank,
    pub(super) amount: i64,
    /// None: the whole amount.
    pub(super) part: Option<i64>,
    /// The shop's row lacks its XID (an invalid row).
    pub(super) no_xid: bool,
}

/// The demo's orders: every bank state, partial refunds in 1, 10 and 12, a
/// maintenance page, an invalid row, money already back.
pub(super) fn seeds() -> Vec<Seed> {
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

pub(super) fn xid_of(order_no: &str) -> String {
    format!("X{order_no}")
}

pub(super) const AUTH_CODE: &str = "A1B2C3";

/// The engine as `refundd once` would run it, with the backoff shortened so
/// the order behind a maintenance page is tried again in pass 2.
pub(super) fn demo_engine_settings() -> EngineSettings {
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

pub(super) fn client(base_url: &str) -> Result<Client, CliError> {
    let fail = runtime("client");
    let url = url::Url::parse(base_url).map_err(|e| fail(e.to_string()))?;
    let mer_id = MerId::parse(REFERENCE_MER_ID).map_err(|e| fail(e.to_string()))?;
    let envelope = Envelope::new(REFERENCE_MAC_KEY.as_bytes(), REFERENCE_IV.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut cfg = ClientConfig::new(url, mer_id, envelope);
    cfg.timeout = Duration::from_secs(10);
    Client::new(cfg).map_err(|e| fail(e.to_string()))
}

pub(super) async fn pass(engine: &Engine) -> Result<PassSummary, CliError> {
    Ok(engine
        .run_pass(&CancellationToken::new(), Arc::new(PassCounters::default()))
        .await?)
}

pub(super) async fn seed_orders(
    pool: &Store,
    admin: &SimAdmin,
    seeds: &[Seed],
) -> Result<(), CliError> {
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
            refund: s.part.map_or(AskedBack::Whole, AskedBack::Part),
        })
        .collect();
    TUTORIAL.seed_orders(pool.pool(), &orders).await?;
    Ok(())
}
