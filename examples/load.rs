//! Load harness: how fast refundd drains a backlog, what it costs in CPU and
//! memory, and how close it comes to the bound the bank's latency sets. Each
//! part runs in its own process (a throwaway PostgreSQL, `refundd sim`, and the
//! release `refundd once` being measured), so the CPU time and peak memory
//! reported are refundd's alone, read from wait4 on that child (through a
//! small helper process, see `measure_child`).
//!
//!   cargo build --release
//!   cargo run --release --example load -- --orders 10000 --latency-ms 0 --concurrency 32 --repeat 3
//!
//! Every repetition gets a fresh database, migrated by the measured binary's
//! own `refundd migrate` (so an earlier build, with its own schema, can be
//! measured the same way), and a reset simulator. `--shop tutorial` puts the
//! backlog in the tutorial shop's own tables instead of the built-in `orders`
//! and hands refundd that shop's statements (`shop.*`).

// A measuring tool: a failure to set up is a panic with its reason, and
// `wait4`/`sysconf` (a child's CPU time and peak memory) need libc's unsafe calls.
#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

#[path = "load/timeline.rs"]
mod timeline;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use refundd::ctbc::TxState;
use refundd::ops::shop_examples::TUTORIAL;
use refundd::sim::{
    FaultPlan, FaultRule, SimAdmin, SimTx, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};
use refundd::store::shop_examples::{AskedBack, SeedOrder};
use refundd::throwaway_pg::ThrowawayPostgres;
use sqlx::PgPool;

#[derive(Parser, Debug)]
#[command(
    about = "Seeds a backlog into PostgreSQL and the simulator and times `refundd once` draining it"
)]
struct Args {
    /// Orders in the backlog.
    #[arg(long, default_value_t = 10_000)]
    orders: usize,
    /// Latency the simulator adds to every call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// `worker.concurrency` of the measured refundd.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// `worker.batch_size` of the measured refundd.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// `database.max_connections` of the measured refundd (default: its own default).
    #[arg(long)]
    max_connections: Option<u32>,
    /// Measured runs, each on a fresh database and a reset simulator.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// The refundd binary to measure (and to run the simulator with).
    #[arg(long, default_value = "target/release/refundd")]
    refundd: PathBuf,
    /// Run the simulator with this binary instead (to measure two refundd
    /// binaries against one simulator).
    #[arg(long)]
    sim: Option<PathBuf>,
    /// How often the measured refundd's resident memory is sampled, in milliseconds.
    #[arg(long, default_value_t = 250)]
    rss_sample_ms: u64,
    /// RUST_LOG for the measured refundd (default: its own, info).
    #[arg(long)]
    rust_log: Option<String>,
    /// Where the backlog lives: `builtin` (the built-in `orders` table) or
    /// `tutorial` (the tutorial shop's own tables, read and written through
    /// its `shop.*` statements).
    #[arg(long, value_enum, default_value_t = Shop::Builtin)]
    shop: Shop,
    /// Also print where PostgreSQL spent its time: the statements of each
    /// run (those inside triggers and functions included) by total execution
    /// time per order, from pg_stat_statements.
    #[arg(long)]
    pg_stats: bool,
    /// The measured refundd reaches PostgreSQL through its Unix socket
    /// instead of TCP on 127.0.0.1, as a refundd next to the shop's database
    /// can (`postgres:///db?host=/run/postgresql`); pgbench keeps TCP.
    #[arg(long)]
    unix_socket: bool,
    /// Measure without the outbox: its trigger is disabled after `migrate`
    /// (a measurement of what the outbox costs, never a way to run refundd).
    #[arg(long)]
    without_outbox: bool,
    /// Also measure what the same PostgreSQL commits on its own: `pgbench -N`
    /// (scale 10, 8 clients, 2 threads) for this many seconds, before the runs
    /// and after them, and print refundd's orders/s as a ratio of it. 0: off.
    #[arg(long, default_value_t = 0)]
    pgbench_secs: u64,
    /// A setting for the throwaway PostgreSQL (`name=value`, repeatable), as
    /// `auto_explain.log_min_duration=1` to see the plans of slow statements.
    #[arg(long = "pg-setting")]
    pg_settings: Vec<String>,
    /// Keep refundd's logs of the runs (their directory is printed).
    #[arg(long)]
    keep_logs: bool,
    /// After each run's backlog is drained, the bank runs its batch and
    /// `refundd reconcile --since 1d` asks about every order again at this
    /// many calls a second (the bank's rate limit, `ctbc.max_requests_per_sec`);
    /// its duration and classes are printed. 0: no reconciliation.
    #[arg(long, default_value_t = 0)]
    reconcile_rate: u32,
    /// Print where a refunded order's time went, from refundd's log: its bank
    /// calls as refundd timed them, the waits before calls (intents, step
    /// outcomes) and the ending after the last call.
    #[arg(long)]
    timeline: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Shop {
    Builtin,
    Tutorial,
}

impl Shop {
    /// The settings that point refundd at the shop's tables (none: built-in).
    fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Shop::Builtin => Vec::new(),
            Shop::Tutorial => vec![
                ("REFUNDD__SHOP__REQUESTS", TUTORIAL.requests),
                ("REFUNDD__SHOP__ON_REFUNDED", TUTORIAL.on_refunded),
                ("REFUNDD__SHOP__ON_FAILED", TUTORIAL.on_failed),
            ],
        }
    }

    /// Counts the orders still asked back, refunded and failed, in the
    /// shop's own statuses.
    fn counts_sql(self) -> &'static str {
        match self {
            Shop::Builtin => {
                "SELECT count(*) FILTER (WHERE status IN ('refund_requested', 'refunding')),
                        count(*) FILTER (WHERE status = 'refunded'),
                        count(*) FILTER (WHERE status = 'refund_failed')
                   FROM orders"
            }
            Shop::Tutorial => {
                "SELECT count(*) FILTER (WHERE status = '申請退款'),
                        count(*) FILTER (WHERE status = '已退款'),
                        count(*) FILTER (WHERE status = '退款失敗')
                   FROM shop.orders"
            }
        }
    }
}

