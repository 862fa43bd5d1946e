//! The bank simulator over real HTTP on a loopback port: every transition and
//! refusal as a client sees it, several refunds of one order and the reversal
//! of each, several merchants each under its own keys, the batch,
//! maintenance, each fault kind, the admin API and a bulk load of 100,000
//! transactions.

use crate::common::{eventually, window_around_now};
use std::collections::BTreeMap;
use std::time::Duration;

use refundd::ctbc::envelope::{from_big5_lossy, Envelope, EnvelopeError};
use refundd::ctbc::types::{MerId, TxState};
use refundd::ctbc::Operation;
use refundd::sim::ledger::transitions::TRANSITIONS;
use refundd::sim::{
    FaultKind, FaultPlan, FaultRule, SimConfig, SimError, SimMerchant, SimRefund, SimServer, SimTx,
    REFERENCE_IV, REFERENCE_MAC_KEY,
};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

const MERID: &str = "1234567";

struct Bank {
    server: SimServer,
    http: reqwest::Client,
    env: Envelope,
}

/// What came back for one call, before any opening.
struct Raw {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Bank {
    async fn start() -> Self {
        Self::start_with(SimConfig::for_tests()).await
    }

    async fn start_with(cfg: SimConfig) -> Self {
        let server = SimServer::start(cfg).await.unwrap();
        Self {
            server,
            http: reqwest::Client::new(),
            env: Envelope::new(REFERENCE_MAC_KEY.as_bytes(), REFERENCE_IV.as_bytes()).unwrap(),
        }
    }

    async fn load(&self, txs: &[SimTx]) {
        self.server.admin().load(txs).await.unwrap();
    }

    /// Posts a form body; a transport error (reset, dropped answer) is Err.
    async fn post_form(&self, op: Operation, form: String) -> Result<Raw, reqwest::Error> {
        let resp = self
            .http
            .post(format!("{}{}", self.server.base_url(), op.path()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await?.to_vec();
        Ok(Raw {
            status,
            content_type,
            body,
        })
    }

    async fn raw(&self, op: Operation, request: &Value) -> Result<Raw, reqwest::Error> {
        let api_enc = self.env.seal(&request.to_string()).unwrap();
        self.post_form(op, format!("MERID={MERID}&ApiEnc={api_enc}"))
            .await
    }

    /// `request` sealed with `env`, the form naming merchant `mer_id`.
    async fn raw_as(&self, mer_id: &str, env: &Envelope, op: Operation, request: &Value) -> Raw {
        let api_enc = env.seal(&request.to_string()).unwrap();
        let raw = self
            .post_form(op, format!("MERID={mer_id}&ApiEnc={api_enc}"))
            .await
            .unwrap();
        assert_eq!(raw.status, StatusCode::OK);
        raw
    }

    /// A call that must come back as a well-formed, sealed answer.
    async fn call(&self, op: Operation, request: &Value) -> Map<String, Value> {
        let raw = self.raw(op, request).await.unwrap();
        assert_eq!(raw.status, StatusCode::OK);
        let json = open_answer(&self.env, &raw.body).unwrap();
        serde_json::from_str(&json).unwrap()
    }
}

/// Reads `MERID=..&ApiEnc=..` and opens the envelope.
fn open_answer(env: &Envelope, body: &[u8]) -> Result<String, EnvelopeError> {
    let text = String::from_utf8_lossy(body);
    let api_enc = url::form_urlencoded::parse(text.as_bytes())
        .find(|(k, _)| k == "ApiEnc")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string());
    env.open(&api_enc)
}

fn amt(a: i64) -> String {
    format!("901 {a} 0")
}

fn inquiry(order: &str) -> Value {
    json!({"MERID": MERID, "LID-M": order, "VERSION": "3.2", "SwRevision": "test", "Tx_ATTRIBUTE": "TX_AUTH"})
}

fn reversal(order: &str, org: i64, new_amt: i64) -> Value {
    json!({"MERID": MERID, "LID-M": order, "XID": xid_of(order), "AuthCode": "AB1234", "OrgAmt": amt(org), "AuthNewAmt": amt(new_amt), "VERSION": "3.2", "SwRevision": "test"})
}

fn capture_reversal(order: &str, org: i64) -> Value {
    json!({"MERID": MERID, "LID-M": order, "XID": xid_of(order), "AuthCode": "AB1234", "OrgAmt": amt(org), "CapRevAmt": amt(0), "VERSION": "3.2", "SwRevision": "test"})
}

fn refund(order: &str, org: i64, cred: i64) -> Value {
    json!({"MERID": MERID, "LID-M": order, "AuthCode": "AB1234", "CredAmt": amt(cred), "OrgAmt": amt(org), "XID": xid_of(order), "VERSION": "3.2", "SwRevision": "test"})
}

fn refund_reversal(order: &str, org: i64, cred_rev: i64) -> Value {
    json!({"MERID": MERID, "LID-M": order, "XID": xid_of(order), "AuthCode": "AB1234", "CredRevAmt": amt(cred_rev), "OrgAmt": amt(org), "VERSION": "3.2", "SwRevision": "test"})
}

/// A refund reversal of the refund whose accepted answer is `refunded`, as
/// the bank's own libraries send it: `CredBatchID` and `CredBatchSeq` that
/// refund's, `OrgAmt` its amount, `CredRevAmt` 0.
fn reversal_of_refund(order: &str, refunded: &Map<String, Value>) -> Value {
    let refunded_amount: i64 = s(refunded, "RefAmt")
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut r = refund_reversal(order, refunded_amount, 0);
    r["CredBatchID"] = json!(s(refunded, "BatchID"));
    r["CredBatchSeq"] = json!(s(refunded, "BatchSeq"));
    r
}

/// Where an accepted refund's answer says the bank filed it.
fn refund_filed_at(a: &Map<String, Value>) -> (String, String, String) {
    (s(a, "BatchID"), s(a, "BatchSeq"), s(a, "RetrRef"))
}

/// The same, of a refund the bank holds.
fn refund_held_at(r: &SimRefund) -> (String, String, String) {
    (r.batch_id.clone(), r.batch_seq.clone(), r.retr_ref.clone())
}

/// The transaction id these tests give `order` at the bank.
fn xid_of(order: &str) -> String {
    format!("X-{order}")
}

fn tx(order: &str, amount: i64, state: TxState) -> SimTx {
    SimTx::new(order, xid_of(order), "AB1234", amount, state)
}

fn s(v: &Map<String, Value>, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

async fn state_of(bank: &Bank, order: &str) -> String {
    bank.server
        .admin()
        .transaction(order)
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test]
async fn inquiry_answers_known_and_unknown_orders() {
    let bank = Bank::start().await;
    bank.load(&[tx("O1", 1500, TxState::CapturedNotSettled)])
        .await;
    let a = bank.call(Operation::Inquiry, &inquiry("O1")).await;
    assert_eq!(s(&a, "RespCode"), "0");
    assert_eq!(s(&a, "ErrCode"), "00");
    // One record found; public adapters refuse an inquiry answer without it.
    assert_eq!(s(&a, "QueryCode"), "1");
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        [
            "MERID",
            "LID-M",
            "RespCode",
            "ErrCode",
            "ERRDESC",
            "QueryCode",
            "CurrentState",
            "XID",
            "AuthCode",
            "AuthAmt",
            "PAN",
            "Txn_date",
            "Txn_time",
            "ECI"
        ]
    );
    assert_eq!(s(&a, "CurrentState"), "10");
    assert_eq!(s(&a, "XID"), "X-O1");
    assert_eq!(s(&a, "AuthCode"), "AB1234");
    assert_eq!(s(&a, "AuthAmt"), "901 1500 0");
    assert_eq!(s(&a, "PAN"), "411111******1111");
    for k in ["Txn_date", "Txn_time", "ECI"] {
        assert!(!s(&a, k).is_empty(), "{k}");
    }
    let a = bank.call(Operation::Inquiry, &inquiry("NOPE")).await;
    assert_eq!(s(&a, "RespCode"), "99");
    assert_eq!(s(&a, "ErrCode"), "01");
    assert_eq!(s(&a, "ERRDESC"), "Order not found");
    // Without Tx_ATTRIBUTE it answers the same.
    let mut plain = inquiry("O1");
    plain.as_object_mut().unwrap().remove("Tx_ATTRIBUTE");
    assert_eq!(
        s(&bank.call(Operation::Inquiry, &plain).await, "CurrentState"),
        "10"
    );
    bank.server.shutdown().await;
}

#[tokio::test]
async fn reversal_cancels_or_lowers_and_counts_duplicates() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[
        tx("FULL", 1500, TxState::Authorised),
        tx("PART", 1500, TxState::Authorised),
    ])
    .await;
    let a = bank
        .call(Operation::Reversal, &reversal("FULL", 1500, 0))
        .await;
    assert_eq!(s(&a, "RespCode"), "0");
    assert_eq!(state_of(&bank, "FULL").await, "0");
    let a = bank
        .call(Operation::Reversal, &reversal("FULL", 1500, 0))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert_eq!(admin.duplicates().await.unwrap(), 1);

