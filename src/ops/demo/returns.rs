//! The demo's second shop: the returns shop (`shop3`, `ops::shop_examples::RETURNS`)
//! beside the tutorial's, in the same database, with refundd's records of it
//! in a schema of their own. Its orders are paid to two merchant ids, the
//! simulator's first and a second one (`brand`, with a MERID and keys of its
//! own), and one of its orders is refunded in two parts: a second return
//! approved after the first was refunded. One order names a merchant the
//! settings do not give: it fails alone, nothing sent.

use super::report::pass_story;
use super::runtime;
use super::scenario::{demo_engine_settings, pass, AUTH_CODE};
use crate::ctbc::envelope::Envelope;
use crate::ctbc::types::MerId;
use crate::ctbc::{ClientConfig, Merchants, OtherMerchant, TxState};
use crate::domain::merchant::MerchantName;
use crate::domain::words::{RefundMethod, RefundStatus, SettlementState};
use crate::engine::clock::SystemClock;
use crate::engine::pass::Engine;
use crate::ops::exit::CliError;
use crate::ops::labels;
use crate::ops::shop_examples::RETURNS;
use crate::ops::table::Table;
use crate::sim::{SimAdmin, SimMerchant, SimTx, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};
use crate::store::shop_examples::{approve_return, returns_of, seed_returns_at};
use crate::store::shop_examples::{AskedBack, SeedOrder};
use crate::store::story::{OrderOutcomeRow, StoryEvent};
use crate::store::{Schema, ShopStatements, Store};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// The shop's second merchant id, as refundd's settings name it.
const BRAND: &str = "brand";
/// Its MERID and the keys the (simulated) bank issued it: the demo's own,
/// never a real merchant's.
const BRAND_MER_ID: &str = "7654321";
const BRAND_MAC_KEY: &str = "BRANDKEYBRANDKEYBRANDKEY";
const BRAND_IV: &str = "brand8iv";
/// Where refundd keeps its records of the returns shop (`database.schema`).
const SCHEMA: &str = "refundd_returns";

/// The second merchant as the simulator serves it.
pub(super) fn brand_at_bank() -> Result<SimMerchant, CliError> {
    let mer_id = MerId::parse(BRAND_MER_ID).map_err(|e| runtime("simulator")(e.to_string()))?;
    Ok(SimMerchant {
        mer_id,
        mac_key: BRAND_MAC_KEY.into(),
        iv: BRAND_IV.into(),
    })
}

