//! Chaos: orders across every state, a bank that fails one call in five in
//! every way it can and runs its batch part of the time, two real refundd
//! processes SIGKILLed at random and restarted, and their database failing
//! at random moments: their connections cut (`pg_terminate_backend`), the
//! database away for a moment, every connection cut mid-statement or
//! mid-COMMIT and new ones refused (`common::DbProxy`), or the database
//! refusing writes for a moment (read-only). Afterwards no refund was made
//! twice (no duplicate refused, no transaction holding two refunds), none was
//! lost, and the database agrees with the bank to the unit. A
//! webhook receiver that fails one delivery in five, and is down for a while,
//! still gets every event of every order at least once.
//! A small run is part of the normal suite (once on the built-in table in the
//! default schema, once on the tutorial shop's tables with refundd's records
//! in a schema of the operator's choice); the full one is behind #[ignore].
//! The same chaos on the returns shop, orders refunded in several parts, is
//! `chaos::returns`.

mod returns;

use crate::common::{
    ask_for_refunds, bank_tx, empty_db, eventually, refundd_bin, request, terminate, test_pool,
    whole_refund_in, DbProxy, Ends, WithLog, DEFAULT_SCHEMA,
};
use rand::{Rng, SeedableRng};
use refundd::ctbc::TxState;
use refundd::sim::{
    FaultPlan, FaultRule, SimConfig, SimServer, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};
use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Each fault kind fires with this probability, in turn: about 20% of calls in all.
const P_EACH_FAULT: f64 = 0.0365;

const WEBHOOK_SECRET: &str = "the-chaos-receivers-secret";

/// A receiver that refuses one delivery in five (until it calms down) and
/// remembers the ids it took.
#[derive(Default)]
struct FlakyReceiver {
    taken: std::sync::Mutex<std::collections::HashSet<String>>,
    calm: std::sync::atomic::AtomicBool,
}

async fn flaky_take(
    axum::extract::State(r): axum::extract::State<std::sync::Arc<FlakyReceiver>>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let calm = r.calm.load(std::sync::atomic::Ordering::Relaxed);
    if !calm && rand::random::<f64>() < 0.2 {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(id) = json["id"].as_str() {
        r.taken.lock().unwrap().insert(id.to_string());
    }
    axum::http::StatusCode::NO_CONTENT
}

/// Serves the receiver on `listener` until the task is aborted (killed).
fn serve_receiver(
    listener: tokio::net::TcpListener,
    r: std::sync::Arc<FlakyReceiver>,
) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(flaky_take))
        .with_state(r);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// Where the daemons and the test find one run: the database, the bank, the
/// webhook receiver, the shop's tables and refundd's schema.
struct Site<'a> {
    db_url: &'a str,
    bank_url: &'a str,
    /// The webhook receiver; None: no webhook.
    hook: Option<&'a str>,
    shop: Shop,
    schema: &'static str,
}