    let a = bank
        .call(Operation::Reversal, &reversal("PART", 1500, 1000))
        .await;
    assert_eq!(s(&a, "RespCode"), "0");
    let t = admin.transaction("PART").await.unwrap().unwrap();
    assert_eq!(
        (t.state.as_str(), t.auth_amount, t.returned_amount),
        ("1", 1000, 500)
    );
    let a = bank.call(Operation::Inquiry, &inquiry("PART")).await;
    assert_eq!(s(&a, "AuthAmt"), "901 1000 0");
    let a = bank
        .call(Operation::Reversal, &reversal("PART", 1500, 1000))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert_eq!(admin.duplicates().await.unwrap(), 2);
    let report = admin.ledger().await.unwrap();
    assert_eq!(report.returned_by_order["FULL"], 1500);
    assert_eq!(report.returned_by_order["PART"], 500);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn capture_reversal_then_reversal_and_duplicates() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[tx("C1", 800, TxState::CapturedNotSettled)])
        .await;
    let a = bank
        .call(Operation::CaptureReversal, &capture_reversal("C1", 800))
        .await;
    assert_eq!(s(&a, "RespCode"), "0");
    assert_eq!(state_of(&bank, "C1").await, "1");
    let a = bank
        .call(Operation::CaptureReversal, &capture_reversal("C1", 800))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert_eq!(admin.duplicates().await.unwrap(), 1);
    let a = bank
        .call(Operation::Reversal, &reversal("C1", 800, 0))
        .await;
    assert_eq!(s(&a, "RespCode"), "0");
    let a = bank
        .call(Operation::CaptureReversal, &capture_reversal("C1", 800))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert_eq!(admin.duplicates().await.unwrap(), 2);
    let t = admin.transaction("C1").await.unwrap().unwrap();
    assert_eq!((t.state.as_str(), t.returned_amount), ("0", 800));
    bank.server.shutdown().await;
}

