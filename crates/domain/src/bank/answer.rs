//! What CTBC answers, as typed values: the verdict every answer carries, the
//! inquiry's view of a transaction, and what an accepted refund reports. Reading
//! an answer is strict about what the engine relies on and lenient about the rest;
//! every text kept from it is sanitised here, where it is read. An answer must be
//! this merchant's (`check_merchant`) and this call's (`check_binding`): the MAC
//! covers only the answer's end, so what it echoes of the request is compared.
//! An order number the bank holds more than once (`QueryCode` "2") brings its
//! records along; they are `records`'s.

use serde_json::{Map, Value};

use super::bank_text::{has_control_chars, sanitise};
use super::fields::{string_object, text_field};
use super::records::{data_xml, records_of, InquiryRecord, QUERY_CODE_SEVERAL_RECORDS};
use super::types::{AuthCode, InvalidField, MaskedPan, MerId, Money, TxState, Xid};

/// `RespCode` of an answer the bank accepted.
pub const RESP_CODE_ACCEPTED: &str = "0";
/// `ErrCode` the bank sends when all is fine.
pub const ERR_CODE_FINE: &str = "00";
/// `QueryCode` of an inquiry answer that found one record.
pub const QUERY_CODE_ONE_RECORD: &str = "1";

/// Why an answer that opened cleanly still cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AnswerProblem(pub String);

/// The bank's verdict on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankVerdict {
    Accepted,
    Refused {
        resp_code: String,
        err_code: String,
        /// `ERRDESC`, decoded from Big5, card numbers masked.
        message: String,
    },
}

/// Reads `RespCode` (required), `ErrCode` and `ERRDESC`.
pub fn verdict(json: &Map<String, Value>) -> Result<BankVerdict, AnswerProblem> {
    let resp_code = code_field(json, "RespCode")?
        .ok_or_else(|| AnswerProblem("the answer has no RespCode".into()))?;
    if resp_code == RESP_CODE_ACCEPTED {
        return Ok(BankVerdict::Accepted);
    }
    Ok(BankVerdict::Refused {
        resp_code,
        err_code: kept_text(json, "ErrCode").unwrap_or_default(),
        message: message(json),
    })
}

fn message(json: &Map<String, Value>) -> String {
    kept_text(json, "ERRDESC").unwrap_or_default()
}

/// A free-text field kept from the answer, sanitised; `None` when absent or
/// nothing is left of it.
pub(super) fn kept_text(json: &Map<String, Value>, key: &str) -> Option<String> {
    text_field(json, key)
        .map(sanitise)
        .filter(|text| !text.is_empty())
}

/// A code the engine acts on (`RespCode`, `CurrentState`): a control character
/// in it makes the answer unreadable rather than being mended into another code.
pub(super) fn code_field(
    json: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, AnswerProblem> {
    match text_field(json, key) {
        Some(raw) if has_control_chars(raw) => {
            Err(AnswerProblem(format!("{key} holds control characters")))
        }
        raw => Ok(raw.map(sanitise)),
    }
}

/// Where one transaction stands, as an accepted inquiry reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inquiry {
    pub state: TxState,
    pub xid: Option<Xid>,
    pub auth_code: Option<AuthCode>,
    pub auth_amount: Option<Money>,
    pub pan: Option<MaskedPan>,
    pub txn_date: Option<String>,
    pub txn_time: Option<String>,
    pub eci: Option<String>,
    pub err_code: String,
    /// Every record of the order number when the bank holds several
    /// (`QueryCode` "2"; the fields above are then the latest
    /// authorisation's, until `for_xid` picks the order's own); empty when
    /// it holds one.
    pub records: Vec<InquiryRecord>,
}

