//! The CTBC client: one HTTP client posting sealed forms to the POS API, and the
//! single place that decides what each way of failing means for the order (try
//! later, inquire first, refused, ask a person). The engine acts on its errors.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Map, Value};
use url::Url;

use super::answer::{
    check_binding, check_merchant, verdict, Accepted, BankVerdict, Inquiry, RefundAccepted,
};
use super::call_body::{
    inquiry_request_json, CaptureReversal, Refund, RefundPlace, RefundReversal, Reversal,
};
use super::envelope::{to_big5, Envelope, EnvelopeError};
use super::error::CtbcError;
use super::notice::{is_notice_page, notice_text};
use super::operation::{Operation, DEFAULT_SW_REVISION};
use super::types::{InvalidField, MerId, OrderNo, Xid};
use super::wire::{open_form, seal_form, FormError, FORM_CONTENT_TYPE};
use crate::domain::merchant::{self, MerchantName};
use crate::outbound::{is_loopback, no_redirects, redirect_reason, LOOPBACK_FIX};

/// Largest answer body read; the bank's answers are a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Settings of the client, read once at start-up.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ctbc.base_url`, e.g. `https://testepos.ctbcbank.com/MicroPos`.
    pub base_url: Url,
    /// The merchant `mer_id` and `envelope` are of: `None` for the `[ctbc]`
    /// table's own (`domain::merchant`).
    pub merchant: Option<MerchantName>,
    pub mer_id: MerId,
    pub envelope: Envelope,
    pub connect_timeout: Duration,
    /// Total time allowed for one call, answer included.
    pub timeout: Duration,
    /// `ctbc.allow_insecure_http`: plain http to a host that is not loopback.
    pub allow_insecure_http: bool,
    /// Calls per second across all clones of the client; `None` = no limit.
    pub max_requests_per_sec: Option<NonZeroU32>,
    /// `(RespCode, ErrCode)` pairs of an inquiry refusal that mean "no such order".
    pub unknown_order_codes: Vec<(String, String)>,
    /// `SwRevision` sent with every request.
    pub sw_revision: String,
}

impl ClientConfig {
    /// Settings with the documented defaults: 5 s to connect, 30 s per call,
    /// https only (plain http to a loopback address), no rate limit, "99"/"01" meaning
    /// an unknown order.
    pub fn new(base_url: Url, mer_id: MerId, envelope: Envelope) -> Self {
        Self {
            base_url,
            merchant: None,
            mer_id,
            envelope,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            allow_insecure_http: false,
            max_requests_per_sec: None,
            unknown_order_codes: default_unknown_order_codes(),
            sw_revision: DEFAULT_SW_REVISION.to_string(),
        }
    }
}

/// The longest one call can take once it is its caller's turn, with
/// `at_once` callers taking turns at the client: a wait for the rate limit behind the
/// others (at most `at_once` calls per `max_requests_per_sec`), then the
/// whole request within `timeout`. A lease must outlast it.
pub fn longest_call(
    timeout: Duration,
    max_requests_per_sec: Option<NonZeroU32>,
    at_once: usize,
) -> Duration {
    let limit_wait = max_requests_per_sec
        .map(|n| Duration::from_secs_f64(at_once as f64 / f64::from(n.get())))
        .unwrap_or_default();
    timeout + limit_wait
}

/// The refusal codes that mean "no such order" in the protocol document.
pub fn default_unknown_order_codes() -> Vec<(String, String)> {
    vec![("99".to_string(), "01".to_string())]
}

