//! The CTBC client against a small fake bank on 127.0.0.1 speaking real HTTP
//! and the real envelope: every request and answer type end to end, and every
//! way the bank or the network can fail, each mapped to the error class the
//! engine must act on: redirects, and answers that name another call, among
//! them. The fake bank is `common::fake_bank`.

use crate::common::fake_bank::{
    config, envelope, parse_inquiry_request, refusal_answer_json, FakeBank, Reply, IV, KEY, MERID,
};
use crate::common::{twd, Captured};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refundd::ctbc::envelope::Envelope;
use refundd::ctbc::wire::string_object;
use refundd::ctbc::wire::{form_body, json_text, seal_form};
use refundd::ctbc::{Accepted, Client, ClientSetupError, Inquiry, InquiryRecord, RefundAccepted};
use refundd::ctbc::{
    AuthCode, CaptureReversal, CtbcError, MaskedPan, Money, Operation, OrderNo, Refund,
    RefundReversal, Reversal, TxState, Xid,
};

const REF_JSON: &str = r#"{"MERID":"1234567","LID-M":"ORDER001","VERSION":"3.2","SwRevision":"MicroQuery Server 3.2 (2019/10/25)","Tx_ATTRIBUTE":"TX_AUTH"}"#;

fn order() -> OrderNo {
    OrderNo::parse("ORDER001").unwrap()
}

// ------------------------------------------------------------------ helpers

fn xid() -> Xid {
    Xid::parse("20240101ABCDEF123456").unwrap()
}

fn auth_code() -> AuthCode {
    AuthCode::parse("A1B2C3").unwrap()
}

fn refund_of(amount: i64) -> Refund {
    Refund {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        amount: twd(amount),
    }
}

fn full_inquiry() -> Inquiry {
    Inquiry {
        state: TxState::Settled,
        xid: Some(xid()),
        auth_code: Some(auth_code()),
        auth_amount: Some(twd(1500)),
        pan: Some(MaskedPan::from_bank("411111******1111")),
        txn_date: Some("2024/01/01".into()),
        txn_time: Some("12:34:56".into()),
        eci: Some("05".into()),
        err_code: "00".into(),
        records: Vec::new(),
    }
}

/// Error text an operator reads must carry no key, IV, ciphertext or card number.
fn assert_safe_to_log(err: &CtbcError) {
    eprintln!("operator sees: {err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(KEY) && !text.contains(IV), "{text}");
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        assert!(run < 24, "a long hex run (ciphertext?) in: {text}");
    }
    let mut digits = 0;
    for c in text.chars() {
        digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
        assert!(digits < 13, "a card-number-like run in: {text}");
    }
    assert_no_control_chars(&err.to_string());
}

/// Bank text reaches logs and the database: no NUL, escape or other control character.
fn assert_no_control_chars(text: &str) {
    assert!(!text.chars().any(char::is_control), "{text:?}");
}

fn html(status: u16, body: &[u8]) -> Reply {
    Reply::Raw {
        status,
        content_type: "text/html; charset=big5",
        body: body.to_vec(),
    }
}

fn maintenance_page_big5() -> Vec<u8> {
    encoding_rs::BIG5
        .encode("<html><head><title>系統維護中</title></head><body>請稍後再試</body></html>")
        .0
        .into_owned()
}

// ------------------------------------------------------ round trips: requests

#[tokio::test]
async fn inquiry_sends_the_reference_request_and_reads_every_field() {
    let bank = FakeBank::answering(full_inquiry().to_answer_json()).await;
    let answer = bank.client().inquiry(&order()).await.unwrap();
    assert_eq!(answer, full_inquiry());

    let received = bank.received();
    assert_eq!(received.len(), 1);
    let req = &received[0];
    assert_eq!(req.path, "/MicroPos/NewQuery/InquiryByLidm");
    assert_eq!(req.content_type, "application/x-www-form-urlencoded");
    // Byte for byte the protocol document's reference request.
    let expected = form_body(MERID, &envelope().seal(REF_JSON).unwrap());
    assert_eq!(String::from_utf8(req.body.clone()).unwrap(), expected);
    assert!(expected.contains("ApiEnc=B23A3F7C212A186468F9C150A6A9F723"));
    assert_eq!(json_text(&req.json()), REF_JSON);
    let (mer, order_no) = parse_inquiry_request(&req.json());
    assert_eq!((mer.as_str(), order_no), (MERID, order()));
}

#[tokio::test]
async fn inquiry_reports_every_state_code() {
    let state = Arc::new(Mutex::new(TxState::Authorised));
    let shared = state.clone();
    let bank = FakeBank::start(move |_| {
        Reply::Answer(string_object([
            ("RespCode", "0".to_string()),
            ("ErrCode", "00".to_string()),
            ("CurrentState", shared.lock().unwrap().code().to_string()),
        ]))
    })
    .await;
    let client = bank.client();
    let mut every = TxState::all_known().to_vec();
    every.push(TxState::Unknown("99".into()));
    for s in every {
        *state.lock().unwrap() = s.clone();
        let answer = client.inquiry(&order()).await.unwrap();
        assert_eq!(answer.state, s);
        assert_eq!(answer.xid, None);
    }
}

