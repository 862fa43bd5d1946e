//! `refundd reconcile` end to end, against real PostgreSQL and the bank
//! simulator, in both table modes: orders refundd refunded, then changed at
//! the bank behind its back; each classified against refundd's records with
//! inquiries only, each mismatch kept and told once, closed by a person or by
//! a later run that finds the order matched.

use super::SCHEMA;
use crate::common::{ask_for_refunds, bank_tx, in_both_modes, request, Rig};
use refundd::ctbc::{InquiryBanks, TxState};
use refundd::domain::reconcile::Class;
use refundd::engine::reconcile::{reconcile, Report, Window};

in_both_modes!(in SCHEMA; each_order_is_classified_and_a_mismatch_is_told_once);

/// A run over the last day, as `refundd reconcile --since 1d` makes it.
async fn reconcile_now(rig: &Rig) -> Report {
    let banks = InquiryBanks::new(&rig.merchants(&[]));
    let window = Window::since(chrono::Utc::now(), "1d").unwrap();
    reconcile(&rig.store, &banks, window, 4).await.unwrap()
}

fn class_of(report: &Report, order_no: &str) -> Class {
    let row = report.rows.iter().find(|r| r.order_no == order_no);
    row.unwrap_or_else(|| panic!("{order_no} not in {report:?}"))
        .class
}

/// The bank changes the order behind refundd's back: `change` applied to
/// the simulator's transaction as it stands.
async fn at_bank(rig: &Rig, order_no: &str, change: impl FnOnce(&mut refundd::sim::SimTx)) {
    let mut tx = rig.admin.transaction(order_no).await.unwrap().unwrap();
    change(&mut tx);
    rig.admin.load(&[tx]).await.unwrap();
}

async fn mismatch_events(rig: &Rig) -> i64 {
    rig.scalar::<i64>(
        "SELECT count(*) FROM outbox WHERE type = 'refund.mismatch' AND $1 <> ''",
        "-",
    )
    .await
}

async fn each_order_is_classified_and_a_mismatch_is_told_once(rig: Rig) {
    let orders = [
        ("RC1", TxState::Authorised),
        ("RC2", TxState::Settled),
        ("RC3", TxState::Settled),
        ("RC4", TxState::Authorised),
    ];
    let txs: Vec<_> = orders
        .iter()
        .map(|(o, s)| bank_tx(o, 1000, s.clone()))
        .collect();
    rig.admin.load(&txs).await.unwrap();
    let asked: Vec<_> = orders.iter().map(|(o, _)| request(o, 1000, None)).collect();
    ask_for_refunds(&rig.pool, rig.shop, &asked).await;
    rig.pass().await;
    rig.order("RC1").await.assert_refunded("reversal", 1000);
    rig.order("RC2").await.assert_refunded("refund", 1000);

    // Settling refunds are expected; reversals match.
    let first = reconcile_now(&rig).await;
    assert_eq!(class_of(&first, "RC1"), Class::Matched);
    assert_eq!(class_of(&first, "RC2"), Class::Expected);
    assert!(first.new_mismatches.is_empty(), "{first:?}");

    // The batch settles the refunds; then the bank changes two orders.
    rig.admin.run_batch().await.unwrap();
    at_bank(&rig, "RC3", |tx| tx.state = "23".into()).await;
    at_bank(&rig, "RC4", |tx| {
        tx.state = "12".into();
        tx.auth_amount = 1000;
    })
    .await;
    let calls_before = rig.admin.calls().await.unwrap().len();
    let second = reconcile_now(&rig).await;
    assert_eq!(class_of(&second, "RC1"), Class::Matched);
    assert_eq!(class_of(&second, "RC2"), Class::Matched);
    assert_eq!(class_of(&second, "RC3"), Class::Mismatch);
    assert_eq!(class_of(&second, "RC4"), Class::Mismatch);
    let rc3 = second.rows.iter().find(|r| r.order_no == "RC3").unwrap();
    assert!(rc3.reason.contains("state 23"), "{rc3:?}");
    assert_eq!(second.new_mismatches.len(), 2, "{second:?}");
    assert_eq!(mismatch_events(&rig).await, 2);
    // Inquiries only.
    let calls = rig.admin.calls().await.unwrap();
    assert!(calls[calls_before..]
        .iter()
        .all(|c| c.operation == "inquiry"));

    // Found again: not new, not told again.
    let third = reconcile_now(&rig).await;
    assert_eq!(third.totals[&Class::Mismatch], 2);
    assert!(third.new_mismatches.is_empty());
    assert_eq!(mismatch_events(&rig).await, 2);
    let status = refundd::ops::status::report(&rig.store, refundd::ops::status::Webhook::NotSet)
        .await
        .unwrap();
    let open: Vec<&str> = (status.reconciliation.open_mismatches.iter())
        .map(|m| m.order_no.as_str())
        .collect();
    assert_eq!(open, ["RC3", "RC4"]);
    assert!(
        status.render().contains("open mismatches (2;"),
        "{}",
        status.render()
    );

    // A person resolves one; the bank puts the other right.
    assert!(rig
        .store
        .resolve_mismatch("RC3", "alice (uid 1000)", "asked the bank")
        .await
        .unwrap());
    assert!(!rig
        .store
        .resolve_mismatch("RC1", "alice (uid 1000)", "nothing")
        .await
        .unwrap());
    at_bank(&rig, "RC4", |tx| tx.state = "0".into()).await;
    let fourth = reconcile_now(&rig).await;
    assert_eq!(class_of(&fourth, "RC4"), Class::Matched);
    assert!(fourth.new_mismatches.is_empty(), "{fourth:?}");
    assert!(rig.store.open_mismatches().await.unwrap().is_empty());
    assert_eq!(mismatch_events(&rig).await, 2);

    // The latest run reads back without asking the bank.
    let last = refundd::engine::reconcile::last_run(&rig.store)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.run, fourth.run);
    assert_eq!(last.rows, fourth.rows);
}