#[tokio::test]
async fn refund_partial_refund_reversal_and_duplicates() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[tx("R1", 2000, TxState::Settled)]).await;
    let a = bank
        .call(Operation::Refund, &refund("R1", 2000, 2001))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    let a = bank.call(Operation::Refund, &refund("R1", 2000, 700)).await;
    assert_eq!(s(&a, "RespCode"), "0");
    assert_eq!(s(&a, "RefAmt"), "901 700 0");
    for k in ["RetrRef", "BatchID", "BatchSeq"] {
        assert!(!s(&a, k).is_empty(), "{k}");
    }
    let t = admin.transaction("R1").await.unwrap().unwrap();
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("20", 700, 700)
    );
    let a = bank.call(Operation::Refund, &refund("R1", 2000, 700)).await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert_eq!(admin.duplicates().await.unwrap(), 1);

    let a = bank
        .call(Operation::RefundReversal, &refund_reversal("R1", 2000, 700))
        .await;
    assert_eq!(s(&a, "RespCode"), "0");
    let t = admin.transaction("R1").await.unwrap().unwrap();
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("12", 0, 0)
    );
    let a = bank
        .call(Operation::RefundReversal, &refund_reversal("R1", 2000, 700))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert_eq!(admin.duplicates().await.unwrap(), 2);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn refund_reversal_as_public_adapters_send_it() {
    // OrgAmt is the refund being cancelled and CredRevAmt 0, as the public
    // adapters send it; the whole-refund reading keeps working beside it.
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[
        tx("P1", 2000, TxState::Settled),
        tx("W1", 900, TxState::Settled),
    ])
    .await;
    let a = bank.call(Operation::Refund, &refund("P1", 2000, 700)).await;
    assert_eq!(s(&a, "RespCode"), "0");
    let a = bank
        .call(Operation::RefundReversal, &refund_reversal("P1", 699, 0))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert!(s(&a, "ERRDESC").contains("OrgAmt"), "{a:?}");
    let a = bank
        .call(Operation::RefundReversal, &refund_reversal("P1", 700, 0))
        .await;
    assert_eq!(s(&a, "RespCode"), "0", "{a:?}");
    let t = admin.transaction("P1").await.unwrap().unwrap();
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("12", 0, 0)
    );
    // Sent again, it is a duplicate, not a new cancellation.
    let a = bank
        .call(Operation::RefundReversal, &refund_reversal("P1", 700, 0))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert_eq!(admin.duplicates().await.unwrap(), 1);

    let a = bank.call(Operation::Refund, &refund("W1", 900, 900)).await;
    assert_eq!(s(&a, "RespCode"), "0");
    let a = bank
        .call(Operation::RefundReversal, &refund_reversal("W1", 900, 0))
        .await;
    assert_eq!(s(&a, "RespCode"), "0", "{a:?}");
    assert_eq!(state_of(&bank, "W1").await, "12");
    assert_eq!(admin.ledger().await.unwrap().returned_total, 0);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn several_refunds_of_one_order_are_filed_apart_within_the_balance() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[tx("MR1", 1500, TxState::Settled)]).await;
    let first = bank
        .call(Operation::Refund, &refund("MR1", 1500, 600))
        .await;
    assert_eq!(s(&first, "RespCode"), "0");
    // While it settles (20), no further refund is accepted.
    let a = bank
        .call(Operation::Refund, &refund("MR1", 1500, 300))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert!(s(&a, "ERRDESC").contains("still settling"), "{a:?}");
    assert_eq!(state_of(&bank, "MR1").await, "20");
    admin.run_batch().await.unwrap();
    assert_eq!(state_of(&bank, "MR1").await, "22");
    // Settled: a further refund, OrgAmt the original amount again.
    let second = bank
        .call(Operation::Refund, &refund("MR1", 1500, 700))
        .await;
    assert_eq!(s(&second, "RespCode"), "0", "{second:?}");
    assert_eq!(s(&second, "RefAmt"), "901 700 0");
    assert_eq!(state_of(&bank, "MR1").await, "20");
    let (f, g) = (refund_filed_at(&first), refund_filed_at(&second));
    assert!(
        (f.0.clone(), f.1.clone()) != (g.0.clone(), g.1.clone()) && f.1 != g.1 && f.2 != g.2,
        "each refund is filed apart: {f:?}, {g:?}"
    );
    admin.run_batch().await.unwrap();
    // A third over what is left: refused, saying what is left.
    let a = bank
        .call(Operation::Refund, &refund("MR1", 1500, 300))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert!(
        s(&a, "ERRDESC").contains("over the balance") && s(&a, "ERRDESC").contains("200"),
        "{a:?}"
    );
    // The bank holds both refunds, filed as their answers said.
    let t = admin.transaction("MR1").await.unwrap().unwrap();
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("22", 1300, 1300)
    );
    let held: Vec<_> = t
        .refunds
        .iter()
        .map(|r| (r.amount, refund_held_at(r), r.reversed, r.settled))
        .collect();
    assert_eq!(held, [(600, f, false, true), (700, g, false, true)]);
    assert_eq!(admin.refunds_of("MR1").await.unwrap(), Some(t.refunds));
    let report = admin.ledger().await.unwrap();
    let refunds = &report.by_operation["refund"];
    assert_eq!((refunds.accepted, refunds.refused), (2, 2));
    assert_eq!(report.returned_by_calls, 1300);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn a_refund_reversal_cancels_the_refund_it_names() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[tx("RV1", 1500, TxState::Settled)]).await;
    let first = bank
        .call(Operation::Refund, &refund("RV1", 1500, 600))
        .await;
    admin.run_batch().await.unwrap();
    let second = bank
        .call(Operation::Refund, &refund("RV1", 1500, 500))
        .await;
    assert_eq!(s(&second, "RespCode"), "0");
    // The first settled in the batch: it can no longer be cancelled.
    let a = bank
        .call(
            Operation::RefundReversal,
            &reversal_of_refund("RV1", &first),
        )
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert!(s(&a, "ERRDESC").contains("settled"), "{a:?}");
    // The second, still settling, is.
    let a = bank
        .call(
            Operation::RefundReversal,
            &reversal_of_refund("RV1", &second),
        )
        .await;
    assert_eq!(s(&a, "RespCode"), "0", "{a:?}");
    let t = admin.transaction("RV1").await.unwrap().unwrap();
    // Back to where the refund found it (22: the first settled), its 500
    // back in the balance.
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("22", 600, 600)
    );
    assert_eq!(
        t.refunds.iter().map(|r| r.reversed).collect::<Vec<_>>(),
        [false, true]
    );
    // Sent again: a duplicate.
    let a = bank
        .call(
            Operation::RefundReversal,
            &reversal_of_refund("RV1", &second),
        )
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert_eq!(admin.duplicates().await.unwrap(), 1);
    // What came back to the balance can be refunded again, to the unit.
    let third = bank
        .call(Operation::Refund, &refund("RV1", 1500, 900))
        .await;
    assert_eq!(s(&third, "RespCode"), "0", "{third:?}");
    admin.run_batch().await.unwrap();
    // In 22 no refund reversal is accepted: the refund is in the batch.
    let a = bank
        .call(
            Operation::RefundReversal,
            &reversal_of_refund("RV1", &third),
        )
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    let t = admin.transaction("RV1").await.unwrap().unwrap();
    assert_eq!((t.state.as_str(), t.refunded_amount), ("22", 1500));
    bank.server.shutdown().await;
}

