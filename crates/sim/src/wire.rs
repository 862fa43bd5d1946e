//! The bank's side of the wire: reading a form-posted, sealed request into a
//! call the ledger understands, and writing every kind of answer the bank can
//! give, from a sealed envelope to an HTML notice or a dropped connection.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::ctbc::envelope::{to_big5, Envelope, EnvelopeError};
use crate::ctbc::types::{Money, OrderNo};
use crate::ctbc::Operation;

use super::ledger::{amount_field, refusal, Answer, BankCall, CredBatch};
use super::merchants::Merchants;

/// A request the bank refuses before looking at its books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// What could be read of it, for the call log.
    pub call: Option<Box<BankCall>>,
    /// The merchant it named, when the simulator serves that merchant: the
    /// refusal is sealed under that merchant's keys.
    pub mer_id: Option<String>,
    pub code: &'static str,
    pub errdesc: String,
}

impl Unread {
    fn new(code: &'static str, errdesc: impl Into<String>) -> Self {
        Self {
            call: None,
            mer_id: None,
            code,
            errdesc: errdesc.into(),
        }
    }

    fn of(mut self, mer_id: &str) -> Self {
        self.mer_id = Some(mer_id.to_string());
        self
    }
}

/// Reads the form body (`MERID`, `ApiEnc`), opens the envelope with the keys
/// of the merchant the form names and takes the fields of `operation` out of
/// the request JSON. A MERID the simulator does not serve has no keys to open
/// the envelope with: refused as a MAC failure, as the bank would.
pub(crate) fn read_request(
    body: &[u8],
    operation: Operation,
    merchants: &Merchants,
) -> Result<BankCall, Unread> {
    let mut form_mer_id = None;
    let mut api_enc = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "MERID" => form_mer_id = Some(v.into_owned()),
            "ApiEnc" => api_enc = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(form_mer_id) = form_mer_id else {
        return Err(Unread::new(
            refusal::MERCHANT,
            "特店代號錯誤 MERID is missing",
        ));
    };
    let Some(merchant) = merchants.named(&form_mer_id) else {
        return Err(Unread::new(
            refusal::MAC,
            "MAC 驗證失敗 MAC check failed: no keys for this MERID",
        ));
    };
    let mer_id = merchant.mer_id.as_str();
    let api_enc = api_enc
        .ok_or_else(|| Unread::new(refusal::FORMAT, "欄位缺少 ApiEnc is missing").of(mer_id))?;
    let json = merchant.envelope.open(&api_enc).map_err(|e| {
        match e {
            EnvelopeError::MacMismatch => {
                Unread::new(refusal::MAC, "MAC 驗證失敗 MAC check failed")
            }
            other => Unread::new(
                refusal::MAC,
                format!("ApiEnc 無法解密 MAC check failed: {other}"),
            ),
        }
        .of(mer_id)
    })?;
    read_fields(&json, operation, mer_id).map_err(|u| u.of(mer_id))
}