/// Why the client cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error(
        "ctbc.base_url {url} uses plain http to {host}, which is not a loopback address: the envelope is not a substitute for TLS. Use https://, plain http only to a simulator at {LOOPBACK_FIX}, or set ctbc.allow_insecure_http = true only on a network you trust"
    )]
    InsecureHttp { url: String, host: String },
    #[error("ctbc.base_url {url} must start with https:// (or http:// for a simulator at {LOOPBACK_FIX})")]
    UnsupportedScheme { url: String },
    #[error("ctbc.base_url {url} has no host name")]
    NoHost { url: String },
    #[error("ctbc.sw_revision {value:?} cannot be sent: {problem}")]
    SwRevision { value: String, problem: String },
    #[error("the HTTP client for CTBC could not be built: {0}")]
    Http(#[source] reqwest::Error),
}

/// The CTBC POS API client of one merchant. Cheap to clone; clones share one
/// connection pool and one rate limiter, and so do the clients of other
/// merchants made `beside` it, at the same endpoint.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    endpoints: Endpoints,
    merchant: Option<MerchantName>,
    mer_id: MerId,
    envelope: Envelope,
    timeout: Duration,
    max_requests_per_sec: Option<NonZeroU32>,
    /// `max_requests_per_sec` is the endpoint's, shared by every merchant at it.
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    unknown_order_codes: Vec<(String, String)>,
    sw_revision: String,
    /// Answers in a row whose envelope did not open with our keys (a MAC,
    /// padding, Big5 or JSON failure of a real envelope); any answer that
    /// opens sets it back to 0.
    sealed_otherwise_in_a_row: AtomicU32,
}

/// This many answers in a row that do not open with our keys, and none
/// that did between them, mean the keys are wrong, not the answers damaged.
pub const ANSWERS_SHOWING_WRONG_KEYS: u32 = 5;

/// The full URL of each operation, computed once.
#[derive(Clone)]
struct Endpoints {
    inquiry: Url,
    reversal: Url,
    capture_reversal: Url,
    refund: Url,
    refund_reversal: Url,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("merchant", &merchant::label(self.inner.merchant.as_ref()))
            .field("mer_id", &self.inner.mer_id)
            .finish_non_exhaustive()
    }
}