/// The bank states of the backlog, per 100 orders: mostly 10 (fresh), 12
/// (settled) and 1 (authorised only), some partial refunds, a few already
/// undone or failed. (state, refund_amount for a 1500 order, orders per 100)
const MIX: &[(TxState, Option<i64>, usize)] = &[
    (TxState::CapturedNotSettled, None, 40),
    (TxState::Settled, None, 20),
    (TxState::Settled, Some(500), 10),
    (TxState::Authorised, None, 15),
    (TxState::Authorised, Some(700), 5),
    (TxState::AuthCancelled, None, 3),
    (TxState::RefundSettling, None, 3),
    (TxState::AuthFailed, None, 4),
];

const AMOUNT: i64 = 1500;

fn mix_of(i: usize) -> (TxState, Option<i64>) {
    let mut slot = i % 100;
    for (state, part, n) in MIX {
        if slot < *n {
            return (state.clone(), *part);
        }
        slot -= n;
    }
    (TxState::CapturedNotSettled, None)
}

fn order_no(i: usize) -> String {
    format!("L{i:09}")
}

/// What one measured repetition found.
#[derive(Debug, Clone)]
struct Run {
    wall: Duration,
    /// `refundd once` processes needed to empty the backlog.
    passes: usize,
    calls: u64,
    cpu: Duration,
    max_rss_kib: i64,
    /// (VmRSS, VmHWM) samples of the measured refundd, KiB, every --rss-sample-ms.
    rss_trace: Vec<(u64, u64)>,
    /// Peak memory of the image refundd was exec'd from (the measuring
    /// helper): ru_maxrss cannot include more than this from before exec.
    pre_exec_kib: i64,
    sim_cpu: Duration,
    pg_cpu: Duration,
    refunded: i64,
    failed: i64,
    duplicates: u64,
    /// Transactions committed in the database during the run (a statement
    /// outside a transaction counts as one).
    transactions: i64,
}

/// A child's resource use, from wait4.
struct ChildUsage {
    success: bool,
    cpu: Duration,
    max_rss_kib: i64,
    pre_exec_kib: i64,
}

impl ChildUsage {
    fn line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.success,
            self.cpu.as_micros(),
            self.max_rss_kib,
            self.pre_exec_kib
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let f: Vec<&str> = text.split_whitespace().collect();
        Some(Self {
            success: f.first()?.parse().ok()?,
            cpu: Duration::from_micros(f.get(1)?.parse().ok()?),
            max_rss_kib: f.get(2)?.parse().ok()?,
            pre_exec_kib: f.get(3)?.parse().ok()?,
        })
    }
}

