//! The requests refundd sends to CTBC, as typed values and as the bank's flat
//! JSON objects with the documented keys in the documented order. Checks of our
//! own input live here so that a request that breaks a limit is never sent.

use serde_json::{Map, Value};

use super::fields::{string_object, text_field};
use super::operation::PROTOCOL_VERSION;
use super::types::{AuthCode, InvalidField, MerId, Money, OrderNo, Xid};

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

/// The parts every money-moving request shares, and where its own amount and
/// each key go on the wire. The key orders are the protocol document's, one
/// table per operation, so a merchant holding the bank's own document can
/// correct one in one place.
trait MoneyMoving: Sized {
    /// Keys in the order the bank expects them.
    const KEYS: [&'static str; 8];
    /// The key of this operation's own amount.
    const AMOUNT_KEY: &'static str;
    /// Our name of that amount, in errors.
    const AMOUNT_FIELD: &'static str;
    fn common(&self) -> (&OrderNo, &Xid, &AuthCode, &Money);
    fn own_amount(&self) -> &Money;
    fn from_parts(common: Common, amount: Money) -> Self;

    fn checked(&self) -> Result<(), InvalidField> {
        let (_, _, _, original) = self.common();
        check_part(
            Self::AMOUNT_FIELD,
            Self::AMOUNT_KEY,
            original,
            self.own_amount(),
        )
    }

    fn to_json(&self, mer_id: &MerId, sw_revision: &str) -> Map<String, Value> {
        let (order_no, xid, auth_code, original) = self.common();
        string_object(Self::KEYS.map(|key| {
            let value = match key {
                "MERID" => mer_id.to_string(),
                "LID-M" => order_no.to_string(),
                "XID" => xid.to_string(),
                "AuthCode" => auth_code.to_string(),
                "OrgAmt" => original.to_string(),
                "VERSION" => PROTOCOL_VERSION.to_string(),
                "SwRevision" => sw_revision.to_string(),
                _ => self.own_amount().to_string(),
            };
            (key, value)
        }))
    }

    fn read_json(json: &Map<String, Value>) -> Result<(MerId, Self), InvalidField> {
        let common = Common::read(json)?;
        let own = amount(json, Self::AMOUNT_KEY)?;
        Ok((common.mer_id.clone(), Self::from_parts(common, own)))
    }
}

/// The public face of each request type: check, write and read its JSON.
macro_rules! money_moving {
    ($ty:ident, $field:ident, $wire:literal, [$($key:literal),+ $(,)?]) => {
        impl MoneyMoving for $ty {
            const KEYS: [&'static str; 8] = [$($key),+];
            const AMOUNT_KEY: &'static str = $wire;
            const AMOUNT_FIELD: &'static str = stringify!($field);
            fn common(&self) -> (&OrderNo, &Xid, &AuthCode, &Money) {
                (&self.order_no, &self.xid, &self.auth_code, &self.original)
            }
            fn own_amount(&self) -> &Money {
                &self.$field
            }
            fn from_parts(c: Common, amount: Money) -> Self {
                Self {
                    order_no: c.order_no,
                    xid: c.xid,
                    auth_code: c.auth_code,
                    original: c.original,
                    $field: amount,
                }
            }
        }

        impl $ty {
            /// The request JSON, keys in the documented order.
            pub fn request_json(&self, mer_id: &MerId, sw_revision: &str) -> Map<String, Value> {
                self.to_json(mer_id, sw_revision)
            }

            /// Reads the request JSON (the simulator's side).
            pub fn from_request_json(json: &Map<String, Value>) -> Result<(MerId, Self), InvalidField> {
                Self::read_json(json)
            }
        }
    };
}

money_moving!(
    Reversal,
    new_auth_amount,
    "AuthNewAmt",
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
money_moving!(
    CaptureReversal,
    amount,
    "CapRevAmt",
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
money_moving!(
    Refund,
    amount,
    "CredAmt",
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
money_moving!(
    RefundReversal,
    amount,
    "CredRevAmt",
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

impl Reversal {
    /// Checks the amounts against the documented limits.
    pub fn validate(&self) -> Result<(), InvalidField> {
        self.checked()
    }
}

impl CaptureReversal {
    pub fn validate(&self) -> Result<(), InvalidField> {
        self.checked()
    }
}

impl Refund {
    /// Besides the common limits, a refund of zero moves no money and is refused.
    pub fn validate(&self) -> Result<(), InvalidField> {
        self.checked()?;
        if self.amount.amount() == 0 {
            return Err(InvalidField::new(
                "amount",
                "a refund of zero (CredAmt) moves no money; ask for the amount owed to the customer",
            ));
        }
        Ok(())
    }
}

impl RefundReversal {
    pub fn validate(&self) -> Result<(), InvalidField> {
        self.checked()
    }

    /// The request JSON naming the refund it cancels by where the bank
    /// filed it (`CredBatchID`, `CredBatchSeq`, after `OrgAmt`).
    pub fn request_json_naming(
        &self,
        place: &RefundPlace,
        mer_id: &MerId,
        sw_revision: &str,
    ) -> Map<String, Value> {
        let mut json = Map::new();
        for (key, value) in self.request_json(mer_id, sw_revision) {
            let after_org_amt = key == "OrgAmt";
            json.insert(key, value);
            if after_org_amt {
                json.insert("CredBatchID".into(), Value::String(place.batch_id.clone()));
                json.insert(
                    "CredBatchSeq".into(),
                    Value::String(place.batch_seq.clone()),
                );
            }
        }
        json
    }
}

/// Where the bank filed a refund (its `BatchID` and `BatchSeq`), by which a
/// refund reversal names the refund it cancels. Checked before it is sent:
/// 1 to 20 ASCII letters or digits each, as the bank gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlace {
    batch_id: String,
    batch_seq: String,
}

impl RefundPlace {
    pub fn parse(batch_id: &str, batch_seq: &str) -> Result<Self, InvalidField> {
        let check = |field: &'static str, value: &str| {
            let ok =
                (1..=20).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric());
            match ok {
                true => Ok(value.to_string()),
                false => Err(InvalidField::new(
                    field,
                    format!("{value:?} is not where the bank files a refund (1 to 20 letters or digits)"),
                )),
            }
        };
        Ok(Self {
            batch_id: check("batch_id", batch_id)?,
            batch_seq: check("batch_seq", batch_seq)?,
        })
    }

    pub fn batch_id(&self) -> &str {
        &self.batch_id
    }

    pub fn batch_seq(&self) -> &str {
        &self.batch_seq
    }
}

/// A part of the original amount: same currency and exponent, not more than
/// the original (a `Money` is never negative).
fn check_part(
    field: &'static str,
    wire_name: &str,
    original: &Money,
    part: &Money,
) -> Result<(), InvalidField> {
    if part.currency_code() != original.currency_code() || part.exponent() != original.exponent() {
        return Err(InvalidField::new(
            field,
            format!(
                "{wire_name} {part} is not in the currency and exponent of the original amount {original}"
            ),
        ));
    }
    if part.amount() > original.amount() {
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
            Money::from_parts(840, 100, 2).unwrap(),
            Money::from_parts(901, 100, 2).unwrap(),
        ] {
            assert_eq!(refund(bad).validate().unwrap_err().field, "amount", "{bad}");
        }
        // A negative amount cannot be built, so no request can carry one.
        assert_eq!(twd(1).with_amount(-1).unwrap_err().field, "amount");
        assert_eq!(Money::from_parts(901, -5, 0).unwrap_err().field, "amount");
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
    fn every_money_moving_request_is_written_as_documented() {
        let mer = MerId::parse("1234567").unwrap();
        let (order_no, xid, auth_code) = (
            OrderNo::parse("ORDER001").unwrap(),
            Xid::parse("X1").unwrap(),
            AuthCode::parse("123456").unwrap(),
        );
        let text = |json: Map<String, Value>| super::super::fields::json_text(&json);
        let reversal = Reversal {
            order_no: order_no.clone(),
            xid: xid.clone(),
            auth_code: auth_code.clone(),
            original: twd(1500),
            new_auth_amount: twd(1000),
        };
        assert_eq!(
            text(reversal.request_json(&mer, "rev")),
            r#"{"MERID":"1234567","LID-M":"ORDER001","XID":"X1","AuthCode":"123456","OrgAmt":"901 1500 0","AuthNewAmt":"901 1000 0","VERSION":"3.2","SwRevision":"rev"}"#
        );
        let caprev = CaptureReversal {
            order_no: order_no.clone(),
            xid: xid.clone(),
            auth_code: auth_code.clone(),
            original: twd(1500),
            amount: twd(0),
        };
        assert_eq!(
            text(caprev.request_json(&mer, "rev")),
            r#"{"MERID":"1234567","LID-M":"ORDER001","XID":"X1","AuthCode":"123456","OrgAmt":"901 1500 0","CapRevAmt":"901 0 0","VERSION":"3.2","SwRevision":"rev"}"#
        );
        assert_eq!(
            text(refund(twd(500)).request_json(&mer, "rev")),
            r#"{"MERID":"1234567","LID-M":"ORDER001","AuthCode":"123456","CredAmt":"901 500 0","OrgAmt":"901 1500 0","XID":"X1","VERSION":"3.2","SwRevision":"rev"}"#
        );
        let refrev = RefundReversal {
            order_no,
            xid,
            auth_code,
            original: twd(1500),
            amount: twd(500),
        };
        assert_eq!(
            text(refrev.request_json(&mer, "rev")),
            r#"{"MERID":"1234567","LID-M":"ORDER001","XID":"X1","AuthCode":"123456","CredRevAmt":"901 500 0","OrgAmt":"901 1500 0","VERSION":"3.2","SwRevision":"rev"}"#
        );
        // And each reads back to itself.
        assert_eq!(
            Reversal::from_request_json(&reversal.request_json(&mer, "rev"))
                .unwrap()
                .1,
            reversal
        );
        assert_eq!(
            CaptureReversal::from_request_json(&caprev.request_json(&mer, "rev"))
                .unwrap()
                .1,
            caprev
        );
        assert_eq!(
            RefundReversal::from_request_json(&refrev.request_json(&mer, "rev"))
                .unwrap()
                .1,
            refrev
        );
    }

    #[test]
    fn a_refund_reversal_names_the_refund_it_cancels_where_the_bank_filed_it() {
        let mer = MerId::parse("1234567").unwrap();
        let refrev = RefundReversal {
            order_no: OrderNo::parse("ORDER001").unwrap(),
            xid: Xid::parse("X1").unwrap(),
            auth_code: AuthCode::parse("123456").unwrap(),
            original: twd(300),
            amount: twd(0),
        };
        let place = RefundPlace::parse("20261207", "000002").unwrap();
        assert_eq!(
            super::super::fields::json_text(&refrev.request_json_naming(&place, &mer, "rev")),
            r#"{"MERID":"1234567","LID-M":"ORDER001","XID":"X1","AuthCode":"123456","CredRevAmt":"901 0 0","OrgAmt":"901 300 0","CredBatchID":"20261207","CredBatchSeq":"000002","VERSION":"3.2","SwRevision":"rev"}"#
        );
        for (id, seq) in [
            ("", "1"),
            ("1", ""),
            ("2026 12", "1"),
            ("1", "0000000000000000000001"),
            ("<b>", "1"),
        ] {
            assert!(RefundPlace::parse(id, seq).is_err(), "{id:?} {seq:?}");
        }
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
            super::super::fields::json_text(&inquiry),
            r#"{"MERID":"1234567","LID-M":"ORDER001","VERSION":"3.2","SwRevision":"MicroQuery Server 3.2 (2019/10/25)","Tx_ATTRIBUTE":"TX_AUTH"}"#
        );
    }
}
