// The requests refundd sends to CTBC, as typed values and as the bank's flat
// JSON objects with the documented keys in the documented order. Checks of our
// own input live here so that a request that breaks a limit is never sent.

use serde_json::{Map, Value};

use super::operation::PROTOCOL_VERSION;
use super::types::{AuthCode, InvalidField, MerId, Money, OrderNo, Xid};
use super::wire::{string_object, text_field};

/// `Tx_ATTRIBUTE` of an inquiry about the authorisation's life.
pub const TX_ATTRIBUTE_AUTH: &str = "TX_AUTH";

/// Cancel (or lower) an authorisation that is not in the capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    pub order_no: OrderNo,
    pub xid: Xid,
    pub auth_code: AuthCode,
    /// `OrgAmt`: the amount originally authorised.
    pub original: Money,
    /// `AuthNewAmt`: what stays authorised; zero cancels the whole authorisation.
    pub new_auth_amount: Money,
}

/// Take a captured, not yet settled transaction back out of the capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureReversal {
    pub order_no: OrderNo,
    pub xid: Xid,
    pub auth_code: AuthCode,
    /// `OrgAmt`: the amount originally authorised.
    pub original: Money,
    /// `CapRevAmt`: the amount taken out of the capture; zero takes it all.
    pub amount: Money,
}

/// Refund all or part of a settled transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub order_no: OrderNo,
    pub xid: Xid,
    pub auth_code: AuthCode,
    /// `OrgAmt`: the amount originally authorised.
    pub original: Money,
    /// `CredAmt`: the amount refunded now.
    pub amount: Money,
}

/// Cancel a refund that has not settled yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReversal {
    pub order_no: OrderNo,
    pub xid: Xid,
    pub auth_code: AuthCode,
    /// `OrgAmt`: the amount originally authorised.
    pub original: Money,
    /// `CredRevAmt`: the amount of the refund being cancelled.
    pub amount: Money,
}

/// The request JSON of an inquiry about the authorisation of one order:
/// `MERID`, `LID-M`, `VERSION`, `SwRevision`, `Tx_ATTRIBUTE`.
pub fn inquiry_request_json(
    mer_id: &MerId,
    order_no: &OrderNo,
    sw_revision: &str,
) -> Map<String, Value> {
    string_object([
        ("MERID", mer_id.as_str()),
        ("LID-M", order_no.as_str()),
        ("VERSION", PROTOCOL_VERSION),
        ("SwRevision", sw_revision),
        ("Tx_ATTRIBUTE", TX_ATTRIBUTE_AUTH),
    ])
}

/// Reads an inquiry request JSON (the simulator's side): merchant id and order.
pub fn parse_inquiry_request(json: &Map<String, Value>) -> Result<(MerId, OrderNo), InvalidField> {
    Ok((
        MerId::parse(required(json, "MERID")?)?,
        OrderNo::parse(required(json, "LID-M")?)?,
    ))
}

impl Reversal {
    /// Checks the amounts against the documented limits.
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_original(&self.original)?;
        check_part(
            "new_auth_amount",
            "AuthNewAmt",
            &self.original,
            &self.new_auth_amount,
        )
    }

    /// `MERID`, `LID-M`, `XID`, `AuthCode`, `OrgAmt`, `AuthNewAmt`, `VERSION`, `SwRevision`.
    pub fn request_json(&self, mer_id: &MerId, sw_revision: &str) -> Map<String, Value> {
        string_object([
            ("MERID", mer_id.to_string()),
            ("LID-M", self.order_no.to_string()),
            ("XID", self.xid.to_string()),
            ("AuthCode", self.auth_code.to_string()),
            ("OrgAmt", self.original.to_string()),
            ("AuthNewAmt", self.new_auth_amount.to_string()),
            ("VERSION", PROTOCOL_VERSION.to_string()),
            ("SwRevision", sw_revision.to_string()),
        ])
    }

    /// Reads a reversal request JSON (the simulator's side).
    pub fn from_request_json(json: &Map<String, Value>) -> Result<(MerId, Self), InvalidField> {
        let common = Common::read(json)?;
        Ok((
            common.mer_id,
            Self {
                order_no: common.order_no,
                xid: common.xid,
                auth_code: common.auth_code,
                original: common.original,
                new_auth_amount: amount(json, "AuthNewAmt")?,
            },
        ))
    }
}