/// One order of the returns shop and its returns.
#[derive(Debug, Clone)]
pub(super) struct ReturnsOrder {
    pub(super) order_no: &'static str,
    pub(super) amount: i64,
    pub(super) state: TxState,
    /// The MERID the bank holds the payment under: the second merchant's, or
    /// (false) the simulator's first.
    pub(super) at_brand: bool,
    /// The shop's column `merchant`: None for the default merchant.
    pub(super) shop_says: Option<&'static str>,
    /// Each return: its number, its amount (None: the whole order), and the
    /// pass before which the shop approves it (1 or 2).
    pub(super) returns: Vec<(&'static str, Option<i64>, u8)>,
}

/// The returns shop's orders: one of the default merchant's, two of brand's
/// (one of them returned in two parts), and one naming a merchant refundd's
/// settings do not give.
pub(super) fn returns_orders() -> Vec<ReturnsOrder> {
    let order = |order_no, amount, state, at_brand, shop_says, returns| ReturnsOrder {
        order_no,
        amount,
        state,
        at_brand,
        shop_says,
        returns,
    };
    vec![
        order(
            "R01_CAPT",
            1200,
            TxState::CapturedNotSettled,
            false,
            None,
            vec![("R01-A", None, 1)],
        ),
        order(
            "R02_AUTH_PARTS",
            1000,
            TxState::Authorised,
            true,
            Some(BRAND),
            vec![("R02-A", Some(300), 1), ("R02-B", Some(200), 2)],
        ),
        order(
            "R03_SETTLED",
            1500,
            TxState::Settled,
            true,
            Some(BRAND),
            vec![("R03-A", Some(400), 1)],
        ),
        order(
            "R04_OUTLET",
            700,
            TxState::Authorised,
            true,
            Some("outlet"),
            vec![("R04-A", None, 1)],
        ),
    ]
}

/// Runs the returns shop's part: creates it, prints how refundd is
/// connected to it, seeds it, runs two passes (the second return of an order
/// approved between them) and prints each refund's journey and the shop's
/// rows. Gives what refundd's records say it gave back.
pub(super) async fn run(pool: &PgPool, admin: &SimAdmin, base_url: &str) -> Result<i64, CliError> {
    RETURNS.create(pool).await?;
    let schema = Schema::parse(SCHEMA).map_err(runtime("schema"))?;
    let statements = ShopStatements::of_shop(
        RETURNS.requests.into(),
        RETURNS.on_refunded.into(),
        Some(RETURNS.on_failed.into()),
    );
    let store = Store::new(pool.clone(), schema, statements);
    store.migrate().await?;
    store.check_shop().await?;
    println!("{}", introduction());
    let orders = returns_orders();
    seed(pool, admin, &orders, 1).await?;
    let engine = Engine::new(
        store.clone(),
        merchants(base_url)?,
        demo_engine_settings(),
        Arc::new(SystemClock),
    );
    let t0 = store.now().await?;
    println!("returns pass 1: {}", pass(&engine).await?.line());
    seed(pool, admin, &orders, 2).await?;
    println!("a week later the customer of R02_AUTH_PARTS returns a second item: return R02-B (NT$200) approved");
    let t1 = store.now().await?;
    println!("returns pass 2: {}\n", pass(&engine).await?.line());
    let t2 = store.now().await? + chrono::Duration::seconds(1);
    let p1 = by_refund(store.events_between(t0, t1).await?);
    let p2 = by_refund(store.events_between(t1, t2).await?);
    let records = store.all_orders().await?;
    let at_bank = merids_at_bank(admin, &orders).await?;
    print!(
        "{}",
        journey_of_returns(&orders, &records, &at_bank, [&p1, &p2])
    );
    print!("{}", shop_returns(pool, &orders).await?);
    Ok(store.refunded_total().await?)
}

/// How refundd is connected to the returns shop and to its two merchants.
fn introduction() -> String {
    format!(
        "\na second shop beside it: returns (shop3.orders, shop3.returns), each approved return refunded on its own,\n\
         the orders paid to one of two merchant ids; refundd keeps its records of it in the schema {SCHEMA} (database.schema),\n\
         reads it with config/shop-returns.toml's statements, and gives the second merchant its own settings table:\n\n\
         [ctbc.merchants.{BRAND}]\nmer_id = \"{BRAND_MER_ID}\"\n# mac_key and iv: the simulator's keys for {BRAND_MER_ID} (REFUNDD__CTBC__MERCHANTS__BRAND__MAC_KEY_FILE, ..._IV_FILE)\n\n\
         requests = '''\n{}\n'''\n",
        RETURNS.requests
    )
}

/// Every merchant's client: the simulator's first merchant (the default) and brand.
fn merchants(base_url: &str) -> Result<Merchants, CliError> {
    let fail = runtime("client");
    let url = url::Url::parse(base_url).map_err(|e| fail(e.to_string()))?;
    let default_id = MerId::parse(REFERENCE_MER_ID).map_err(|e| fail(e.to_string()))?;
    let keys = Envelope::new(REFERENCE_MAC_KEY.as_bytes(), REFERENCE_IV.as_bytes());
    let mut default = ClientConfig::new(url, default_id, keys.map_err(|e| fail(e.to_string()))?);
    default.timeout = Duration::from_secs(10);
    let brand = OtherMerchant {
        name: MerchantName::parse(BRAND).map_err(|e| fail(e.to_string()))?,
        mer_id: MerId::parse(BRAND_MER_ID).map_err(|e| fail(e.to_string()))?,
        envelope: Envelope::new(BRAND_MAC_KEY.as_bytes(), BRAND_IV.as_bytes())
            .map_err(|e| fail(e.to_string()))?,
        base_url: None,
    };
    Merchants::new(default, vec![brand]).map_err(|e| fail(e.to_string()))
}

/// Before pass 1: the bank's transactions and the shop's orders, and the
/// returns approved before it; before pass 2, the returns approved then.
async fn seed(
    pool: &PgPool,
    admin: &SimAdmin,
    orders: &[ReturnsOrder],
    before_pass: u8,
) -> Result<(), CliError> {
    if before_pass == 1 {
        let txs: Vec<SimTx> = orders
            .iter()
            .map(|o| {
                let mut tx = SimTx::new(o.order_no, xid(o), AUTH_CODE, o.amount, o.state.clone());
                tx.mer_id = o.at_brand.then(|| BRAND_MER_ID.to_string());
                tx
            })
            .collect();
        admin
            .load(&txs)
            .await
            .map_err(|e| runtime("simulator")(e.to_string()))?;
        for o in orders {
            let paid = SeedOrder {
                order_no: o.order_no.into(),
                xid: xid(o),
                auth_code: AUTH_CODE.into(),
                amount: o.amount,
                refund: AskedBack::NotAsked,
            };
            seed_returns_at(pool, &[paid], o.shop_says).await?;
        }
    }
    for o in orders {
        for (return_no, amount, _) in o.returns.iter().filter(|r| r.2 == before_pass) {
            approve_return(pool, o.order_no, return_no, *amount).await?;
        }
    }
    Ok(())
}

/// The MERID the bank holds each order's payment under, as its books show it.
async fn merids_at_bank(
    admin: &SimAdmin,
    orders: &[ReturnsOrder],
) -> Result<BTreeMap<&'static str, String>, CliError> {
    let mut at_bank = BTreeMap::new();
    for o in orders {
        let tx = admin.transaction(o.order_no).await;
        let tx = tx.map_err(|e| runtime("simulator")(e.to_string()))?;
        at_bank.insert(o.order_no, tx.and_then(|t| t.mer_id).unwrap_or_default());
    }
    Ok(at_bank)
}