/// First argument that turns this program into the measuring helper.
const MEASURE: &str = "__measure";

/// The measuring helper: `load __measure RESULT PROGRAM ARGS...` runs PROGRAM
/// and writes its wait4 usage to RESULT.
///
/// Why a helper: the kernel's ru_maxrss of a process is the peak over its
/// whole life, including the image it was forked from before exec. Spawned
/// straight from this harness, which holds the seed data, refundd would be
/// charged the harness's peak. The helper is a fresh, small process, so what
/// it passes on is far below refundd's own peak (and is reported beside it).
fn measure_child(argv: &[std::ffi::OsString]) -> i32 {
    let [result, program, rest @ ..] = argv else {
        eprintln!("usage: load {MEASURE} RESULT PROGRAM [ARGS...]");
        return 2;
    };
    let pre_exec_kib = own_peak_kib();
    let child = match Command::new(program).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {}: {e}", program.to_string_lossy());
            return 1;
        }
    };
    let pid = child.id();
    let mut usage = match wait4(pid) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("wait4: {e}");
            return 1;
        }
    };
    // wait4 reaped it; the handle must not be waited on again.
    std::mem::forget(child);
    usage.pre_exec_kib = pre_exec_kib.max(own_peak_kib());
    match std::fs::write(result, usage.line()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write {}: {e}", result.to_string_lossy());
            1
        }
    }
}

/// This process's peak resident memory so far (VmHWM), KiB.
fn own_peak_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The child process of `parent` (the helper has exactly one), once it exists.
fn find_child(parent: u32) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                if proc_ticks(pid, false).map(|(ppid, _)| ppid) == Some(parent) {
                    return Some(pid);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Waits for one child and returns its own rusage (not its siblings').
fn wait4(pid: u32) -> std::io::Result<ChildUsage> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(ChildUsage {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
        pre_exec_kib: 0,
    })
}

/// utime + stime (+ cutime + cstime with `children`) of a process, from /proc.
fn proc_ticks(pid: u32, children: bool) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // ppid is field 4, utime..cstime are fields 14-17: indices 1 and 11-14 here.
    let ticks = num(11) + num(12) + if children { num(13) + num(14) } else { 0 };
    Some((num(1) as u32, ticks))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// CPU time of one process.
fn proc_cpu(pid: u32) -> Duration {
    ticks_to_duration(proc_ticks(pid, false).map_or(0, |(_, t)| t))
}

/// CPU time of the PostgreSQL server: the postmaster, the children it has
/// reaped (backends that ended) and the children still alive.
fn postgres_cpu(postmaster: u32) -> Duration {
    let mut ticks = proc_ticks(postmaster, true).map_or(0, |(_, t)| t);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, t)) = proc_ticks(pid, false) {
                if ppid == postmaster {
                    ticks += t;
                }
            }
        }
    }
    ticks_to_duration(ticks)
}