#[tokio::test]
async fn reversal_round_trip() {
    let accepted = Accepted {
        err_code: "00".into(),
        message: "交易成功".into(),
    };
    let bank = FakeBank::answering(accepted.to_answer_json()).await;
    let req = Reversal {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        new_auth_amount: twd(0),
    };
    assert_eq!(bank.client().reversal(&req).await.unwrap(), accepted);
    let sent = &bank.received()[0];
    assert_eq!(sent.path, "/MicroPos/NewPos/Reversal");
    assert_eq!(
        sent.json().keys().collect::<Vec<_>>(),
        [
            "MERID",
            "LID-M",
            "XID",
            "AuthCode",
            "OrgAmt",
            "AuthNewAmt",
            "VERSION",
            "SwRevision"
        ]
    );
    let (mer, parsed) = Reversal::from_request_json(&sent.json()).unwrap();
    assert_eq!((mer.as_str(), parsed), (MERID, req));
}

#[tokio::test]
async fn capture_reversal_round_trip() {
    let accepted = Accepted {
        err_code: "00".into(),
        message: String::new(),
    };
    let bank = FakeBank::answering(accepted.to_answer_json()).await;
    let req = CaptureReversal {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        amount: twd(0),
    };
    assert_eq!(
        bank.client().capture_reversal(&req).await.unwrap(),
        accepted
    );
    let sent = &bank.received()[0];
    assert_eq!(sent.path, "/MicroPos/NewPos/CapRev");
    assert_eq!(
        sent.json().keys().collect::<Vec<_>>(),
        [
            "MERID",
            "LID-M",
            "XID",
            "AuthCode",
            "OrgAmt",
            "CapRevAmt",
            "VERSION",
            "SwRevision"
        ]
    );
    let (_, parsed) = CaptureReversal::from_request_json(&sent.json()).unwrap();
    assert_eq!(parsed, req);
}

#[tokio::test]
async fn refund_round_trip() {
    let accepted = RefundAccepted {
        refunded: twd(700),
        retr_ref: Some("123456789012".into()),
        batch_id: Some("0042".into()),
        batch_seq: Some("7".into()),
    };
    let bank = FakeBank::answering(accepted.to_answer_json()).await;
    let req = refund_of(700);
    assert_eq!(bank.client().refund(&req).await.unwrap(), accepted);
    let sent = &bank.received()[0];
    assert_eq!(sent.path, "/MicroPos/NewPos/Refund");
    assert_eq!(
        sent.json().keys().collect::<Vec<_>>(),
        [
            "MERID",
            "LID-M",
            "AuthCode",
            "CredAmt",
            "OrgAmt",
            "XID",
            "VERSION",
            "SwRevision"
        ]
    );
    assert_eq!(sent.json()["CredAmt"], "901 700 0");
    let (_, parsed) = Refund::from_request_json(&sent.json()).unwrap();
    assert_eq!(parsed, req);
}

#[tokio::test]
async fn refund_reversal_round_trip() {
    let accepted = Accepted {
        err_code: "00".into(),
        message: "OK".into(),
    };
    let bank = FakeBank::answering(accepted.to_answer_json()).await;
    let req = RefundReversal {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        amount: twd(700),
    };
    assert_eq!(bank.client().refund_reversal(&req).await.unwrap(), accepted);
    let sent = &bank.received()[0];
    assert_eq!(sent.path, "/MicroPos/NewPos/RefundRev");
    assert_eq!(
        sent.json().keys().collect::<Vec<_>>(),
        [
            "MERID",
            "LID-M",
            "XID",
            "AuthCode",
            "CredRevAmt",
            "OrgAmt",
            "VERSION",
            "SwRevision"
        ]
    );
    let (_, parsed) = RefundReversal::from_request_json(&sent.json()).unwrap();
    assert_eq!(parsed, req);
}

// --------------------------------------------------------------- refusals

#[tokio::test]
async fn big5_refusal_text_reaches_the_error() {
    let bank = FakeBank::answering(refusal_answer_json("99", "05", "交易失敗")).await;
    let client = bank.client();
    for err in [
        client.refund(&refund_of(100)).await.unwrap_err(),
        client.inquiry(&order()).await.unwrap_err(),
    ] {
        match &err {
            CtbcError::Refused {
                resp_code,
                err_code,
                message,
                ..
            } => {
                assert_eq!((resp_code.as_str(), err_code.as_str()), ("99", "05"));
                assert_eq!(message, "交易失敗");
            }
            other => panic!("expected Refused, got {other:?}"),
        }
        assert!(err.to_string().contains("交易失敗"));
        assert_safe_to_log(&err);
    }
}

#[tokio::test]
async fn unknown_order_is_its_own_answer_for_inquiries_only() {
    let bank = FakeBank::answering(refusal_answer_json("99", "01", "Order not found")).await;
    let client = bank.client();
    let err = client.inquiry(&order()).await.unwrap_err();
    assert!(
        matches!(&err, CtbcError::UnknownOrder { resp_code, err_code, message }
            if resp_code == "99" && err_code == "01" && message == "Order not found"),
        "{err:?}"
    );
    assert_eq!(err.kind(), "unknown_order");
    // The same codes on a money-moving call are a plain refusal.
    let err = client.refund(&refund_of(100)).await.unwrap_err();
    assert_eq!(err.kind(), "refused");

    // Which codes mean "no such order" is a setting.
    let mut cfg = config(bank.url());
    cfg.unknown_order_codes = vec![("98".into(), "02".into())];
    let err = Client::new(cfg)
        .unwrap()
        .inquiry(&order())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "refused");
}

