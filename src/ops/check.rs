//! `refundd check`: what `once` would need, checked without sending anything
//! that moves money and without writing: the shop's statements against the
//! database, each write-back rehearsed on a real request and rolled back,
//! the requested rows judged as a pass would judge them, and with `--bank`
//! one inquiry per merchant that proves its endpoint, its merchant id and its
//! keys. What it finds is said in lines for the operator; any problem makes
//! it exit 2.

use crate::ctbc::{CtbcError, InquiryClient, Merchants, OrderNo};
use crate::domain::mapping::{mapping_mistake, not_started};
use crate::domain::merchant::{label, settings_table, MerchantName};
use crate::domain::record::Lease;
use crate::domain::refund_request::{RefundRequest, RowCheck};
use crate::store::plan::PlanReader;
use crate::store::rehearsal::Rehearsal;
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;

/// What `check` found: lines to print, and the problems that fail it.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub lines: Vec<String>,
    pub problems: Vec<String>,
}

impl CheckReport {
    fn note(&mut self, line: String) {
        self.lines.push(line);
    }

    fn problem(&mut self, line: String) {
        self.problems.push(line);
    }
}

/// The write-backs rehearsed, and the requested rows judged (once
/// refundd's schema is migrated: they are read as a pass would read them).
pub async fn check_shop_rows(store: &Store) -> Result<CheckReport, StoreError> {
    let mut report = CheckReport::default();
    match store.rehearse_write_backs().await? {
        Rehearsal::NoRequest => report.note(
            "the shop asks for no refund now: the write-backs were not rehearsed (run check again once it does)".into(),
        ),
        Rehearsal::On { order_no, statements } => {
            for (setting, refused) in statements {
                match refused {
                    None => report.note(format!("{setting} changes order {order_no}'s row (rehearsed in a transaction rolled back)")),
                    Some(why) => report.problem(format!("rehearsed on order {order_no} and rolled back: {why}")),
                }
            }
        }
    }
    match store.require_migrated().await {
        Ok(()) => judge_rows(store, &mut report).await?,
        Err(StoreError::NotMigrated(schema)) => report.note(format!(
            "refundd's schema {schema} is not in this database yet: run refundd migrate, then check again to judge the requested rows"
        )),
        Err(e) => return Err(e),
    }
    Ok(report)
}

/// The requested rows refundd has not started, judged by the pass's own row
/// checks: how many would be worked, how many fail and why, and whether they
/// fail alike (a mapping mistake, which fails `check`).
async fn judge_rows(store: &Store, report: &mut CheckReport) -> Result<(), StoreError> {
    let reading = PlanReader::new(store.clone()).read().await?;
    let rows: Vec<_> = reading
        .orders
        .iter()
        .filter(|o| not_started(&o.row))
        .map(|o| o.row.clone())
        .collect();
    let mut invalid: BTreeMap<RowCheck, usize> = BTreeMap::new();
    for row in &rows {
        if let Err(p) = RefundRequest::validate(row, Lease::unheld(row.id)) {
            *invalid.entry(p.check).or_default() += 1;
        }
    }
    let bad: usize = invalid.values().sum();
    let why: Vec<String> = invalid
        .iter()
        .map(|(check, n)| format!("{n} × {}", check.describe()))
        .collect();
    let mut line = format!(
        "{} rows requested, {} valid, {bad} invalid",
        rows.len(),
        rows.len() - bad
    );
    if !why.is_empty() {
        line.push_str(&format!(": {}", why.join(", ")));
    }
    report.note(line);
    if let Some(mistake) = mapping_mistake(&rows) {
        report.problem(mistake.to_string());
    }
    Ok(())
}

/// Every merchant's keys and endpoint proved, one inquiry each
/// (`check_bank`), the default merchant's first.
pub async fn check_banks(merchants: &Merchants, report: &mut CheckReport) {
    for (_, client) in merchants.iter() {
        check_bank(&InquiryClient::new(client.clone()), report).await;
    }
}

/// One inquiry (it moves nothing) for an order number no shop uses: an
/// answer that opens with our keys, even "no such order", proves the
/// endpoint, the merchant id and the keys. Each line names the merchant and
/// its settings (`ctbc.mac_key`, `ctbc.merchants.NAME.mac_key`).
pub async fn check_bank(bank: &InquiryClient, report: &mut CheckReport) {
    let Ok(probe) = OrderNo::parse(PROBE) else {
        return;
    };
    let merchant = bank.merchant();
    let at = format!("merchant {} (MERID {})", label(merchant), bank.mer_id());
    let t = settings_table(merchant);
    match bank.inquiry(&probe).await {
        Ok(_) | Err(CtbcError::UnknownOrder { .. }) | Err(CtbcError::Refused { .. }) => report.note(format!(
            "{at}: the bank answered an inquiry for {probe} and its answer opened with {t}.mac_key and {t}.iv: the endpoint, the merchant id and the keys work"
        )),
        Err(e) if bank.answer_did_not_open() => report.problem(format!(
            "{at}: the bank's answer does not open with refundd's keys: wrong {t}.mac_key or {t}.iv (or they were issued for another {t}.mer_id than {}): {e}",
            bank.mer_id()
        )),
        Err(e) => report.problem(format!(
            "{at}: the bank could not be asked: {e}; check {} and the network",
            base_url_setting(merchant)
        )),
    }
}

/// The setting that gives a merchant's endpoint: `ctbc.base_url`, or a
/// named merchant's own `base_url`, which falls back to it.
fn base_url_setting(merchant: Option<&MerchantName>) -> String {
    match merchant {
        None => "ctbc.base_url".to_string(),
        Some(_) => format!(
            "{}.base_url (or ctbc.base_url, when the merchant has none of its own)",
            settings_table(merchant)
        ),
    }
}

/// The order number `check --bank` asks about: one no shop's order has.
const PROBE: &str = "REFUNDDCHECK";
