//! The demo's last act: colleagues at the bank's merchant portal change six
//! of the tutorial shop's orders behind refundd's back, one change of each
//! kind the simulator can make, and `refundd reconcile` finds exactly those
//! six as mismatches, each with its reason, and everything else matched or
//! still settling. It asks by inquiry only; nothing moves money.

use super::runtime;
use super::scenario::{client, Seed};
use crate::ctbc::{InquiryBanks, InquiryClient};
use crate::domain::reconcile::Class;
use crate::engine::reconcile::{reconcile, Report, Window};
use crate::ops::exit::CliError;
use crate::sim::{PortalChange, SimAdmin};
use crate::store::Store;
use std::time::Duration;

/// Which seeded order (the first with this label, or the second) gets which change.
const AT_PORTAL: &[(&str, usize, &str)] = &[
    ("SETTLED", 0, "the refund fails at the bank's settlement"),
    (
        "SETTLED_PART",
        0,
        "the bank settles NT$100 less than authorised",
    ),
    (
        "SETTLED_PART",
        1,
        "a colleague refunds another NT$100 in the portal",
    ),
    (
        "AUTH_PART",
        0,
        "a colleague reverses another NT$100 in the portal",
    ),
    ("AUTH", 0, "the bank no longer knows the order"),
    (
        "CAPT",
        0,
        "the bank shows the reversed order captured again (state 12)",
    ),
];

/// The change of each entry of `AT_PORTAL`, for an order of `amount`.
fn change(index: usize, amount: i64) -> PortalChange {
    match index {
        0 => PortalChange::FailRefund {},
        1 => PortalChange::SettleAmount {
            amount: amount - 100,
        },
        2 => PortalChange::Refund { amount: 100 },
        3 => PortalChange::Reverse { amount: Some(100) },
        4 => PortalChange::Forget {},
        _ => PortalChange::SetState { state: "12".into() },
    }
}

/// Makes the portal changes, reconciles the tutorial shop's orders and
/// prints the report; an error when the mismatches are not exactly the
/// changed orders.
pub(super) async fn run(
    store: &Store,
    admin: &SimAdmin,
    base_url: &str,
    seeds: &[Seed],
) -> Result<(), CliError> {
    println!("\nlater, at CTBC's merchant portal, behind refundd's back:");
    let mut changed = Vec::new();
    for (index, (label, nth, what)) in AT_PORTAL.iter().enumerate() {
        let seed = nth_with_label(seeds, label, *nth)?;
        admin
            .portal(&seed.order_no, &change(index, seed.amount))
            .await
            .map_err(|e| runtime("simulator")(e.to_string()))?;
        println!("  {:<17} {what}", seed.order_no);
        changed.push(seed.order_no.clone());
    }
    let banks = InquiryBanks::from(InquiryClient::new(client(base_url)?));
    let window = Window::last(chrono::Utc::now(), Duration::from_secs(86_400));
    let report = reconcile(store, &banks, window, 4)
        .await
        .map_err(|e| runtime("reconcile")(e.to_string()))?;
    println!(
        "\nrefundd reconcile --since 1d (inquiries only), the lines that need a person first:\n"
    );
    print!("{}", shown(&report));
    check(&report, &mut changed)
}

fn nth_with_label<'a>(seeds: &'a [Seed], label: &str, nth: usize) -> Result<&'a Seed, CliError> {
    let suffix = format!("_{label}");
    seeds
        .iter()
        .filter(|s| s.order_no.ends_with(&suffix))
        .nth(nth)
        .ok_or_else(|| runtime("seeds")(format!("no order {nth} labelled {label}")))
}

/// The report as `refundd reconcile` prints it, the matched lines counted
/// rather than listed.
fn shown(report: &Report) -> String {
    let text = crate::ops::reconcile::render(report);
    // A row's class is padded to eight columns; the header's counts are not.
    let matched = format!("{:<8} ", Class::Matched.as_str());
    let mut out: String = text
        .lines()
        .filter(|l| !l.starts_with(&matched))
        .map(|l| format!("{l}\n"))
        .collect();
    let hidden = text.lines().filter(|l| l.starts_with(&matched)).count();
    out.push_str(&format!(
        "... and {hidden} matched lines (refundd reconcile --last prints them all)\n"
    ));
    out
}

/// The mismatches must be the orders changed at the portal, no more, no less.
fn check(report: &Report, changed: &mut Vec<String>) -> Result<(), CliError> {
    let mut found: Vec<String> = (report.rows.iter())
        .filter(|r| r.class == Class::Mismatch)
        .map(|r| r.order_no.clone())
        .collect();
    found.sort();
    changed.sort();
    if found == *changed && report.unchecked == 0 {
        println!(
            "\nthe six orders changed at the portal are the six mismatches; every other order is matched or still settling. reconcile changed no order: what to do is a person's call (refundd reconcile resolve ORDER_NO --reason TEXT)."
        );
        return Ok(());
    }
    Err(runtime("reconcile")(format!(
        "the mismatches found ({found:?}, {} not checked) are not the orders changed at the portal ({changed:?})",
        report.unchecked
    )))
}
