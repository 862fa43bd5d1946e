//! The simulator as refundd's own client sees it: each fault kind must come
//! back as the error class the engine acts on, for an inquiry (no verdict:
//! try later) and for a refund (the bank may have acted); several refunds of
//! one order, each filed where the bank holds it; each merchant's client
//! reading only its own answers.

use crate::common::{bank_tx, client_for};
use refundd::ctbc::envelope::Envelope;
use refundd::ctbc::types::{AuthCode, Currency, MerId, Money, OrderNo, Xid};
use refundd::ctbc::{Client, ClientConfig, Refund, RefundReversal};
use refundd::ctbc::{CtbcError, Operation, TxState};
use refundd::sim::{FaultKind, FaultPlan, SimAdmin, SimConfig, SimMerchant, SimServer};
use std::time::Duration;

async fn bank() -> (SimServer, SimAdmin, Client) {
    let sim = SimServer::start(SimConfig::for_tests()).await.unwrap();
    let admin = sim.admin();
    let client = client_for(&sim.base_url(), Duration::from_millis(700));
    (sim, admin, client)
}

/// A refund of all of `amount`, of the order `bank_tx` seeds for `order_no`.
fn whole_refund(order_no: &str, amount: i64) -> Refund {
    part_refund(order_no, amount, amount)
}

