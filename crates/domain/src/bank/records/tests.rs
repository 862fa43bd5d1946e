//! An order number's several records: read strictly, bounded, written back,
//! and the order's own record picked by its XID on the decision path.

use super::*;
use crate::bank::fields::string_object;
use crate::decide::{decide, Conclusion, Decision};
use crate::testing::{request, twd};

/// One record of `Data` with the fields the bank documents, bonus points
/// among them: `xid` in `state`, authorised for NT$`amount`.
fn record_xml(xid: &str, state: &str, amount: &str) -> String {
    format!(
        "<Trans><LID-M>ORDER001</LID-M><XID>{xid}</XID><PAN>411111******1111</PAN>\
         <ECI>05</ECI><Currency>901</Currency><AuthAmt>{amount}</AuthAmt><Exponent>0</Exponent>\
         <RespCode>0</RespCode><ErrCode>00</ErrCode><ERRDESC></ERRDESC><AuthCode>A1B2C3</AuthCode>\
         <TermSeq>1</TermSeq><RetrRef>000000000001</RetrRef><CurrentState>{state}</CurrentState>\
         <BatchID>20261127</BatchID><BatchSeq>000001</BatchSeq><UtilizedPoint>0</UtilizedPoint></Trans>"
    )
}

/// An accepted inquiry answer whose top level is `top` (XID, state) and
/// whose `Data` is `data`, with `QueryCode` "2".
fn several(top: (&str, &str), data: &str) -> Map<String, Value> {
    string_object([
        ("RespCode", "0"),
        ("ErrCode", "00"),
        ("QueryCode", "2"),
        ("CurrentState", top.1),
        ("XID", top.0),
        ("AuthAmt", "901 1000 0"),
        ("Data", data),
    ])
}

/// The real case: XID-0 declined (-1), then XID-1 authorised for 1,000 and
/// settled (12); the top level shows `latest`.
fn declined_then_settled(latest: &str) -> Inquiry {
    let data = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HyPOS>\n  {}\n  {}\n</HyPOS>\n",
        record_xml("XID-0", "-1", "1000"),
        record_xml("XID-1", "12", "1000")
    );
    let state = if latest == "XID-0" { "-1" } else { "12" };
    Inquiry::from_answer_json(&several((latest, state), &data)).unwrap()
}

fn problem(json: &Map<String, Value>) -> String {
    match Inquiry::from_answer_json(json) {
        Err(AnswerProblem(why)) => why,
        Ok(inquiry) => panic!("read as {inquiry:?}"),
    }
}

#[test]
fn query_code_1_or_none_reads_the_top_level_alone() {
    for code in [Some("1"), None] {
        let mut json = string_object([
            ("RespCode", "0"),
            ("CurrentState", "12"),
            ("XID", "XID-1"),
            ("AuthAmt", "901 1000 0"),
            // Not read with one record.
            ("Data", "<not xml"),
        ]);
        if let Some(code) = code {
            json.insert("QueryCode".into(), code.into());
        }
        let inquiry = Inquiry::from_answer_json(&json).unwrap();
        assert_eq!(
            (inquiry.state.clone(), inquiry.records.len()),
            (TxState::Settled, 0)
        );
        assert_eq!(inquiry.for_xid(&Xid::parse("XID-1").unwrap()), inquiry);
        let written = inquiry.to_answer_json();
        assert_eq!(written["QueryCode"], "1");
        assert!(!written.contains_key("Data"));
    }
}

#[test]
fn every_record_is_read_with_its_fields() {
    let inquiry = declined_then_settled("XID-1");
    let [declined, settled] = inquiry.records.as_slice() else {
        panic!("{:?}", inquiry.records)
    };
    assert_eq!(declined.state, TxState::AuthFailed);
    assert_eq!(declined.xid, Some(Xid::parse("XID-0").unwrap()));
    assert_eq!(settled.state, TxState::Settled);
    assert_eq!(settled.auth_amount, Some(twd(1000)));
    assert_eq!(settled.order_no, Some(OrderNo::parse("ORDER001").unwrap()));
    assert_eq!(settled.auth_code, Some(AuthCode::parse("A1B2C3").unwrap()));
    assert_eq!(
        (settled.batch_id.as_deref(), settled.batch_seq.as_deref()),
        (Some("20261127"), Some("000001"))
    );
    assert_eq!(settled.retr_ref.as_deref(), Some("000000000001"));
}

#[test]
fn the_order_s_record_is_picked_by_its_xid_whichever_is_latest() {
    let (declined, settled) = (Xid::parse("XID-0").unwrap(), Xid::parse("XID-1").unwrap());
    for latest in ["XID-0", "XID-1"] {
        let inquiry = declined_then_settled(latest);
        let ours = inquiry.for_xid(&settled);
        assert_eq!(
            (ours.state.clone(), ours.xid.as_ref(), ours.auth_amount),
            (TxState::Settled, Some(&settled), Some(twd(1000))),
            "latest {latest}"
        );
        let theirs = inquiry.for_xid(&declined);
        assert_eq!(theirs.state, TxState::AuthFailed, "latest {latest}");
        // On the decision path: the settled one is refunded whole.
        let req = request(1000, 1000);
        assert!(
            matches!(decide(&req, &ours), Decision::Act(ref p) if p.amount == twd(1000)),
            "latest {latest}"
        );
    }
}