impl Inquiry {
    /// Reads an accepted inquiry answer. `CurrentState` is required; an
    /// unlisted code is `TxState::Unknown`. Empty optional fields are absent;
    /// present but malformed ones make the answer unusable. `QueryCode` "1"
    /// (or none) is one record; "2" brings every record in `Data`, read as
    /// strictly; any other is unusable.
    pub fn from_answer_json(json: &Map<String, Value>) -> Result<Self, AnswerProblem> {
        let records = match code_field(json, "QueryCode")?.as_deref() {
            None | Some(QUERY_CODE_ONE_RECORD) => Vec::new(),
            Some(QUERY_CODE_SEVERAL_RECORDS) => records_of(json)?,
            Some(other) => {
                let shown: String = other.chars().take(MAX_SHOWN_CHARS).collect();
                return Err(AnswerProblem(format!(
                    "QueryCode {shown:?} is neither {QUERY_CODE_ONE_RECORD} (one record) nor {QUERY_CODE_SEVERAL_RECORDS} (several)"
                )));
            }
        };
        let state = code_field(json, "CurrentState")?
            .map(|code| TxState::from_code(&code))
            .ok_or_else(|| AnswerProblem("the inquiry answer has no CurrentState".into()))?;
        let xid = optional(json, "XID", Xid::parse)?;
        let auth_code = optional(json, "AuthCode", AuthCode::parse)?;
        let auth_amount = optional(json, "AuthAmt", answer_amount)?;
        Ok(Self {
            state,
            xid,
            auth_code,
            auth_amount,
            pan: kept_text(json, "PAN").map(|pan| MaskedPan::from_bank(&pan)),
            txn_date: kept_text(json, "Txn_date"),
            txn_time: kept_text(json, "Txn_time"),
            eci: kept_text(json, "ECI"),
            err_code: kept_text(json, "ErrCode").unwrap_or_default(),
            records,
        })
    }

    /// The answer JSON the bank would send for this inquiry (the simulator's
    /// side): with records, `QueryCode` "2" and every record in `Data`.
    pub fn to_answer_json(&self) -> Map<String, Value> {
        let several = !self.records.is_empty();
        let query_code = match several {
            true => QUERY_CODE_SEVERAL_RECORDS,
            false => QUERY_CODE_ONE_RECORD,
        };
        let mut pairs: Vec<(&str, String)> = vec![
            ("RespCode", RESP_CODE_ACCEPTED.to_string()),
            ("ErrCode", self.err_code.clone()),
            ("QueryCode", query_code.to_string()),
            ("CurrentState", self.state.code().to_string()),
        ];
        let optional = [
            ("XID", self.xid.as_ref().map(|v| v.to_string())),
            ("AuthCode", self.auth_code.as_ref().map(|v| v.to_string())),
            ("AuthAmt", self.auth_amount.map(|v| v.to_string())),
            ("PAN", self.pan.as_ref().map(|v| v.as_str().to_string())),
            ("Txn_date", self.txn_date.clone()),
            ("Txn_time", self.txn_time.clone()),
            ("ECI", self.eci.clone()),
            ("Data", several.then(|| data_xml(&self.records))),
        ];
        pairs.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        string_object(pairs)
    }
}

/// An accepted reversal, capture reversal or refund reversal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub err_code: String,
    pub message: String,
}

impl Accepted {
    pub fn from_answer_json(json: &Map<String, Value>) -> Self {
        Self {
            err_code: kept_text(json, "ErrCode").unwrap_or_default(),
            message: message(json),
        }
    }

    pub fn to_answer_json(&self) -> Map<String, Value> {
        string_object([
            ("RespCode", RESP_CODE_ACCEPTED),
            ("ErrCode", self.err_code.as_str()),
            ("ERRDESC", self.message.as_str()),
        ])
    }
}

/// An accepted refund, with what the bank says it refunded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAccepted {
    /// `RefAmt`.
    pub refunded: Money,
    pub retr_ref: Option<String>,
    pub batch_id: Option<String>,
    pub batch_seq: Option<String>,
}

/// Where the bank filed an accepted refund: its retrieval reference and its
/// place in the refund batch, which a refund reversal names it by. Kept as
/// the bank sent them (sanitised); each may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundReferences {
    pub retr_ref: Option<String>,
    pub batch_id: Option<String>,
    pub batch_seq: Option<String>,
}

impl RefundReferences {
    /// Whether the bank sent none of them.
    pub fn is_empty(&self) -> bool {
        self.retr_ref.is_none() && self.batch_id.is_none() && self.batch_seq.is_none()
    }
}

