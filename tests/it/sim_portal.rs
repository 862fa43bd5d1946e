//! The bank changed behind refundd's back, as the real bank's portal does,
//! over real HTTP on loopback: after each change made through the
//! simulator's admin API, an inquiry by refundd's own CTBC client sees the
//! new state or amount, or the bank's refusal of an order it does not know;
//! the simulator's log of refundd's money-moving calls never grows by one
//! and the changes are listed apart. A change its state does not allow, an
//! unknown order and a body that names no change are refused with the
//! status that says so.

use crate::common::{bank_tx, client_for};
use refundd::ctbc::types::{AuthCode, Currency, Money, OrderNo, Xid};
use refundd::ctbc::{Client, CtbcError, Inquiry, Operation, Refund, TxState};
use refundd::sim::{
    CallRecord, PortalChange, SimAdmin, SimAdminError, SimConfig, SimServer, SimTx,
};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

/// A simulator on loopback, its admin API and refundd's client of it.
async fn bank_with_a_portal() -> (SimServer, SimAdmin, Client) {
    let sim = SimServer::start(SimConfig::for_tests()).await.unwrap();
    let admin = sim.admin();
    let client = client_for(&sim.base_url(), Duration::from_secs(10));
    (sim, admin, client)
}

/// What refundd's client hears when it asks about `order_no`.
async fn asked(client: &Client, order_no: &str) -> Result<Inquiry, CtbcError> {
    client.inquiry(&OrderNo::parse(order_no).unwrap()).await
}

/// The state and authorised amount an inquiry by refundd's client shows.
async fn seen_by_refundd(client: &Client, order_no: &str) -> (TxState, Option<i64>) {
    let inquiry = asked(client, order_no).await.unwrap();
    (inquiry.state, inquiry.auth_amount.map(|m| m.amount()))
}

/// Every call of refundd's that could move money, as the bank logged it.
async fn refundds_money_calls(admin: &SimAdmin) -> Vec<CallRecord> {
    let calls = admin.calls().await.unwrap();
    (calls.into_iter())
        .filter(|c| c.operation != Operation::Inquiry.as_str())
        .collect()
}

/// `order_no` in state 20: all of its 1,500 refunded, settling.
fn refund_settling(order_no: &str) -> SimTx {
    let mut tx = bank_tx(order_no, 1500, TxState::RefundSettling);
    (tx.refunded_amount, tx.returned_amount) = (1500, 1500);
    tx
}

/// A refund by refundd's client of `amount` of `order_no`'s 1,500.
fn refundds_refund(order_no: &str, amount: i64) -> Refund {
    let m = |a| Money::new(Currency::TWD, a).unwrap();
    Refund {
        order_no: OrderNo::parse(order_no).unwrap(),
        xid: Xid::parse(&format!("X{order_no}")).unwrap(),
        auth_code: AuthCode::parse("A1B2C3").unwrap(),
        original: m(1500),
        amount: m(amount),
    }
}

