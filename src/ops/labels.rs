//! How a refund and its merchant are named wherever people read about them
//! (`status`, `plan`, the demo): the order number alone for an order's only
//! refund, `N1 (refund A2)` for one of several; merchants grouped with the
//! default one (the `[ctbc]` table's own, `default`) first.

use crate::domain::merchant::MerchantName;
use std::collections::BTreeSet;

/// `N1` for an order's only refund (no id), `N1 (refund A2)` for one of several.
pub fn refund(order_no: &str, refund_id: Option<&str>) -> String {
    match refund_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("{order_no} (refund {id})"),
        None => order_no.to_string(),
    }
}

/// The merchants named in `labels`, the default first, then by name.
pub fn merchants<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let set: BTreeSet<&str> = labels.into_iter().collect();
    let (default, named): (Vec<&str>, Vec<&str>) = set
        .into_iter()
        .partition(|m| *m == MerchantName::DEFAULT_LABEL);
    default.into_iter().chain(named).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_is_named_by_its_order_and_its_id_when_it_has_one() {
        assert_eq!(refund("N1", Some("A2")), "N1 (refund A2)");
        assert_eq!(refund("N1", Some("")), "N1");
        assert_eq!(refund("N1", None), "N1");
    }

    #[test]
    fn the_default_merchant_comes_first() {
        assert_eq!(
            merchants(["outlet", "default", "brand", "outlet"]),
            ["default", "brand", "outlet"]
        );
        assert_eq!(merchants(["brand"]), ["brand"]);
    }
}