impl CaptureReversal {
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_original(&self.original)?;
        check_part("amount", "CapRevAmt", &self.original, &self.amount)
    }

    /// `MERID`, `LID-M`, `XID`, `AuthCode`, `OrgAmt`, `CapRevAmt`, `VERSION`, `SwRevision`.
    pub fn request_json(&self, mer_id: &MerId, sw_revision: &str) -> Map<String, Value> {
        string_object([
            ("MERID", mer_id.to_string()),
            ("LID-M", self.order_no.to_string()),
            ("XID", self.xid.to_string()),
            ("AuthCode", self.auth_code.to_string()),
            ("OrgAmt", self.original.to_string()),
            ("CapRevAmt", self.amount.to_string()),
            ("VERSION", PROTOCOL_VERSION.to_string()),
            ("SwRevision", sw_revision.to_string()),
        ])
    }

    pub fn from_request_json(json: &Map<String, Value>) -> Result<(MerId, Self), InvalidField> {
        let common = Common::read(json)?;
        Ok((
            common.mer_id,
            Self {
                order_no: common.order_no,
                xid: common.xid,
                auth_code: common.auth_code,
                original: common.original,
                amount: amount(json, "CapRevAmt")?,
            },
        ))
    }
}

impl Refund {
    /// Besides the common limits, a refund of zero moves no money and is refused.
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_original(&self.original)?;
        check_part("amount", "CredAmt", &self.original, &self.amount)?;
        if self.amount.amount == 0 {
            return Err(InvalidField::new(
                "amount",
                "a refund of zero (CredAmt) moves no money; ask for the amount owed to the customer",
            ));
        }
        Ok(())
    }

    /// `MERID`, `LID-M`, `AuthCode`, `CredAmt`, `OrgAmt`, `XID`, `VERSION`, `SwRevision`.
    pub fn request_json(&self, mer_id: &MerId, sw_revision: &str) -> Map<String, Value> {
        string_object([
            ("MERID", mer_id.to_string()),
            ("LID-M", self.order_no.to_string()),
            ("AuthCode", self.auth_code.to_string()),
            ("CredAmt", self.amount.to_string()),
            ("OrgAmt", self.original.to_string()),
            ("XID", self.xid.to_string()),
            ("VERSION", PROTOCOL_VERSION.to_string()),
            ("SwRevision", sw_revision.to_string()),
        ])
    }

    pub fn from_request_json(json: &Map<String, Value>) -> Result<(MerId, Self), InvalidField> {
        let common = Common::read(json)?;
        Ok((
            common.mer_id,
            Self {
                order_no: common.order_no,
                xid: common.xid,
                auth_code: common.auth_code,
                original: common.original,
                amount: amount(json, "CredAmt")?,
            },
        ))
    }
}

impl RefundReversal {
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_original(&self.original)?;
        check_part("amount", "CredRevAmt", &self.original, &self.amount)
    }

    /// `MERID`, `LID-M`, `XID`, `AuthCode`, `CredRevAmt`, `OrgAmt`, `VERSION`, `SwRevision`.
    pub fn request_json(&self, mer_id: &MerId, sw_revision: &str) -> Map<String, Value> {
        string_object([
            ("MERID", mer_id.to_string()),
            ("LID-M", self.order_no.to_string()),
            ("XID", self.xid.to_string()),
            ("AuthCode", self.auth_code.to_string()),
            ("CredRevAmt", self.amount.to_string()),
            ("OrgAmt", self.original.to_string()),
            ("VERSION", PROTOCOL_VERSION.to_string()),
            ("SwRevision", sw_revision.to_string()),
        ])
    }

    pub fn from_request_json(json: &Map<String, Value>) -> Result<(MerId, Self), InvalidField> {
        let common = Common::read(json)?;
        Ok((
            common.mer_id,
            Self {
                order_no: common.order_no,
                xid: common.xid,
                auth_code: common.auth_code,
                original: common.original,
                amount: amount(json, "CredRevAmt")?,
            },
        ))
    }
}

fn check_original(original: &Money) -> Result<(), InvalidField> {
    if original.amount < 0 {
        return Err(InvalidField::new(
            "original",
            format!(
                "the original amount (OrgAmt) {original} is negative; use the amount the bank authorised"
            ),
        ));
    }
    Ok(())
}