fn xid(o: &ReturnsOrder) -> String {
    format!("X{}", o.order_no)
}

/// A pass's events by the refund they belong to (`N1 (refund A2)`).
type ByRefund = BTreeMap<String, Vec<StoryEvent>>;

/// Events by the refund they belong to.
fn by_refund(events: Vec<StoryEvent>) -> ByRefund {
    let mut m: BTreeMap<String, Vec<StoryEvent>> = BTreeMap::new();
    for e in events {
        let key = labels::refund(&e.order_no, Some(&e.refund_id));
        m.entry(key).or_default().push(e);
    }
    m
}

/// One row per return: the merchant the shop names and the MERID the bank
/// holds the payment under, what each pass did, how it ended, and what the
/// order has had back in all.
fn journey_of_returns(
    orders: &[ReturnsOrder],
    records: &[OrderOutcomeRow],
    at_bank: &BTreeMap<&str, String>,
    passes: [&ByRefund; 2],
) -> String {
    let mut t = Table::new(&[
        "order",
        "merchant",
        "MERID",
        "return",
        "asked",
        "returns pass 1",
        "returns pass 2",
        "final",
        "method",
        "refunded",
        "order refunded",
        "why",
    ]);
    for o in orders {
        let refunded_in_all: i64 = records
            .iter()
            .filter(|r| r.order_no == o.order_no && r.status == RefundStatus::Refunded)
            .filter_map(|r| r.refunded_amount)
            .sum();
        for (return_no, amount, _) in &o.returns {
            let r = records
                .iter()
                .find(|r| r.order_no == o.order_no && r.refund_id == *return_no);
            let key = labels::refund(o.order_no, Some(return_no));
            t.row(vec![
                o.order_no.to_string(),
                o.shop_says
                    .unwrap_or(MerchantName::DEFAULT_LABEL)
                    .to_string(),
                at_bank.get(o.order_no).cloned().unwrap_or_default(),
                return_no.to_string(),
                amount.map_or(o.amount.to_string(), |a| format!("{a}/{}", o.amount)),
                pass_story(passes[0].get(&key)),
                pass_story(passes[1].get(&key)),
                final_status(r),
                r.and_then(|r| r.refund_method)
                    .map_or("", RefundMethod::as_str)
                    .to_string(),
                r.and_then(|r| r.refunded_amount)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                refunded_in_all.to_string(),
                super::report::truncate(
                    r.and_then(|r| r.refund_error.as_deref())
                        .unwrap_or_default(),
                    70,
                ),
            ]);
        }
    }
    let mut out = String::new();
    t.render(&mut out);
    out
}

fn final_status(r: Option<&OrderOutcomeRow>) -> String {
    match r.map(|r| (r.status, r.settlement)) {
        Some((RefundStatus::Refunded, Some(SettlementState::Pending))) => {
            "refunded, settling".into()
        }
        Some((status, _)) => status.to_string(),
        None => "?".into(),
    }
}

/// The shop's own returns after the passes, as refundd wrote them back.
async fn shop_returns(pool: &PgPool, orders: &[ReturnsOrder]) -> Result<String, CliError> {
    let mut t = Table::new(&[
        "return", "order", "state", "amount", "refunded", "method", "note",
    ]);
    for o in orders {
        for r in returns_of(pool, o.order_no).await? {
            let number = |n: Option<i32>| n.map(|n| n.to_string()).unwrap_or_default();
            t.row(vec![
                r.return_no.clone(),
                o.order_no.to_string(),
                r.state.clone(),
                number(r.amount),
                number(r.refunded),
                r.method.clone().unwrap_or_default(),
                super::report::truncate(r.note.as_deref().unwrap_or_default(), 60),
            ]);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nthe shop's own table shop3.returns, as refundd wrote it back:"
    );
    t.render(&mut out);
    Ok(out)
}