#[tokio::test]
async fn after_each_change_at_the_portal_refundd_sees_the_bank_as_changed() {
    let (_sim, admin, client) = bank_with_a_portal().await;
    let books = [
        bank_tx("MINE", 1500, TxState::Settled),
        bank_tx("REFUNDED", 1500, TxState::Settled),
        bank_tx("REVERSED", 1500, TxState::Authorised),
        refund_settling("FAILED"),
        bank_tx("SETTLED", 1500, TxState::Settled),
        bank_tx("FORGOTTEN", 1500, TxState::Settled),
        bank_tx("CAPTURED", 1500, TxState::AuthCancelled),
    ];
    admin.load(&books).await.unwrap();
    // One refund of refundd's own, so the log of its money calls is not empty.
    client.refund(&refundds_refund("MINE", 300)).await.unwrap();
    let before = refundds_money_calls(&admin).await;
    assert_eq!(before.len(), 1, "{before:?}");

    let changes = [
        ("REFUNDED", PortalChange::Refund { amount: 400 }),
        ("REVERSED", PortalChange::Reverse { amount: Some(500) }),
        ("FAILED", PortalChange::FailRefund {}),
        ("SETTLED", PortalChange::SettleAmount { amount: 1200 }),
        ("FORGOTTEN", PortalChange::Forget {}),
        ("CAPTURED", PortalChange::SetState { state: "12".into() }),
    ];
    for (order_no, change) in &changes {
        admin.portal(order_no, change).await.unwrap();
    }

    let refunded = seen_by_refundd(&client, "REFUNDED").await;
    assert_eq!(refunded, (TxState::RefundSettling, Some(1500)));
    let reversed = seen_by_refundd(&client, "REVERSED").await;
    assert_eq!(reversed, (TxState::Authorised, Some(1000)));
    let failed = seen_by_refundd(&client, "FAILED").await;
    assert_eq!(failed, (TxState::RefundFailed, Some(1500)));
    let settled = seen_by_refundd(&client, "SETTLED").await;
    assert_eq!(settled, (TxState::Settled, Some(1200)));
    let forgotten = asked(&client, "FORGOTTEN").await.unwrap_err();
    assert!(
        matches!(&forgotten, CtbcError::UnknownOrder { resp_code, err_code, .. }
            if resp_code == "99" && err_code == "01"),
        "{forgotten}"
    );
    let captured = seen_by_refundd(&client, "CAPTURED").await;
    assert_eq!(captured, (TxState::Settled, Some(1500)));

    // The rest of the reversal cancels the authorisation.
    admin
        .portal("REVERSED", &PortalChange::Reverse { amount: None })
        .await
        .unwrap();
    let cancelled = seen_by_refundd(&client, "REVERSED").await;
    assert_eq!(cancelled, (TxState::AuthCancelled, Some(0)));

    // None of it is a call of refundd's: its money calls are the one refund.
    assert_eq!(refundds_money_calls(&admin).await, before);
    let ledger = admin.ledger().await.unwrap();
    assert_eq!(ledger.duplicates, 0);
    assert_eq!(
        ledger.calls,
        1 + 7,
        "the refund and refundd's seven inquiries"
    );
    assert_eq!(ledger.returned_by_calls, 300);
    assert_eq!(ledger.returned_by_portal, 400 + 1500);
    let listed: Vec<(String, PortalChange)> = (ledger.portal_changes.iter())
        .map(|p| (p.order_no.clone(), p.change.clone()))
        .collect();
    let mut made: Vec<(String, PortalChange)> = (changes.iter())
        .map(|(o, c)| (o.to_string(), c.clone()))
        .collect();
    made.push(("REVERSED".into(), PortalChange::Reverse { amount: None }));
    assert_eq!(listed, made);
    assert_eq!(admin.portal_changes().await.unwrap(), ledger.portal_changes);
}

/// The HTTP status and `{"error", "state"}` of a refused portal change.
fn refusal(e: SimAdminError) -> (StatusCode, Value) {
    match e {
        SimAdminError::Status { status, body } => (status, serde_json::from_str(&body).unwrap()),
        other => panic!("not a refusal: {other}"),
    }
}

#[tokio::test]
async fn the_portal_refuses_a_change_with_the_status_that_says_why() {
    let (sim, admin, client) = bank_with_a_portal().await;
    admin.load(&[refund_settling("R1")]).await.unwrap();

    // Its state does not allow it: 409, naming the state.
    let e = admin
        .portal("R1", &PortalChange::Refund { amount: 1 })
        .await;
    let (status, body) = refusal(e.unwrap_err());
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["state"], "20");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("state 20") && error.contains("12, 22"),
        "{error}"
    );

    // An order the bank does not know: 404.
    let e = admin.portal("NOPE", &PortalChange::Forget {}).await;
    assert_eq!(refusal(e.unwrap_err()).0, StatusCode::NOT_FOUND);

    // A body that names no change the portal makes: 400, with the reason.
    let http = reqwest::Client::new();
    let url = format!("{}/admin/portal/R1", sim.base_url());
    for body in [
        r#"{"change": "refund", "amount": 0}"#,
        r#"{"change": "refund", "amount": 2.5}"#,
        r#"{"change": "refund"}"#,
        r#"{"change": "capture", "amount": 1}"#,
        r#"{"change": "set_state", "state": "99"}"#,
        r#"not json"#,
    ] {
        let answer = (http.post(&url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = answer.json().await.unwrap();
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}: {error}"
        );
    }

    // Nothing refused changed the books or was listed.
    assert!(admin.portal_changes().await.unwrap().is_empty());
    let seen = seen_by_refundd(&client, "R1").await;
    assert_eq!(seen, (TxState::RefundSettling, Some(1500)));
}