/// The fields of `operation` out of an opened request of merchant `mer_id`.
fn read_fields(json: &str, operation: Operation, mer_id: &str) -> Result<BankCall, Unread> {
    let fields: serde_json::Map<String, Value> = serde_json::from_str(json)
        .map_err(|_| Unread::new(refusal::FORMAT, "格式錯誤 request is not a JSON object"))?;
    let text = |name: &str| -> Result<Option<String>, Unread> {
        match fields.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Unread::new(
                refusal::FORMAT,
                format!("格式錯誤 {name} must be a string"),
            )),
        }
    };
    if text("MERID")?.as_deref() != Some(mer_id) {
        return Err(Unread::new(
            refusal::MERCHANT,
            "特店代號錯誤 MERID in ApiEnc is not the form's",
        ));
    }
    let order_no =
        text("LID-M")?.ok_or_else(|| Unread::new(refusal::FORMAT, "欄位缺少 LID-M is missing"))?;
    if let Err(e) = OrderNo::parse(&order_no) {
        return Err(Unread::new(
            refusal::FORMAT,
            format!("格式錯誤 LID-M: {}", e.problem),
        ));
    }
    let mut call = BankCall {
        operation,
        mer_id: mer_id.to_string(),
        order_no,
        xid: None,
        auth_code: None,
        org_amt: None,
        amount: None,
        cred_batch: CredBatch::default(),
    };
    if operation == Operation::Inquiry {
        return Ok(call);
    }
    let known = call.clone();
    let with_call = |mut u: Unread| {
        u.call = Some(Box::new(known.clone()));
        u
    };
    let money = |name: &str| -> Result<Option<Money>, Unread> {
        text(name)?
            .map(|raw| {
                Money::parse(&raw).map_err(|_| {
                    Unread::new(
                        refusal::FORMAT,
                        format!("格式錯誤 {name} {raw:?} is not an amount like \"901 1500 0\""),
                    )
                })
            })
            .transpose()
    };
    call.xid = text("XID").map_err(with_call)?;
    call.auth_code = text("AuthCode").map_err(with_call)?;
    call.org_amt = money("OrgAmt").map_err(with_call)?;
    call.amount = money(amount_field(operation)).map_err(with_call)?;
    if operation == Operation::RefundReversal {
        let named = |name: &str| {
            text(name).map(|v| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()))
        };
        call.cred_batch = CredBatch {
            id: named("CredBatchID").map_err(with_call)?,
            seq: named("CredBatchSeq").map_err(with_call)?,
        };
    }
    Ok(call)
}

/// The normal answer: `MERID=<merid>&ApiEnc=<sealed answer>`.
pub fn sealed(mer_id: &str, envelope: &Envelope, answer: &Answer) -> Response {
    seal_with(mer_id, answer, |json| envelope.seal(json))
}

/// An answer whose MAC does not match its JSON.
pub fn sealed_with_wrong_mac(mer_id: &str, envelope: &Envelope, answer: &Answer) -> Response {
    seal_with(mer_id, answer, |json| {
        let mac = envelope.mac(json)?;
        // Flip the first hex digit: a MAC that is certainly not the right one.
        let flipped = if mac.starts_with('0') { "1" } else { "0" };
        envelope.seal_with_forged_mac(json, &format!("{flipped}{}", &mac[1..]))
    })
}

fn seal_with(
    mer_id: &str,
    answer: &Answer,
    seal: impl FnOnce(&str) -> Result<String, EnvelopeError>,
) -> Response {
    let json = Value::Object(answer.clone()).to_string();
    match seal(&json) {
        Ok(api_enc) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=Big5")],
            format!("MERID={mer_id}&ApiEnc={api_enc}"),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "simulator could not seal its own answer");
            (StatusCode::INTERNAL_SERVER_ERROR, "").into_response()
        }
    }
}

/// The maintenance notice: 503 with a Big5 HTML page.
pub fn maintenance_page() -> Response {
    let html = maintenance_html("big5", str::to_string);
    let body = to_big5(&html).unwrap_or_else(|_| html.into_bytes());
    html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/html; charset=Big5",
        body,
    )
}

/// The same notice as the bank also serves it (the copy public adapters met):
/// 200, UTF-8, the Chinese text as numeric character references.
pub fn maintenance_page_utf8_200() -> Response {
    let html = maintenance_html("utf-8", char_refs);
    html_response(
        StatusCode::OK,
        "text/html; charset=utf-8",
        html.into_bytes(),
    )
}

/// The maintenance notice's page, its Chinese text written by `chinese`.
fn maintenance_html(charset: &str, chinese: impl Fn(&str) -> String) -> String {
    format!(
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset={charset}\">\
         <title>{}</title></head><body><h1>{}</h1><p>{}</p>\
         <p>The service is under maintenance. Please try again later.</p></body></html>",
        chinese("系統維護公告"),
        chinese("系統維護中"),
        chinese("親愛的客戶您好，本行系統目前進行例行維護，請稍後再試。"),
    )
}

