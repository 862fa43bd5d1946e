//! A mapping mistake is the operator's, not the orders': when most of the
//! requests refundd has not started yet fail the same row check (a currency
//! written `'TWD'`, order numbers the bank cannot take, an amount column
//! with cents), the shop's query or the settings are wrong, and failing each
//! order would write "failed" into every one of the shop's rows and raise an
//! event for each. A pass that finds one sends nothing and writes nothing
//! back; `once` exits 2 naming the check and the fix. One bad row among good
//! ones still fails alone.

use super::refund_request::{RefundRequest, RowCheck, RowProblem};
use crate::record::{Lease, OrderRecord};
use std::collections::BTreeMap;

/// Fewer requests than this are judged one by one: two bad rows out of two
/// are as likely two bad orders as one bad setting.
pub const MIN_ROWS: usize = 3;

/// The requests not yet started that the check reads at most per pass.
pub const SAMPLE: i64 = 1_000;

/// Many rows failing one check, read as one mistake of the operator's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failing} of the {checked} requests not yet started fail the same check, {}: \"{example}\". That is the shop's requests query or the settings, not {failing} orders: nothing was sent and nothing written back. Fix shop.requests (or the setting it names), check it with `refundd plan`, and run again", .check.describe())]
pub struct MappingMistake {
    pub check: RowCheck,
    pub failing: usize,
    pub checked: usize,
    /// One order's reason, as it would have been recorded.
    pub example: String,
}

/// A request the pass has not started (nothing intended, sent or reached):
/// what `mapping_mistake` judges, as `Store::requests_not_started` selects.
pub fn not_started(row: &OrderRecord) -> bool {
    row.status == crate::words::RefundStatus::RefundRequested
        && row.claimed_amount.is_none()
        && row.step.is_none()
        && row.unknown_operation.is_none()
}

/// The mistake `rows` (requests not yet started) show, if more than half
/// of them, and at least `MIN_ROWS`, fail the same check.
pub fn mapping_mistake(rows: &[OrderRecord]) -> Option<MappingMistake> {
    if rows.len() < MIN_ROWS {
        return None;
    }
    let mut by_check: BTreeMap<RowCheck, (usize, String)> = BTreeMap::new();
    for row in rows {
        if let Err(RowProblem { check, reason }) =
            RefundRequest::validate(row, Lease::unheld(row.id))
        {
            by_check.entry(check).or_insert((0, reason)).0 += 1;
        }
    }
    let (check, (failing, example)) = by_check.into_iter().max_by_key(|(_, (n, _))| *n)?;
    (failing * 2 > rows.len() && failing >= MIN_ROWS).then_some(MappingMistake {
        check,
        failing,
        checked: rows.len(),
        example,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request not yet started, as the shop's query gave it.
    fn request(order_no: &str, currency: &str) -> OrderRecord {
        OrderRecord {
            id: 1,
            order_no: order_no.into(),
            refund_id: String::new(),
            merchant: None,
            xid: Some(format!("X{order_no}")),
            auth_code: Some("A1B2C3".into()),
            auth_amount: Some(1000),
            currency: currency.into(),
            status: crate::words::RefundStatus::RefundRequested,
            refund_amount: None,
            bad_input: None,
            claimed_amount: None,
            attempts: 0,
            step: None,
            unknown_operation: None,
            unknown_since: None,
            refund_method: None,
            refunded_amount: None,
            watch_until: None,
            lease_token: None,
            lidm: None,
            unknown_age_ms: None,
            own_calls: Default::default(),
            others: None,
        }
    }

    #[test]
    fn most_rows_failing_one_check_are_one_mistake() {
        let rows: Vec<OrderRecord> = (1..=8)
            .map(|n| request(&format!("WC{n}"), "TWD"))
            .chain([request("OK1", "901")])
            .collect();
        let m = mapping_mistake(&rows).expect("a mapping mistake");
        assert_eq!((m.check, m.failing, m.checked), (RowCheck::Currency, 8, 9));
        let text = m.to_string();
        assert!(
            text.contains("8 of the 9") && text.contains("currency"),
            "{text}"
        );
        assert!(text.contains("nothing was sent"), "{text}");
    }

    #[test]
    fn a_bad_row_among_good_ones_is_that_orders_problem() {
        let mut rows: Vec<OrderRecord> =
            (1..=5).map(|n| request(&format!("G{n}"), "901")).collect();
        rows.push(request("BAD-1", "901"));
        assert_eq!(mapping_mistake(&rows), None);
        // Half failing is not most.
        let half: Vec<OrderRecord> = ["A-1", "B-2", "C-3", "D4", "E5", "F6"]
            .iter()
            .map(|n| request(n, "901"))
            .collect();
        assert_eq!(mapping_mistake(&half), None);
    }

    #[test]
    fn too_few_rows_are_judged_one_by_one() {
        let rows = [request("A-1", "901"), request("B-2", "901")];
        assert_eq!(mapping_mistake(&rows), None);
        let three = [
            request("A-1", "901"),
            request("B-2", "901"),
            request("C-3", "901"),
        ];
        assert_eq!(
            mapping_mistake(&three).map(|m| m.check),
            Some(RowCheck::OrderNo)
        );
    }

    #[test]
    fn different_checks_are_not_added_up() {
        let rows = [
            request("A-1", "901"),
            request("B2", "TWD"),
            request("C3", "901"),
            request("D4", "901"),
        ];
        assert_eq!(mapping_mistake(&rows), None);
    }
}
