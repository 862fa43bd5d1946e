//! Telling people: the events of the outbox delivered to the operator's
//! webhook, signed so the receiver can trust them, retried on a schedule and
//! kept as dead rather than dropped. Delivery is a task of its own with its
//! own timeout, so a slow or dead receiver never slows the money path. No
//! redirect is followed: a 3xx is a failed delivery, named with where it pointed.

use crate::store::outbox::OutboxEvent;
use crate::store::{Store, StoreError};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// When an event the receiver did not take is tried again: 1 m, 5 m, 30 m,
/// 2 h, 12 h, 24 h (with jitter); after that it is kept as dead.
pub const RETRY_SCHEDULE: [Duration; 6] = [
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(1800),
    Duration::from_secs(7200),
    Duration::from_secs(43_200),
    Duration::from_secs(86_400),
];

/// How long one delivery may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the receiver gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The event's JSON object.
    Json,
    /// `{"text": "..."}`, which Slack- and Mattermost-style incoming webhooks accept.
    Slack,
}

/// The operator's receiver.
#[derive(Clone)]
pub struct Webhook {
    url: url::Url,
    secret: SecretString,
    format: WebhookFormat,
    http: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// `Refundd-Signature`'s value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let t_text = t.to_string();
    let mac =
        crate::ctbc::envelope::hmac_sha256_hex(secret.as_bytes(), &[t_text.as_bytes(), b".", body]);
    format!("t={t},v1={mac}")
}

/// When to try again after the `attempts`-th failed delivery; None: dead.
pub fn retry_in(attempts: i32) -> Option<Duration> {
    let base = *RETRY_SCHEDULE.get(usize::try_from(attempts).ok()?)?;
    let jitter = rand::thread_rng().gen_range(0.9..1.1);
    Some(base.mul_f64(jitter))
}

/// What one round of delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: u64,
    pub failed: u64,
    pub dead: u64,
}

impl Webhook {
    pub fn new(
        url: url::Url,
        secret: SecretString,
        format: WebhookFormat,
    ) -> Result<Webhook, String> {
        let http = reqwest::Client::builder()
            // A redirect would carry the signed event to wherever the
            // receiver points, past the check made on notify.webhook_url.
            .redirect(crate::outbound::no_redirects())
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the webhook's HTTP client: {e}"))?;
        Ok(Webhook {
            url,
            secret,
            format,
            http,
        })
    }

    /// The body sent for an event.
    pub fn body_of(&self, event: &OutboxEvent) -> Vec<u8> {
        let value = match self.format {
            WebhookFormat::Json => event.body.clone(),
            WebhookFormat::Slack => serde_json::json!({ "text": chat_line(event) }),
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// Posts one event; `Err` says why the receiver did not take it.
    pub async fn post(&self, event: &OutboxEvent) -> Result<(), String> {
        let body = self.body_of(event);
        let t = chrono::Utc::now().timestamp();
        let sig = signature(self.secret.expose_secret(), t, &body);
        let answer = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("Refundd-Signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("no answer from the webhook: {}", e.without_url()))?;
        let status = answer.status();
        if let Some(reason) = crate::outbound::redirect_reason(status, answer.headers()) {
            return Err(format!(
                "the webhook answered {reason}; set notify.webhook_url to the final address"
            ));
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }

    /// Delivers every event due now, one at a time, until none is left.
    pub async fn deliver_due(&self, store: &Store) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        while let Some(d) = store.next_delivery().await? {
            let result = self.post(&d.event).await;
            let (kind, id, order_no) = (d.event.kind, d.event.id, d.event.order_no.clone());
            match result {
                Ok(()) => {
                    store.delivered(d).await?;
                    report.delivered += 1;
                    metrics::counter!("refundd_webhook_deliveries_total", "result" => "delivered")
                        .increment(1);
                }
                Err(why) => {
                    let next = retry_in(d.event.attempts);
                    warn!(event = %id, event_type = %kind, reason = %why, dead = next.is_none(), "webhook delivery failed");
                    if next.is_none() {
                        warn!(event = %id, order_no = %order_no, "webhook event dead after its retry schedule; its order's later events wait behind it until `refundd notify redeliver --dead` puts it back and the webhook takes it");
                    }
                    store.not_delivered(d, &why, next).await?;
                    let result = if next.is_some() { "failed" } else { "dead" };
                    metrics::counter!("refundd_webhook_deliveries_total", "result" => result)
                        .increment(1);
                    report.failed += 1;
                    report.dead += u64::from(next.is_none());
                }
            }
        }
        Ok(report)
    }

    /// Delivers until `stop`: every few seconds, whatever the passes do.
    pub async fn run(self, store: Store, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.deliver_due(&store).await {
                Ok(r) if r.delivered + r.failed > 0 => {
                    info!(
                        delivered = r.delivered,
                        failed = r.failed,
                        dead = r.dead,
                        "webhook deliveries"
                    )
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "webhook delivery could not read the outbox"),
            }
            if let Ok(state) = store.delivery_state().await {
                metrics::gauge!("refundd_webhook_dead_events").set(state.dead as f64);
                metrics::gauge!("refundd_webhook_held_events").set(state.held as f64);
                metrics::gauge!("refundd_webhook_oldest_undelivered_seconds")
                    .set(state.oldest_undelivered_secs.unwrap_or(0.0));
            }
        }
    }
}

/// The event in one line, for chat.
fn chat_line(event: &OutboxEvent) -> String {
    let b = &event.body;
    let field = |k: &str| {
        b.get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
    };
    let mut line = format!("refundd: {} for order {}", event.kind, event.order_no);
    if let Some(a) = field("amount") {
        line.push_str(&format!(", amount {a}"));
    }
    if let Some(m) = field("method") {
        line.push_str(&format!(" by {m}"));
    }
    if let Some(r) = field("reason") {
        line.push_str(&format!(": {r}"));
    }
    line
}
