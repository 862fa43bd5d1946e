//! What CTBC answers, as typed values: the verdict every answer carries, the
//! inquiry's view of a transaction, and what an accepted refund reports. Reading
//! an answer is strict about what the engine relies on and lenient about the rest;
//! every text kept from it is sanitised here, where it is read.

use serde_json::{Map, Value};

use super::bank_text::{has_control_chars, sanitise};
use super::types::{AuthCode, InvalidField, MaskedPan, MerId, Money, TxState, Xid};
use super::wire::{string_object, text_field};

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
fn kept_text(json: &Map<String, Value>, key: &str) -> Option<String> {
    text_field(json, key)
        .map(sanitise)
        .filter(|text| !text.is_empty())
}

/// A code the engine acts on (`RespCode`, `CurrentState`): a control character
/// in it makes the answer unreadable rather than being mended into another code.
fn code_field(json: &Map<String, Value>, key: &str) -> Result<Option<String>, AnswerProblem> {
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
}

impl Inquiry {
    /// Reads an accepted inquiry answer. `CurrentState` is required; an
    /// unlisted code is `TxState::Unknown`. Empty optional fields are absent;
    /// present but malformed ones make the answer unusable.
    pub fn from_answer_json(json: &Map<String, Value>) -> Result<Self, AnswerProblem> {
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
        })
    }

    /// The answer JSON the bank would send for this inquiry (the simulator's side).
    pub fn to_answer_json(&self) -> Map<String, Value> {
        let mut pairs: Vec<(&str, String)> = vec![
            ("RespCode", RESP_CODE_ACCEPTED.to_string()),
            ("ErrCode", self.err_code.clone()),
            ("QueryCode", QUERY_CODE_ONE_RECORD.to_string()),
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

impl RefundAccepted {
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
fn answer_amount(raw: &str) -> Result<Money, InvalidField> {
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

fn optional<T, E: std::fmt::Display>(
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

    #[test]
    fn missing_resp_code_is_a_problem() {
        assert!(verdict(&string_object([("ErrCode", "00")])).is_err());
    }
}