in_both_modes!(in SCHEMA; changes_made_at_the_banks_portal_are_mismatches_with_their_reason);

/// A change made at the bank's portal, behind refundd's back.
async fn at_portal(rig: &Rig, order_no: &str, change: refundd::sim::PortalChange) {
    rig.admin.portal(order_no, &change).await.unwrap();
}

fn reason_of<'a>(report: &'a Report, order_no: &str) -> &'a str {
    let row = report.rows.iter().find(|r| r.order_no == order_no);
    &row.unwrap_or_else(|| panic!("{order_no} not in {report:?}"))
        .reason
}

async fn changes_made_at_the_banks_portal_are_mismatches_with_their_reason(rig: Rig) {
    use refundd::sim::PortalChange;
    let orders = [
        ("RP1", TxState::Settled),
        ("RP2", TxState::Authorised),
        ("RP3", TxState::CaptureFailed),
        ("RP4", TxState::Settled),
    ];
    let txs: Vec<_> = orders
        .iter()
        .map(|(o, s)| bank_tx(o, 1000, s.clone()))
        .collect();
    rig.admin.load(&txs).await.unwrap();
    // RP1 is refunded in part: the bank may settle anything from that up.
    let part = |o: &str| (o == "RP1").then_some(300);
    let asked: Vec<_> = orders
        .iter()
        .map(|(o, _)| request(o, 1000, part(o)))
        .collect();
    ask_for_refunds(&rig.pool, rig.shop, &asked).await;
    rig.pass().await;
    rig.admin.run_batch().await.unwrap();
    rig.order("RP1").await.assert_refunded("refund", 300);
    assert_eq!(rig.order("RP3").await.status, "refund_failed");

    at_portal(&rig, "RP1", PortalChange::SettleAmount { amount: 900 }).await;
    at_portal(&rig, "RP2", PortalChange::Forget {}).await;
    at_portal(&rig, "RP3", PortalChange::SetState { state: "22".into() }).await;
    let report = reconcile_now(&rig).await;
    assert!(reason_of(&report, "RP1").contains("amount differs"));
    assert!(reason_of(&report, "RP2").contains("does not know"));
    assert!(reason_of(&report, "RP3").contains("refundd says nothing was given back"));
    assert_eq!(class_of(&report, "RP4"), Class::Matched);
    assert_eq!(report.totals[&Class::Mismatch], 3, "{report:?}");
    let mut new = report.new_mismatches.clone();
    new.sort();
    assert_eq!(new, ["RP1", "RP2", "RP3"]);
}