/// A part of the original amount: not negative, same currency and exponent,
/// not more than the original.
fn check_part(
    field: &'static str,
    wire_name: &str,
    original: &Money,
    part: &Money,
) -> Result<(), InvalidField> {
    if part.amount < 0 {
        return Err(InvalidField::new(
            field,
            format!("{wire_name} {part} is negative; amounts are zero or more minor units"),
        ));
    }
    if part.currency != original.currency || part.exponent != original.exponent {
        return Err(InvalidField::new(
            field,
            format!(
                "{wire_name} {part} is not in the currency and exponent of the original amount {original}"
            ),
        ));
    }
    if part.amount > original.amount {
        return Err(InvalidField::new(
            field,
            format!("{wire_name} {part} is more than the original amount {original}"),
        ));
    }
    Ok(())
}

/// Fields every money-moving request carries.
struct Common {
    mer_id: MerId,
    order_no: OrderNo,
    xid: Xid,
    auth_code: AuthCode,
    original: Money,
}

impl Common {
    fn read(json: &Map<String, Value>) -> Result<Self, InvalidField> {
        Ok(Self {
            mer_id: MerId::parse(required(json, "MERID")?)?,
            order_no: OrderNo::parse(required(json, "LID-M")?)?,
            xid: Xid::parse(required(json, "XID")?)?,
            auth_code: AuthCode::parse(required(json, "AuthCode")?)?,
            original: amount(json, "OrgAmt")?,
        })
    }
}

fn required<'a>(json: &'a Map<String, Value>, key: &'static str) -> Result<&'a str, InvalidField> {
    text_field(json, key)
        .ok_or_else(|| InvalidField::new(key, "is missing from the request or not a string"))
}

fn amount(json: &Map<String, Value>, key: &'static str) -> Result<Money, InvalidField> {
    Money::parse(required(json, key)?).map_err(|e| InvalidField::new(key, e.problem))
}

#[cfg(test)]
mod tests {
    use super::super::types::Currency;
    use super::*;

    fn twd(n: i64) -> Money {
        Money::new(Currency::TWD, n).unwrap()
    }

    fn refund(amount: Money) -> Refund {
        Refund {
            order_no: OrderNo::parse("ORDER001").unwrap(),
            xid: Xid::parse("X1").unwrap(),
            auth_code: AuthCode::parse("123456").unwrap(),
            original: twd(1500),
            amount,
        }
    }

    #[test]
    fn amounts_are_checked_against_the_original() {
        assert!(refund(twd(1500)).validate().is_ok());
        assert!(refund(twd(1)).validate().is_ok());
        for bad in [
            twd(1501),
            twd(0),
            twd(1).with_amount(-1),
            Money {
                currency: 840,
                amount: 100,
                exponent: 2,
            },
            Money {
                currency: 901,
                amount: 100,
                exponent: 2,
            },
        ] {
            assert_eq!(refund(bad).validate().unwrap_err().field, "amount", "{bad}");
        }
        let mut r = refund(twd(1));
        r.original = twd(5).with_amount(-5);
        assert_eq!(r.validate().unwrap_err().field, "original");
    }

    #[test]
    fn zero_cancels_a_whole_authorisation_or_capture() {
        let r = Reversal {
            order_no: OrderNo::parse("A").unwrap(),
            xid: Xid::parse("X").unwrap(),
            auth_code: AuthCode::parse("1").unwrap(),
            original: twd(10),
            new_auth_amount: twd(0),
        };
        assert!(r.validate().is_ok());
        let c = CaptureReversal {
            order_no: r.order_no.clone(),
            xid: r.xid.clone(),
            auth_code: r.auth_code.clone(),
            original: twd(10),
            amount: twd(0),
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn request_keys_are_in_the_documented_order() {
        let mer = MerId::parse("1234567").unwrap();
        let json = refund(twd(500)).request_json(&mer, "rev");
        assert_eq!(
            json.keys().collect::<Vec<_>>(),
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
        assert_eq!(json["CredAmt"], "901 500 0");
        let inquiry = inquiry_request_json(
            &mer,
            &OrderNo::parse("ORDER001").unwrap(),
            "MicroQuery Server 3.2 (2019/10/25)",
        );
        assert_eq!(
            super::super::wire::json_text(&inquiry),
            r#"{"MERID":"1234567","LID-M":"ORDER001","VERSION":"3.2","SwRevision":"MicroQuery Server 3.2 (2019/10/25)","Tx_ATTRIBUTE":"TX_AUTH"}"#
        );
    }
}