fn daemon(site: &Site<'_>, log: &std::path::Path) -> Child {
    let (db_url, bank_url, shop) = (site.db_url, site.bank_url, site.shop);
    let log = std::fs::File::create(log).unwrap();
    let mut cmd: Command = refundd_bin();
    cmd.env("REFUNDD__DATABASE__SCHEMA", site.schema);
    if let Some(hook) = site.hook {
        cmd.env("REFUNDD__NOTIFY__WEBHOOK_URL", hook)
            .env("REFUNDD__NOTIFY__WEBHOOK_SECRET", WEBHOOK_SECRET);
    }
    if let Some(shop) = shop {
        cmd.env("REFUNDD__SHOP__REQUESTS", shop.requests)
            .env("REFUNDD__SHOP__ON_REFUNDED", shop.on_refunded)
            .env("REFUNDD__SHOP__ON_FAILED", shop.on_failed);
    }
    cmd.arg("run")
        .env("REFUNDD__DATABASE__URL", db_url)
        .env("REFUNDD__CTBC__BASE_URL", bank_url)
        .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
        .env("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY)
        .env("REFUNDD__CTBC__IV", REFERENCE_IV)
        .env("REFUNDD__CTBC__MAX_REQUESTS_PER_SEC", "0")
        .env("REFUNDD__CTBC__TIMEOUT_SECS", "2")
        .env("REFUNDD__CTBC__CONNECT_TIMEOUT_SECS", "1")
        .env("REFUNDD__SCHEDULE__CRON", "* * * * * *")
        .env("REFUNDD__WORKER__CONCURRENCY", "8")
        .env("REFUNDD__WORKER__BATCH_SIZE", "20")
        .env("REFUNDD__WORKER__LEASE_SECS", "3")
        .env("REFUNDD__WORKER__RECHECK_SECS", "3")
        .env("REFUNDD__WORKER__BACKOFF_BASE_SECS", "1")
        .env("REFUNDD__WORKER__BACKOFF_MAX_SECS", "2")
        .env("REFUNDD__WORKER__MAX_ATTEMPTS", "1000")
        .env("REFUNDD__WORKER__SHUTDOWN_GRACE_SECS", "2")
        .env("REFUNDD__HTTP__LISTEN", "off")
        .env("RUST_LOG", "warn,refundd_core::engine::schedule=info")
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    cmd.spawn().unwrap()
}

/// Orders still to be worked, or still held by a lease (a killed daemon's
/// lease runs out and the survivors take the order over).
/// Kills the daemons if the test fails, so none outlives it.
struct Daemons(Vec<Child>);

impl Daemons {
    /// Two daemons working the same site, each logging to `d{n}-0.log` in `logs`.
    fn two(site: &Site<'_>, logs: &std::path::Path) -> Daemons {
        Daemons(
            (0..2)
                .map(|n| daemon(site, &logs.join(format!("d{n}-0.log"))))
                .collect(),
        )
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for d in &mut self.0 {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

async fn backlog(pool: &sqlx::PgPool, shop: Shop) -> i64 {
    let requests = shop.map_or(refundd::store::ShopStatements::builtin().requests, |s| {
        s.requests.to_string()
    });
    let sql = format!(
        "SELECT (SELECT count(*) FROM ({requests}) AS r)
              + (SELECT count(*) FROM refunds
                  WHERE status IN ('refund_requested', 'refunding') OR lease_owner IS NOT NULL)"
    );
    sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap()
}

/// The time left before `deadline`.
fn left_until(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The example shop whose tables hold the requests; None: the built-in table.
type Shop = Option<&'static refundd::ops::shop_examples::ShopExample>;

/// order_no, status, refunded_amount, refund_error, lease_owner
type FinalOrder = (
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<uuid::Uuid>,
);

/// A bank that fails about one call in five, in every way it can, drawn from
/// `seed`, and runs its batch every few seconds (between the daemons' passes).
fn chaotic_bank(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::for_tests();
    cfg.seed = seed;
    cfg.batch_every = Some(Duration::from_secs(3));
    cfg.batch_duration = Duration::from_millis(800);
    cfg.faults = FaultPlan {
        rules: vec![FaultRule {
            jitter_ms: 30,
            p_5xx: P_EACH_FAULT,
            p_html_200: P_EACH_FAULT,
            p_reset: P_EACH_FAULT,
            p_apply_then_drop: P_EACH_FAULT,
            p_garbage: P_EACH_FAULT,
            p_wrong_mac: P_EACH_FAULT,
            ..FaultRule::default()
        }],
    };
    cfg
}

/// Cuts every connection the daemons hold (`pg_terminate_backend`, as a DBA
/// or a pooler would), wherever each is: inside an intent, a group commit's
/// flush, an ending with its write-back, or idle. Gives how many were cut.
async fn cut_daemons_connections(pool: &sqlx::PgPool) -> i64 {
    // The daemons say application_name = refundd; the test's own pool does not.
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
           FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'refundd'
            AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The database refuses writes for `pause`, as one put read-only does (a
/// disk filling up, a maintenance): every session of the database is
/// restarted read-only, then read-write again; the daemons' writes in
/// between fail. Gives how many of the daemons' connections were cut.
async fn refuse_writes_for(pool: &sqlx::PgPool, pause: Duration) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    let cut = read_only(&mut conn, true).await;
    tokio::time::sleep(pause).await;
    cut + read_only(&mut conn, false).await
}

/// Makes new sessions of the database read-only (or read-write again), then
/// cuts every other session, so the new ones take it (a session reads
/// default_transaction_read_only when it starts). Gives how many were cut.
async fn read_only(conn: &mut sqlx::PgConnection, on: bool) -> i64 {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let change = if on {
        "SET default_transaction_read_only = on"
    } else {
        "RESET default_transaction_read_only"
    };
    sqlx::query(&format!("ALTER DATABASE \"{db}\" {change}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
           FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// SIGKILLs one of the daemons at random and starts it again, logging to a
/// file of its own for the `kills`-th time.
fn kill_and_restart(
    daemons: &mut Daemons,
    site: &Site<'_>,
    logs: &std::path::Path,
    rng: &mut impl Rng,
    kills: usize,
) -> std::path::PathBuf {
    let victim = rng.gen_range(0..daemons.0.len());
    daemons.0[victim].kill().unwrap();
    daemons.0[victim].wait().unwrap();
    let log = logs.join(format!("d{victim}-{kills}.log"));
    daemons.0[victim] = daemon(site, &log);
    log
}

/// Waits until the daemon logging to `log` has finished starting.
async fn running(log: &std::path::Path, deadline: Instant) {
    let awaited = WithLog {
        what: "a restarted daemon to finish starting",
        log,
    };
    eventually(left_until(deadline), awaited, || async {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("refundd is running")
    })
    .await;
}

/// The database faults of the chaos, counted.
#[derive(Debug, Default)]
struct DatabaseFaults {
    /// Times the daemons' connections were cut, and how many connections.
    cuts: usize,
    connections_cut: i64,
    /// Times the database went away (every connection cut, new ones refused).
    outages: usize,
    /// Times the database refused writes for a while (read-only).
    read_only: usize,
}

impl DatabaseFaults {
    /// The `round`-th fault, in turn: the daemons' connections cut, the
    /// database away for a moment (a random one), or the database refusing
    /// writes for a moment, while calls are in flight.
    async fn strike(
        &mut self,
        round: usize,
        rng: &mut impl Rng,
        pool: &sqlx::PgPool,
        proxy: &DbProxy,
    ) {
        match round % 3 {
            0 => {
                self.cuts += 1;
                self.connections_cut += cut_daemons_connections(pool).await;
            }
            1 => {
                self.outages += 1;
                proxy.take_down();
                tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1500))).await;
                proxy.restore();
            }
            _ => {
                self.read_only += 1;
                let pause = Duration::from_millis(rng.gen_range(200..1500));
                self.connections_cut += refuse_writes_for(pool, pause).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..600))).await;
    }
}

/// Stops the daemons the way an operator would, once each has finished
/// starting (its latest log says so): each exits 0.
async fn stop_as_an_operator(daemons: &mut Daemons, logs: &std::path::Path, deadline: Instant) {
    for n in 0..daemons.0.len() {
        let log = std::fs::read_dir(logs)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("d{n}-"))
            })
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).unwrap())
            .unwrap();
        let what = format!("daemon {n} to finish starting");
        let awaited = WithLog {
            what: &what,
            log: &log,
        };
        eventually(left_until(deadline), awaited, || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("refundd is running")
        })
        .await;
    }
    for d in &daemons.0 {
        terminate(d);
    }
    for d in &mut daemons.0 {
        assert_eq!(d.wait().unwrap().code(), Some(0));
    }
}