/// How a call failed before a usable answer came back; what it means depends
/// on whether the operation moves money.
enum Failure {
    /// Nothing reached the bank.
    NotSent(String),
    /// Sent, and no envelope came back (timeout, lost connection, status,
    /// notice page, garbage).
    NoAnswer(String),
    /// An envelope came back that cannot be trusted or read.
    Unreadable(String),
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientSetupError> {
        check_base_url(&cfg.base_url, cfg.allow_insecure_http)?;
        if cfg.sw_revision.trim().is_empty() {
            return Err(ClientSetupError::SwRevision {
                value: cfg.sw_revision,
                problem: "it is empty; leave the setting out to send the default".into(),
            });
        }
        if let Err(e) = to_big5(&cfg.sw_revision) {
            return Err(ClientSetupError::SwRevision {
                value: cfg.sw_revision,
                problem: e.to_string(),
            });
        }
        let base = &cfg.base_url;
        let endpoints = Endpoints {
            inquiry: endpoint(base, Operation::Inquiry),
            reversal: endpoint(base, Operation::Reversal),
            capture_reversal: endpoint(base, Operation::CaptureReversal),
            refund: endpoint(base, Operation::Refund),
            refund_reversal: endpoint(base, Operation::RefundReversal),
        };
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            // A redirect could turn a POST into something else, or leave TLS.
            .redirect(no_redirects())
            .user_agent(concat!("refundd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientSetupError::Http)?;
        let limiter = cfg
            .max_requests_per_sec
            .map(|n| Arc::new(RateLimiter::direct(Quota::per_second(n))));
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url: cfg.base_url,
                endpoints,
                merchant: cfg.merchant,
                mer_id: cfg.mer_id,
                envelope: cfg.envelope,
                timeout: cfg.timeout,
                max_requests_per_sec: cfg.max_requests_per_sec,
                limiter,
                unknown_order_codes: cfg.unknown_order_codes,
                sw_revision: cfg.sw_revision,
                sealed_otherwise_in_a_row: AtomicU32::new(0),
            }),
        })
    }

    /// The client of another merchant at this client's endpoint: its own
    /// merchant id and keys, everything else this client's, the connection
    /// pool and the rate limit shared with it (`ctbc.max_requests_per_sec`
    /// caps the calls to one endpoint, whichever merchant makes them).
    pub fn beside(
        &self,
        merchant: Option<MerchantName>,
        mer_id: MerId,
        envelope: Envelope,
    ) -> Client {
        let it = &self.inner;
        Client {
            inner: Arc::new(Inner {
                http: it.http.clone(),
                base_url: it.base_url.clone(),
                endpoints: it.endpoints.clone(),
                merchant,
                mer_id,
                envelope,
                timeout: it.timeout,
                max_requests_per_sec: it.max_requests_per_sec,
                limiter: it.limiter.clone(),
                unknown_order_codes: it.unknown_order_codes.clone(),
                sw_revision: it.sw_revision.clone(),
                sealed_otherwise_in_a_row: AtomicU32::new(0),
            }),
        }
    }

    pub fn mer_id(&self) -> &MerId {
        &self.inner.mer_id
    }

    /// The merchant the client speaks for: `None` for the `[ctbc]` table's own.
    pub fn merchant(&self) -> Option<&MerchantName> {
        self.inner.merchant.as_ref()
    }

    /// The endpoint (`ctbc.base_url`, or the merchant's own `base_url`): the
    /// clients of one endpoint share its rate limit.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// Starts counting the answers that do not open afresh (at each pass),
    /// so a pass stopped by a run of them lets the next one try again.
    pub fn recount_answers(&self) {
        self.inner
            .sealed_otherwise_in_a_row
            .store(0, Ordering::Relaxed);
    }

    /// Whether the last answer (and those before it in a row) did not open
    /// with our keys: a MAC or padding failure.
    pub fn answer_did_not_open(&self) -> bool {
        self.inner.sealed_otherwise_in_a_row.load(Ordering::Relaxed) > 0
    }

    /// Why the bank's answers say our keys are wrong: the last
    /// `ANSWERS_SHOWING_WRONG_KEYS` answers or more did not open with them.
    pub fn keys_look_wrong(&self) -> Option<String> {
        let n = self.inner.sealed_otherwise_in_a_row.load(Ordering::Relaxed);
        (n >= ANSWERS_SHOWING_WRONG_KEYS).then(|| {
            let table = merchant::settings_table(self.merchant());
            format!(
                "the bank's answers fail the MAC check ({n} in a row, none opened): check {table}.mac_key and {table}.iv (and that {table}.mer_id is the merchant they were issued for)"
            )
        })
    }

    /// The longest one call of this client can take once it is its caller's
    /// turn, with `at_once` callers taking turns (`longest_call`).
    pub fn longest_call(&self, at_once: usize) -> Duration {
        longest_call(self.inner.timeout, self.inner.max_requests_per_sec, at_once)
    }

    /// What the bank holds under an order number (`Tx_ATTRIBUTE` `TX_AUTH`):
    /// with several records (`QueryCode` "2"), the latest authorisation at
    /// the top and every record beside it. An order's own transaction is
    /// `inquiry_for`'s.
    pub async fn inquiry(&self, order_no: &OrderNo) -> Result<Inquiry, CtbcError> {
        let op = Operation::Inquiry;
        self.observe(op, order_no, async {
            let json = inquiry_request_json(&self.inner.mer_id, order_no, &self.inner.sw_revision);
            let answer = self.exchange(op, &json).await?;
            self.judge(op, &answer)?;
            Inquiry::from_answer_json(&answer)
                .and_then(|inquiry| inquiry.check_order(order_no).map(|()| inquiry))
                .map_err(|p| CtbcError::BadAnswer {
                    operation: op,
                    reason: p.0,
                })
        })
        .await
    }

    /// Where the order's own authorisation stands: the inquiry of its order
    /// number, as it concerns the authorisation `xid` (`Inquiry::for_xid`).
    /// Every answer the engine and `refundd plan` read of an order comes
    /// through here, so none of them reads another authorisation's record.
    pub async fn inquiry_for(&self, order_no: &OrderNo, xid: &Xid) -> Result<Inquiry, CtbcError> {
        self.inquiry(order_no).await.map(|bank| bank.for_xid(xid))
    }

    /// Cancels or lowers an authorisation that is not in the capture file.
    pub async fn reversal(&self, req: &Reversal) -> Result<Accepted, CtbcError> {
        let op = Operation::Reversal;
        self.observe(op, &req.order_no, async {
            req.validate()?;
            let json = req.request_json(&self.inner.mer_id, &self.inner.sw_revision);
            self.accepted(op, &json).await
        })
        .await
    }

    /// Takes a captured, unsettled transaction back out of the capture file.
    pub async fn capture_reversal(&self, req: &CaptureReversal) -> Result<Accepted, CtbcError> {
        let op = Operation::CaptureReversal;
        self.observe(op, &req.order_no, async {
            req.validate()?;
            let json = req.request_json(&self.inner.mer_id, &self.inner.sw_revision);
            self.accepted(op, &json).await
        })
        .await
    }

    /// Refunds all or part of a settled transaction; the bank must confirm
    /// exactly the amount asked.
    pub async fn refund(&self, req: &Refund) -> Result<RefundAccepted, CtbcError> {
        let op = Operation::Refund;
        self.observe(op, &req.order_no, async {
            req.validate()?;
            let json = req.request_json(&self.inner.mer_id, &self.inner.sw_revision);
            let answer = self.exchange(op, &json).await?;
            self.judge(op, &answer)?;
            // Accepted, so the bank acted; without a readable RefAmt nobody
            // knows how much: an inquiry must settle it.
            let accepted =
                RefundAccepted::from_answer_json(&answer).map_err(|p| CtbcError::Ambiguous {
                    operation: op,
                    reason: p.0,
                })?;
            if accepted.refunded != req.amount {
                return Err(CtbcError::RefundAmountMismatch {
                    asked: req.amount,
                    refunded: accepted.refunded,
                });
            }
            Ok(accepted)
        })
        .await
    }

    /// Cancels a refund that has not settled yet.
    pub async fn refund_reversal(&self, req: &RefundReversal) -> Result<Accepted, CtbcError> {
        let op = Operation::RefundReversal;
        self.observe(op, &req.order_no, async {
            req.validate()?;
            let json = req.request_json(&self.inner.mer_id, &self.inner.sw_revision);
            self.accepted(op, &json).await
        })
        .await
    }

    /// Cancels the refund the bank filed at `place`, not yet settled.
    pub async fn refund_reversal_of(
        &self,
        req: &RefundReversal,
        place: &RefundPlace,
    ) -> Result<Accepted, CtbcError> {
        let op = Operation::RefundReversal;
        self.observe(op, &req.order_no, async {
            req.validate()?;
            let json = req.request_json_naming(place, &self.inner.mer_id, &self.inner.sw_revision);
            self.accepted(op, &json).await
        })
        .await
    }

    async fn accepted(
        &self,
        op: Operation,
        json: &Map<String, Value>,
    ) -> Result<Accepted, CtbcError> {
        let answer = self.exchange(op, json).await?;
        self.judge(op, &answer)?;
        Ok(Accepted::from_answer_json(&answer))
    }

    /// Turns the bank's verdict into `Ok` or the refusal error.
    fn judge(&self, op: Operation, answer: &Map<String, Value>) -> Result<(), CtbcError> {
        match verdict(answer) {
            Ok(BankVerdict::Accepted) => Ok(()),
            Ok(BankVerdict::Refused {
                resp_code,
                err_code,
                message,
            }) => {
                let unknown_order = op == Operation::Inquiry
                    && self
                        .inner
                        .unknown_order_codes
                        .iter()
                        .any(|(r, e)| r.trim() == resp_code && e.trim() == err_code);
                Err(if unknown_order {
                    CtbcError::UnknownOrder {
                        resp_code,
                        err_code,
                        message,
                    }
                } else {
                    CtbcError::Refused {
                        operation: op,
                        resp_code,
                        err_code,
                        message,
                    }
                })
            }
            Err(problem) => Err(failed(op, Failure::Unreadable(problem.0))),
        }
    }

    /// Seals the request, posts it, and opens the answer's envelope.
    async fn exchange(
        &self,
        op: Operation,
        json: &Map<String, Value>,
    ) -> Result<Map<String, Value>, CtbcError> {
        let body = seal_form(&self.inner.envelope, self.inner.mer_id.as_str(), json).map_err(
            |e| match e {
                EnvelopeError::NotBig5Encodable(c) => CtbcError::Invalid(InvalidField::new(
                    "request",
                    format!("holds {c:?}, which Big5 cannot carry"),
                )),
                other => CtbcError::Invalid(InvalidField::new("request", other.to_string())),
            },
        )?;
        if let Some(limiter) = &self.inner.limiter {
            limiter.until_ready().await;
        }
        let url = self.endpoint(op);
        let sent = self
            .inner
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(failed(op, self.transport_failure(e))),
        };
        let status = response.status();
        if let Some(reason) = redirect_reason(status, response.headers()) {
            return Err(failed(
                op,
                Failure::NoAnswer(format!(
                    "the gateway answered {reason}; check ctbc.base_url"
                )),
            ));
        }
        let bytes = match read_body(response).await {
            Ok(b) => b,
            Err(ReadError::Transport(e)) => return Err(failed(op, self.transport_failure(e))),
            Err(ReadError::TooLarge) => {
                return Err(failed(
                    op,
                    Failure::NoAnswer(format!(
                        "HTTP {status} with an answer larger than {MAX_ANSWER_BYTES} bytes"
                    )),
                ))
            }
        };
        if is_notice_page(&bytes) {
            let text = notice_text(&bytes)
                .map(|t| format!(" \"{t}\""))
                .unwrap_or_default();
            return Err(failed(
                op,
                Failure::NoAnswer(format!(
                    "the gateway sent an HTML notice page{text} with HTTP {status} (maintenance or overload)"
                )),
            ));
        }
        if !status.is_success() {
            return Err(failed(
                op,
                Failure::NoAnswer(format!("the gateway answered HTTP {status}")),
            ));
        }
        self.open(op, json, &bytes)
    }

    /// Opens an answer's envelope and checks it is meant for this merchant
    /// and answers this call (`request`), whatever its verdict.
    fn open(
        &self,
        op: Operation,
        request: &Map<String, Value>,
        bytes: &[u8],
    ) -> Result<Map<String, Value>, CtbcError> {
        let opened = open_form(&self.inner.envelope, bytes);
        let in_a_row = &self.inner.sealed_otherwise_in_a_row;
        match &opened {
            // What a wrong key (padding, MAC) or a wrong IV (the first
            // block garbled: no JSON, or not Big5) does to an answer.
            Err(
                FormError::Envelope(
                    EnvelopeError::MacMismatch
                    | EnvelopeError::Padding
                    | EnvelopeError::NotBig5
                    | EnvelopeError::NoJson,
                )
                | FormError::NotJson(_),
            ) => {
                in_a_row.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => in_a_row.store(0, Ordering::Relaxed),
            Err(_) => {}
        }
        let opened = opened.map_err(|e| {
            failed(
                op,
                match e {
                    FormError::NotAnEnvelope => Failure::NoAnswer(format!(
                        "the answer ({} bytes) is neither a MERID/ApiEnc envelope nor a notice page",
                        bytes.len()
                    )),
                    FormError::Envelope(EnvelopeError::MacMismatch) => Failure::Unreadable(
                        "the answer's MAC does not match (damaged, forged, or sealed with another key)"
                            .into(),
                    ),
                    other => Failure::Unreadable(format!("the answer is unreadable: {other}")),
                },
            )
        })?;
        check_merchant(opened.mer_id.as_deref(), &opened.json, &self.inner.mer_id)
            .and_then(|()| check_binding(request, &opened.json))
            .map_err(|p| failed(op, Failure::Unreadable(p.0)))?;
        Ok(opened.json)
    }

    fn endpoint(&self, op: Operation) -> &Url {
        let e = &self.inner.endpoints;
        match op {
            Operation::Inquiry => &e.inquiry,
            Operation::Reversal => &e.reversal,
            Operation::CaptureReversal => &e.capture_reversal,
            Operation::Refund => &e.refund,
            Operation::RefundReversal => &e.refund_reversal,
        }
    }

    fn transport_failure(&self, err: reqwest::Error) -> Failure {
        let nothing_sent = err.is_connect() || err.is_builder();
        let timed_out = err.is_timeout();
        let text = describe(err);
        if nothing_sent {
            Failure::NotSent(format!("could not connect to the gateway: {text}"))
        } else if timed_out {
            Failure::NoAnswer(format!(
                "no answer within {} ms: {text}",
                self.inner.timeout.as_millis()
            ))
        } else {
            Failure::NoAnswer(format!("the connection failed: {text}"))
        }
    }

    /// Logs and measures one call.
    async fn observe<T>(
        &self,
        op: Operation,
        order_no: &OrderNo,
        call: impl Future<Output = Result<T, CtbcError>>,
    ) -> Result<T, CtbcError> {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(_) => "accepted",
            Err(e) => e.kind(),
        };
        let merchant = merchant::label(self.merchant());
        metrics::counter!(
            "refundd_gateway_calls_total",
            "operation" => op.as_str(),
            "result" => outcome,
            "merchant" => merchant.to_string()
        )
        .increment(1);
        metrics::histogram!("refundd_gateway_call_seconds", "operation" => op.as_str())
            .record(elapsed.as_secs_f64());
        let elapsed_ms = elapsed.as_millis() as u64;
        match &result {
            Ok(_) => tracing::debug!(
                order_no = %order_no,
                merchant,
                operation = op.as_str(),
                outcome,
                elapsed_ms,
                "CTBC call finished"
            ),
            Err(e) => tracing::debug!(
                order_no = %order_no,
                merchant,
                operation = op.as_str(),
                outcome,
                elapsed_ms,
                error = %e,
                "CTBC call finished"
            ),
        }
        result
    }
}