/// Text with every character beyond ASCII written as `&#<code point>;`.
fn char_refs(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_ascii() => c.to_string(),
            c => format!("&#{};", u32::from(c)),
        })
        .collect()
}

/// The gateway's "busy" notice, in UTF-8.
fn busy_page() -> Vec<u8> {
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>系統忙碌中</title></head>\
     <body><h1>系統忙碌中，請稍後再試</h1><p>Service temporarily unavailable.</p></body></html>"
        .as_bytes()
        .to_vec()
}

fn html_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A 5xx from the gateway: 500, 502, 503 or 504, with the busy page or nothing.
pub fn server_error(detail: u64) -> Response {
    let status = [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::BAD_GATEWAY,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::GATEWAY_TIMEOUT,
    ][(detail % 4) as usize];
    if (detail / 4).is_multiple_of(2) {
        html_response(status, "text/html; charset=utf-8", busy_page())
    } else {
        status.into_response()
    }
}

/// A page set by a fault rule, as it is written, with `status`.
pub fn page(status: StatusCode, page: String) -> Response {
    html_response(status, "text/html; charset=utf-8", page.into_bytes())
}

/// The busy page with status 200, as some gateways send it.
pub fn html_200() -> Response {
    html_response(StatusCode::OK, "text/html; charset=utf-8", busy_page())
}

/// A 200 whose body is neither an envelope nor a notice page.
pub fn garbage(detail: u64) -> Response {
    const CHARS: &[u8] = b"ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ!#$%*+,-.:;?@^_~ ";
    let mut rng = StdRng::seed_from_u64(detail);
    let len = rng.gen_range(8..64);
    let text: String = (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        format!("~{text}"),
    )
        .into_response()
}

