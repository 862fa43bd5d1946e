//! The window a run covers, as the command line gives it.

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn since_takes_days_and_hours_before_now() {
    let now = at("2026-12-07T12:00:00Z");
    assert_eq!(
        Window::since(now, "7d").unwrap().from,
        at("2026-11-30T12:00:00Z")
    );
    let w = Window::since(now, "36h").unwrap();
    assert_eq!((w.from, w.to), (at("2026-12-06T00:00:00Z"), now));
}

#[test]
fn since_refuses_what_is_no_duration_and_says_how() {
    let now = at("2026-12-07T12:00:00Z");
    for bad in ["7", "a week", "", "0s"] {
        let e = Window::since(now, bad).unwrap_err();
        assert!(e.contains("7d or 36h"), "{bad:?}: {e}");
    }
}

#[test]
fn days_are_whole_days_in_taipei_both_included() {
    let w = Window::days("2026-12-01", "2026-12-07").unwrap();
    assert_eq!(w.from, at("2026-11-30T16:00:00Z"));
    assert_eq!(w.to, at("2026-12-07T16:00:00Z"));
    let one = Window::days("2026-12-07", "2026-12-07").unwrap();
    assert_eq!(one.to - one.from, chrono::Duration::days(1));
}

#[test]
fn days_refuse_a_bad_date_or_an_end_before_the_start() {
    assert!(Window::days("2026-13-01", "2026-12-07")
        .unwrap_err()
        .contains("--from"));
    assert!(Window::days("2026-12-01", "7 Dec")
        .unwrap_err()
        .contains("--to"));
    assert!(Window::days("2026-12-07", "2026-12-01")
        .unwrap_err()
        .contains("before"));
}

#[test]
fn a_report_counts_each_class_and_the_money_refunded_per_currency() {
    let row = |order: &str, class: Class, unchecked: bool, back: i64| ReportRow {
        order_no: order.to_string(),
        merchant: "default".to_string(),
        method: Some("refund".to_string()),
        refundd_amount: back,
        currency: "901".to_string(),
        bank_amount: None,
        bank_state: None,
        class,
        reason: String::new(),
        unchecked,
        ended_at: Utc::now(),
        refunded_in_window: back,
    };
    let window = Window::last(Utc::now(), Window::DEFAULT_SPAN);
    let report = Report::of(
        Utc::now(),
        window,
        vec![
            row("A", Class::Matched, false, 100),
            row("B", Class::Mismatch, false, 50),
            row("C", Class::Expected, true, 0),
        ],
    );
    assert_eq!(report.totals[&Class::Matched], 1);
    assert_eq!(report.totals[&Class::Mismatch], 1);
    assert_eq!(report.totals[&Class::Expected], 1);
    assert_eq!(report.unchecked, 1);
    assert_eq!(report.refunded_total["901"], 150);
}
