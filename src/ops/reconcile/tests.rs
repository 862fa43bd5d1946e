//! The report's three forms, read back as their readers would.

use super::*;
use crate::engine::reconcile::ReportRow;
use chrono::{TimeZone, Utc};
use std::collections::BTreeMap;

fn report() -> Report {
    let ended = Utc.with_ymd_and_hms(2026, 12, 6, 16, 30, 0).unwrap();
    let row = |order: &str, class: Class, reason: &str| ReportRow {
        order_no: order.to_string(),
        merchant: "default".to_string(),
        method: Some("refund".to_string()),
        refundd_amount: 1500,
        currency: "901".to_string(),
        bank_amount: Some(1500),
        bank_state: Some("22".to_string()),
        class,
        reason: reason.to_string(),
        unchecked: false,
        ended_at: ended,
        refunded_in_window: 1500,
    };
    Report {
        run: Some(7),
        started_at: ended,
        window: Window::last(ended, Window::DEFAULT_SPAN),
        totals: BTreeMap::from([
            (Class::Matched, 1),
            (Class::Expected, 0),
            (Class::Mismatch, 1),
        ]),
        unchecked: 0,
        refunded_total: BTreeMap::from([("901".to_string(), 3000)]),
        new_mismatches: vec!["B-2".to_string()],
        rows: vec![
            row("A-1", Class::Matched, "refunded 1500, settled"),
            row(
                "B-2",
                Class::Mismatch,
                "the amount differs, \"quoted\", with a comma",
            ),
        ],
    }
}

#[test]
fn the_csv_has_one_row_per_order_with_its_class_as_a_word() {
    let text = to_csv(&report()).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let head = r.headers().unwrap().clone();
    let order = head.iter().position(|h| h == "order_no").unwrap();
    let class = head.iter().position(|h| h == "class").unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[1][order], "B-2");
    assert_eq!(&rows[1][class], "mismatch");
    assert!(rows[1]
        .iter()
        .any(|f| f.contains("\"quoted\", with a comma")));
    assert!(rows[0].iter().any(|f| f == "2026-12-07 00:30:00 +08:00"));
}

#[test]
fn the_table_says_what_is_out_of_scope_and_puts_mismatches_first() {
    let text = render(&report());
    assert!(text.contains("out of scope"));
    assert!(text.contains("mismatch 1 (1 new)"));
    assert!(text.contains("3000 (currency 901"));
    let mismatch = text.find("B-2").unwrap();
    let matched = text.find("A-1").unwrap();
    assert!(mismatch < matched, "{text}");
}

#[test]
fn the_json_reads_back_with_its_totals() {
    let v: serde_json::Value = serde_json::from_str(&to_json(&report())).unwrap();
    assert_eq!(v["totals"]["mismatch"], 1);
    assert_eq!(v["refunded_total"]["901"], 3000);
    assert_eq!(v["rows"][1]["class"], "mismatch");
}
