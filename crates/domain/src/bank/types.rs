//! The bank's vocabulary as types: an order number, merchant id, auth code or
//! amount that exists past this boundary is one the bank would accept.

use std::fmt;

use super::bank_text::sanitise;

/// Our own input breaks a documented limit; names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: &'static str,
    pub problem: String,
}

impl InvalidField {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// The merchant's order number, CTBC's `LID-M`: 1 to 19 of `[A-Za-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderNo(String);

impl OrderNo {
    pub const MAX_LEN: usize = 19;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidField::new(
                "order_no",
                format!(
                    "{raw:?} must be 1 to {} characters (LID-M), it has {}",
                    Self::MAX_LEN,
                    raw.chars().count()
                ),
            ));
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(InvalidField::new(
                "order_no",
                format!("{raw:?} may hold only letters A-Z a-z, digits and '_' (LID-M)"),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The merchant id the bank issued (`MERID`): digits only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MerId(String);

impl MerId {
    pub const MAX_LEN: usize = 20;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidField::new(
                "mer_id",
                format!(
                    "{raw:?} must be 1 to {} digits (the MERID the bank issued)",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The authorisation code the bank gave the purchase: 1 to 6 letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthCode(String);

impl AuthCode {
    pub const MAX_LEN: usize = 6;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.is_empty()
            || raw.len() > Self::MAX_LEN
            || !raw.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(InvalidField::new(
                "auth_code",
                format!("{raw:?} must be 1 to {} letters or digits", Self::MAX_LEN),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bank's transaction id for the purchase (`XID`), given at authorisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xid(String);

impl Xid {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(InvalidField::new(
                "xid",
                format!(
                    "{raw:?} must be 1 to {} printable ASCII characters without spaces (the XID of the authorisation)",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A currency the merchant takes, with the exponent its amounts carry on the
/// bank's wire (not necessarily ISO 4217's: NT$ travel with exponent 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    pub code: u16,
    pub exponent: u8,
    pub name: &'static str,
}

/// The currencies refundd knows, by ISO 4217 numeric code. A merchant taking
/// another currency adds one line here with the exponent the bank uses.
pub const KNOWN_CURRENCIES: &[Currency] = &[Currency {
    code: 901,
    exponent: 0,
    name: "TWD",
}];

impl Currency {
    pub const TWD: Currency = KNOWN_CURRENCIES[0];

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let code: u16 = raw.trim().parse().map_err(|_| {
            InvalidField::new(
                "currency",
                format!(
                    "{raw:?} is not an ISO 4217 numeric code; known: {}",
                    known_list()
                ),
            )
        })?;
        Self::from_code(code)
    }

    /// The known currency with this ISO 4217 numeric code.
    pub fn from_code(code: u16) -> Result<Self, InvalidField> {
        KNOWN_CURRENCIES
            .iter()
            .copied()
            .find(|c| c.code == code)
            .ok_or_else(|| {
                InvalidField::new(
                    "currency",
                    format!(
                        "{code} is not a currency refundd knows; known: {}",
                        known_list()
                    ),
                )
            })
    }
}

fn known_list() -> String {
    KNOWN_CURRENCIES
        .iter()
        .map(|c| format!("{} ({})", c.code, c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An amount in integer minor units with its currency and the exponent it
/// travels with. Never floating point. Wire form: `"901 1500 0"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    currency: u16,
    amount: i64,
    exponent: u8,
}

impl Money {
    /// An amount in a known currency; negative amounts do not exist at the bank.
    pub fn new(currency: Currency, amount: i64) -> Result<Self, InvalidField> {
        Self::from_parts(currency.code, amount, currency.exponent)
    }

    /// An amount as the wire carries it, in any currency code: what the
    /// simulator keeps for a transaction, or an answer's amount. The parts
    /// are checked as `parse` checks them.
    pub fn from_parts(currency: u16, amount: i64, exponent: u8) -> Result<Self, InvalidField> {
        if amount < 0 {
            return Err(InvalidField::new(
                "amount",
                format!("{amount} is negative; amounts are zero or more minor units"),
            ));
        }
        if currency > 999 || exponent > 9 {
            return Err(InvalidField::new(
                "amount",
                format!("currency {currency} or exponent {exponent} is out of range (at most 999 and 9)"),
            ));
        }
        Ok(Self {
            currency,
            amount,
            exponent,
        })
    }

    /// Minor units.
    pub fn amount(self) -> i64 {
        self.amount
    }

    /// The ISO 4217 numeric code (`901` for NT$).
    pub fn currency_code(self) -> u16 {
        self.currency
    }

    /// The exponent the amount travels with.
    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// Parses the bank's amount string `"<currency> <amount> <exponent>"`.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let bad = |why: &str| {
            InvalidField::new(
                "amount",
                format!("{raw:?} {why}; expected \"<currency> <amount> <exponent>\" like \"901 1500 0\""),
            )
        };
        let parts: Vec<&str> = raw.split_whitespace().collect();
        let [cur, amt, exp] = parts.as_slice() else {
            return Err(bad("does not have three parts"));
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(cur) || !all_digits(amt) || !all_digits(exp) {
            return Err(bad("has a part that is not a plain non-negative integer"));
        }
        let currency: u16 = cur
            .parse()
            .map_err(|_| bad("has a currency code out of range"))?;
        let amount: i64 = amt.parse().map_err(|_| bad("has an amount out of range"))?;
        let exponent: u8 = exp
            .parse()
            .map_err(|_| bad("has an exponent out of range"))?;
        if currency > 999 || exponent > 9 {
            return Err(bad("has a currency or exponent out of range"));
        }
        Self::from_parts(currency, amount, exponent)
    }

    /// The amount if its currency is one refundd knows and it carries the
    /// exponent that currency travels with: `"901 1500 2"` is not NT$1,500.
    pub fn in_known_currency(self) -> Result<Self, InvalidField> {
        let currency = Currency::from_code(self.currency)?;
        if self.exponent != currency.exponent {
            return Err(InvalidField::new(
                "amount",
                format!(
                    "\"{self}\" has exponent {}, but {} ({}) amounts travel with exponent {}",
                    self.exponent, currency.code, currency.name, currency.exponent
                ),
            ));
        }
        Ok(self)
    }

    /// The same currency and exponent with another amount, checked as `new`.
    pub fn with_amount(self, amount: i64) -> Result<Self, InvalidField> {
        Self::from_parts(self.currency, amount, self.exponent)
    }

    /// Nothing, in a known currency: what a capture reversal's amount field
    /// carries, and a reversal's that cancels the authorisation.
    pub fn zero(currency: Currency) -> Self {
        Self {
            currency: currency.code,
            amount: 0,
            exponent: currency.exponent,
        }
    }

    /// What is left of this amount once `part` is taken from it: `None` when
    /// `part` is of another currency or exponent, or more than this.
    pub fn less(self, part: Money) -> Option<Self> {
        let same_kind = (self.currency, self.exponent) == (part.currency, part.exponent);
        let left = self.amount.checked_sub(part.amount)?;
        (same_kind && left >= 0).then_some(Self {
            amount: left,
            ..self
        })
    }
}

/// For `#[serde(serialize_with)]`: an amount as a plain integer of minor
/// units, the form `refundd plan --format json` and the stored amounts use
/// (the currency is the order's, shown beside it where it matters).
pub fn serialize_minor_units<S: serde::Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(m.amount)
}

/// The rule every refund keeps, in one place: something was authorised
/// (more than 0), and what is given back is more than 0 and at most that.
/// The engine checks a shop's row with it before anything is sent, and
/// `refundd request`/`retry` check an operator's order with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundAmounts {
    /// What the bank authorised, in minor units.
    pub authorised: i64,
    /// What is to be given back; the whole `authorised` when none was named.
    pub refund: i64,
}

/// Why amounts break the refund rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountProblem {
    NoAuthorised,
    AuthorisedNotPositive(i64),
    RefundNotPositive { refund: i64, authorised: i64 },
    RefundOverAuthorised { refund: i64, authorised: i64 },
}

impl RefundAmounts {
    /// `refund` None: the whole authorised amount.
    pub fn check(authorised: Option<i64>, refund: Option<i64>) -> Result<Self, AmountProblem> {
        let authorised = match authorised {
            None => return Err(AmountProblem::NoAuthorised),
            Some(a) if a <= 0 => return Err(AmountProblem::AuthorisedNotPositive(a)),
            Some(a) => a,
        };
        let refund = refund.unwrap_or(authorised);
        if refund <= 0 {
            return Err(AmountProblem::RefundNotPositive { refund, authorised });
        }
        if refund > authorised {
            return Err(AmountProblem::RefundOverAuthorised { refund, authorised });
        }
        Ok(Self { authorised, refund })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.currency, self.amount, self.exponent)
    }
}

/// Where a transaction stands at the bank (`CurrentState`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxState {
    /// -1: the authorisation failed; nothing to refund.
    AuthFailed,
    /// 0: the authorisation was cancelled.
    AuthCancelled,
    /// 1: authorised, not in the capture file.
    Authorised,
    /// 10: in the capture file (請款檔), not settled yet.
    CapturedNotSettled,
    /// 11: the capture batch is running.
    CaptureBatchRunning,
    /// 12: captured and settled (清算成功).
    Settled,
    /// 13: the capture failed.
    CaptureFailed,
    /// 20: refunded, the refund is settling.
    RefundSettling,
    /// 21: the refund batch is running.
    RefundBatchRunning,
    /// 22: the refund settled.
    RefundSettled,
    /// 23: the refund failed at settlement.
    RefundFailed,
    /// A code the protocol document does not list.
    Unknown(String),
}

impl TxState {
    pub fn from_code(raw: &str) -> Self {
        match raw.trim() {
            "-1" => Self::AuthFailed,
            "0" => Self::AuthCancelled,
            "1" => Self::Authorised,
            "10" => Self::CapturedNotSettled,
            "11" => Self::CaptureBatchRunning,
            "12" => Self::Settled,
            "13" => Self::CaptureFailed,
            "20" => Self::RefundSettling,
            "21" => Self::RefundBatchRunning,
            "22" => Self::RefundSettled,
            "23" => Self::RefundFailed,
            other => Self::Unknown(other.to_string()),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Self::AuthFailed => "-1",
            Self::AuthCancelled => "0",
            Self::Authorised => "1",
            Self::CapturedNotSettled => "10",
            Self::CaptureBatchRunning => "11",
            Self::Settled => "12",
            Self::CaptureFailed => "13",
            Self::RefundSettling => "20",
            Self::RefundBatchRunning => "21",
            Self::RefundSettled => "22",
            Self::RefundFailed => "23",
            Self::Unknown(raw) => raw,
        }
    }

    /// Every state of the protocol document's table, for exhaustive tests.
    pub fn all_known() -> [TxState; 11] {
        [
            Self::AuthFailed,
            Self::AuthCancelled,
            Self::Authorised,
            Self::CapturedNotSettled,
            Self::CaptureBatchRunning,
            Self::Settled,
            Self::CaptureFailed,
            Self::RefundSettling,
            Self::RefundBatchRunning,
            Self::RefundSettled,
            Self::RefundFailed,
        ]
    }
}

impl fmt::Display for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A card number as the bank masks it (first six, last four). Anything that
/// looks like a full card number is masked here before it is kept anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedPan(String);

impl MaskedPan {
    pub fn from_bank(raw: &str) -> Self {
        let raw = sanitise(raw);
        let digits = raw.bytes().filter(|b| b.is_ascii_digit()).count();
        if digits > 10 && raw.bytes().all(|b| b.is_ascii_digit()) {
            // Unmasked: keep the bank's mask shape ourselves.
            let n = raw.len();
            Self(format!(
                "{}{}{}",
                &raw[..6],
                "*".repeat(n - 10),
                &raw[n - 4..]
            ))
        } else {
            Self(raw)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_is_more_than_0_and_at_most_what_was_authorised() {
        let ok = |a, r| RefundAmounts::check(a, r);
        assert_eq!(
            ok(Some(1500), None),
            Ok(RefundAmounts {
                authorised: 1500,
                refund: 1500
            })
        );
        assert_eq!(ok(Some(1500), Some(1)).map(|a| a.refund), Ok(1));
        assert_eq!(ok(Some(1500), Some(1500)).map(|a| a.refund), Ok(1500));
        assert_eq!(ok(None, Some(1)), Err(AmountProblem::NoAuthorised));
        assert_eq!(
            ok(Some(0), None),
            Err(AmountProblem::AuthorisedNotPositive(0))
        );
        assert_eq!(
            ok(Some(-5), Some(1)),
            Err(AmountProblem::AuthorisedNotPositive(-5))
        );
        assert_eq!(
            ok(Some(1500), Some(0)),
            Err(AmountProblem::RefundNotPositive {
                refund: 0,
                authorised: 1500
            })
        );
        assert_eq!(
            ok(Some(1500), Some(-1)),
            Err(AmountProblem::RefundNotPositive {
                refund: -1,
                authorised: 1500
            })
        );
        assert_eq!(
            ok(Some(1500), Some(1501)),
            Err(AmountProblem::RefundOverAuthorised {
                refund: 1501,
                authorised: 1500
            })
        );
    }

    #[test]
    fn order_no_limits() {
        assert!(OrderNo::parse("ORDER_001").is_ok());
        assert!(OrderNo::parse(&"a".repeat(19)).is_ok());
        for bad in ["", &"a".repeat(20), "A-1", "訂單1", "a b", "x\n"] {
            let e = OrderNo::parse(bad).unwrap_err();
            assert_eq!(e.field, "order_no", "{bad:?}");
        }
    }

    #[test]
    fn mer_id_and_auth_code_limits() {
        assert!(MerId::parse("1234567").is_ok());
        for bad in ["", "12a", " 1", "123456789012345678901"] {
            assert_eq!(MerId::parse(bad).unwrap_err().field, "mer_id");
        }
        assert!(AuthCode::parse("A1B2C3").is_ok());
        for bad in ["", "1234567", "12-4", "12 4"] {
            assert_eq!(AuthCode::parse(bad).unwrap_err().field, "auth_code");
        }
    }

    #[test]
    fn money_round_trips_and_rejects() {
        let m = Money::parse("901 1500 0").unwrap();
        assert_eq!(m, Money::new(Currency::TWD, 1500).unwrap());
        assert_eq!(m.to_string(), "901 1500 0");
        for bad in [
            "",
            "901 1500",
            "901 1500 0 1",
            "901 -1 0",
            "901 15.00 0",
            "901 99999999999999999999 0",
            "TWD 1500 0",
            "9010 1 0",
            "901 1 10",
            "901 +1 0",
        ] {
            assert_eq!(Money::parse(bad).unwrap_err().field, "amount", "{bad:?}");
        }
        assert_eq!(Money::new(Currency::TWD, -1).unwrap_err().field, "amount");
    }

    #[test]
    fn what_is_left_of_an_amount_is_of_its_currency_and_never_negative() {
        let twd = |n| Money::new(Currency::TWD, n).unwrap();
        assert_eq!(twd(1000).less(twd(300)), Some(twd(700)));
        assert_eq!(twd(1000).less(twd(1000)), Some(twd(0)));
        assert_eq!(twd(300).less(twd(1000)), None);
        let other_currency = Money::from_parts(840, 300, 0).unwrap();
        assert_eq!(twd(1000).less(other_currency), None);
        let other_exponent = Money::from_parts(901, 300, 2).unwrap();
        assert_eq!(twd(1000).less(other_exponent), None);
        assert_eq!(Money::zero(Currency::TWD), twd(0));
        let json = serde_json::to_value(Wrapped { amount: twd(1500) }).unwrap();
        assert_eq!(json, serde_json::json!({ "amount": 1500 }));
    }

    #[derive(serde::Serialize)]
    struct Wrapped {
        #[serde(serialize_with = "serialize_minor_units")]
        amount: Money,
    }

    #[test]
    fn amounts_carry_their_currency_s_exponent() {
        let m = Money::parse("901 1500 0").unwrap();
        assert_eq!(m.in_known_currency(), Ok(m));
        let e = Money::parse("901 1500 2")
            .unwrap()
            .in_known_currency()
            .unwrap_err();
        assert_eq!(e.field, "amount");
        assert!(e.problem.contains("exponent 0"), "{e}");
        let e = Money::parse("840 1500 2")
            .unwrap()
            .in_known_currency()
            .unwrap_err();
        assert_eq!(e.field, "currency");
    }

    #[test]
    fn currency_table() {
        assert_eq!(Currency::parse("901").unwrap().exponent, 0);
        assert_eq!(Currency::parse("840").unwrap_err().field, "currency");
        assert_eq!(Currency::parse("twd").unwrap_err().field, "currency");
    }

    #[test]
    fn every_state_code_round_trips() {
        for s in TxState::all_known() {
            assert_eq!(TxState::from_code(s.code()), s);
        }
        assert_eq!(TxState::from_code("99"), TxState::Unknown("99".into()));
    }

    #[test]
    fn full_card_numbers_are_masked() {
        assert_eq!(
            MaskedPan::from_bank("4111111111111111").as_str(),
            "411111******1111"
        );
        assert_eq!(
            MaskedPan::from_bank("411111******1111").as_str(),
            "411111******1111"
        );
    }
}