#[tokio::test]
async fn a_refund_reversal_naming_no_refund_needs_one_settling() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    // Two refunds settling at once, as the admin API may load them.
    let settling = |amount: i64, seq: &str| SimRefund {
        amount,
        batch_id: "20261127".into(),
        batch_seq: seq.into(),
        retr_ref: format!("RR{seq}"),
        reversed: false,
        settled: false,
    };
    let mut two = tx("NN1", 1500, TxState::RefundSettling);
    two.refunds = vec![settling(400, "000101"), settling(500, "000102")];
    (two.refunded_amount, two.returned_amount) = (900, 900);
    bank.load(&[two]).await;
    let unnamed = refund_reversal("NN1", 1500, 0);
    let a = bank.call(Operation::RefundReversal, &unnamed).await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert!(s(&a, "ERRDESC").contains("CredBatchID"), "{a:?}");
    let mut named = unnamed.clone();
    named["CredBatchID"] = json!("20261127");
    named["CredBatchSeq"] = json!("000101");
    let a = bank.call(Operation::RefundReversal, &named).await;
    assert_eq!(s(&a, "RespCode"), "0", "{a:?}");
    assert_eq!(
        state_of(&bank, "NN1").await,
        "20",
        "the other still settles"
    );
    // One left settling: a reversal naming none, as refundd's client sends
    // it, cancels it.
    let a = bank.call(Operation::RefundReversal, &unnamed).await;
    assert_eq!(s(&a, "RespCode"), "0", "{a:?}");
    let t = admin.transaction("NN1").await.unwrap().unwrap();
    assert_eq!(
        (t.state.as_str(), t.refunded_amount, t.returned_amount),
        ("12", 0, 0)
    );
    bank.server.shutdown().await;
}

/// The second merchant of the tests of several merchants, and its keys.
const OTHER_MERID: &str = "7654321";
const OTHER_MAC_KEY: &str = "QWERTYUIOPASDFGHJKLZXCVB";
const OTHER_IV: &str = "iv345678";

/// A simulator serving the reference merchant and `OTHER_MERID`.
async fn bank_of_two_merchants() -> (Bank, Envelope) {
    let mut cfg = SimConfig::for_tests();
    cfg.other_merchants = vec![SimMerchant {
        mer_id: MerId::parse(OTHER_MERID).unwrap(),
        mac_key: OTHER_MAC_KEY.into(),
        iv: OTHER_IV.into(),
    }];
    let bank = Bank::start_with(cfg).await;
    let other = Envelope::new(OTHER_MAC_KEY.as_bytes(), OTHER_IV.as_bytes()).unwrap();
    (bank, other)
}

/// `request` as merchant `OTHER_MERID` writes it.
fn as_other_merchant(mut request: Value) -> Value {
    request["MERID"] = json!(OTHER_MERID);
    request
}

/// An answer opened with `env`, which must open it.
fn opened_with(env: &Envelope, raw: &Raw) -> Map<String, Value> {
    serde_json::from_str(&open_answer(env, &raw.body).unwrap()).unwrap()
}

#[tokio::test]
async fn each_merchant_is_answered_under_its_own_keys_only() {
    let (bank, other) = bank_of_two_merchants().await;
    let mut theirs = tx("MB1", 700, TxState::Settled);
    theirs.mer_id = Some(OTHER_MERID.into());
    bank.load(&[tx("MA1", 900, TxState::Settled), theirs]).await;
    let ours = &bank.env;
    for (mer_id, env, order) in [(MERID, ours, "MA1"), (OTHER_MERID, &other, "MB1")] {
        let mut ask = inquiry(order);
        ask["MERID"] = json!(mer_id);
        let raw = bank.raw_as(mer_id, env, Operation::Inquiry, &ask).await;
        let a = opened_with(env, &raw);
        assert_eq!(
            (s(&a, "RespCode"), s(&a, "MERID"), s(&a, "CurrentState")),
            ("0".into(), mer_id.into(), "12".into())
        );
        assert!(String::from_utf8_lossy(&raw.body).starts_with(&format!("MERID={mer_id}&")));
        // The other merchant's keys do not open it.
        let stranger = if mer_id == MERID { &other } else { ours };
        assert!(open_answer(stranger, &raw.body).is_err(), "{mer_id}");
    }
    // The other merchant asking about, or refunding, this merchant's order:
    // the bank holds no such order for it.
    for (op, request) in [
        (Operation::Inquiry, inquiry("MA1")),
        (Operation::Refund, refund("MA1", 900, 900)),
    ] {
        let raw = bank
            .raw_as(OTHER_MERID, &other, op, &as_other_merchant(request))
            .await;
        let a = opened_with(&other, &raw);
        assert_eq!(
            (s(&a, "RespCode"), s(&a, "ErrCode"), s(&a, "ERRDESC")),
            ("99".into(), "01".into(), "Order not found".into()),
            "{op}"
        );
    }
    // Sealed with the other merchant's keys but naming this one: a MAC
    // failure, answered under this merchant's keys.
    let raw = bank
        .raw_as(MERID, &other, Operation::Refund, &refund("MA1", 900, 900))
        .await;
    let a = opened_with(ours, &raw);
    assert_eq!(s(&a, "RespCode"), "96");
    assert!(s(&a, "ERRDESC").contains("MAC check failed"), "{a:?}");
    // A MERID the bank does not serve: a MAC failure too.
    let mut stranger = inquiry("MA1");
    stranger["MERID"] = json!("1111111");
    let raw = bank
        .raw_as("1111111", ours, Operation::Inquiry, &stranger)
        .await;
    assert_eq!(s(&opened_with(ours, &raw), "RespCode"), "96");
    // Nothing moved but the other merchant's refund of its own order.
    let raw = bank
        .raw_as(
            OTHER_MERID,
            &other,
            Operation::Refund,
            &as_other_merchant(refund("MB1", 700, 700)),
        )
        .await;
    assert_eq!(s(&opened_with(&other, &raw), "RespCode"), "0");
    assert_eq!(state_of(&bank, "MA1").await, "12");
    let t = bank
        .server
        .admin()
        .transaction("MB1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.state.as_str(), t.mer_id.as_deref()),
        ("20", Some(OTHER_MERID))
    );
    // A transaction of a merchant the simulator does not serve is not loaded.
    let mut unserved = tx("MX1", 100, TxState::Settled);
    unserved.mer_id = Some("1111111".into());
    assert!(bank.server.admin().load(&[unserved]).await.is_err());
    bank.server.shutdown().await;
}

