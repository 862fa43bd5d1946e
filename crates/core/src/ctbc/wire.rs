//! The POS API's form envelope without any I/O: `MERID=<merid>&ApiEnc=<hex>` in
//! both directions. The client and the simulator both use it, so the two sides
//! cannot drift apart.

use serde_json::{Map, Value};

use super::envelope::{Envelope, EnvelopeError};
pub use crate::domain::bank::fields::{json_text, string_object, text_field};

/// Form field carrying the merchant id in clear.
pub const FORM_MERID: &str = "MERID";
/// Form field carrying the sealed JSON.
pub const FORM_API_ENC: &str = "ApiEnc";
/// Content type of every request (and of the bank's answers).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Why a form body could not be opened into its JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The body is not `MERID=..&ApiEnc=..` at all (garbage, empty, a stray page).
    #[error("the body is not a MERID/ApiEnc envelope")]
    NotAnEnvelope,
    /// A real envelope whose ciphertext fails decryption, padding, Big5 or the MAC.
    #[error("the envelope does not open: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The envelope opened but what it holds is not JSON.
    #[error("the envelope holds text that is not JSON ({0})")]
    NotJson(String),
    /// The envelope holds JSON, but not one object.
    #[error("the envelope holds JSON that is not an object")]
    NotAnObject,
}

/// A form body opened: the merchant id sent in clear (if any) and the JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedForm {
    pub mer_id: Option<String>,
    pub json: Map<String, Value>,
}

/// Seals a JSON object into a form body `MERID=<mer_id>&ApiEnc=<hex>`. Requests
/// and answers have the same shape.
pub fn seal_form(
    envelope: &Envelope,
    mer_id: &str,
    json: &Map<String, Value>,
) -> Result<String, EnvelopeError> {
    let api_enc = envelope.seal(&json_text(json))?;
    Ok(form_body(mer_id, &api_enc))
}

/// Builds a form body from a merchant id and an already sealed `ApiEnc`.
pub fn form_body(mer_id: &str, api_enc: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(FORM_MERID, mer_id)
        .append_pair(FORM_API_ENC, api_enc)
        .finish()
}

/// Opens a form body: reads `ApiEnc` by name, falling back to the second field
/// (as the public adapters do) when that one is hexadecimal.
pub fn open_form(envelope: &Envelope, body: &[u8]) -> Result<OpenedForm, FormError> {
    let body = body.trim_ascii();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mer_id = pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(FORM_MERID))
        .map(|(_, v)| v.trim().to_string());
    let by_name = pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(FORM_API_ENC))
        .map(|(_, v)| v.trim());
    let api_enc = match by_name {
        Some(v) => v,
        None => match pairs.get(1) {
            Some((_, v)) if !v.is_empty() && v.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
                v.trim()
            }
            _ => return Err(FormError::NotAnEnvelope),
        },
    };
    if api_enc.is_empty() {
        return Err(FormError::NotAnEnvelope);
    }
    let text = envelope.open(api_enc)?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| FormError::NotJson(e.to_string()))?;
    match value {
        Value::Object(json) => Ok(OpenedForm { mer_id, json }),
        _ => Err(FormError::NotAnObject),
    }
}

/// Opens an answer body into its JSON object.
pub fn open_answer(envelope: &Envelope, body: &[u8]) -> Result<Map<String, Value>, FormError> {
    open_form(envelope, body).map(|opened| opened.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope::new(b"ABCDEFGHIJKLMNOPQRSTUVWX", b"test8iv!").unwrap()
    }

    #[test]
    fn form_round_trip_keeps_key_order_and_big5() {
        let json = string_object([
            ("RespCode", "99"),
            ("ErrCode", "01"),
            ("ERRDESC", "交易失敗"),
        ]);
        let body = seal_form(&env(), "1234567", &json).unwrap();
        assert!(body.starts_with("MERID=1234567&ApiEnc="));
        let opened = open_form(&env(), body.as_bytes()).unwrap();
        assert_eq!(opened.mer_id.as_deref(), Some("1234567"));
        assert_eq!(
            opened.json.keys().collect::<Vec<_>>(),
            ["RespCode", "ErrCode", "ERRDESC"]
        );
        assert_eq!(opened.json, json);
    }

    #[test]
    fn api_enc_falls_back_to_the_second_field() {
        let api_enc = env().seal(r#"{"RespCode":"0"}"#).unwrap();
        let body = format!("merchant=1234567&payload={api_enc}\n");
        let json = open_answer(&env(), body.as_bytes()).unwrap();
        assert_eq!(text_field(&json, "RespCode"), Some("0"));
    }

    #[test]
    fn garbage_is_not_an_envelope() {
        for body in ["", "hello", "MERID=1", "a=b&c=not hex"] {
            assert_eq!(
                open_answer(&env(), body.as_bytes()),
                Err(FormError::NotAnEnvelope),
                "{body:?}"
            );
        }
        assert_eq!(
            open_answer(&env(), b"MERID=1&ApiEnc=XYZ"),
            Err(FormError::Envelope(EnvelopeError::NotHex))
        );
    }

    #[test]
    fn envelope_holding_non_json_is_reported() {
        let api_enc = env().seal("not json }").unwrap();
        let body = form_body("1", &api_enc);
        assert!(matches!(
            open_answer(&env(), body.as_bytes()),
            Err(FormError::NotJson(_))
        ));
    }
}