/// Samples a process's resident memory every `every` until it ends: (VmRSS,
/// VmHWM) in KiB, the memory now and the peak so far.
fn sample_rss(pid: u32, every: Duration) -> Vec<(u64, u64)> {
    let mut samples = Vec::new();
    loop {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return samples;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        // A zombie has no VmRSS line: the process has ended.
        let (Some(rss), Some(hwm)) = (field("VmRSS:"), field("VmHWM:")) else {
            return samples;
        };
        samples.push((rss, hwm));
        std::thread::sleep(every);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `refundd sim` in its own process; stopped when dropped.
struct Sim {
    child: std::process::Child,
    base_url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_sim(refundd: &PathBuf, plan: &FaultPlan) -> Sim {
    let port = free_port();
    let child = Command::new(refundd)
        .args(["sim", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--faults")
        .arg(serde_json::to_string(plan).unwrap())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start refundd sim (build it first: cargo build --release)");
    let sim = Sim {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
    };
    let admin = SimAdmin::new(&sim.base_url);
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.ledger().await.is_err() {
        assert!(Instant::now() < deadline, "the simulator did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim
}

/// Seeds the same backlog into the simulator and a fresh database.
async fn seed(pool: &PgPool, admin: &SimAdmin, n: usize, shop: Shop) {
    const CHUNK: usize = 10_000;
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let txs: Vec<SimTx> = (start..end)
            .map(|i| {
                let (state, _) = mix_of(i);
                SimTx::new(order_no(i), format!("X{i:09}"), "A1B2C3", AMOUNT, state)
            })
            .collect();
        admin.load(&txs).await.expect("load the simulator");
        if shop == Shop::Tutorial {
            let orders: Vec<SeedOrder> = (start..end)
                .map(|i| SeedOrder {
                    order_no: order_no(i),
                    xid: format!("X{i:09}"),
                    auth_code: "A1B2C3".to_string(),
                    amount: AMOUNT,
                    refund: mix_of(i).1.map_or(AskedBack::Whole, AskedBack::Part),
                })
                .collect();
            TUTORIAL
                .seed_orders(pool, &orders)
                .await
                .expect("seed the shop's orders");
            continue;
        }
        let nos: Vec<String> = (start..end).map(order_no).collect();
        let xids: Vec<String> = (start..end).map(|i| format!("X{i:09}")).collect();
        let parts: Vec<Option<i64>> = (start..end).map(|i| mix_of(i).1).collect();
        sqlx::query(
            "INSERT INTO orders (order_no, xid, auth_code, auth_amount, status, refund_amount)
             SELECT o, x, 'A1B2C3', $4, 'refund_requested', p
               FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(o, x, p)",
        )
        .bind(&nos)
        .bind(&xids)
        .bind(&parts)
        .bind(AMOUNT)
        .execute(pool)
        .await
        .expect("seed orders");
    }
    let analyze = match shop {
        Shop::Builtin => "ANALYZE orders",
        Shop::Tutorial => "ANALYZE shop.orders, shop.payment_results",
    };
    sqlx::query(analyze).execute(pool).await.ok();
}

/// Transactions committed in this database so far, as PostgreSQL's statistics count them.
async fn commits(pool: &PgPool) -> i64 {
    // Read fresh statistics, not the snapshot this session may have cached.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await
        .ok();
    sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_stat_database")
}

/// (still asked back, refunded, failed)
async fn outcomes(pool: &PgPool, shop: Shop) -> (i64, i64, i64) {
    sqlx::query_as(shop.counts_sql())
        .fetch_one(pool)
        .await
        .expect("count outcomes")
}

/// Keeps this environment's refundd settings away from the measured binary.
fn clear_settings(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("REFUNDD__") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
}

async fn one_run(
    args: &Args,
    pg: &ThrowawayPostgres,
    sim: &Sim,
    plan: &FaultPlan,
    dir: &std::path::Path,
    rep: usize,
) -> Run {
    let admin = SimAdmin::new(&sim.base_url);
    admin.reset().await.expect("reset the simulator");
    admin.set_faults(plan).await.expect("set faults");
    let url = pg.fresh_database().await.expect("fresh database");
    let pool = refundd::store::connect(&url, 4).await.expect("connect");
    let refundd_url = if args.unix_socket {
        let db = url.rsplit('/').next().expect("a database name");
        format!(
            "postgres://postgres@localhost/{db}?host={}&port={}",
            pg.dir().display(),
            pg.port()
        )
    } else {
        url.clone()
    };
    if args.shop == Shop::Tutorial {
        TUTORIAL
            .create(&pool)
            .await
            .expect("create the shop's tables");
    }
    // The measured binary's own `migrate`, so a build with another schema
    // (an earlier refundd, measured in the same run) gets its own.
    let mut migrate = Command::new(&args.refundd);
    clear_settings(&mut migrate);
    let migrated = migrate
        .arg("migrate")
        .env("REFUNDD__DATABASE__URL", &refundd_url)
        .env("REFUNDD__LOG__FORMAT", "json")
        .envs(args.shop.env())
        .stdout(Stdio::null())
        .status()
        .expect("run refundd migrate");
    assert!(migrated.success(), "refundd migrate failed");
    if args.without_outbox {
        sqlx::query("ALTER TABLE refundd.refunds DISABLE TRIGGER refunds_outbox")
            .execute(&pool)
            .await
            .expect("disable the outbox trigger (a build with an outbox is needed)");
    }
    seed(&pool, &admin, args.orders, args.shop).await;
    // A session reports its commits to PostgreSQL's statistics at most once a
    // second, and at its end: end the seeding's sessions, so that none of
    // their commits is counted as refundd's.
    pool.close().await;
    let pool = refundd::store::connect(&url, 4).await.expect("connect");
    // Write the seeding's dirty pages out before the clock starts.
    sqlx::query("CHECKPOINT").execute(&pool).await.ok();

    if args.pg_stats {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&pool)
            .await
            .expect("create pg_stat_statements");
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&pool)
            .await
            .expect("reset pg_stat_statements");
    }
    let commits0 = commits(&pool).await;
    let sim_cpu0 = proc_cpu(sim.child.id());
    let pg_cpu0 = postgres_cpu(pg.server_pid());
    let started = Instant::now();
    let mut passes = 0;
    let mut cpu = Duration::ZERO;
    let mut max_rss_kib = 0;
    let mut rss_trace = Vec::new();
    let mut pre_exec_kib = 0;
    while outcomes(&pool, args.shop).await.0 > 0 {
        passes += 1;
        assert!(passes <= 5, "the backlog does not drain");
        let log = dir.join(format!("once-{rep}-{passes}.log"));
        let result = dir.join(format!("usage-{rep}-{passes}.txt"));
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        cmd.arg(MEASURE).arg(&result).arg(&args.refundd).arg("once");
        clear_settings(&mut cmd);
        cmd.env("REFUNDD__DATABASE__URL", &refundd_url)
            .env("REFUNDD__CTBC__BASE_URL", &sim.base_url)
            .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
            .env("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY)
            .env("REFUNDD__CTBC__IV", REFERENCE_IV)
            .env("REFUNDD__CTBC__MAX_REQUESTS_PER_SEC", "0")
            .env("REFUNDD__WORKER__CONCURRENCY", args.concurrency.to_string())
            .env("REFUNDD__WORKER__BATCH_SIZE", args.batch_size.to_string())
            .env("REFUNDD__HTTP__LISTEN", "off")
            .env("REFUNDD__LOG__FORMAT", "json")
            .envs(args.shop.env())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::inherit());
        if let Some(m) = args.max_connections {
            cmd.env("REFUNDD__DATABASE__MAX_CONNECTIONS", m.to_string());
        }
        if let Some(l) = &args.rust_log {
            cmd.env("RUST_LOG", l);
        }
        let mut helper = cmd.spawn().expect("start refundd once");
        let helper_pid = helper.id();
        let every = Duration::from_millis(args.rss_sample_ms.max(1));
        let sampler = std::thread::spawn(move || match find_child(helper_pid) {
            Some(pid) => sample_rss(pid, every),
            None => Vec::new(),
        });
        let helper_ok = tokio::task::spawn_blocking(move || helper.wait())
            .await
            .expect("join")
            .expect("wait for the measuring helper")
            .success();
        let usage = std::fs::read_to_string(&result)
            .ok()
            .and_then(|t| ChildUsage::parse(&t))
            .expect("the measuring helper's report");
        assert!(
            helper_ok && usage.success,
            "refundd once failed; see {}",
            log.display()
        );
        pre_exec_kib = pre_exec_kib.max(usage.pre_exec_kib);
        rss_trace.extend(sampler.join().unwrap_or_default());
        cpu += usage.cpu;
        max_rss_kib = max_rss_kib.max(usage.max_rss_kib);
    }
    let wall = started.elapsed();
    // Give the backends refundd left a moment to end and be reaped.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sim_cpu = proc_cpu(sim.child.id()).saturating_sub(sim_cpu0);
    let pg_cpu = postgres_cpu(pg.server_pid()).saturating_sub(pg_cpu0);

    let transactions = commits(&pool).await - commits0;
    if args.pg_stats {
        print_pg_stats(&pool, args.orders).await;
    }
    let ledger = admin.ledger().await.expect("ledger");
    let (_, refunded, failed) = outcomes(&pool, args.shop).await;
    pool.close().await;
    if args.reconcile_rate > 0 {
        admin.run_batch().await.expect("the bank's batch");
        reconcile(args, &refundd_url, &sim.base_url, dir, rep);
    }
    Run {
        wall,
        passes,
        calls: ledger.calls,
        cpu,
        max_rss_kib,
        rss_trace,
        pre_exec_kib,
        sim_cpu,
        pg_cpu,
        refunded,
        failed,
        duplicates: ledger.duplicates,
        transactions,
    }
}

/// `refundd reconcile` over the orders just worked, at the bank's rate
/// limit: its wall time and what it found, from its CSV.
fn reconcile(args: &Args, url: &str, sim_url: &str, dir: &std::path::Path, rep: usize) {
    let csv = dir.join(format!("reconcile-{rep}.csv"));
    let mut cmd = Command::new(&args.refundd);
    clear_settings(&mut cmd);
    cmd.args(["reconcile", "--since", "1d", "--format", "csv", "--output"])
        .arg(&csv)
        .env("REFUNDD__DATABASE__URL", url)
        .env("REFUNDD__CTBC__BASE_URL", sim_url)
        .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
        .env("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY)
        .env("REFUNDD__CTBC__IV", REFERENCE_IV)
        .env(
            "REFUNDD__CTBC__MAX_REQUESTS_PER_SEC",
            args.reconcile_rate.to_string(),
        )
        .env("REFUNDD__WORKER__CONCURRENCY", args.concurrency.to_string())
        .env("REFUNDD__LOG__FORMAT", "json")
        .envs(args.shop.env())
        .stdout(Stdio::null());
    let started = Instant::now();
    let status = cmd.status().expect("run refundd reconcile");
    let wall = started.elapsed();
    assert!(status.success(), "refundd reconcile failed");
    let text = std::fs::read_to_string(&csv).expect("the reconciliation's CSV");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let class = |c: &str| {
        rows.iter()
            .filter(|r| r.contains(&format!(",{c},")))
            .count()
    };
    println!(
        "  reconcile of {} orders at {} calls/s: {:.1} s ({:.1} orders/s, {:.1} % of the rate limit); matched {}, expected {}, mismatch {}",
        rows.len(),
        args.reconcile_rate,
        wall.as_secs_f64(),
        rows.len() as f64 / wall.as_secs_f64(),
        rows.len() as f64 / wall.as_secs_f64() / f64::from(args.reconcile_rate) * 100.0,
        class("matched"),
        class("expected"),
        class("mismatch")
    );
}

/// Where a refunded order's time went, and the rate the calls' observed time
/// allows (the latency bound with refundd's own timing of the calls).
fn print_timeline(args: &Args, t: &timeline::Timeline, orders_per_sec: f64, calls_per_order: f64) {
    let per_call = t.calls_ms / t.calls.max(1.0);
    println!(
        "  timeline of {} refunded orders, ms per order: {:.1} in all = bank calls {:.1} ({:.2} calls of {:.2} ms) \
         + before calls {:.1} + ending {:.1} + other {:.1}",
        t.orders,
        t.span_ms,
        t.calls_ms,
        t.calls,
        per_call,
        t.before_calls_ms,
        t.ending_ms,
        t.span_ms - t.calls_ms - t.before_calls_ms - t.ending_ms
    );
    if args.latency_ms > 0 {
        let observed_bound = args.concurrency as f64 / (calls_per_order * per_call / 1000.0);
        println!(
            "  with the calls' observed {per_call:.2} ms the bound is {observed_bound:.1} orders/s: this run reached {:.1} % of it",
            orders_per_sec / observed_bound * 100.0
        );
    }
}

/// The statements PostgreSQL spent the most time on in this run, per order.
async fn print_pg_stats(pool: &PgPool, orders: usize) {
    let rows: Vec<(i64, f64, i64, bool, String)> = sqlx::query_as(
        "SELECT calls, total_exec_time + total_plan_time, rows, toplevel, query
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database() AND query NOT LIKE '%pg_stat_statements%'
          ORDER BY 2 DESC LIMIT 25",
    )
    .fetch_all(pool)
    .await
    .expect("read pg_stat_statements");
    let n = orders as f64;
    let (top_level, top_ms): (f64, f64) = sqlx::query_as(
        "SELECT coalesce(sum(calls), 0)::float8, coalesce(sum(total_exec_time + total_plan_time), 0)::float8
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database() AND toplevel AND query NOT LIKE '%pg_stat_statements%'",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_stat_statements");
    println!(
        "statements sent per order: {:.2}; their execution and planning: {:.0} µs per order",
        top_level / n,
        top_ms * 1000.0 / n
    );
    println!("| µs/order | calls/order | rows/call | top level | statement |");
    println!("|---:|---:|---:|---|---|");
    for (calls, ms, rows, top, query) in rows {
        let q: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let q: String = q.chars().take(160).collect();
        println!(
            "| {:.1} | {:.3} | {:.1} | {} | `{}` |",
            ms * 1000.0 / n,
            calls as f64 / n,
            rows as f64 / calls.max(1) as f64,
            if top { "yes" } else { "no" },
            q.replace('|', "\\|")
        );
    }
}

/// min / median / max of a list.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], median, v[n - 1])
}

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == MEASURE) {
        std::process::exit(measure_child(&argv[2..]));
    }
    let args = Args::parse();
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(harness(args));
}

/// `pgbench -N` transactions/s on a database of its own in `pg`'s cluster
/// (initialised once per cluster, at scale 10).
async fn pgbench_tps(pg: &ThrowawayPostgres, secs: u64) -> f64 {
    let url = pg.url("pgbench");
    let exists = refundd::store::create_database(&pg.url("postgres"), "pgbench")
        .await
        .is_ok();
    if exists {
        let init = Command::new("pgbench")
            .args(["-i", "-q", "-s", "10", &url])
            .output()
            .expect("run pgbench -i (Debian's postgresql-client has it)");
        assert!(
            init.status.success(),
            "pgbench -i: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let run = Command::new("pgbench")
        .args(["-N", "-c", "8", "-j", "2", "-T", &secs.to_string(), &url])
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench's output:\n{text}"))
}

async fn harness(args: Args) {
    assert!(args.repeat >= 1 && args.orders >= 1);
    assert!(
        args.refundd.is_file(),
        "{} not found: run `cargo build --release` first",
        args.refundd.display()
    );
    let plan = FaultPlan {
        rules: if args.latency_ms > 0 {
            vec![FaultRule {
                latency_ms: args.latency_ms,
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
    };
    let mut extra: Vec<String> = Vec::new();
    if args.pg_stats {
        extra.extend(
            [
                "shared_preload_libraries=pg_stat_statements",
                "pg_stat_statements.track=all",
                "pg_stat_statements.max=10000",
            ]
            .map(String::from),
        );
    }
    extra.extend(args.pg_settings.iter().cloned());
    let pg = tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        ThrowawayPostgres::start_with(&extra)
    })
    .await
    .expect("join")
    .expect("start a throwaway PostgreSQL");
    let pgbench_before = if args.pgbench_secs > 0 {
        let tps = pgbench_tps(&pg, args.pgbench_secs).await;
        println!("pgbench -N before the runs: {tps:.0} transactions/s");
        Some(tps)
    } else {
        None
    };
    let sim_binary = args.sim.as_ref().unwrap_or(&args.refundd);
    let sim = start_sim(sim_binary, &plan).await;
    let dir = tempfile::Builder::new()
        .prefix("refundd-load-")
        .tempdir()
        .expect("temporary directory");
    if args.keep_logs {
        println!("refundd's logs: {}", dir.path().display());
    }
    println!(
        "refundd={} sim={} shop={:?} orders={} latency_ms={} concurrency={} batch_size={} max_connections={} repeat={}",
        args.refundd.display(),
        sim_binary.display(),
        args.shop,
        args.orders,
        args.latency_ms,
        args.concurrency,
        args.batch_size,
        args.max_connections
            .map_or("default".to_string(), |m| m.to_string()),
        args.repeat
    );

    let mut runs = Vec::new();
    for rep in 1..=args.repeat {
        let r = one_run(&args, &pg, &sim, &plan, dir.path(), rep).await;
        let n = args.orders as f64;
        let secs = r.wall.as_secs_f64();
        println!(
            "run {rep}: {:.2} s, {} pass(es), {:.0} orders/s, {:.0} calls/s ({:.2} calls/order), \
             refundd CPU {:.0} µs/order, peak RSS {:.1} MiB (pre-exec image {:.1} MiB), sim CPU {:.0} µs/order, \
             PostgreSQL CPU {:.0} µs/order, {:.2} SQL transactions/order, \
             refunded {} failed {} duplicates {}",
            secs,
            r.passes,
            n / secs,
            r.calls as f64 / secs,
            r.calls as f64 / n,
            r.cpu.as_secs_f64() * 1e6 / n,
            r.max_rss_kib as f64 / 1024.0,
            r.pre_exec_kib as f64 / 1024.0,
            r.sim_cpu.as_secs_f64() * 1e6 / n,
            r.pg_cpu.as_secs_f64() * 1e6 / n,
            r.transactions as f64 / n,
            r.refunded,
            r.failed,
            r.duplicates,
        );
        if !r.rss_trace.is_empty() {
            let at = |q: usize| {
                let i = ((r.rss_trace.len() - 1) * q / 100).min(r.rss_trace.len() - 1);
                let (rss, hwm) = r.rss_trace[i];
                format!("{:.1}/{:.1}", rss as f64 / 1024.0, hwm as f64 / 1024.0)
            };
            println!(
                "run {rep}: refundd VmRSS/peak-so-far MiB at 10/25/50/75/100% of the run: {} {} {} {} {} ({} samples)",
                at(10),
                at(25),
                at(50),
                at(75),
                at(100),
                r.rss_trace.len()
            );
        }
        if args.timeline {
            print_timeline(
                &args,
                &timeline::of_run(dir.path(), rep),
                n / secs,
                r.calls as f64 / n,
            );
        }
        assert_eq!(
            (r.refunded + r.failed) as usize,
            args.orders,
            "every order must end refunded or refund_failed"
        );
        assert_eq!(r.duplicates, 0, "the ledger shows duplicate calls");
        runs.push(r);
    }

    let n = args.orders as f64;
    let col = |f: &dyn Fn(&Run) -> f64| spread(runs.iter().map(f).collect());
    let rows: Vec<(&str, (f64, f64, f64))> = vec![
        ("orders/s", col(&|r| n / r.wall.as_secs_f64())),
        (
            "gateway calls/s",
            col(&|r| r.calls as f64 / r.wall.as_secs_f64()),
        ),
        ("calls/order", col(&|r| r.calls as f64 / n)),
        (
            "refundd CPU µs/order",
            col(&|r| r.cpu.as_secs_f64() * 1e6 / n),
        ),
        (
            "refundd peak RSS MiB",
            col(&|r| r.max_rss_kib as f64 / 1024.0),
        ),
        (
            "sim CPU µs/order",
            col(&|r| r.sim_cpu.as_secs_f64() * 1e6 / n),
        ),
        (
            "PostgreSQL CPU µs/order",
            col(&|r| r.pg_cpu.as_secs_f64() * 1e6 / n),
        ),
        (
            "SQL transactions/order",
            col(&|r| r.transactions as f64 / n),
        ),
        ("wall s", col(&|r| r.wall.as_secs_f64())),
    ];
    println!();
    println!("| measure | min | median | max |");
    println!("|---|---:|---:|---:|");
    for (name, (lo, med, hi)) in &rows {
        println!("| {name} | {lo:.2} | {med:.2} | {hi:.2} |");
    }
    if args.latency_ms > 0 {
        // concurrency / (calls per order × latency), in orders per second.
        let bound = |r: &Run| {
            let calls_per_order = r.calls as f64 / n;
            args.concurrency as f64 / (calls_per_order * args.latency_ms as f64 / 1000.0)
        };
        let (lo, med, hi) = col(&bound);
        println!("| latency bound orders/s | {lo:.2} | {med:.2} | {hi:.2} |");
        let (lo, med, hi) = col(&|r| n / r.wall.as_secs_f64() / bound(r) * 100.0);
        println!("| fraction of bound % | {lo:.1} | {med:.1} | {hi:.1} |");
    }
    if let Some(before) = pgbench_before {
        let after = pgbench_tps(&pg, args.pgbench_secs).await;
        let (lo, med, hi) = col(&|r| n / r.wall.as_secs_f64());
        println!();
        println!("pgbench -N: {before:.0} transactions/s before the runs, {after:.0} after");
        let reference = (before + after) / 2.0;
        println!(
            "| orders/s ÷ pgbench -N tps (mean {reference:.0}) | {:.3} | {:.3} | {:.3} |",
            lo / reference,
            med / reference,
            hi / reference
        );
    }
    if args.keep_logs {
        let _ = dir.keep();
    }
}
