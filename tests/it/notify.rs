//! Webhook delivery against a real HTTP receiver on loopback: events arrive
//! signed and verifiable; a receiver that is down gets them later, each at
//! least once, none lost, and dead after the schedule until put back; events of
//! one order go out in order, a dead one holding back the later ones; a
//! receiver that does not answer never holds up the passes; two daemons sharing
//! the outbox never send one event twice at once; the chat format; a receiver
//! that redirects is a failed delivery, and the place it points to never gets
//! the event.

use crate::common::{
    eventually, exited, output_off_runtime, refundd_bin, terminate, Captured, Rig, WithLog,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use refundd::ctbc::TxState;
use refundd::notify::{signature, Webhook, WebhookFormat};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "a-receivers-shared-secret";

#[derive(Default)]
struct Receiver {
    /// Every request that reached it, signed or not.
    hits: std::sync::atomic::AtomicUsize,
    down: AtomicBool,
    /// Every body taken, in order, with its signature header.
    taken: Mutex<Vec<(String, serde_json::Value)>>,
}

async fn take(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    r.hits.fetch_add(1, Ordering::SeqCst);
    if r.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let sig = headers
        .get("Refundd-Signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    // The receiver checks the signature as a merchant's would.
    let t: i64 = sig
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    if signature(SECRET, t, &body) != sig {
        return StatusCode::UNAUTHORIZED;
    }
    r.taken.lock().unwrap().push((sig, json));
    StatusCode::NO_CONTENT
}

async fn receiver() -> (Arc<Receiver>, url::Url) {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/hook", post(take))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url::Url::parse(&format!("http://{addr}/hook")).unwrap())
}

/// A receiver that answers every POST with `status` and a `Location`.
async fn redirecting(status: StatusCode, location: String) -> url::Url {
    let answer = move || {
        let location = location.clone();
        async move { (status, [(axum::http::header::LOCATION, location)]) }
    };
    let app = axum::Router::new().route("/hook", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    url::Url::parse(&format!("http://{addr}/hook")).unwrap()
}

fn webhook(url: &url::Url, format: WebhookFormat) -> Webhook {
    Webhook::new(url.clone(), SECRET.to_string().into(), format).unwrap()
}

#[tokio::test]
async fn events_arrive_signed_and_are_marked_delivered() {
    let rig = Rig::new().await;
    rig.seed("A1", 1000, TxState::Authorised, None).await;
    rig.seed("A2", 1000, TxState::AuthFailed, None).await;
    rig.pass().await;
    let (r, url) = receiver().await;
    let report = webhook(&url, WebhookFormat::Json)
        .deliver_due(&rig.store)
        .await
        .unwrap();
    assert_eq!(report.delivered, 2);
    let taken = r.taken.lock().unwrap().clone();
    let mut types: Vec<String> = taken
        .iter()
        .map(|(sig, body)| {
            assert!(sig.starts_with("t=") && sig.contains(",v1="), "{sig}");
            format!(
                "{} {}",
                body["order_no"].as_str().unwrap(),
                body["type"].as_str().unwrap()
            )
        })
        .collect();
    types.sort();
    assert_eq!(types, ["A1 refund.succeeded", "A2 refund.failed"]);
    let state = rig.store.delivery_state().await.unwrap();
    assert_eq!((state.undelivered, state.dead), (0, 0));
    // Delivered events are not sent again.
    let again = webhook(&url, WebhookFormat::Json)
        .deliver_due(&rig.store)
        .await
        .unwrap();
    assert_eq!(again.delivered, 0);
}

#[tokio::test]
async fn a_redirect_is_a_failed_delivery_and_is_never_followed() {
    let rig = Rig::new().await;
    rig.seed("R1", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    // Where the redirects point: a receiver that would take the event.
    let (elsewhere, target) = receiver().await;
    for status in [
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
        StatusCode::FOUND,
    ] {
        let url = redirecting(status, target.to_string()).await;
        sqlx::query("UPDATE refundd.outbox SET next_attempt_at = now()")
            .execute(&rig.pool)
            .await
            .unwrap();
        let report = webhook(&url, WebhookFormat::Json)
            .deliver_due(&rig.store)
            .await
            .unwrap();
        assert_eq!((report.delivered, report.failed), (0, 1), "{status}");
        let reason: String = sqlx::query_scalar("SELECT last_error FROM refundd.outbox")
            .fetch_one(&rig.pool)
            .await
            .unwrap();
        assert!(
            reason.contains(status.as_str()) && reason.contains(target.as_str()),
            "names the status and the Location: {reason}"
        );
        assert_eq!(
            elsewhere.hits.load(Ordering::SeqCst),
            0,
            "{status}: the body and its signature went where the redirect pointed"
        );
    }
    let state = rig.store.delivery_state().await.unwrap();
    assert_eq!((state.undelivered, state.dead), (1, 0));
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_every_event_later_then_they_die_and_can_be_put_back() {
    let rig = Rig::new().await;
    rig.seed("D1", 1000, TxState::Authorised, None).await;
    rig.seed("D2", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    let (r, url) = receiver().await;
    let hook = webhook(&url, WebhookFormat::Json);
    r.down.store(true, Ordering::SeqCst);
    let first = hook.deliver_due(&rig.store).await.unwrap();
    assert_eq!((first.delivered, first.failed), (0, 2));
    let waiting: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM refundd.outbox",
    )
    .fetch_all(&rig.pool)
    .await
    .unwrap();
    assert!(
        waiting.iter().all(|w| *w > 40.0 && *w < 70.0),
        "about a minute: {waiting:?}"
    );
    // Not due yet: nothing is sent.
    assert_eq!(hook.deliver_due(&rig.store).await.unwrap().failed, 0);
    // The receiver comes back; the retry falls due.
    r.down.store(false, Ordering::SeqCst);
    sqlx::query("UPDATE refundd.outbox SET next_attempt_at = now()")
        .execute(&rig.pool)
        .await
        .unwrap();
    assert_eq!(hook.deliver_due(&rig.store).await.unwrap().delivered, 2);

    // A third order's event fails through the whole schedule: it is kept as dead.
    rig.seed("D3", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    r.down.store(true, Ordering::SeqCst);
    for _ in 0..=refundd::notify::RETRY_SCHEDULE.len() {
        sqlx::query("UPDATE refundd.outbox SET next_attempt_at = now()")
            .execute(&rig.pool)
            .await
            .unwrap();
        hook.deliver_due(&rig.store).await.unwrap();
    }
    let state = rig.store.delivery_state().await.unwrap();
    assert_eq!((state.undelivered, state.dead), (0, 1));
    assert_eq!(rig.store.redeliver_dead().await.unwrap(), 1);
    r.down.store(false, Ordering::SeqCst);
    assert_eq!(hook.deliver_due(&rig.store).await.unwrap().delivered, 1);
    let ids: Vec<String> = r
        .taken
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b["order_no"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ["D1", "D2", "D3"], "each event once, none lost");
}

#[tokio::test]
async fn events_of_one_order_go_out_in_order() {
    let rig = Rig::new().await;
    rig.seed("ORD", 1000, TxState::Settled, None).await;
    rig.pass().await;
    rig.admin.run_batch().await.unwrap();
    rig.pass().await;
    // succeeded, then settled: the first one is not taken at first.
    let (r, url) = receiver().await;
    let hook = webhook(&url, WebhookFormat::Json);
    r.down.store(true, Ordering::SeqCst);
    let first = hook.deliver_due(&rig.store).await.unwrap();
    assert_eq!(
        first.failed, 1,
        "the settled event waits behind the succeeded one"
    );
    r.down.store(false, Ordering::SeqCst);
    sqlx::query("UPDATE refundd.outbox SET next_attempt_at = now()")
        .execute(&rig.pool)
        .await
        .unwrap();
    hook.deliver_due(&rig.store).await.unwrap();
    let order: Vec<String> = r
        .taken
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, ["refund.succeeded", "refund.settled"]);
}

/// The shop's database refuses SETTLE's write-back, so the order has three
/// events: succeeded and needs_attention in the first pass, settled after
/// the bank's batch.
async fn an_order_with_three_events(rig: &Rig) -> Vec<String> {
    rig.seed("SETTLE", 1000, TxState::Settled, None).await;
    sqlx::raw_sql(
        "CREATE FUNCTION shop_rule() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.status = 'refunded' THEN RAISE EXCEPTION 'order closed'; END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER shop_rule BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION shop_rule();",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.pass().await;
    rig.admin.run_batch().await.unwrap();
    rig.pass().await;
    let events = rig.store.events_of("SETTLE").await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        types,
        [
            "refund.succeeded",
            "refund.needs_attention",
            "refund.settled"
        ]
    );
    events.iter().map(|e| e.id.to_string()).collect()
}

#[tokio::test]
async fn a_dead_event_holds_back_its_orders_later_events_until_it_is_delivered() {
    let rig = Rig::new().await;
    let written = an_order_with_three_events(&rig).await;
    let (r, url) = receiver().await;
    let hook = webhook(&url, WebhookFormat::Json);
    // The receiver is down until the first event's schedule is used up.
    r.down.store(true, Ordering::SeqCst);
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let guard = crate::common::on_this_thread(subscriber);
    for _ in 0..=refundd::notify::RETRY_SCHEDULE.len() {
        sqlx::query("UPDATE refundd.outbox SET next_attempt_at = now()")
            .execute(&rig.pool)
            .await
            .unwrap();
        hook.deliver_due(&rig.store).await.unwrap();
    }
    drop(guard);
    let logged = log.text();
    assert!(
        logged.contains("SETTLE") && logged.contains("later events wait behind it"),
        "{logged}"
    );
    // The operator sees the order's later events held behind the dead one.
    let state = rig.store.delivery_state().await.unwrap();
    assert_eq!((state.undelivered, state.dead, state.held), (2, 1, 2));
    let status = refundd::ops::status::report(&rig.store, refundd::ops::status::Webhook::Set)
        .await
        .unwrap();
    assert!(
        status
            .render()
            .contains("2 of them held behind a dead event of their order"),
        "{}",
        status.render()
    );
    assert!(
        status.to_json().contains("\"held\": 2"),
        "{}",
        status.to_json()
    );
    // The receiver is back: the later events still wait behind the dead one.
    r.down.store(false, Ordering::SeqCst);
    sqlx::query("UPDATE refundd.outbox SET next_attempt_at = now()")
        .execute(&rig.pool)
        .await
        .unwrap();
    hook.deliver_due(&rig.store).await.unwrap();
    assert_eq!(rig.store.redeliver_dead().await.unwrap(), 1);
    hook.deliver_due(&rig.store).await.unwrap();
    let seen: Vec<String> = r
        .taken
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        seen, written,
        "the order's events in the order they were written"
    );
}

#[tokio::test]
async fn two_daemons_sharing_the_outbox_never_send_an_event_twice() {
    let rig = Rig::new().await;
    let orders: Vec<(String, i64)> = (0..60).map(|i| (format!("P{i}"), 1000)).collect();
    rig.bank_knows(&orders, |_| TxState::Authorised).await;
    rig.insert_orders(&orders).await;
    rig.pass().await;
    let (r, url) = receiver().await;
    let (a, b) = (
        webhook(&url, WebhookFormat::Json),
        webhook(&url, WebhookFormat::Json),
    );
    let (ra, rb) = tokio::join!(a.deliver_due(&rig.store), b.deliver_due(&rig.store));
    assert_eq!(ra.unwrap().delivered + rb.unwrap().delivered, 60);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, body) in r.taken.lock().unwrap().iter() {
        *seen
            .entry(body["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 60);
    assert!(seen.values().all(|n| *n == 1));
}

#[tokio::test]
async fn the_chat_format_is_a_text_message() {
    let rig = Rig::new().await;
    rig.seed("CHAT", 1200, TxState::Authorised, Some(200)).await;
    rig.pass().await;
    let (r, url) = receiver().await;
    webhook(&url, WebhookFormat::Slack)
        .deliver_due(&rig.store)
        .await
        .unwrap();
    let taken = r.taken.lock().unwrap().clone();
    let text = taken[0].1["text"].as_str().unwrap();
    assert!(
        text.contains("refund.succeeded") && text.contains("CHAT") && text.contains("200"),
        "{text}"
    );
}

/// A receiver that holds every request until released, counting them.
#[derive(Default)]
struct Holder {
    held: std::sync::atomic::AtomicUsize,
    release: tokio::sync::Notify,
    released: AtomicBool,
}

async fn hold(State(h): State<Arc<Holder>>) -> StatusCode {
    h.held.fetch_add(1, Ordering::SeqCst);
    if !h.released.load(Ordering::SeqCst) {
        h.release.notified().await;
    }
    StatusCode::NO_CONTENT
}

#[tokio::test]
#[ignore = "runs `refundd run` and waits on its schedule; slow on a loaded machine: cargo test --test it notify:: -- --ignored"]
async fn a_receiver_that_does_not_answer_never_holds_up_the_passes() {
    let rig = Rig::new().await;
    let orders: Vec<(String, i64)> = (0..20).map(|i| (format!("H{i}"), 1000)).collect();
    rig.bank_knows(&orders, |_| TxState::Authorised).await;
    // Half the orders now; the other half once the receiver is stuck.
    rig.insert_orders(&orders[..10]).await;
    let holder = Arc::new(Holder::default());
    let app = axum::Router::new()
        .route("/hook", post(hold))
        .with_state(holder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = rig.refundd("run");
    cmd.env("REFUNDD__SCHEDULE__CRON", "* * * * * *")
        .env(
            "REFUNDD__NOTIFY__WEBHOOK_URL",
            format!("http://{addr}/hook"),
        )
        .env("REFUNDD__NOTIFY__WEBHOOK_SECRET", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log.path()).unwrap());
    let child = cmd.spawn().unwrap();
    let twenty_refunded = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM refundd.refunds WHERE status = 'refunded'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
            >= 20
    };
    // The first refunds are made and their delivery is stuck at the receiver.
    let awaited = WithLog {
        what: "a first delivery to reach the receiver",
        log: log.path(),
    };
    eventually(Duration::from_secs(60), awaited, || async {
        holder.held.load(Ordering::SeqCst) > 0
    })
    .await;
    // While it is stuck, the passes go on with the rest.
    rig.insert_orders(&orders[10..]).await;
    eventually(
        Duration::from_secs(60),
        "the passes to refund the rest while the receiver holds a delivery",
        || twenty_refunded(rig.pool.clone()),
    )
    .await;
    assert_eq!(
        holder.held.load(Ordering::SeqCst),
        1,
        "one delivery at a time, still unanswered"
    );
    holder.released.store(true, Ordering::SeqCst);
    holder.release.notify_waiters();
    terminate(&child);
    let status = exited(child).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn notify_test_sends_one_signed_event_and_redeliver_puts_dead_events_back() {
    let rig = Rig::new().await;
    let (r, url) = receiver().await;
    let mut cmd = refundd_bin();
    cmd.args(["notify", "test"])
        .env("REFUNDD__NOTIFY__WEBHOOK_URL", url.as_str())
        .env("REFUNDD__NOTIFY__WEBHOOK_SECRET", SECRET);
    // The receiver runs on this test's runtime: wait for the command elsewhere.
    let out = output_off_runtime(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("took the test event"));
    let taken = r.taken.lock().unwrap().clone();
    assert_eq!(
        taken.len(),
        1,
        "signed, or the receiver would have refused it"
    );
    assert_eq!(taken[0].1["type"], "refund.test");
    // Without a webhook it says what to set.
    let out = refundd_bin().args(["notify", "test"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notify.webhook_url"));
    // Dead events back in line.
    rig.seed("DEAD", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    sqlx::query("UPDATE refundd.outbox SET dead_at = now()")
        .execute(&rig.pool)
        .await
        .unwrap();
    let out = refundd_bin()
        .args(["notify", "redeliver", "--dead"])
        .env("REFUNDD__DATABASE__URL", &rig.url)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rig.store.delivery_state().await.unwrap().dead, 0);
}