impl RefundAccepted {
    /// Where the bank filed this refund.
    pub fn references(&self) -> RefundReferences {
        RefundReferences {
            retr_ref: self.retr_ref.clone(),
            batch_id: self.batch_id.clone(),
            batch_seq: self.batch_seq.clone(),
        }
    }

    /// Reads an accepted refund answer; `RefAmt` is required, since without it
    /// nobody knows how much was refunded.
    pub fn from_answer_json(json: &Map<String, Value>) -> Result<Self, AnswerProblem> {
        let refunded = text_field(json, "RefAmt")
            .ok_or_else(|| {
                AnswerProblem("the refund was accepted but the answer has no RefAmt".into())
            })
            .and_then(|raw| {
                answer_amount(raw).map_err(|e| {
                    AnswerProblem(sanitise(&format!("RefAmt is malformed: {}", e.problem)))
                })
            })?;
        Ok(Self {
            refunded,
            retr_ref: kept_text(json, "RetrRef"),
            batch_id: kept_text(json, "BatchID"),
            batch_seq: kept_text(json, "BatchSeq"),
        })
    }

    pub fn to_answer_json(&self) -> Map<String, Value> {
        let mut pairs: Vec<(&str, String)> = vec![
            ("RespCode", RESP_CODE_ACCEPTED.to_string()),
            ("ErrCode", ERR_CODE_FINE.to_string()),
            ("RefAmt", self.refunded.to_string()),
        ];
        let optional = [
            ("RetrRef", self.retr_ref.clone()),
            ("BatchID", self.batch_id.clone()),
            ("BatchSeq", self.batch_seq.clone()),
        ];
        pairs.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        string_object(pairs)
    }
}

/// An amount the bank reports: well formed, in a currency refundd knows,
/// with that currency's exponent.
pub(super) fn answer_amount(raw: &str) -> Result<Money, InvalidField> {
    Money::parse(raw)?.in_known_currency()
}

/// Checks that an answer is meant for this merchant: a `MERID` in clear on the
/// form and one inside the sealed JSON, wherever the bank sends them, must
/// both be ours. An answer without either is read as usual.
pub fn check_merchant(
    form_mer_id: Option<&str>,
    json: &Map<String, Value>,
    own: &MerId,
) -> Result<(), AnswerProblem> {
    let places = [
        ("in clear on the form", form_mer_id.map(str::trim)),
        ("inside the envelope", text_field(json, "MERID")),
    ];
    for (place, mer_id) in places {
        match mer_id {
            Some(theirs) if !theirs.is_empty() && theirs != own.as_str() => {
                return Err(AnswerProblem(sanitise(&format!(
                    "the answer's MERID {place} is {theirs:?}, not this merchant's {own}"
                ))))
            }
            _ => {}
        }
    }
    Ok(())
}

/// How an answer's copy of a request field is compared with the request's.
#[derive(Debug, Clone, Copy)]
enum Echo {
    /// Trimmed, then equal character for character (case counts).
    Text,
    /// Equal as amounts: the same currency, minor units and exponent.
    Amount,
}

/// The request fields that tie an answer to its call (`MERID` is
/// `check_merchant`'s). One table, so a merchant holding the bank's own
/// document can correct it in one place.
const CALL_FIELDS: [(&str, Echo); 8] = [
    ("LID-M", Echo::Text),
    ("XID", Echo::Text),
    ("AuthCode", Echo::Text),
    ("OrgAmt", Echo::Amount),
    ("AuthNewAmt", Echo::Amount),
    ("CapRevAmt", Echo::Amount),
    ("CredAmt", Echo::Amount),
    ("CredRevAmt", Echo::Amount),
];

/// The longest text of the bank's kept in a problem, in characters.
pub(super) const MAX_SHOWN_CHARS: usize = 64;