#[tokio::test]
async fn refusals_name_the_field_or_the_state() {
    let bank = Bank::start().await;
    bank.load(&[tx("M1", 1500, TxState::Authorised)]).await;
    let mut bad_xid = reversal("M1", 1500, 0);
    bad_xid["XID"] = json!("X-OTHER");
    let a = bank.call(Operation::Reversal, &bad_xid).await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert!(s(&a, "ERRDESC").contains("XID"));
    let mut bad_auth = reversal("M1", 1500, 0);
    bad_auth["AuthCode"] = json!("ZZ9999");
    assert!(s(&bank.call(Operation::Reversal, &bad_auth).await, "ERRDESC").contains("AuthCode"));
    let a = bank
        .call(Operation::Reversal, &reversal("M1", 1499, 0))
        .await;
    assert!(s(&a, "ERRDESC").contains("OrgAmt"));
    // A refund on an authorisation: the state forbids it, said in Chinese (Big5 on the wire).
    let a = bank.call(Operation::Refund, &refund("M1", 1500, 100)).await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert!(s(&a, "ERRDESC").contains("交易狀態不允許"), "{a:?}");
    // Unknown order for a mutating call.
    let a = bank
        .call(Operation::Refund, &refund("NOPE", 1500, 100))
        .await;
    assert_eq!(s(&a, "RespCode"), "99");
    assert_eq!(state_of(&bank, "M1").await, "1");
    assert_eq!(bank.server.admin().duplicates().await.unwrap(), 0);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn every_mutating_operation_in_every_state_over_http() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    let states = TxState::all_known();
    let mut txs = Vec::new();
    for (i, st) in states.iter().enumerate() {
        for op in 0..4 {
            // In a refund's states, a refund of 400 the bank holds (settling
            // in 20 and 21): what a refund reversal cancels.
            let mut t = tx(&format!("S{i}_{op}"), 1000, st.clone());
            if ["20", "21", "22"].contains(&st.code()) {
                (t.refunded_amount, t.returned_amount) = (400, 400);
            }
            txs.push(t);
        }
    }
    bank.load(&txs).await;
    let order = TRANSITIONS.map(|t| t.operation);
    assert_eq!(
        order,
        [
            Operation::Reversal,
            Operation::CaptureReversal,
            Operation::Refund,
            Operation::RefundReversal
        ]
    );
    for (i, st) in states.iter().enumerate() {
        let o = |op: usize| format!("S{i}_{op}");
        let answers = [
            bank.call(Operation::Reversal, &reversal(&o(0), 1000, 0))
                .await,
            bank.call(Operation::CaptureReversal, &capture_reversal(&o(1), 1000))
                .await,
            bank.call(Operation::Refund, &refund(&o(2), 1000, 600))
                .await,
            bank.call(Operation::RefundReversal, &refund_reversal(&o(3), 1000, 0))
                .await,
        ];
        // The answers are in the state table's order, which says where each
        // operation is accepted and where it leads.
        let expected = TRANSITIONS.iter().map(|t| (t.accepted_in, t.to.code()));
        for (op, (a, (accepted_in, to))) in answers.iter().zip(expected).enumerate() {
            let accepted = accepted_in.contains(st);
            assert_eq!(s(a, "RespCode") == "0", accepted, "op {op} in {st}: {a:?}");
            let now = state_of(&bank, &o(op)).await;
            assert_eq!(
                now,
                if accepted { to } else { st.code() },
                "op {op} in {st}"
            );
            if !accepted {
                assert!(!s(a, "ERRDESC").is_empty());
            }
        }
    }
    // Duplicates: reversal on 0; capture reversal on 1 and 0; refund on 20
    // and 21, while an earlier refund settles.
    let duplicate_rows: usize = TRANSITIONS.iter().map(|t| t.duplicate_in.len()).sum();
    assert_eq!(duplicate_rows, 5);
    assert_eq!(admin.duplicates().await.unwrap(), 5);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn batch_locks_transactions_while_it_runs() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[
        tx("B10", 500, TxState::CapturedNotSettled),
        tx("B20", 500, TxState::RefundSettling),
        tx("B1", 500, TxState::Authorised),
    ])
    .await;
    let started = admin.batch_start().await.unwrap();
    assert_eq!((started.captures, started.refunds), (1, 1));
    let a = bank.call(Operation::Inquiry, &inquiry("B10")).await;
    assert_eq!(s(&a, "CurrentState"), "11");
    assert_eq!(
        s(
            &bank.call(Operation::Inquiry, &inquiry("B20")).await,
            "CurrentState"
        ),
        "21"
    );
    let a = bank
        .call(Operation::CaptureReversal, &capture_reversal("B10", 500))
        .await;
    assert_ne!(s(&a, "RespCode"), "0");
    assert!(s(&a, "ERRDESC").contains("batch running"), "{a:?}");
    let a = bank
        .call(Operation::RefundReversal, &refund_reversal("B20", 500, 0))
        .await;
    assert!(s(&a, "ERRDESC").contains("batch running"), "{a:?}");
    // Authorisations outside the capture file are not locked.
    let a = bank
        .call(Operation::Reversal, &reversal("B1", 500, 0))
        .await;
    assert_eq!(s(&a, "RespCode"), "0");
    let finished = admin.batch_finish().await.unwrap();
    assert_eq!((finished.captures, finished.refunds), (1, 1));
    assert_eq!(state_of(&bank, "B10").await, "12");
    assert_eq!(state_of(&bank, "B20").await, "22");
    let a = bank.call(Operation::Refund, &refund("B10", 500, 500)).await;
    assert_eq!(s(&a, "RespCode"), "0");
    let run = admin.run_batch().await.unwrap();
    assert_eq!(run.started.refunds, 1);
    assert_eq!(run.finished.refunds, 1);
    assert_eq!(state_of(&bank, "B10").await, "22");
    bank.server.shutdown().await;
}

#[tokio::test]
async fn batch_runs_on_the_clock() {
    let mut cfg = SimConfig::for_tests();
    cfg.batch_every = Some(Duration::from_millis(50));
    cfg.batch_duration = Duration::from_millis(50);
    let bank = Bank::start_with(cfg).await;
    bank.load(&[tx("K1", 500, TxState::CapturedNotSettled)])
        .await;
    // Wait for the clock to settle it, observing 11 on the way if we catch it.
    eventually(
        Duration::from_secs(10),
        "the clock to run the batch",
        || async { state_of(&bank, "K1").await == "12" },
    )
    .await;
    bank.server.shutdown().await;
}

