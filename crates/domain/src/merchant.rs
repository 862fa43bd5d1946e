//! Which of the shop's CTBC merchants an order belongs to. A shop may hold
//! several merchant ids at the bank (one per brand or per outlet), each with
//! its own keys; refundd knows each by a name the operator chooses, written as
//! a settings table `[ctbc.merchants.NAME]`, as a part of an environment
//! variable (`REFUNDD__CTBC__MERCHANTS__NAME__MAC_KEY`) and in the `merchant`
//! column of the shop's requests. The merchant of the `[ctbc]` table itself,
//! the default one, has no name: it is `None` wherever a merchant is an
//! `Option<MerchantName>` (and NULL in the store), so an order of a shop with
//! one merchant never names it.

use std::collections::BTreeMap;
use std::fmt;

/// A merchant named by the operator: 1 to 32 lowercase ASCII letters, digits
/// and single underscores, starting and ending with a letter or a digit, and
/// never `default`. The rule keeps every name writable both as a TOML key and
/// as a part of an environment variable's name: the settings read variable
/// names in lowercase and split them at each `__`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MerchantName(String);

/// Why a text is not a merchant name: the name (as given) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a merchant name: {rule}")]
pub struct BadMerchantName {
    pub given: String,
    pub rule: &'static str,
}

impl MerchantName {
    pub const MAX_LEN: usize = 32;

    /// What every name must be, said to the operator who wrote one.
    pub const RULE: &'static str = "a merchant name is 1 to 32 lowercase ASCII letters, digits and single underscores, starting and ending with a letter or a digit (so it can be both a TOML key and a part of REFUNDD__CTBC__MERCHANTS__NAME__MAC_KEY), and not `default`, which stands for the [ctbc] table's own merchant";

    /// What the default merchant (the `[ctbc]` table's own) is called where a
    /// merchant must be named, as in a metric's label; no name may be it.
    pub const DEFAULT_LABEL: &'static str = "default";

    pub fn parse(raw: &str) -> Result<Self, BadMerchantName> {
        let bad = || BadMerchantName {
            given: raw.to_string(),
            rule: Self::RULE,
        };
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
        let bytes = raw.as_bytes();
        let ends_fine = |b: Option<&u8>| b.is_some_and(|b| *b != b'_');
        if bytes.is_empty()
            || bytes.len() > Self::MAX_LEN
            || !bytes.iter().copied().all(allowed)
            || !ends_fine(bytes.first())
            || !ends_fine(bytes.last())
            || raw.contains("__")
            || raw == Self::DEFAULT_LABEL
        {
            return Err(bad());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MerchantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a merchant is named where it must be: its name, or `default` for the
/// `[ctbc]` table's own (a metric's `merchant` label, a line of a report).
pub fn label(merchant: Option<&MerchantName>) -> &str {
    merchant.map_or(MerchantName::DEFAULT_LABEL, MerchantName::as_str)
}

/// Where a merchant's settings are: `ctbc` for the default merchant,
/// `ctbc.merchants.NAME` for a named one (`ctbc.merchants.NAME.mac_key`).
pub fn settings_table(merchant: Option<&MerchantName>) -> String {
    match merchant {
        None => "ctbc".to_string(),
        Some(name) => format!("ctbc.merchants.{name}"),
    }
}

/// What serves the merchant a record names (the shop's column `merchant`;
/// `None`: the default merchant, `default`), among the named merchants'
/// (`named`), or why the record cannot be worked at any: a name that is not
/// one, or one no settings table gives, with the fix. One wording for the
/// pass, the settlement watch and `refundd plan`.
pub fn of_record<'a, T>(
    given: Option<&str>,
    default: &'a T,
    named: &'a BTreeMap<MerchantName, T>,
) -> Result<&'a T, String> {
    let Some(given) = given else {
        return Ok(default);
    };
    let name = MerchantName::parse(given).map_err(|e| format!("invalid row: merchant: {e}"))?;
    named.get(&name).ok_or_else(|| {
        let known: Vec<&str> = named.keys().map(MerchantName::as_str).collect();
        format!(
            "invalid row: merchant {given} is not one of refundd's merchants; add its settings as [ctbc.merchants.{given}] (mer_id and keys), or return one of [{}] in the column merchant (NULL for the [ctbc] table's own); nothing was sent",
            known.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_an_operator_can_write_in_a_file_and_in_a_variable() {
        for ok in ["outlet", "brand_b", "shop2", "a", "2024", "a_b_c"] {
            assert_eq!(MerchantName::parse(ok).unwrap().as_str(), ok);
        }
        let longest = "a".repeat(MerchantName::MAX_LEN);
        assert!(MerchantName::parse(&longest).is_ok());
    }

    #[test]
    fn names_the_settings_would_misread_are_refused_with_the_rule() {
        let too_long = "a".repeat(MerchantName::MAX_LEN + 1);
        for bad in [
            "",
            "Outlet",
            "OUTLET",
            "brand-b",
            "brand b",
            "brand.b",
            "brand__b",
            "_brand",
            "brand_",
            "品牌",
            "default",
            too_long.as_str(),
        ] {
            let e = MerchantName::parse(bad).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(&format!("{bad:?}")), "{text}");
            assert!(text.contains("lowercase ASCII letters"), "{text}");
        }
    }

    #[test]
    fn the_default_merchant_has_a_label_and_a_table_no_name_can_take() {
        assert_eq!(label(None), "default");
        assert!(MerchantName::parse(label(None)).is_err());
        let outlet = MerchantName::parse("outlet").unwrap();
        assert_eq!(label(Some(&outlet)), "outlet");
        assert_eq!(settings_table(None), "ctbc");
        assert_eq!(settings_table(Some(&outlet)), "ctbc.merchants.outlet");
    }

    #[test]
    fn a_record_finds_its_merchant_or_says_how_to_give_it_one() {
        let named = BTreeMap::from([(MerchantName::parse("brand").unwrap(), "brand's")]);
        assert_eq!(of_record(None, &"default's", &named), Ok(&"default's"));
        assert_eq!(
            of_record(Some("brand"), &"default's", &named),
            Ok(&"brand's")
        );
        let e = of_record(Some("outlet"), &"default's", &named).unwrap_err();
        assert!(
            e.starts_with("invalid row: merchant outlet is not one of refundd's merchants"),
            "{e}"
        );
        assert!(
            e.contains("[ctbc.merchants.outlet]") && e.contains("[brand]"),
            "{e}"
        );
        assert!(e.ends_with("nothing was sent"), "{e}");
        let e = of_record(Some("Brand"), &"default's", &named).unwrap_err();
        assert!(
            e.starts_with("invalid row: merchant: \"Brand\" is not a merchant name"),
            "{e}"
        );
    }
}