/// A refund of `part` of the order `bank_tx` seeds for `order_no`,
/// authorised for `original`.
fn part_refund(order_no: &str, original: i64, part: i64) -> Refund {
    let m = |a| Money::new(Currency::TWD, a).unwrap();
    Refund {
        order_no: OrderNo::parse(order_no).unwrap(),
        xid: Xid::parse(&format!("X{order_no}")).unwrap(),
        auth_code: AuthCode::parse("A1B2C3").unwrap(),
        original: m(original),
        amount: m(part),
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

#[tokio::test]
async fn refundd_s_client_refunds_one_order_again_once_the_first_settled() {
    let (_sim, admin, client) = bank().await;
    admin
        .load(&[bank_tx("L1", 1000, TxState::Settled)])
        .await
        .unwrap();
    let first = client.refund(&part_refund("L1", 1000, 400)).await.unwrap();
    // While it settles: refused.
    let e = client
        .refund(&part_refund("L1", 1000, 300))
        .await
        .unwrap_err();
    assert!(matches!(e, CtbcError::Refused { .. }), "{e}");
    admin.run_batch().await.unwrap();
    let second = client.refund(&part_refund("L1", 1000, 500)).await.unwrap();
    admin.run_batch().await.unwrap();
    // Over what is left: refused, saying what is left.
    let e = client
        .refund(&part_refund("L1", 1000, 101))
        .await
        .unwrap_err();
    assert!(
        matches!(e, CtbcError::Refused { .. }) && e.to_string().contains("100 of the 1000"),
        "{e}"
    );
    // The bank holds each refund where its answer told the client it filed it.
    let (first, second) = (first.references(), second.references());
    assert!(
        first.batch_seq.is_some() && first.retr_ref.is_some(),
        "{first:?}"
    );
    assert_ne!(first, second);
    let held: Vec<_> = admin
        .refunds_of("L1")
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|r| (Some(r.retr_ref), Some(r.batch_id), Some(r.batch_seq)))
        .collect();
    let told = |r: refundd::ctbc::RefundReferences| (r.retr_ref, r.batch_id, r.batch_seq);
    assert_eq!(held, [told(first), told(second)]);
    // A third refund, reversed as refundd's client sends a reversal (naming
    // no refund: the one settling); the transaction goes back to 22.
    client.refund(&part_refund("L1", 1000, 100)).await.unwrap();
    let m = |a| Money::new(Currency::TWD, a).unwrap();
    let reversal = RefundReversal {
        order_no: OrderNo::parse("L1").unwrap(),
        xid: Xid::parse("XL1").unwrap(),
        auth_code: AuthCode::parse("A1B2C3").unwrap(),
        original: m(1000),
        amount: m(100),
    };
    client.refund_reversal(&reversal).await.unwrap();
    let after = client
        .inquiry(&OrderNo::parse("L1").unwrap())
        .await
        .unwrap();
    assert_eq!(after.state, TxState::RefundSettled);
    let t = admin.transaction("L1").await.unwrap().unwrap();
    assert_eq!((t.refunded_amount, t.refunds.len()), (900, 3));
    assert!(t.refunds[2].reversed);
}

/// A second merchant of the simulator, with keys of its own.
const SECOND_MERID: &str = "7654321";
const SECOND_MAC_KEY: &str = "QWERTYUIOPASDFGHJKLZXCVB";
const SECOND_IV: &str = "iv345678";

/// refundd's client of merchant `mer_id` at the simulator, sealing with `key` and `iv`.
fn merchant_client(sim: &SimServer, mer_id: &str, key: &str, iv: &str) -> Client {
    let cfg = ClientConfig::new(
        url::Url::parse(&sim.base_url()).unwrap(),
        MerId::parse(mer_id).unwrap(),
        Envelope::new(key.as_bytes(), iv.as_bytes()).unwrap(),
    );
    Client::new(ClientConfig {
        timeout: Duration::from_secs(5),
        ..cfg
    })
    .unwrap()
}

#[tokio::test]
async fn each_merchant_s_client_reads_only_its_own_answers() {
    let mut cfg = SimConfig::for_tests();
    cfg.other_merchants = vec![SimMerchant {
        mer_id: MerId::parse(SECOND_MERID).unwrap(),
        mac_key: SECOND_MAC_KEY.into(),
        iv: SECOND_IV.into(),
    }];
    let sim = SimServer::start(cfg).await.unwrap();
    let admin = sim.admin();
    let mut theirs = bank_tx("B1", 800, TxState::Settled);
    theirs.mer_id = Some(SECOND_MERID.into());
    admin
        .load(&[bank_tx("A1", 900, TxState::Settled), theirs])
        .await
        .unwrap();
    let first = client_for(&sim.base_url(), Duration::from_secs(5));
    let second = merchant_client(&sim, SECOND_MERID, SECOND_MAC_KEY, SECOND_IV);
    let (a1, b1) = (OrderNo::parse("A1").unwrap(), OrderNo::parse("B1").unwrap());
    assert_eq!(second.inquiry(&b1).await.unwrap().state, TxState::Settled);
    assert_eq!(first.inquiry(&a1).await.unwrap().state, TxState::Settled);
    // Each merchant's orders are unknown to the other.
    let e = second.inquiry(&a1).await.unwrap_err();
    assert!(matches!(e, CtbcError::UnknownOrder { .. }), "{e}");
    let e = first.inquiry(&b1).await.unwrap_err();
    assert!(matches!(e, CtbcError::UnknownOrder { .. }), "{e}");
    let e = first.refund(&whole_refund("B1", 800)).await.unwrap_err();
    assert!(matches!(e, CtbcError::Refused { .. }), "{e}");
    // The second merchant's MERID sealed with the first's keys: the bank
    // refuses it under the second's keys, which this client cannot open.
    let crossed = merchant_client(
        &sim,
        SECOND_MERID,
        refundd::sim::REFERENCE_MAC_KEY,
        refundd::sim::REFERENCE_IV,
    );
    let e = crossed.inquiry(&b1).await.unwrap_err();
    assert!(
        matches!(
            e,
            CtbcError::Unavailable { .. } | CtbcError::BadAnswer { .. }
        ),
        "{e}"
    );
    assert!(crossed.answer_did_not_open(), "{e}");
    let calls = admin.calls().await.unwrap();
    assert!(
        calls.iter().any(|c| c
            .errdesc
            .as_deref()
            .is_some_and(|d| d.contains("MAC check failed"))),
        "{calls:?}"
    );
    // The second merchant refunds its own order; the first's stays as it was.
    second.refund(&whole_refund("B1", 800)).await.unwrap();
    assert_eq!(
        second.inquiry(&b1).await.unwrap().state,
        TxState::RefundSettling
    );
    assert_eq!(first.inquiry(&a1).await.unwrap().state, TxState::Settled);
}