#[tokio::test]
async fn maintenance_answers_a_503_html_page() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[tx("W1", 500, TxState::Authorised)]).await;
    admin.set_maintenance(true).await.unwrap();
    let raw = bank
        .raw(Operation::Reversal, &reversal("W1", 500, 0))
        .await
        .unwrap();
    assert_eq!(raw.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(raw.content_type.starts_with("text/html"));
    assert!(from_big5_lossy(&raw.body).contains("系統維護"));
    assert_eq!(state_of(&bank, "W1").await, "1");
    admin.set_maintenance(false).await.unwrap();
    assert_eq!(
        s(
            &bank.call(Operation::Inquiry, &inquiry("W1")).await,
            "RespCode"
        ),
        "0"
    );
    // A daily window around now (Asia/Taipei) does the same.
    let window = window_around_now(30, 30);
    admin
        .set_maintenance_windows(false, vec![window])
        .await
        .unwrap();
    let raw = bank.raw(Operation::Inquiry, &inquiry("W1")).await.unwrap();
    assert_eq!(raw.status, StatusCode::SERVICE_UNAVAILABLE);
    admin.set_maintenance_windows(false, vec![]).await.unwrap();
    let report = admin.ledger().await.unwrap();
    assert_eq!(report.faults["maintenance"], 2);
    assert_eq!(report.not_processed, 2);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn requests_the_bank_cannot_read_are_refused() {
    let bank = Bank::start().await;
    bank.load(&[tx("E1", 500, TxState::Authorised)]).await;
    let json = reversal("E1", 500, 0).to_string();
    let forged = bank
        .env
        .seal_with_forged_mac(&json, &"0".repeat(48))
        .unwrap();
    for form in [
        format!("MERID={MERID}&ApiEnc={forged}"),
        format!("MERID={MERID}&ApiEnc=NOT-HEX"),
        format!("MERID={MERID}&ApiEnc=ABCD"),
        format!("MERID=7654321&ApiEnc={}", bank.env.seal(&json).unwrap()),
        "garbage".to_string(),
    ] {
        let raw = bank
            .post_form(Operation::Reversal, form.clone())
            .await
            .unwrap();
        assert_eq!(raw.status, StatusCode::OK, "{form}");
        let a: Map<String, Value> =
            serde_json::from_str(&open_answer(&bank.env, &raw.body).unwrap()).unwrap();
        assert_ne!(s(&a, "RespCode"), "0", "{form}");
        assert!(!s(&a, "ERRDESC").is_empty(), "{form}");
    }
    let raw = bank
        .post_form(
            Operation::Reversal,
            format!("MERID={MERID}&ApiEnc={forged}"),
        )
        .await
        .unwrap();
    let a: Map<String, Value> =
        serde_json::from_str(&open_answer(&bank.env, &raw.body).unwrap()).unwrap();
    assert!(s(&a, "ERRDESC").contains("MAC check failed"));
    assert_eq!(state_of(&bank, "E1").await, "1");
    assert_eq!(bank.server.admin().ledger().await.unwrap().refused, 6);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn bank_paths_answer_under_micropos_as_well_as_at_the_root() {
    let bank = Bank::start().await;
    bank.load(&[tx("MP1", 500, TxState::Settled)]).await;
    let api_enc = |req: &Value| bank.env.seal(&req.to_string()).unwrap();
    for (op, req) in [
        (Operation::Inquiry, inquiry("MP1")),
        (Operation::Refund, refund("MP1", 500, 200)),
        (Operation::RefundReversal, refund_reversal("MP1", 500, 200)),
        (Operation::Inquiry, inquiry("MP1")),
    ] {
        let resp = bank
            .http
            .post(format!("{}/MicroPos{}", bank.server.base_url(), op.path()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("MERID={MERID}&ApiEnc={}", api_enc(&req)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{op}");
        let body = resp.bytes().await.unwrap();
        let a: Map<String, Value> =
            serde_json::from_str(&open_answer(&bank.env, &body).unwrap()).unwrap();
        assert_eq!(s(&a, "RespCode"), "0", "{op}: {a:?}");
    }
    let report = bank.server.admin().ledger().await.unwrap();
    assert_eq!((report.calls, report.accepted), (4, 4));
    assert_eq!(state_of(&bank, "MP1").await, "12");
    bank.server.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let bank = Bank::start().await;
    let base = bank.server.base_url();
    for path in [
        "/NewPos/Nope",
        "/",
        "/admin/nope",
        "/MicroPos/NewPos/Nope",
        "/MicroPos/admin/ledger",
        "/MicroPosNewPos/Refund",
    ] {
        let r = bank
            .http
            .post(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = bank
        .http
        .get(format!("{base}/admin/transactions/NOPE"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn non_loopback_listen_needs_permission() {
    let mut cfg = SimConfig::for_tests();
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    match SimServer::start(cfg.clone()).await {
        Err(SimError::NonLoopbackListen(_)) => {}
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("listened on 0.0.0.0 without permission"),
    }
    cfg.allow_non_loopback = true;
    let server = SimServer::start(cfg).await.unwrap();
    server.shutdown().await;
    let mut cfg = SimConfig::for_tests();
    cfg.mac_key = "short".into();
    assert!(matches!(
        SimServer::start(cfg).await,
        Err(SimError::Keys { .. })
    ));
}

/// Starts a bank where `kind` always fires on refunds, loads one settled order
/// and sends one refund of it.
async fn refund_with_fault(kind: FaultKind) -> (Bank, Result<Raw, reqwest::Error>) {
    let mut cfg = SimConfig::for_tests();
    cfg.faults = FaultPlan::always(kind, Some(Operation::Refund));
    let bank = Bank::start_with(cfg).await;
    bank.load(&[tx("F1", 900, TxState::Settled)]).await;
    let raw = bank.raw(Operation::Refund, &refund("F1", 900, 900)).await;
    (bank, raw)
}

async fn fault_count(bank: &Bank, kind: FaultKind) -> u64 {
    let report = bank.server.admin().ledger().await.unwrap();
    report.faults.get(kind.as_str()).copied().unwrap_or(0)
}

#[tokio::test]
async fn fault_5xx_is_not_applied() {
    let (bank, raw) = refund_with_fault(FaultKind::ServerError).await;
    assert!(raw.unwrap().status.is_server_error());
    assert_eq!(state_of(&bank, "F1").await, "12");
    assert_eq!(fault_count(&bank, FaultKind::ServerError).await, 1);
    // Inquiries are not covered by the refund rule.
    assert_eq!(
        s(
            &bank.call(Operation::Inquiry, &inquiry("F1")).await,
            "CurrentState"
        ),
        "12"
    );
    bank.server.shutdown().await;
}

#[tokio::test]
async fn fault_html_200_is_not_applied() {
    let (bank, raw) = refund_with_fault(FaultKind::Html200).await;
    let raw = raw.unwrap();
    assert_eq!(raw.status, StatusCode::OK);
    assert!(raw.content_type.starts_with("text/html"));
    assert!(String::from_utf8_lossy(&raw.body).contains("<html"));
    assert_eq!(state_of(&bank, "F1").await, "12");
    assert_eq!(fault_count(&bank, FaultKind::Html200).await, 1);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn fault_maintenance_200_is_the_utf8_notice_and_not_applied() {
    let (bank, raw) = refund_with_fault(FaultKind::Maintenance200).await;
    let raw = raw.unwrap();
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.content_type, "text/html; charset=utf-8");
    // The Chinese text travels as numeric character references, in ASCII.
    let page = String::from_utf8(raw.body).unwrap();
    assert!(page.is_ascii(), "{page}");
    assert!(
        page.contains("<title>&#31995;&#32113;&#32173;&#35703;"),
        "{page}"
    );
    assert_eq!(state_of(&bank, "F1").await, "12");
    assert_eq!(fault_count(&bank, FaultKind::Maintenance200).await, 1);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn fault_reset_is_a_transport_error_and_not_applied() {
    let (bank, raw) = refund_with_fault(FaultKind::Reset).await;
    // The connection closes before any status line: the request itself fails.
    assert!(raw.is_err_and(|e| e.is_request() && e.status().is_none()));
    assert_eq!(state_of(&bank, "F1").await, "12");
    assert_eq!(fault_count(&bank, FaultKind::Reset).await, 1);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn fault_apply_then_drop_applies_but_loses_the_answer() {
    let (bank, raw) = refund_with_fault(FaultKind::ApplyThenDrop).await;
    assert!(raw.is_err_and(|e| e.is_request() && e.status().is_none()));
    let t = bank
        .server
        .admin()
        .transaction("F1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.state.as_str(), t.returned_amount), ("20", 900));
    let calls = bank.server.admin().calls_of("F1").await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].outcome, refundd::sim::CallDisposition::Accepted);
    assert_eq!(calls[0].fault.as_deref(), Some("apply_then_drop"));
    bank.server.shutdown().await;
}

#[tokio::test]
async fn fault_garbage_cannot_be_opened() {
    let (bank, raw) = refund_with_fault(FaultKind::Garbage).await;
    let raw = raw.unwrap();
    assert_eq!(raw.status, StatusCode::OK);
    assert!(open_answer(&bank.env, &raw.body).is_err());
    assert_eq!(fault_count(&bank, FaultKind::Garbage).await, 1);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn fault_wrong_mac_fails_the_mac_check() {
    let (bank, raw) = refund_with_fault(FaultKind::WrongMac).await;
    let raw = raw.unwrap();
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(
        open_answer(&bank.env, &raw.body),
        Err(EnvelopeError::MacMismatch)
    );
    assert_eq!(state_of(&bank, "F1").await, "20");
    assert_eq!(fault_count(&bank, FaultKind::WrongMac).await, 1);
    bank.server.shutdown().await;
}

#[tokio::test]
async fn fault_latency_and_rules_by_order_number() {
    let mut cfg = SimConfig::for_tests();
    cfg.faults = FaultPlan {
        rules: vec![
            FaultRule {
                order_no: Some("SLOW".into()),
                latency_ms: 150,
                jitter_ms: 50,
                ..FaultRule::default()
            },
            FaultRule {
                order_no: Some("DOWN".into()),
                p_5xx: 1.0,
                ..FaultRule::default()
            },
        ],
    };
    let bank = Bank::start_with(cfg).await;
    bank.load(&[
        tx("SLOW", 100, TxState::Settled),
        tx("DOWN", 100, TxState::Settled),
        tx("FINE", 100, TxState::Settled),
    ])
    .await;
    assert_eq!(
        s(
            &bank.call(Operation::Inquiry, &inquiry("SLOW")).await,
            "RespCode"
        ),
        "0"
    );
    let raw = bank
        .raw(Operation::Inquiry, &inquiry("DOWN"))
        .await
        .unwrap();
    assert!(raw.status.is_server_error());
    assert_eq!(
        s(
            &bank.call(Operation::Inquiry, &inquiry("FINE")).await,
            "RespCode"
        ),
        "0"
    );
    // The latency rule held back SLOW's answer, by its latency and jitter,
    // and no other order's: the bank's call log says by how much.
    let admin = bank.server.admin();
    let mut held = BTreeMap::new();
    for no in ["SLOW", "DOWN", "FINE"] {
        let calls = admin.calls_of(no).await.unwrap();
        assert_eq!(calls.len(), 1, "{no}: {calls:?}");
        held.insert(no, calls[0].latency_ms);
    }
    assert!((150..=200).contains(&held["SLOW"]), "{held:?}");
    assert_eq!((held["DOWN"], held["FINE"]), (0, 0), "{held:?}");
    // Faults can be changed (and checked) at run time.
    admin.set_faults(&FaultPlan::none()).await.unwrap();
    assert_eq!(admin.faults().await.unwrap(), FaultPlan::none());
    let raw = bank
        .raw(Operation::Inquiry, &inquiry("DOWN"))
        .await
        .unwrap();
    assert_eq!(raw.status, StatusCode::OK);
    let mut bad = FaultPlan::uniform(0.1);
    bad.rules[0].p_reset = 2.0;
    assert!(admin.set_faults(&bad).await.is_err());
    bank.server.shutdown().await;
}

/// What a client sees of one call, for comparing runs.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Transport,
    Status(u16),
    Unreadable,
    Answer(String),
}

async fn chaos_run(seed: u64) -> (Vec<Seen>, refundd::sim::LedgerReport) {
    let mut cfg = SimConfig::for_tests();
    cfg.seed = seed;
    cfg.faults = FaultPlan::uniform(0.1);
    let bank = Bank::start_with(cfg).await;
    let txs: Vec<SimTx> = (0..40)
        .map(|i| tx(&format!("CH{i}"), 100, TxState::Settled))
        .collect();
    bank.load(&txs).await;
    let mut seen = Vec::new();
    for i in 0..40 {
        let order = format!("CH{i}");
        for req in [inquiry(&order), refund(&order, 100, 100)] {
            let op = if req.get("CredAmt").is_some() {
                Operation::Refund
            } else {
                Operation::Inquiry
            };
            seen.push(match bank.raw(op, &req).await {
                Err(_) => Seen::Transport,
                Ok(r) if r.status != StatusCode::OK => Seen::Status(r.status.as_u16()),
                Ok(r) => match open_answer(&bank.env, &r.body) {
                    Ok(json) => {
                        let a: Map<String, Value> = serde_json::from_str(&json).unwrap();
                        Seen::Answer(s(&a, "RespCode"))
                    }
                    Err(_) => Seen::Unreadable,
                },
            });
        }
    }
    let report = bank.server.admin().ledger().await.unwrap();
    bank.server.shutdown().await;
    (seen, report)
}

#[tokio::test]
async fn the_same_seed_replays_the_same_faults() {
    let (a, ra) = chaos_run(7).await;
    let (b, rb) = chaos_run(7).await;
    assert_eq!(a, b);
    assert_eq!(ra.faults, rb.faults);
    assert_eq!(ra.returned_total, rb.returned_total);
    assert!(
        a.iter().any(|s| *s != Seen::Answer("0".into())),
        "no fault fired"
    );
    assert!(a.contains(&Seen::Answer("0".into())));
}

#[tokio::test]
async fn ledger_totals_match_the_accepted_calls_of_a_concurrent_mixed_run() {
    let bank = std::sync::Arc::new(Bank::start().await);
    let mut txs = Vec::new();
    for i in 0..200 {
        let st = match i % 4 {
            0 => TxState::Authorised,
            1 => TxState::CapturedNotSettled,
            2 => TxState::Settled,
            _ => TxState::RefundSettling,
        };
        let mut t = tx(&format!("MX{i}"), 1000 + i, st.clone());
        if st == TxState::RefundSettling {
            t.refunded_amount = 300;
        }
        txs.push(t);
    }
    bank.load(&txs).await;
    // 32 concurrent workers; each order gets its operation twice (the second
    // is a duplicate) and the client adds up what the accepted calls returned.
    let mut tasks = Vec::new();
    for w in 0..32 {
        let bank = bank.clone();
        tasks.push(tokio::spawn(async move {
            let mut returned: BTreeMap<String, i64> = BTreeMap::new();
            let mut accepted = 0u64;
            for i in (w..200).step_by(32) {
                let order = format!("MX{i}");
                let org = 1000 + i as i64;
                let (op, req, gives) = match i % 4 {
                    0 => (Operation::Reversal, reversal(&order, org, 400), org - 400),
                    1 => (Operation::CaptureReversal, capture_reversal(&order, org), 0),
                    2 => (Operation::Refund, refund(&order, org, 250), 250),
                    _ => (
                        Operation::RefundReversal,
                        refund_reversal(&order, org, 0),
                        -300,
                    ),
                };
                for _ in 0..2 {
                    let a = bank.call(Operation::Inquiry, &inquiry(&order)).await;
                    assert_eq!(s(&a, "RespCode"), "0");
                    let a = bank.call(op, &req).await;
                    if s(&a, "RespCode") == "0" {
                        accepted += 1;
                        *returned.entry(order.clone()).or_default() += gives;
                    }
                }
            }
            (returned, accepted)
        }));
    }
    let mut returned: BTreeMap<String, i64> = BTreeMap::new();
    let mut accepted = 0;
    for t in tasks {
        let (r, a) = t.await.unwrap();
        returned.extend(r);
        accepted += a;
    }
    returned.retain(|_, v| *v != 0);
    let report = bank.server.admin().ledger().await.unwrap();
    let total: i64 = returned.values().sum();
    assert_eq!(report.returned_by_order.values().sum::<i64>(), total);
    assert_eq!(report.returned_by_calls, total);
    assert_eq!(report.returned_by_order, returned);
    // Inquiries are accepted calls too: 2 per order per round.
    assert_eq!(accepted, 200);
    assert_eq!(report.accepted, 200 + 400);
    // Every second call was a duplicate, except refund reversals where the
    // second is a duplicate too (12 after a refund reversal): 200 duplicates.
    assert_eq!(report.duplicates, 200);
    assert_eq!(report.calls, 800);
    // The call log can be read back in full.
    assert_eq!(bank.server.admin().calls().await.unwrap().len(), 800);
    if let Some(bank) = std::sync::Arc::into_inner(bank) {
        bank.server.shutdown().await;
    }
}

#[tokio::test]
async fn admin_reads_one_transaction_and_resets() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    bank.load(&[tx("A1", 100, TxState::Authorised)]).await;
    assert_eq!(
        admin.transaction("A1").await.unwrap().unwrap().auth_amount,
        100
    );
    assert!(admin.transaction("A2").await.unwrap().is_none());
    assert_eq!(admin.transactions(0, 10).await.unwrap().len(), 1);
    let mut bad = tx("A2", 100, TxState::Authorised);
    bad.state = "42".into();
    assert!(admin.load(&[bad]).await.is_err());
    admin.set_maintenance(true).await.unwrap();
    admin.set_faults(&FaultPlan::uniform(0.5)).await.unwrap();
    admin.reset().await.unwrap();
    assert!(admin.transaction("A1").await.unwrap().is_none());
    assert_eq!(admin.ledger().await.unwrap().transactions, 0);
    assert_eq!(admin.faults().await.unwrap(), FaultPlan::none());
    let a = bank.call(Operation::Inquiry, &inquiry("A1")).await;
    assert_eq!(s(&a, "RespCode"), "99");
    bank.server.shutdown().await;
}

#[tokio::test]
async fn loads_100000_transactions_and_answers_inquiries() {
    let bank = Bank::start().await;
    let admin = bank.server.admin();
    let txs: Vec<SimTx> = (0..100_000)
        .map(|i| {
            tx(
                &format!("BULK{i:06}"),
                100 + i % 5000,
                TxState::CapturedNotSettled,
            )
        })
        .collect();
    // How long this takes is a benchmark's question (benches/sim_load.rs),
    // not this test's.
    assert_eq!(admin.load(&txs).await.unwrap(), 100_000);
    assert_eq!(admin.ledger().await.unwrap().transactions, 100_000);
    let sample: Vec<i64> = (0..200).map(|k| k * 499 + 7).collect();
    let answers = futures::future::join_all(sample.iter().map(|i| {
        let bank = &bank;
        async move {
            let a = bank
                .call(Operation::Inquiry, &inquiry(&format!("BULK{i:06}")))
                .await;
            (*i, a)
        }
    }))
    .await;
    for (i, a) in answers {
        assert_eq!(s(&a, "RespCode"), "0");
        assert_eq!(s(&a, "CurrentState"), "10");
        assert_eq!(s(&a, "AuthAmt"), amt(100 + i % 5000));
    }
    bank.server.shutdown().await;
}