/// Checks that an answer answers the call it came back for. The MAC covers
/// only the end of the answer and nothing else ties it to its request, so
/// each field of `CALL_FIELDS` that the request sent and the answer carries
/// too must be the request's own. A field the answer leaves out or empty is
/// not checked: the bank's field set varies by operation and contract.
pub fn check_binding(
    request: &Map<String, Value>,
    answer: &Map<String, Value>,
) -> Result<(), AnswerProblem> {
    for (key, echo) in CALL_FIELDS {
        let Some(ours) = text_field(request, key) else {
            continue;
        };
        let Some(theirs) = echoed(answer, key)? else {
            continue;
        };
        if !same(echo, ours, theirs) {
            let shown: String = theirs.chars().take(MAX_SHOWN_CHARS).collect();
            return Err(AnswerProblem(sanitise(&format!(
                "the answer's {key} is {shown:?}, not the {ours:?} this call sent: it may answer another call"
            ))));
        }
    }
    Ok(())
}

/// The answer's copy of `key`, trimmed; `None` when absent or empty.
fn echoed<'a>(answer: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, AnswerProblem> {
    match answer.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
        Some(_) => Err(AnswerProblem(format!(
            "the answer's {key} is not text, so it cannot be compared with the call's"
        ))),
    }
}

fn same(echo: Echo, ours: &str, theirs: &str) -> bool {
    match echo {
        Echo::Text => ours == theirs,
        Echo::Amount => match (Money::parse(ours), Money::parse(theirs)) {
            (Ok(ours), Ok(theirs)) => ours == theirs,
            _ => false,
        },
    }
}

