//! The simulator's faults as refundd's own client sees them: each fault kind
//! must come back as the error class the engine acts on, for an inquiry (no
//! verdict: try later) and for a refund (the bank may have acted).

use crate::common::{bank_tx, client_for};
use refundd::ctbc::types::{AuthCode, Currency, Money, OrderNo, Xid};
use refundd::ctbc::{Client, Refund};
use refundd::ctbc::{CtbcError, Operation, TxState};
use refundd::sim::{FaultKind, FaultPlan, SimAdmin, SimConfig, SimServer};
use std::time::Duration;

async fn bank() -> (SimServer, SimAdmin, Client) {
    let sim = SimServer::start(SimConfig::for_tests()).await.unwrap();
    let admin = sim.admin();
    let client = client_for(&sim.base_url(), Duration::from_millis(700));
    (sim, admin, client)
}

/// A refund of all of `amount`, of the order `bank_tx` seeds for `order_no`.
fn whole_refund(order_no: &str, amount: i64) -> Refund {
    let m = |a| Money::new(Currency::TWD, a).unwrap();
    Refund {
        order_no: OrderNo::parse(order_no).unwrap(),
        xid: Xid::parse(&format!("X{order_no}")).unwrap(),
        auth_code: AuthCode::parse("A1B2C3").unwrap(),
        original: m(amount),
        amount: m(amount),
    }
}

#[tokio::test]
async fn each_fault_kind_gives_the_right_error_class() {
    let (_sim, admin, client) = bank().await;
    let cases = [
        (FaultKind::ServerError, "unavailable", false),
        (FaultKind::Html200, "unavailable", false),
        (FaultKind::Maintenance200, "unavailable", false),
        (FaultKind::Reset, "unavailable", false),
        (FaultKind::ApplyThenDrop, "unavailable", true),
        (FaultKind::Garbage, "unavailable", true),
        (FaultKind::WrongMac, "bad_answer", true),
    ];
    for (i, (kind, inquiry_kind, applied)) in cases.into_iter().enumerate() {
        let no = format!("F{i}");
        admin
            .load(&[bank_tx(&no, 1000, TxState::Settled)])
            .await
            .unwrap();
        admin
            .set_faults(&FaultPlan::always(kind, None))
            .await
            .unwrap();
        let inquiry = client
            .inquiry(&OrderNo::parse(&no).unwrap())
            .await
            .unwrap_err();
        assert!(
            inquiry.kind() == inquiry_kind
                || (inquiry_kind == "unavailable" && inquiry.kind() == "bad_answer"),
            "{kind:?} inquiry: {inquiry}"
        );
        let refund = client.refund(&whole_refund(&no, 1000)).await.unwrap_err();
        assert!(
            matches!(
                refund,
                CtbcError::Ambiguous {
                    operation: Operation::Refund,
                    ..
                }
            ),
            "{kind:?} refund: {refund}"
        );
        admin.set_faults(&FaultPlan::none()).await.unwrap();
        let after = client.inquiry(&OrderNo::parse(&no).unwrap()).await.unwrap();
        let expected = if applied {
            TxState::RefundSettling
        } else {
            TxState::Settled
        };
        assert_eq!(after.state, expected, "{kind:?}: applied = {applied}");
    }
}

#[tokio::test]
async fn maintenance_latency_and_unknown_orders() {
    let (_sim, admin, client) = bank().await;
    admin
        .load(&[bank_tx("M1", 1000, TxState::Settled)])
        .await
        .unwrap();
    admin.set_maintenance(true).await.unwrap();
    let e = client
        .inquiry(&OrderNo::parse("M1").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, CtbcError::Unavailable { .. }), "{e}");
    let e = client.refund(&whole_refund("M1", 1000)).await.unwrap_err();
    assert!(matches!(e, CtbcError::Ambiguous { .. }), "{e}");
    admin.set_maintenance(false).await.unwrap();

    // Slower than the client's 700 ms timeout.
    let slow = FaultPlan::from_json(r#"{"rules":[{"latency_ms":3000}]}"#).unwrap();
    admin.set_faults(&slow).await.unwrap();
    let e = client
        .inquiry(&OrderNo::parse("M1").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, CtbcError::Unavailable { .. }), "{e}");
    let e = client.refund(&whole_refund("M1", 1000)).await.unwrap_err();
    assert!(matches!(e, CtbcError::Ambiguous { .. }), "{e}");
    admin.set_faults(&FaultPlan::none()).await.unwrap();

    let e = client
        .inquiry(&OrderNo::parse("NOSUCH").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, CtbcError::UnknownOrder { .. }), "{e}");
    // A refusal in Chinese comes through as text.
    let e = client
        .refund(&whole_refund("NOSUCH", 1000))
        .await
        .unwrap_err();
    assert!(matches!(e, CtbcError::Refused { .. }), "{e}");
}

#[tokio::test]
async fn both_maintenance_notices_read_as_maintenance() {
    let (_sim, admin, client) = bank().await;
    admin
        .load(&[bank_tx("N1", 1000, TxState::Settled)])
        .await
        .unwrap();
    let order_no = OrderNo::parse("N1").unwrap();
    // The Big5 page with 503, and the UTF-8 page with numeric character
    // references and 200.
    let notices = [
        ("big5 503", true, FaultPlan::none()),
        (
            "utf-8 200",
            false,
            FaultPlan::always(FaultKind::Maintenance200, None),
        ),
    ];
    for (variant, switch, faults) in notices {
        admin.set_maintenance(switch).await.unwrap();
        admin.set_faults(&faults).await.unwrap();
        let e = client.inquiry(&order_no).await.unwrap_err();
        match &e {
            CtbcError::Unavailable { reason, .. } => {
                assert!(reason.contains("系統維護公告"), "{variant}: {reason}");
                assert!(!reason.contains("&#"), "{variant}: {reason}");
            }
            other => panic!("{variant}: expected Unavailable, got {other}"),
        }
        let e = client.refund(&whole_refund("N1", 1000)).await.unwrap_err();
        assert!(matches!(e, CtbcError::Ambiguous { .. }), "{variant}: {e}");
    }
    admin.set_maintenance(false).await.unwrap();
    admin.set_faults(&FaultPlan::none()).await.unwrap();
    let after = client.inquiry(&order_no).await.unwrap();
    assert_eq!(
        after.state,
        TxState::Settled,
        "no notice applied the refund"
    );
}

#[tokio::test]
async fn a_client_with_the_bank_s_published_base_path_works() {
    let (sim, admin, _) = bank().await;
    admin
        .load(&[bank_tx("P1", 1000, TxState::Settled)])
        .await
        .unwrap();
    // As for the bank's test host, https://testepos.ctbcbank.com/MicroPos,
    // with only the host changed.
    let client = client_for(
        &format!("{}/MicroPos", sim.base_url()),
        Duration::from_secs(5),
    );
    let order_no = OrderNo::parse("P1").unwrap();
    assert_eq!(
        client.inquiry(&order_no).await.unwrap().state,
        TxState::Settled
    );
    client.refund(&whole_refund("P1", 1000)).await.unwrap();
    assert_eq!(
        client.inquiry(&order_no).await.unwrap().state,
        TxState::RefundSettling
    );
}