#[test]
fn the_order_s_declined_record_goes_to_a_person_naming_every_record() {
    // The shop's XID is XID-1, the declined one; XID-2 was authorised after.
    let data = format!(
        "<HyPOS>{}{}</HyPOS>",
        record_xml("XID-1", "-1", "1000"),
        record_xml("XID-2", "10", "1000")
    );
    let inquiry = Inquiry::from_answer_json(&several(("XID-2", "10"), &data)).unwrap();
    let req = request(1000, 1000);
    let ours = inquiry.for_xid(&req.xid);
    let Decision::Conclude(Conclusion::NeedsPerson(why)) = decide(&req, &ours) else {
        panic!("{:?}", decide(&req, &ours))
    };
    assert!(why.contains("state -1"), "{why}");
    assert!(
        why.contains("XID XID-1 in state -1") && why.contains("XID XID-2 in state 10"),
        "{why}"
    );
}

#[test]
fn no_record_of_the_order_s_xid_needs_a_person_naming_it() {
    let data = format!(
        "<HyPOS>{}{}</HyPOS>",
        record_xml("XID-7", "-1", "1000"),
        record_xml("XID-8", "12", "1000")
    );
    let inquiry = Inquiry::from_answer_json(&several(("XID-8", "12"), &data)).unwrap();
    let req = request(1000, 1000);
    let view = inquiry.for_xid(&req.xid);
    assert_eq!(view, inquiry, "no record of XID-1: the answer as it is");
    let Decision::Conclude(Conclusion::NeedsPerson(why)) = decide(&req, &view) else {
        panic!("{:?}", decide(&req, &view))
    };
    assert!(why.contains("XID-1") && why.contains("XID-8"), "{why}");
}

#[test]
fn a_records_answer_round_trips_with_its_text_escaped() {
    let mut inquiry = declined_then_settled("XID-1");
    inquiry.records[1].retr_ref = Some("<&'\"> 交易".into());
    inquiry.records[1].eci = Some("]]>".into());
    let json = inquiry.to_answer_json();
    assert_eq!(json["QueryCode"], "2");
    let data = json["Data"].as_str().unwrap();
    assert!(
        data.starts_with("<HyPOS><Record>") && data.contains("&lt;&amp;"),
        "{data}"
    );
    assert_eq!(Inquiry::from_answer_json(&json).unwrap(), inquiry);
}

#[test]
fn text_is_read_through_entities_and_cdata_and_sanitised() {
    let data = "<HyPOS><R><XID>XID-1</XID><CurrentState>12</CurrentState>\
                <RetrRef>a&amp;b&#x41;<![CDATA[<c>]]>&#27;[31m</RetrRef></R></HyPOS>";
    let inquiry = Inquiry::from_answer_json(&several(("XID-1", "12"), data)).unwrap();
    assert_eq!(inquiry.records[0].retr_ref.as_deref(), Some("a&bA<c>[31m"));
}

#[test]
fn a_query_code_2_without_usable_data_is_unreadable() {
    let good = record_xml("XID-1", "12", "1000");
    let cases: Vec<(Map<String, Value>, &str)> = vec![
        (
            string_object([("RespCode", "0"), ("QueryCode", "2"), ("CurrentState", "12")]),
            "Data is missing",
        ),
        (several(("XID-1", "12"), "  "), "Data is missing"),
        (several(("XID-1", "12"), "<HyPOS>"), "not readable"),
        (several(("XID-1", "12"), "<HyPOS></HyPOS>"), "no record"),
        (several(("XID-1", "12"), "<HyPOS/>"), "no record"),
        (several(("XID-1", "12"), "not xml at all"), "not readable"),
        (several(("XID-1", "12"), &format!("<Other>{good}</Other>")), "not readable"),
        (
            several(("XID-1", "12"), &format!("<HyPOS>{good}</HyPOS><HyPOS/>")),
            "after its HyPOS",
        ),
        (
            several(("XID-1", "12"), &format!("<HyPOS>{good}</Trans></HyPOS>")),
            "not readable",
        ),
        (
            several(("XID-1", "12"), &format!("<HyPOS>{good}{good}</HyPOS>")),
            "two records of Data carry the XID XID-1",
        ),
        (
            several(
                ("XID-1", "12"),
                "<HyPOS><R><XID>XID-1</XID><XID>XID-2</XID><CurrentState>12</CurrentState></R></HyPOS>",
            ),
            "twice",
        ),
        (
            several(
                ("XID-1", "12"),
                "<HyPOS><R><XID><b>XID-1</b></XID><CurrentState>12</CurrentState></R></HyPOS>",
            ),
            "inside a field",
        ),
        (
            several(("XID-1", "12"), "<HyPOS>loose text</HyPOS>"),
            "between records",
        ),
        (
            several(
                ("XID-1", "12"),
                "<!DOCTYPE HyPOS [<!ENTITY x \"y\">]><HyPOS><R><CurrentState>&x;</CurrentState></R></HyPOS>",
            ),
            "DOCTYPE",
        ),
        (
            several(
                ("XID-1", "12"),
                "<HyPOS><R><CurrentState>&x;</CurrentState></R></HyPOS>",
            ),
            "not XML's own",
        ),
        (
            several(("XID-1", "12"), "<HyPOS><R><XID>XID-1</XID></R></HyPOS>"),
            "record 1 of Data: it has no CurrentState",
        ),
    ];
    for (json, expected) in cases {
        let why = problem(&json);
        assert!(why.contains(expected), "{expected:?} in {why:?}");
    }
}