/// A field parsed by `parse` when present; present but malformed makes the
/// answer unusable.
pub(super) fn optional<T, E: std::fmt::Display>(
    json: &Map<String, Value>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, AnswerProblem> {
    text_field(json, key)
        .map(|raw| {
            parse(raw).map_err(|e| AnswerProblem(sanitise(&format!("{key} is malformed: {e}"))))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_keeps_big5_text_and_masks_card_numbers() {
        let json = string_object([
            ("RespCode", "99"),
            ("ErrCode", "05"),
            ("ERRDESC", "交易失敗 4111111111111111"),
        ]);
        assert_eq!(
            verdict(&json).unwrap(),
            BankVerdict::Refused {
                resp_code: "99".into(),
                err_code: "05".into(),
                message: "交易失敗 411111******1111".into()
            }
        );
    }

    #[test]
    fn inquiry_needs_current_state_and_tolerates_unknown_codes() {
        let json = string_object([("RespCode", "0"), ("CurrentState", "42"), ("XID", "")]);
        let inq = Inquiry::from_answer_json(&json).unwrap();
        assert_eq!(inq.state, TxState::Unknown("42".into()));
        assert_eq!(inq.xid, None);
        let json = string_object([("RespCode", "0")]);
        assert!(Inquiry::from_answer_json(&json).is_err());
        let json = string_object([
            ("RespCode", "0"),
            ("CurrentState", "1"),
            ("AuthAmt", "1500"),
        ]);
        let err = Inquiry::from_answer_json(&json).unwrap_err();
        assert!(err.0.contains("AuthAmt"), "{err}");
    }

    #[test]
    fn refund_answer_needs_ref_amt() {
        let json = string_object([("RespCode", "0"), ("ErrCode", "00")]);
        assert!(RefundAccepted::from_answer_json(&json).is_err());
        let json = string_object([("RespCode", "0"), ("RefAmt", "901 1.5 0")]);
        assert!(RefundAccepted::from_answer_json(&json).is_err());
    }

    /// The request JSON of each call, as `call_body` writes it.
    fn requests() -> Vec<Map<String, Value>> {
        let common = [
            ("MERID", "1234567"),
            ("LID-M", "ORDER001"),
            ("XID", "20240101ABCDEF123456"),
            ("AuthCode", "A1B2C3"),
            ("OrgAmt", "901 1500 0"),
        ];
        let with = |own: (&'static str, &'static str)| {
            let mut pairs = common.to_vec();
            pairs.extend([own, ("VERSION", "3.2"), ("SwRevision", "x")]);
            string_object(pairs)
        };
        vec![
            string_object([
                ("MERID", "1234567"),
                ("LID-M", "ORDER001"),
                ("VERSION", "3.2"),
                ("SwRevision", "x"),
                ("Tx_ATTRIBUTE", "TX_AUTH"),
            ]),
            with(("AuthNewAmt", "901 0 0")),
            with(("CapRevAmt", "901 0 0")),
            with(("CredAmt", "901 700 0")),
            with(("CredRevAmt", "901 700 0")),
        ]
    }

    /// Another value for each field that ties an answer to its call, and
    /// the same value written another way the bank may write it.
    const OTHER_AND_SAME: [(&str, &[&str], &[&str]); 8] = [
        ("LID-M", &["ORDER002", "order001"], &[" ORDER001 "]),
        (
            "XID",
            &["20240101ABCDEF999999", "20240101abcdef123456"],
            &["20240101ABCDEF123456\t"],
        ),
        ("AuthCode", &["A1B2C4", "a1b2c3"], &["A1B2C3 "]),
        (
            "OrgAmt",
            &["901 1499 0", "901 1500 2", "840 1500 0", "1500"],
            &["901  01500 0"],
        ),
        ("AuthNewAmt", &["901 1 0", "901 0 2", "abc"], &[" 901 0 0"]),
        ("CapRevAmt", &["901 1500 0", "840 0 2"], &["901 00 0"]),
        ("CredAmt", &["901 701 0", "901 700 2"], &["901 0700 0"]),
        ("CredRevAmt", &["901 0 0", "901 7 0"], &["901 700 0 "]),
    ];

    #[test]
    fn an_answer_is_bound_to_its_call_field_by_field() {
        for request in requests() {
            let mut checked = 0;
            for (key, others, sames) in OTHER_AND_SAME {
                if !request.contains_key(key) {
                    continue;
                }
                checked += 1;
                for other in others {
                    let answer = string_object([("RespCode", "0"), (key, *other)]);
                    let err = check_binding(&request, &answer).unwrap_err();
                    assert!(err.0.contains(key), "{key} {other:?}: {err}");
                }
                for same in sames {
                    let answer = string_object([("RespCode", "0"), (key, *same)]);
                    assert_eq!(check_binding(&request, &answer), Ok(()), "{key} {same:?}");
                }
            }
            assert!(checked >= 1, "{request:?}");
        }
    }

    #[test]
    fn a_field_is_checked_only_when_the_answer_carries_it() {
        for request in requests() {
            let bare = string_object([("RespCode", "0")]);
            assert_eq!(check_binding(&request, &bare), Ok(()));
            let empty = string_object([("RespCode", "0"), ("XID", " "), ("LID-M", "")]);
            assert_eq!(check_binding(&request, &empty), Ok(()));
        }
        // A field the request did not send is not the call's to check.
        let inquiry = &requests()[0];
        let answer = string_object([("RespCode", "0"), ("XID", "ANY"), ("AuthAmt", "901 1 0")]);
        assert_eq!(check_binding(inquiry, &answer), Ok(()));
        // A field that is not text cannot be compared: the answer is not trusted.
        let mut answer = string_object([("RespCode", "0")]);
        answer.insert("XID".into(), Value::from(123));
        assert!(check_binding(&requests()[3], &answer).is_err());
    }

    #[test]
    fn the_problem_shows_no_control_characters_and_no_long_text() {
        let long = format!("ORDER\u{1b}[31m{}", "9".repeat(500));
        let answer = string_object([("RespCode", "0"), ("LID-M", long.as_str())]);
        let err = check_binding(&requests()[3], &answer).unwrap_err();
        assert!(
            !err.0.chars().any(char::is_control) && err.0.len() < 300,
            "{err}"
        );
    }

    #[test]
    fn an_answer_for_another_merchant_is_refused_in_either_place() {
        let own = MerId::parse("1234567").unwrap();
        let ours = string_object([("MERID", "1234567")]);
        let theirs = string_object([("MERID", "7654321")]);
        assert_eq!(check_merchant(Some("1234567"), &ours, &own), Ok(()));
        assert_eq!(
            check_merchant(None, &string_object([("A", "b")]), &own),
            Ok(())
        );
        for (form, json) in [(Some("7654321"), &ours), (Some(" 1234567 "), &theirs)] {
            let err = check_merchant(form, json, &own).unwrap_err();
            assert!(
                err.0.contains("MERID") && err.0.contains("7654321"),
                "{err}"
            );
        }
    }

    #[test]
    fn missing_resp_code_is_a_problem() {
        assert!(verdict(&string_object([("ErrCode", "00")])).is_err());
    }
}