/// What a failure means for this operation.
fn failed(op: Operation, failure: Failure) -> CtbcError {
    match failure {
        Failure::NotSent(reason) => CtbcError::Unavailable {
            operation: op,
            reason,
        },
        Failure::NoAnswer(reason) | Failure::Unreadable(reason) if op.moves_money() => {
            CtbcError::Ambiguous {
                operation: op,
                reason,
            }
        }
        Failure::NoAnswer(reason) => CtbcError::Unavailable {
            operation: op,
            reason,
        },
        Failure::Unreadable(reason) => CtbcError::BadAnswer {
            operation: op,
            reason,
        },
    }
}

enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error with its causes, without the URL.
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// The base URL plus the operation's path, keeping any query of the base.
fn endpoint(base: &Url, op: Operation) -> Url {
    let mut url = base.clone();
    let path = format!("{}{}", base.path().trim_end_matches('/'), op.path());
    url.set_path(&path);
    url
}

fn check_base_url(url: &Url, allow_insecure_http: bool) -> Result<(), ClientSetupError> {
    let host = url.host().ok_or_else(|| ClientSetupError::NoHost {
        url: url.to_string(),
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(&host) => Ok(()),
        "http" => Err(ClientSetupError::InsecureHttp {
            url: url.to_string(),
            host: host.to_string(),
        }),
        _ => Err(ClientSetupError::UnsupportedScheme {
            url: url.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn paths_are_appended_to_the_base_path() {
        assert_eq!(
            endpoint(
                &url("https://testepos.ctbcbank.com/MicroPos"),
                Operation::Inquiry
            )
            .as_str(),
            "https://testepos.ctbcbank.com/MicroPos/NewQuery/InquiryByLidm"
        );
        assert_eq!(
            endpoint(&url("http://127.0.0.1:8080/"), Operation::Refund).as_str(),
            "http://127.0.0.1:8080/NewPos/Refund"
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://testepos.ctbcbank.com/MicroPos",
            "http://127.0.0.1:9000",
            "http://127.8.9.10",
            "http://[::1]:9000",
        ] {
            assert!(check_base_url(&url(ok), false).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5",
            "http://example.com",
            "http://[::2]",
            "http://localhost:9000",
            "http://LOCALHOST.",
            "http://localhost.evil.com",
            "http://127.0.0.1.evil.com",
        ] {
            let e = check_base_url(&url(bad), false).unwrap_err();
            assert!(matches!(e, ClientSetupError::InsecureHttp { .. }), "{bad}");
            assert!(check_base_url(&url(bad), true).is_ok(), "{bad}");
        }
        assert!(matches!(
            check_base_url(&url("ftp://example.com"), true),
            Err(ClientSetupError::UnsupportedScheme { .. })
        ));
    }

    #[test]
    fn a_merchant_beside_another_has_its_own_id_and_keys_and_shares_the_rate_limit() {
        let mut cfg = ClientConfig::new(
            url("http://127.0.0.1:9/MicroPos"),
            MerId::parse("1234567").unwrap(),
            Envelope::new(b"ABCDEFGHIJKLMNOPQRSTUVWX", b"test8iv!").unwrap(),
        );
        cfg.max_requests_per_sec = NonZeroU32::new(1);
        let first = Client::new(cfg.clone()).unwrap();
        let outlet = MerchantName::parse("outlet").unwrap();
        let other_keys = Envelope::new(b"ZYXWVUTSRQPONMLKJIHGFEDC", b"other8iv").unwrap();
        let beside = first.beside(
            Some(outlet.clone()),
            MerId::parse("7654321").unwrap(),
            other_keys,
        );
        assert_eq!(beside.mer_id().as_str(), "7654321");
        assert_eq!(beside.merchant(), Some(&outlet));
        assert_eq!(beside.base_url(), first.base_url());
        assert_eq!(first.merchant(), None);
        // One call a second at the endpoint: the first merchant's takes it.
        let limit = |c: &Client| c.inner.limiter.clone().unwrap();
        assert!(limit(&first).check().is_ok());
        assert!(
            limit(&beside).check().is_err(),
            "the limit is the endpoint's"
        );
        // A client built alone has a limit of its own.
        let alone = Client::new(cfg).unwrap();
        assert!(limit(&alone).check().is_ok());
        // Debug names the merchant, never a key.
        let debug = format!("{beside:?}");
        assert!(
            debug.contains("outlet") && debug.contains("7654321"),
            "{debug}"
        );
        assert!(
            !debug.contains("ZYXWVU") && !debug.contains("other8iv"),
            "{debug}"
        );
    }

    #[test]
    fn failures_of_money_moving_calls_are_ambiguous() {
        for op in Operation::ALL {
            let e = failed(op, Failure::NoAnswer("x".into()));
            let u = failed(op, Failure::Unreadable("x".into()));
            let n = failed(op, Failure::NotSent("x".into()));
            assert_eq!(n.kind(), "unavailable");
            if op.moves_money() {
                assert_eq!((e.kind(), u.kind()), ("ambiguous", "ambiguous"));
            } else {
                assert_eq!((e.kind(), u.kind()), ("unavailable", "bad_answer"));
            }
        }
    }
}