#[test]
fn another_query_code_is_unreadable() {
    for code in ["0", "3", "12", "two"] {
        let json = string_object([
            ("RespCode", "0"),
            ("QueryCode", code),
            ("CurrentState", "12"),
        ]);
        assert!(problem(&json).contains("QueryCode"), "{code}");
    }
    let json = string_object([
        ("RespCode", "0"),
        ("QueryCode", "2\u{0}"),
        ("CurrentState", "12"),
    ]);
    assert!(problem(&json).contains("control characters"));
}

#[test]
fn a_record_with_a_bad_amount_code_or_id_is_unreadable() {
    let with = |field: &str| {
        format!("<HyPOS><R><XID>XID-1</XID><CurrentState>12</CurrentState>{field}</R></HyPOS>")
    };
    let amount = |c: &str, a: &str, e: &str| {
        with(&format!(
            "<Currency>{c}</Currency><AuthAmt>{a}</AuthAmt><Exponent>{e}</Exponent>"
        ))
    };
    for (data, expected) in [
        (amount("901", "15.00", "0"), "AuthAmt"),
        (amount("901", "-1500", "0"), "AuthAmt"),
        (amount("901", "15 00", "0"), "AuthAmt"),
        (amount("901", "1500", "2"), "exponent"),
        (amount("840", "1500", "0"), "currency"),
        (amount("901", "99999999999999999999", "0"), "AuthAmt"),
        (with("<AuthAmt>1500</AuthAmt>"), "in part"),
        (
            with("<Currency>901</Currency><AuthAmt>1500</AuthAmt>"),
            "in part",
        ),
        (
            "<HyPOS><R><XID>XID 1</XID><CurrentState>12</CurrentState></R></HyPOS>".into(),
            "XID is malformed",
        ),
        (
            "<HyPOS><R><XID>XID-1&#27;</XID><CurrentState>12</CurrentState></R></HyPOS>".into(),
            "XID is malformed",
        ),
        (
            with("<AuthCode>A1B2C3D</AuthCode>"),
            "AuthCode is malformed",
        ),
        (with("<LID-M>ORDER-1</LID-M>"), "LID-M is malformed"),
        (
            "<HyPOS><R><XID>XID-1</XID><CurrentState>1&#7;2</CurrentState></R></HyPOS>".into(),
            "CurrentState holds control characters",
        ),
    ] {
        let why = problem(&several(("XID-1", "12"), &data));
        assert!(why.contains(expected), "{expected:?} in {why:?}");
        assert!(!why.chars().any(char::is_control), "{why:?}");
    }
}

#[test]
fn data_is_bounded_in_bytes_and_in_records() {
    let record = "<R><CurrentState>-1</CurrentState></R>";
    let at_most = format!("<HyPOS>{}</HyPOS>", record.repeat(MAX_RECORDS));
    let read = Inquiry::from_answer_json(&several(("XID-1", "12"), &at_most)).unwrap();
    assert_eq!(read.records.len(), MAX_RECORDS);
    let one_more = format!("<HyPOS>{}</HyPOS>", record.repeat(MAX_RECORDS + 1));
    assert!(problem(&several(("XID-1", "12"), &one_more)).contains("more than"));
    // Too long is refused before it is parsed, however it is built.
    let padded = format!(
        "<HyPOS>{record}<!--{}--></HyPOS>",
        "x".repeat(MAX_DATA_BYTES)
    );
    let why = problem(&several(("XID-1", "12"), &padded));
    assert!(why.contains("bytes long"), "{why}");
}

#[test]
fn records_of_another_order_number_are_refused() {
    let inquiry = declined_then_settled("XID-1");
    assert_eq!(
        inquiry.check_order(&OrderNo::parse("ORDER001").unwrap()),
        Ok(())
    );
    let why = inquiry
        .check_order(&OrderNo::parse("ORDER002").unwrap())
        .unwrap_err();
    assert!(
        why.0.contains("ORDER001") && why.0.contains("ORDER002"),
        "{why}"
    );
}