/// No answer at all: the body fails before its first byte, so the server
/// closes the connection and the client sees a transport error.
pub fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "simulated connection reset",
        ))
    });
    let mut r = Response::new(Body::from_stream(failing));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimMerchant, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};

    /// Another merchant's keys.
    const OTHER_KEY: &str = "QWERTYUIOPASDFGHJKLZXCVB";
    const OTHER_IV: &str = "iv345678";

    fn env() -> Envelope {
        Envelope::new(REFERENCE_MAC_KEY.as_bytes(), REFERENCE_IV.as_bytes()).unwrap()
    }

    fn other_env() -> Envelope {
        Envelope::new(OTHER_KEY.as_bytes(), OTHER_IV.as_bytes()).unwrap()
    }

    /// The reference merchant, 1234567, and 7654321 with keys of its own.
    fn merchants() -> Merchants {
        let merchant = |mer_id: &str, key: &str, iv: &str| SimMerchant {
            mer_id: crate::ctbc::types::MerId::parse(mer_id).unwrap(),
            mac_key: key.into(),
            iv: iv.into(),
        };
        Merchants::new(
            &merchant(REFERENCE_MER_ID, REFERENCE_MAC_KEY, REFERENCE_IV),
            &[merchant("7654321", OTHER_KEY, OTHER_IV)],
        )
        .unwrap()
    }

    fn form(json: &str) -> Vec<u8> {
        format!("MERID=1234567&ApiEnc={}", env().seal(json).unwrap()).into_bytes()
    }

    #[test]
    fn reads_a_refund() {
        let body = form(
            r#"{"MERID":"1234567","LID-M":"O1","AuthCode":"A1","CredAmt":"901 500 0","OrgAmt":"901 1500 0","XID":"X1","VERSION":"3.2","SwRevision":"t"}"#,
        );
        let c = read_request(&body, Operation::Refund, &merchants()).unwrap();
        assert_eq!(c.mer_id, "1234567");
        assert_eq!(c.order_no, "O1");
        assert_eq!(c.xid.as_deref(), Some("X1"));
        assert_eq!(c.amount.map(|m| m.amount()), Some(500));
        assert_eq!(c.org_amt.map(|m| m.amount()), Some(1500));
        assert_eq!(c.cred_batch, CredBatch::default());
    }

    #[test]
    fn reads_the_refund_a_refund_reversal_names() {
        let body = form(
            r#"{"MERID":"1234567","LID-M":"O1","XID":"X1","AuthCode":"A1","CredRevAmt":"901 0 0","OrgAmt":"901 500 0","CredBatchID":" 20240501 ","CredBatchSeq":"000002","VERSION":"3.2","SwRevision":"t"}"#,
        );
        let c = read_request(&body, Operation::RefundReversal, &merchants()).unwrap();
        assert_eq!(
            (c.cred_batch.id.as_deref(), c.cred_batch.seq.as_deref()),
            (Some("20240501"), Some("000002"))
        );
    }

    #[test]
    fn a_call_opens_only_with_the_keys_of_the_merchant_it_names() {
        let json = |mer_id: &str| format!(r#"{{"MERID":"{mer_id}","LID-M":"O1"}}"#);
        let body = |mer_id: &str, env: &Envelope| {
            format!("MERID={mer_id}&ApiEnc={}", env.seal(&json(mer_id)).unwrap()).into_bytes()
        };
        let read = |b: Vec<u8>| read_request(&b, Operation::Inquiry, &merchants());
        assert_eq!(
            read(body("7654321", &other_env())).unwrap().mer_id,
            "7654321"
        );
        // Sealed with 7654321's keys, naming 1234567: a MAC failure, told to 1234567.
        let u = read(body("1234567", &other_env())).unwrap_err();
        assert_eq!(
            (u.code, u.mer_id.as_deref()),
            (refusal::MAC, Some("1234567"))
        );
        let u = read(body("7654321", &env())).unwrap_err();
        assert_eq!(
            (u.code, u.mer_id.as_deref()),
            (refusal::MAC, Some("7654321"))
        );
        // A MERID the bank has no keys for: a MAC failure too, told to nobody.
        let u = read(body("1111111", &env())).unwrap_err();
        assert_eq!((u.code, u.mer_id), (refusal::MAC, None));
        // The envelope names another merchant than the form.
        let other = format!(
            "MERID=7654321&ApiEnc={}",
            other_env().seal(&json("1234567")).unwrap()
        );
        let u = read(other.into_bytes()).unwrap_err();
        assert_eq!(
            (u.code, u.mer_id.as_deref()),
            (refusal::MERCHANT, Some("7654321"))
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let m = merchants();
        let mac = |b: &[u8]| read_request(b, Operation::Inquiry, &m).unwrap_err();
        assert_eq!(mac(b"ApiEnc=00").code, refusal::MERCHANT);
        assert_eq!(mac(b"MERID=1111111&ApiEnc=00").code, refusal::MAC);
        assert_eq!(mac(b"MERID=1234567").code, refusal::FORMAT);
        assert_eq!(mac(b"MERID=1234567&ApiEnc=zz").code, refusal::MAC);
        let forged = env()
            .seal_with_forged_mac(r#"{"MERID":"1234567","LID-M":"O1"}"#, &"0".repeat(48))
            .unwrap();
        let u = mac(format!("MERID=1234567&ApiEnc={forged}").as_bytes());
        assert_eq!(u.code, refusal::MAC);
        assert!(u.errdesc.contains("MAC check failed"));
        assert_eq!(mac(&form(r#"{"MERID":"1234567"}"#)).code, refusal::FORMAT);
        assert_eq!(
            mac(&form(r#"{"MERID":"1234567","LID-M":"a-b"}"#)).code,
            refusal::FORMAT
        );
        assert_eq!(
            mac(&form(r#"{"MERID":"1","LID-M":"O1"}"#)).code,
            refusal::MERCHANT
        );
        let u = read_request(
            &form(r#"{"MERID":"1234567","LID-M":"O1","OrgAmt":"15.00"}"#),
            Operation::Reversal,
            &m,
        )
        .unwrap_err();
        assert!(u.errdesc.contains("OrgAmt"));
        assert_eq!(u.call.map(|c| c.order_no).as_deref(), Some("O1"));
    }
}