// ------------------------------------------------------- gateway failures

#[tokio::test]
async fn maintenance_page_with_503_or_200_is_unavailable_or_ambiguous() {
    for status in [503, 200] {
        let bank = FakeBank::start(move |_| html(status, &maintenance_page_big5())).await;
        let client = bank.client();
        let err = client.inquiry(&order()).await.unwrap_err();
        assert!(
            matches!(&err, CtbcError::Unavailable { operation: Operation::Inquiry, reason }
                if reason.contains("系統維護中") && reason.contains(&status.to_string())),
            "{err:?}"
        );
        assert_safe_to_log(&err);
        let err = client.refund(&refund_of(100)).await.unwrap_err();
        assert!(
            matches!(
                &err,
                CtbcError::Ambiguous {
                    operation: Operation::Refund,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_safe_to_log(&err);
    }
}

#[tokio::test]
async fn server_error_without_a_page_is_unavailable_or_ambiguous() {
    let bank = FakeBank::start(|_| Reply::Raw {
        status: 502,
        content_type: "text/plain",
        body: b"Bad Gateway".to_vec(),
    })
    .await;
    let client = bank.client();
    assert_eq!(
        client.inquiry(&order()).await.unwrap_err().kind(),
        "unavailable"
    );
    let req = Reversal {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        new_auth_amount: twd(0),
    };
    assert_eq!(client.reversal(&req).await.unwrap_err().kind(), "ambiguous");
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_is_named_with_its_location() {
    // Where the redirects point: a bank that would accept anything.
    let elsewhere = FakeBank::answering(
        RefundAccepted {
            refunded: twd(100),
            retr_ref: None,
            batch_id: None,
            batch_seq: None,
        }
        .to_answer_json(),
    )
    .await;
    for status in [302, 307, 308] {
        let target = format!("{}/NewPos/Refund", elsewhere.url());
        let location = target.clone();
        let bank = FakeBank::start(move |_| Reply::Redirect {
            status,
            location: location.clone(),
        })
        .await;
        let client = bank.client();
        let err = client.refund(&refund_of(100)).await.unwrap_err();
        assert!(
            matches!(&err, CtbcError::Ambiguous { operation: Operation::Refund, reason }
                if reason.contains(&status.to_string()) && reason.contains(&target)),
            "{err:?}"
        );
        assert_safe_to_log(&err);
        let err = client.inquiry(&order()).await.unwrap_err();
        assert!(
            matches!(&err, CtbcError::Unavailable { operation: Operation::Inquiry, reason }
                if reason.contains(&status.to_string()) && reason.contains(&target)),
            "{err:?}"
        );
        assert_eq!(bank.received().len(), 2);
    }
    assert!(elsewhere.received().is_empty(), "a redirect was followed");
}

#[tokio::test]
async fn connection_closed_after_the_request_was_read() {
    let bank = FakeBank::start(|_| Reply::CloseAfterRead).await;
    let client = bank.client();
    let err = client.inquiry(&order()).await.unwrap_err();
    assert!(matches!(err, CtbcError::Unavailable { .. }), "{err:?}");
    let err = client.refund(&refund_of(100)).await.unwrap_err();
    assert!(matches!(err, CtbcError::Ambiguous { .. }), "{err:?}");
    assert_safe_to_log(&err);
    assert_eq!(bank.received().len(), 2, "both requests reached the bank");
}

#[tokio::test]
async fn answer_slower_than_the_timeout() {
    let bank = FakeBank::start(|_| Reply::Slow).await;
    let client = bank.client_with_timeout(Duration::from_millis(200));
    let err = client.inquiry(&order()).await.unwrap_err();
    assert!(
        matches!(&err, CtbcError::Unavailable { reason, .. } if reason.contains("200 ms")),
        "{err:?}"
    );
    let err = client.refund(&refund_of(100)).await.unwrap_err();
    assert!(matches!(err, CtbcError::Ambiguous { .. }), "{err:?}");
    assert!(err.to_string().contains("inquire"), "{err}");
}

#[tokio::test]
async fn answer_with_a_wrong_mac() {
    let bank = FakeBank::start(|_| {
        let json = json_text(&full_inquiry().to_answer_json());
        let api_enc = envelope()
            .seal_with_forged_mac(&json, &"0".repeat(48))
            .unwrap();
        Reply::Raw {
            status: 200,
            content_type: "application/x-www-form-urlencoded",
            body: form_body(MERID, &api_enc).into_bytes(),
        }
    })
    .await;
    let client = bank.client();
    let err = client.inquiry(&order()).await.unwrap_err();
    assert!(
        matches!(&err, CtbcError::BadAnswer { reason, .. } if reason.contains("MAC")),
        "{err:?}"
    );
    assert_safe_to_log(&err);
    let err = client.refund(&refund_of(100)).await.unwrap_err();
    assert!(matches!(err, CtbcError::Ambiguous { .. }), "{err:?}");
}

#[tokio::test]
async fn answer_sealed_with_another_key() {
    let other = Envelope::new(b"ZYXWVUTSRQPONMLKJIHGFEDC", IV.as_bytes()).unwrap();
    let bank = FakeBank::start(move |_| Reply::Raw {
        status: 200,
        content_type: "application/x-www-form-urlencoded",
        body: seal_form(&other, MERID, &full_inquiry().to_answer_json())
            .unwrap()
            .into_bytes(),
    })
    .await;
    let err = bank.client().inquiry(&order()).await.unwrap_err();
    assert_eq!(err.kind(), "bad_answer", "{err:?}");
    assert_safe_to_log(&err);
}

#[tokio::test]
async fn garbage_body() {
    let bank = FakeBank::start(|_| Reply::Raw {
        status: 200,
        content_type: "text/plain",
        body: b"\x00\x01 internal error 0xDEADBEEF".to_vec(),
    })
    .await;
    let client = bank.client();
    let err = client.inquiry(&order()).await.unwrap_err();
    assert!(matches!(err, CtbcError::Unavailable { .. }), "{err:?}");
    let err = client.refund(&refund_of(100)).await.unwrap_err();
    assert!(matches!(err, CtbcError::Ambiguous { .. }), "{err:?}");
    assert_safe_to_log(&err);
}

#[tokio::test]
async fn envelope_holding_something_other_than_json() {
    let bank = FakeBank::start(|_| Reply::Raw {
        status: 200,
        content_type: "application/x-www-form-urlencoded",
        body: form_body(MERID, &envelope().seal("RespCode=0 }").unwrap()).into_bytes(),
    })
    .await;
    let client = bank.client();
    assert_eq!(
        client.inquiry(&order()).await.unwrap_err().kind(),
        "bad_answer"
    );
    assert_eq!(
        client.refund(&refund_of(100)).await.unwrap_err().kind(),
        "ambiguous"
    );
}

#[tokio::test]
async fn inquiry_answer_missing_or_malformed_fields() {
    let cases = [
        string_object([("RespCode", "0"), ("ErrCode", "00")]),
        string_object([("ErrCode", "00"), ("CurrentState", "1")]),
        string_object([
            ("RespCode", "0"),
            ("CurrentState", "1"),
            ("AuthAmt", "1500"),
        ]),
        string_object([
            ("RespCode", "0"),
            ("CurrentState", "1"),
            ("AuthCode", "TOOLONG1"),
        ]),
    ];
    for json in cases {
        let shown = json_text(&json);
        let bank = FakeBank::answering(json).await;
        let err = bank.client().inquiry(&order()).await.unwrap_err();
        assert_eq!(err.kind(), "bad_answer", "{shown}: {err:?}");
    }
}

// ------------------------------------------- bank text is untrusted

#[tokio::test]
async fn control_characters_of_a_notice_page_never_reach_the_error() {
    let page = "<html><title>a\0b\u{7f}\u{85}c\u{1b}[2J</title></html>";
    let bank = FakeBank::start(move |_| Reply::Raw {
        status: 503,
        content_type: "text/html; charset=utf-8",
        body: page.as_bytes().to_vec(),
    })
    .await;
    let client = bank.client();
    let err = client.inquiry(&order()).await.unwrap_err();
    match &err {
        CtbcError::Unavailable { reason, .. } => {
            assert_no_control_chars(reason);
            // NEL (U+0085) is a line break: it reads as a space.
            assert!(reason.contains("\"ab c[2J\""), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_safe_to_log(&err);
    let err = client.refund(&refund_of(100)).await.unwrap_err();
    match &err {
        CtbcError::Ambiguous { reason, .. } => assert_no_control_chars(reason),
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    assert_safe_to_log(&err);
}

#[tokio::test]
async fn control_characters_of_a_sealed_refusal_never_reach_the_error() {
    // The MAC only says the bank sent it, not that it is safe to log.
    let bank = FakeBank::answering(refusal_answer_json(
        "99",
        "05\u{7}",
        "交易\0失敗\u{1b}[31m\r\nforged log line\u{7f}",
    ))
    .await;
    let client = bank.client();
    for err in [
        client.inquiry(&order()).await.unwrap_err(),
        client.refund(&refund_of(100)).await.unwrap_err(),
    ] {
        match &err {
            CtbcError::Refused {
                resp_code,
                err_code,
                message,
                ..
            } => {
                assert_eq!((resp_code.as_str(), err_code.as_str()), ("99", "05"));
                assert_no_control_chars(message);
                assert!(message.starts_with("交易失敗[31m"), "{message}");
                assert!(message.contains("forged log line"), "{message}");
            }
            other => panic!("expected Refused, got {other:?}"),
        }
        assert_safe_to_log(&err);
    }
    // A code that drives what happens next is not mended: it is unreadable.
    for (key, value) in [("RespCode", "0\u{0}"), ("CurrentState", "12\u{0}")] {
        let mut json = full_inquiry().to_answer_json();
        json.insert(key.into(), value.into());
        let bank = FakeBank::answering(json).await;
        let err = bank.client().inquiry(&order()).await.unwrap_err();
        assert!(
            matches!(&err, CtbcError::BadAnswer { reason, .. } if reason.contains(key)),
            "{err:?}"
        );
        assert_safe_to_log(&err);
    }
}

/// The order number held twice: the order's own authorisation (`xid()`),
/// settled, then a declined retry, the latest, shown at the top.
fn settled_then_declined() -> Inquiry {
    let retry = Xid::parse("20240101ABCDEF999999").unwrap();
    let settled = InquiryRecord {
        order_no: Some(order()),
        state: TxState::Settled,
        xid: Some(xid()),
        auth_code: Some(auth_code()),
        auth_amount: Some(twd(1500)),
        pan: Some(MaskedPan::from_bank("411111******1111")),
        eci: Some("05".into()),
        retr_ref: None,
        batch_id: Some("20240101".into()),
        batch_seq: Some("000001".into()),
    };
    let declined = InquiryRecord {
        state: TxState::AuthFailed,
        xid: Some(retry.clone()),
        auth_code: None,
        batch_id: None,
        batch_seq: None,
        ..settled.clone()
    };
    Inquiry {
        state: TxState::AuthFailed,
        xid: Some(retry),
        auth_code: None,
        records: vec![settled, declined],
        ..full_inquiry()
    }
}

#[tokio::test]
async fn an_order_number_held_twice_is_read_for_the_order_s_own_authorisation() {
    let answer = settled_then_declined();
    let bank = FakeBank::answering(answer.to_answer_json()).await;
    assert_eq!(bank.client().inquiry(&order()).await.unwrap(), answer);
    let ours = bank.client().inquiry_for(&order(), &xid()).await.unwrap();
    assert_eq!(
        (ours.state, ours.xid, ours.auth_amount),
        (TxState::Settled, Some(xid()), Some(twd(1500)))
    );
}

#[tokio::test]
async fn several_records_that_cannot_be_read_are_no_verdict() {
    let good = settled_then_declined().to_answer_json();
    let data = good["Data"].as_str().unwrap().to_string();
    let another_order = data.replace("<LID-M>ORDER001<", "<LID-M>ORDER002<");
    let bad_amount = data.replacen("<AuthAmt>1500<", "<AuthAmt>1500.00<", 1);
    for (key, value, named) in [
        ("Data", "<HyPOS><Record>", "Data"),
        ("Data", "", "Data is missing"),
        ("Data", bad_amount.as_str(), "AuthAmt"),
        ("Data", another_order.as_str(), "ORDER002"),
        ("QueryCode", "9", "QueryCode"),
    ] {
        let mut json = good.clone();
        json.insert(key.into(), value.into());
        let bank = FakeBank::answering(json).await;
        let err = bank
            .client()
            .inquiry_for(&order(), &xid())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CtbcError::BadAnswer { operation: Operation::Inquiry, reason } if reason.contains(named)),
            "{named}: {err:?}"
        );
        assert!(err.to_string().contains("no verdict"), "{err}");
        assert_safe_to_log(&err);
    }
}

#[tokio::test]
async fn control_characters_of_kept_answer_fields_are_removed() {
    let mut json = full_inquiry().to_answer_json();
    json.insert("ErrCode".into(), "00\u{0}".into());
    json.insert("PAN".into(), "411111\u{0}******1111".into());
    json.insert("Txn_date".into(), "2024/01/01\u{1b}".into());
    json.insert("Txn_time".into(), "12:34:56\u{7f}".into());
    json.insert("ECI".into(), "\u{8}05".into());
    let bank = FakeBank::answering(json).await;
    assert_eq!(
        bank.client().inquiry(&order()).await.unwrap(),
        full_inquiry()
    );

    let accepted = Accepted {
        err_code: "00\u{1}".into(),
        message: "OK\u{0}".into(),
    };
    let bank = FakeBank::answering(accepted.to_answer_json()).await;
    let req = Reversal {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        new_auth_amount: twd(0),
    };
    let answer = bank.client().reversal(&req).await.unwrap();
    assert_eq!(
        (answer.err_code.as_str(), answer.message.as_str()),
        ("00", "OK")
    );

    let mut json = RefundAccepted {
        refunded: twd(700),
        retr_ref: Some("1234\u{0}".into()),
        batch_id: Some("\u{1b}0042".into()),
        batch_seq: Some("7\u{7f}".into()),
    }
    .to_answer_json();
    json.insert("ERRDESC".into(), "\u{0}".into());
    let bank = FakeBank::answering(json).await;
    let answer = bank.client().refund(&refund_of(700)).await.unwrap();
    assert_eq!(
        (answer.retr_ref, answer.batch_id, answer.batch_seq),
        (Some("1234".into()), Some("0042".into()), Some("7".into()))
    );
}

// ------------------------------------------- answers checked in depth

#[tokio::test]
async fn answer_for_another_merchant_is_not_trusted() {
    let refund_answer = RefundAccepted {
        refunded: twd(100),
        retr_ref: None,
        batch_id: None,
        batch_seq: None,
    }
    .to_answer_json();
    // Another MERID in clear on the form.
    let (inquiry, refund) = (full_inquiry().to_answer_json(), refund_answer.clone());
    let bank = FakeBank::start(move |r| Reply::Raw {
        status: 200,
        content_type: "application/x-www-form-urlencoded",
        body: seal_form(
            &envelope(),
            "7654321",
            if r.path.ends_with("Refund") {
                &refund
            } else {
                &inquiry
            },
        )
        .unwrap()
        .into_bytes(),
    })
    .await;
    assert_other_merchant_refused(&bank.client()).await;
    // Another MERID inside the sealed answer.
    let bank = FakeBank::start(move |r| {
        let mut json = if r.path.ends_with("Refund") {
            refund_answer.clone()
        } else {
            full_inquiry().to_answer_json()
        };
        json.insert("MERID".into(), "7654321".into());
        Reply::Answer(json)
    })
    .await;
    assert_other_merchant_refused(&bank.client()).await;
    // Our own MERID in both places is what the bank normally sends.
    let mut json = full_inquiry().to_answer_json();
    json.insert("MERID".into(), MERID.into());
    let bank = FakeBank::answering(json).await;
    assert_eq!(
        bank.client().inquiry(&order()).await.unwrap(),
        full_inquiry()
    );
}

/// An inquiry answer for another merchant is a bad answer, and a refund's is
/// an unknown outcome; both name the field.
async fn assert_other_merchant_refused(client: &Client) {
    let err = client.inquiry(&order()).await.unwrap_err();
    assert!(
        matches!(&err, CtbcError::BadAnswer { reason, .. } if reason.contains("MERID")),
        "{err:?}"
    );
    assert_safe_to_log(&err);
    let err = client.refund(&refund_of(100)).await.unwrap_err();
    assert!(
        matches!(&err, CtbcError::Ambiguous { reason, .. } if reason.contains("MERID")),
        "{err:?}"
    );
}

fn accepted_answer() -> serde_json::Map<String, serde_json::Value> {
    Accepted {
        err_code: "00".into(),
        message: String::new(),
    }
    .to_answer_json()
}

fn refund_answer(amount: i64) -> serde_json::Map<String, serde_json::Value> {
    RefundAccepted {
        refunded: twd(amount),
        retr_ref: None,
        batch_id: None,
        batch_seq: None,
    }
    .to_answer_json()
}

/// `base` with `key` set to `value`.
fn with(
    mut base: serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: &str,
) -> serde_json::Map<String, serde_json::Value> {
    base.insert(key.into(), value.into());
    base
}

/// The one call of `op` this file sends for the binding tests.
async fn call(client: &Client, op: Operation) -> Result<(), CtbcError> {
    let (xid, code, original) = (xid(), auth_code(), twd(1500));
    match op {
        Operation::Inquiry => client.inquiry(&order()).await.map(drop),
        Operation::Reversal => client
            .reversal(&Reversal {
                order_no: order(),
                xid,
                auth_code: code,
                original,
                new_auth_amount: twd(0),
            })
            .await
            .map(drop),
        Operation::CaptureReversal => client
            .capture_reversal(&CaptureReversal {
                order_no: order(),
                xid,
                auth_code: code,
                original,
                amount: twd(0),
            })
            .await
            .map(drop),
        Operation::Refund => client.refund(&refund_of(100)).await.map(drop),
        Operation::RefundReversal => client
            .refund_reversal(&RefundReversal {
                order_no: order(),
                xid,
                auth_code: code,
                original,
                amount: twd(100),
            })
            .await
            .map(drop),
    }
}

#[tokio::test]
async fn an_answer_naming_another_call_is_not_trusted() {
    use Operation::{
        CaptureReversal as CapRev, Refund as Ref, RefundReversal as RefRev, Reversal as Rev,
    };
    let refusal = || refusal_answer_json("99", "05", "交易失敗");
    let cases = [
        (Ref, refund_answer(100), "XID", "20240101ABCDEF999999"),
        (Ref, refund_answer(100), "XID", "20240101abcdef123456"),
        (Rev, accepted_answer(), "AuthCode", "Z9Y8X7"),
        (Rev, accepted_answer(), "AuthCode", "a1b2c3"),
        (Ref, refund_answer(100), "MERID", "7654321"),
        (Ref, refund_answer(100), "LID-M", "ORDER002"),
        (Ref, refund_answer(100), "CredAmt", "901 200 0"),
        (Ref, refund_answer(100), "OrgAmt", "901 1499 0"),
        (Rev, accepted_answer(), "AuthNewAmt", "901 1 0"),
        (CapRev, accepted_answer(), "CapRevAmt", "840 0 2"),
        (RefRev, accepted_answer(), "CredRevAmt", "901 100 2"),
        (RefRev, accepted_answer(), "OrgAmt", "not an amount"),
        // A refusal of another call is no verdict on this one either.
        (Ref, refusal(), "XID", "20240101ABCDEF999999"),
    ];
    for (op, answer, key, value) in cases {
        let bank = FakeBank::answering(with(answer, key, value)).await;
        let err = call(&bank.client(), op).await.unwrap_err();
        assert!(
            matches!(&err, CtbcError::Ambiguous { operation, reason }
                if *operation == op && reason.contains(key)),
            "{op} answered with {key} {value:?}: {err:?}"
        );
        assert_safe_to_log(&err);
    }
    // An inquiry answer about another order is no verdict.
    for other in ["ORDER002", "order001"] {
        let bank = FakeBank::answering(with(full_inquiry().to_answer_json(), "LID-M", other)).await;
        let err = bank.client().inquiry(&order()).await.unwrap_err();
        assert!(
            matches!(&err, CtbcError::BadAnswer { reason, .. } if reason.contains("LID-M")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_answer_echoing_the_call_is_read_as_usual() {
    // Trimmed text, amounts equal as amounts, empty fields absent.
    let echo = |base| {
        let json = with(base, "LID-M", " ORDER001 ");
        let json = with(json, "XID", "20240101ABCDEF123456 ");
        let json = with(json, "AuthCode", "A1B2C3");
        let json = with(json, "OrgAmt", "901  01500 0");
        with(json, "MERID", "")
    };
    for op in Operation::ALL {
        let answer = match op {
            Operation::Inquiry => full_inquiry().to_answer_json(),
            Operation::Refund => with(refund_answer(100), "CredAmt", "901 100 0"),
            _ => accepted_answer(),
        };
        let bank = FakeBank::answering(echo(answer)).await;
        call(&bank.client(), op)
            .await
            .unwrap_or_else(|e| panic!("{op}: {e:?}"));
    }
}

#[tokio::test]
async fn amounts_in_another_exponent_or_currency_are_not_trusted() {
    // "901 1500 2" would be NT$15.00: NT$ travel with exponent 0.
    for auth_amt in ["901 1500 2", "840 1500 2"] {
        let mut json = full_inquiry().to_answer_json();
        json.insert("AuthAmt".into(), auth_amt.into());
        let bank = FakeBank::answering(json).await;
        let err = bank.client().inquiry(&order()).await.unwrap_err();
        assert!(
            matches!(&err, CtbcError::BadAnswer { reason, .. } if reason.contains("AuthAmt")),
            "{auth_amt}: {err:?}"
        );
    }
    let bank = FakeBank::answering(string_object([
        ("RespCode", "0"),
        ("ErrCode", "00"),
        ("RefAmt", "901 1500 2"),
    ]))
    .await;
    let err = bank.client().refund(&refund_of(1500)).await.unwrap_err();
    assert!(
        matches!(&err, CtbcError::Ambiguous { reason, .. } if reason.contains("RefAmt")),
        "{err:?}"
    );
}

#[tokio::test]
async fn full_card_number_from_the_bank_is_masked() {
    let mut json = full_inquiry().to_answer_json();
    json.insert("PAN".into(), "4111111111111111".into());
    let bank = FakeBank::answering(json).await;
    let answer = bank.client().inquiry(&order()).await.unwrap();
    assert_eq!(answer.pan.unwrap().as_str(), "411111******1111");
}

#[tokio::test]
async fn connect_refused_is_unavailable_even_for_a_refund() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::new(config(
        url::Url::parse(&format!("http://{addr}/MicroPos")).unwrap(),
    ))
    .unwrap();
    let err = client.refund(&refund_of(100)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            CtbcError::Unavailable {
                operation: Operation::Refund,
                ..
            }
        ),
        "{err:?}"
    );
    assert_safe_to_log(&err);
    assert_eq!(
        client.inquiry(&order()).await.unwrap_err().kind(),
        "unavailable"
    );
}

// --------------------------------------------------- refunds and our input

#[tokio::test]
async fn refund_of_another_amount_is_reported() {
    let bank = FakeBank::answering(
        RefundAccepted {
            refunded: twd(1000),
            retr_ref: None,
            batch_id: None,
            batch_seq: None,
        }
        .to_answer_json(),
    )
    .await;
    let err = bank.client().refund(&refund_of(1500)).await.unwrap_err();
    assert!(
        matches!(err, CtbcError::RefundAmountMismatch { asked, refunded }
            if asked == twd(1500) && refunded == twd(1000)),
        "{err:?}"
    );
}

#[tokio::test]
async fn accepted_refund_without_an_amount_is_ambiguous() {
    let bank = FakeBank::answering(string_object([("RespCode", "0"), ("ErrCode", "00")])).await;
    let err = bank.client().refund(&refund_of(1500)).await.unwrap_err();
    assert!(
        matches!(&err, CtbcError::Ambiguous { reason, .. } if reason.contains("RefAmt")),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_requests_are_never_sent() {
    let bank = FakeBank::answering(
        Accepted {
            err_code: "00".into(),
            message: String::new(),
        }
        .to_answer_json(),
    )
    .await;
    let client = bank.client();
    let usd = Money::from_parts(840, 100, 2).unwrap();
    let mut errors = vec![
        client.refund(&refund_of(1501)).await.unwrap_err(),
        client.refund(&refund_of(0)).await.unwrap_err(),
        client
            .refund(&Refund {
                amount: usd,
                ..refund_of(1)
            })
            .await
            .unwrap_err(),
    ];
    let reversal = Reversal {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        new_auth_amount: twd(1600),
    };
    errors.push(client.reversal(&reversal).await.unwrap_err());
    let cap_rev = CaptureReversal {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        amount: twd(1600),
    };
    errors.push(client.capture_reversal(&cap_rev).await.unwrap_err());
    let rr = RefundReversal {
        order_no: order(),
        xid: xid(),
        auth_code: auth_code(),
        original: twd(1500),
        amount: twd(2000),
    };
    errors.push(client.refund_reversal(&rr).await.unwrap_err());
    for err in &errors {
        assert!(matches!(err, CtbcError::Invalid(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("request not sent to CTBC"),
            "{err}"
        );
    }
    assert!(bank.received().is_empty());
}

// ------------------------------------------------------------ settings

#[test]
fn plain_http_to_a_remote_host_is_refused_at_start_up() {
    let remote = url::Url::parse("http://testepos.ctbcbank.com/MicroPos").unwrap();
    let err = Client::new(config(remote.clone())).unwrap_err();
    assert!(
        matches!(err, ClientSetupError::InsecureHttp { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("ctbc.base_url") && text.contains("ctbc.allow_insecure_http"),
        "{text}"
    );
    let mut cfg = config(remote);
    cfg.allow_insecure_http = true;
    assert!(Client::new(cfg).is_ok());
    for ok in [
        "https://testepos.ctbcbank.com/MicroPos",
        "http://127.0.0.1:1/",
        "http://[::1]:1/",
    ] {
        assert!(
            Client::new(config(url::Url::parse(ok).unwrap())).is_ok(),
            "{ok}"
        );
    }
    // A name can resolve anywhere: only a literal loopback address counts.
    let err = Client::new(config(url::Url::parse("http://localhost:1/").unwrap())).unwrap_err();
    assert!(
        matches!(err, ClientSetupError::InsecureHttp { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

#[test]
fn sw_revision_must_travel_in_big5() {
    let mut cfg = config(url::Url::parse("https://testepos.ctbcbank.com/MicroPos").unwrap());
    cfg.sw_revision = "refundd 😀".into();
    let err = Client::new(cfg).unwrap_err();
    assert!(err.to_string().contains("ctbc.sw_revision"), "{err}");
}

#[tokio::test]
async fn clones_share_one_rate_limit() {
    let bank = FakeBank::answering(full_inquiry().to_answer_json()).await;
    let mut cfg = config(bank.url());
    cfg.max_requests_per_sec = NonZeroU32::new(1);
    let client = Client::new(cfg).unwrap();
    let clone = client.clone();
    let no_limit = bank.client();
    let order_no = |no: &str| OrderNo::parse(no).unwrap();
    client.inquiry(&order_no("FIRST")).await.unwrap();
    // The clone's call (let run up to its first wait) waits for the next slot
    // of the limit it shares, a second away; a call of a client with no limit,
    // started after it, goes straight to the bank and is seen there first.
    let waiting = tokio::spawn(async move { clone.inquiry(&order_no("CLONE")).await });
    tokio::task::yield_now().await;
    no_limit.inquiry(&order_no("NOLIMIT")).await.unwrap();
    waiting.await.unwrap().unwrap();
    let seen: Vec<String> = bank
        .received()
        .iter()
        .map(|r| parse_inquiry_request(&r.json()).1.as_str().to_string())
        .collect();
    assert_eq!(seen, ["FIRST", "NOLIMIT", "CLONE"]);
}

// ------------------------------------------------------ logs and metrics

#[tokio::test]
async fn calls_are_logged_without_secrets() {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("refundd_core=debug")
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let _guard = crate::common::on_this_thread(subscriber);

    let mut json = full_inquiry().to_answer_json();
    json.insert("PAN".into(), "4111111111111111".into());
    let bank = FakeBank::answering(json).await;
    let client = bank.client();
    client.inquiry(&order()).await.unwrap();
    let _ = client.refund(&refund_of(100)).await;

    let text = log.text();
    assert!(text.contains("ORDER001") && text.contains("inquiry") && text.contains("refund"));
    assert!(text.contains("elapsed_ms"), "{text}");
    assert!(!text.contains(KEY) && !text.contains(IV), "{text}");
    assert!(!text.contains("4111111111111111"), "{text}");
    for req in bank.received() {
        let body = String::from_utf8(req.body).unwrap();
        let api_enc = body.split("ApiEnc=").nth(1).unwrap();
        assert!(!text.contains(&api_enc[..32]), "{text}");
    }
}

#[tokio::test]
async fn calls_are_counted_by_operation_and_result() {
    // The process's one recorder, as refundd installs it: every test of this
    // crate shares it, so the counts below are read as present, not as equal.
    let handle = refundd::ops::metrics::install_metrics();
    let bank = FakeBank::answering(refusal_answer_json("99", "01", "Order not found")).await;
    let client = bank.client();
    let _ = client.inquiry(&order()).await;
    let _ = client.refund(&refund_of(100)).await;
    let text = handle.render();
    let counted = |op: &str, result: &str| {
        text.lines().any(|l| {
            l.starts_with("refundd_gateway_calls_total{")
                && l.contains(&format!("operation=\"{op}\""))
                && l.contains(&format!("result=\"{result}\""))
        })
    };
    assert!(counted("inquiry", "unknown_order"), "{text}");
    assert!(counted("refund", "refused"), "{text}");
    assert!(text.contains("refundd_gateway_call_seconds"), "{text}");
}