/// refundd's records in the schema the daemons are given (`database.schema`).
async fn chaos(orders: usize, min_kills: usize, seed: u64, shop: Shop, schema: &'static str) {
    let (plain, db_url) = empty_db().await;
    if let Some(shop) = shop {
        shop.create(&plain).await.unwrap();
    }
    let statements = match shop {
        None => refundd::store::ShopStatements::builtin(),
        Some(s) => refundd::store::ShopStatements::of_shop(
            s.requests.into(),
            s.on_refunded.into(),
            Some(s.on_failed.into()),
        ),
    };
    let store = refundd::store::Store::new(
        plain,
        refundd::store::Schema::parse(schema).unwrap(),
        statements,
    );
    store.migrate().await.unwrap();
    // The test's own SQL names refundd's tables without a schema.
    let pool = test_pool(&db_url, schema).await;
    let sim = SimServer::start(chaotic_bank(seed)).await.unwrap();
    let admin = sim.admin();

    // Orders across states: mostly the common ones, some partial, some a person must see.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let states = [
        (TxState::CapturedNotSettled, 40),
        (TxState::Settled, 30),
        (TxState::Authorised, 15),
        (TxState::AuthCancelled, 3),
        (TxState::RefundSettling, 3),
        (TxState::AuthFailed, 3),
        (TxState::CaptureFailed, 3),
        (TxState::RefundFailed, 3),
    ];
    let weight_total: u32 = states.iter().map(|(_, w)| w).sum();
    let mut txs = Vec::with_capacity(orders);
    let mut asked = Vec::with_capacity(orders);
    for i in 0..orders {
        let mut pick = rng.gen_range(0..weight_total);
        let state = states
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|(s, _)| s.clone())
            .unwrap();
        let amount = rng.gen_range(100..20_000i64);
        let part = if rng.gen_bool(0.25) {
            Some(rng.gen_range(1..amount))
        } else {
            None
        };
        txs.push(bank_tx(&format!("C{i}"), amount, state));
        asked.push(request(&format!("C{i}"), amount, part));
    }
    admin.load(&txs).await.unwrap();
    ask_for_refunds(&pool, shop, &asked).await;

    let logs = tempfile::tempdir().unwrap();
    let bank_url = sim.base_url();
    let receiver = std::sync::Arc::new(FlakyReceiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    let hook = format!("http://{hook_addr}/hook");
    let mut receiver_task = Some(serve_receiver(listener, receiver.clone()));
    // The daemons reach the database through a proxy the test can take down;
    // the test's own checks go straight to it.
    let proxy = DbProxy::start(DbProxy::upstream_of(&db_url)).await;
    let daemons_db_url = proxy.url_through(&db_url);
    let site = Site {
        db_url: &daemons_db_url,
        bank_url: &bank_url,
        hook: Some(&hook),
        shop,
        schema,
    };
    let mut daemons = Daemons::two(&site, logs.path());
    let mut kills = 0;
    let mut db_faults = DatabaseFaults::default();
    let deadline = Instant::now() + Duration::from_secs(90 + orders as u64 / 10);
    // Kill at random moments, at least `min_kills` times, while work remains;
    // between kills, a database fault at a random moment. A daemon restarted
    // finishes starting before the next fault (one that cannot reach its
    // database at start-up exits, for systemd to start it again).
    while kills < min_kills || (backlog(&pool, shop).await > 0 && kills < min_kills * 3) {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..1200))).await;
        db_faults.strike(kills, &mut rng, &pool, &proxy).await;
        kills += 1;
        let log = kill_and_restart(&mut daemons, &site, logs.path(), &mut rng, kills);
        running(&log, deadline).await;
        // The receiver is killed once, and comes back a few kills later.
        if kills == 2 {
            if let Some(t) = receiver_task.take() {
                t.abort();
                let _ = t.await;
            }
        }
        if kills == 5 && receiver_task.is_none() {
            let listener = tokio::net::TcpListener::bind(hook_addr).await.unwrap();
            receiver_task = Some(serve_receiver(listener, receiver.clone()));
        }
        assert!(Instant::now() < deadline, "chaos phase overran");
    }
    // The bank calms down; the daemons finish the backlog, unknown outcomes included.
    admin.set_faults(&FaultPlan::none()).await.unwrap();
    eventually(left_until(deadline), "the backlog to empty", || async {
        backlog(&pool, shop).await == 0
    })
    .await;
    stop_as_an_operator(&mut daemons, logs.path(), deadline).await;
    assert!(kills >= min_kills);
    assert!(
        db_faults.connections_cut > 0 && db_faults.outages > 0 && db_faults.read_only > 0,
        "database faults: {db_faults:?}"
    );

    // Every event of every order reaches the receiver at least once: what the
    // daemons did not deliver waits for its retry, which falls due now. The
    // receiver calms down as the bank did: the looks below bring the retry
    // schedule (hours long) down to moments, and one refusal in five at every
    // look would let an event use up its schedule by chance.
    receiver
        .calm
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if receiver_task.is_none() {
        let listener = tokio::net::TcpListener::bind(hook_addr).await.unwrap();
        receiver_task = Some(serve_receiver(listener, receiver.clone()));
    }
    let webhook = refundd::notify::Webhook::new(
        url::Url::parse(&hook).unwrap(),
        WEBHOOK_SECRET.to_string().into(),
        refundd::notify::WebhookFormat::Json,
    )
    .unwrap();
    // Each look makes every undelivered event due and delivers what is due.
    eventually(left_until(deadline), "every event delivered", || async {
        sqlx::query("UPDATE outbox SET next_attempt_at = now() WHERE delivered_at IS NULL")
            .execute(&pool)
            .await
            .unwrap();
        webhook.deliver_due(&store).await.unwrap();
        let state = store.delivery_state().await.unwrap();
        assert_eq!(state.dead, 0, "an event died");
        state.undelivered == 0
    })
    .await;
    let ids: Vec<String> = sqlx::query_scalar("SELECT id::text FROM outbox")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        ids.len() >= orders / 2,
        "events were written: {}",
        ids.len()
    );
    let taken = receiver.taken.lock().unwrap().clone();
    assert!(
        ids.iter().all(|id| taken.contains(id)),
        "an event never arrived"
    );
    drop(receiver_task);

    // Zero duplicates at the bank.
    let ledger = admin.ledger().await.unwrap();
    assert!(
        ledger.faults.values().sum::<u64>() > 0,
        "faults fired: {:?}",
        ledger.faults
    );
    assert_eq!(ledger.duplicates, 0, "a refund was attempted twice");
    // Each order asked for one refund, so the bank holds at most one refund
    // of any transaction, live or reversed. A refund resent once the first
    // settled would be a further refund to the bank, accepted within the
    // balance and never counted as a duplicate: this sees it.
    let held = admin.all_transactions().await.unwrap();
    assert_eq!(held.len(), orders);
    let refunded_twice: Vec<(&str, usize)> = held
        .iter()
        .filter(|t| t.refunds.len() > 1)
        .map(|t| (t.order_no.as_str(), t.refunds.len()))
        .collect();
    assert!(
        refunded_twice.is_empty(),
        "refunded more than once at the bank: {refunded_twice:?}"
    );

    // Every order ended refunded, or refund_failed with a reason; nothing claimed.
    let rows: Vec<FinalOrder> = sqlx::query_as(
        "SELECT order_no, status, refunded_amount, refund_error, lease_owner FROM refunds ORDER BY order_no",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), orders);
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (no, status, amount, error, lease) in &rows {
        *by_status.entry(status.clone()).or_default() += 1;
        assert!(lease.is_none(), "{no} left claimed");
        match status.as_str() {
            "refunded" => assert!(amount.is_some(), "{no}"),
            "refund_failed" => assert!(
                error.as_deref().is_some_and(|e| !e.is_empty()),
                "{no} failed without a reason"
            ),
            other => panic!("{no} ended in {other}"),
        }
        // Only the states a person must look at (common::EVERY_BANK_STATE)
        // end in refund_failed: no fault of the bank's made refundd give up
        // on an order it could refund. Money back before refundd started
        // (0, 20) was not refundd's doing.
        let started_in = &txs[no[1..].parse::<usize>().unwrap()].state;
        let ends = whole_refund_in(started_in)
            .unwrap_or_else(|| panic!("state {started_in} is not in the table"));
        let needs_person = matches!(ends, Ends::NeedsPerson | Ends::BackBeforeRefundd);
        assert_eq!(
            status == "refund_failed",
            needs_person,
            "{no} started in {started_in}, ended {status}: {error:?}"
        );
        // What the database says was refunded equals what the bank moved, to the unit.
        // (Orders already back at the bank before refundd started moved nothing in the ledger.)
        let moved = ledger.returned_by_order.get(no).copied().unwrap_or(0);
        if ends != Ends::BackBeforeRefundd {
            assert_eq!(
                amount.unwrap_or(0),
                moved,
                "{no}: database {amount:?} vs bank {moved} (started in {started_in})"
            );
        } else {
            assert_eq!(moved, 0, "{no}");
        }
    }
    println!(
        "chaos: {orders} orders, {kills} kills, database {db_faults:?}, {by_status:?}, faults {:?}",
        ledger.faults
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_small() {
    chaos(300, 10, 7, None, DEFAULT_SCHEMA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_small_on_the_tutorial_shop_in_another_schema() {
    let shop = Some(&refundd::ops::shop_examples::TUTORIAL);
    chaos(300, 10, 8, shop, "shop_refundd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 5,000 orders; run with cargo test --release --test it chaos_full -- --ignored"]
async fn chaos_full() {
    chaos(5_000, 12, 11, None, DEFAULT_SCHEMA).await;
}
