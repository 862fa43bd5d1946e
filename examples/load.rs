// Load harness: how fast refundd drains a backlog, what it costs in CPU and
// memory, and how close it comes to the bound the bank's latency sets. Each
// part runs in its own process (a throwaway PostgreSQL, `refundd sim`, and the
// release `refundd once` being measured), so the CPU time and peak memory
// reported are refundd's alone, read from wait4 on that child.
//
//   cargo build --release
//   cargo run --release --example load -- --orders 10000 --latency-ms 0 --concurrency 32 --repeat 3
//
// Every repetition gets a fresh database and a reset simulator.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use refundd::ctbc::TxState;
use refundd::sim::{
    FaultPlan, FaultRule, SimAdmin, SimTx, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};
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
    /// RUST_LOG for the measured refundd (default: its own, info).
    #[arg(long)]
    rust_log: Option<String>,
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
    sim_cpu: Duration,
    pg_cpu: Duration,
    refunded: i64,
    failed: i64,
    duplicates: u64,
}

/// A child's resource use, from wait4.
struct ChildUsage {
    success: bool,
    cpu: Duration,
    max_rss_kib: i64,
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
    })
}

/// CPU time of a process (and, with `children`, of the children it reaped), from /proc.
fn proc_cpu(pid: u32, children: bool) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17, i.e. 11-14 after the state.
    let ticks = f[11] + f[12] + if children { f[13] + f[14] } else { 0 };
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
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
async fn seed(pool: &PgPool, admin: &SimAdmin, n: usize) {
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
    sqlx::query("ANALYZE orders").execute(pool).await.ok();
}

async fn backlog(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE status IN ('refund_requested', 'refunding')",
    )
    .fetch_one(pool)
    .await
    .expect("count backlog")
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
    refundd::store::migrate(&pool).await.expect("migrate");
    seed(&pool, &admin, args.orders).await;
    // Let PostgreSQL's background writer settle before the clock starts.
    sqlx::query("CHECKPOINT").execute(&pool).await.ok();

    let sim_cpu0 = proc_cpu(sim.child.id(), false);
    let pg_cpu0 = proc_cpu(pg.server_pid(), true);
    let started = Instant::now();
    let mut passes = 0;
    let mut cpu = Duration::ZERO;
    let mut max_rss_kib = 0;
    while backlog(&pool).await > 0 {
        passes += 1;
        assert!(passes <= 5, "the backlog does not drain");
        let log = dir.join(format!("once-{rep}-{passes}.log"));
        let mut cmd = Command::new(&args.refundd);
        cmd.arg("once");
        for (k, _) in std::env::vars() {
            if k.starts_with("REFUNDD__") || k == "DATABASE_URL" || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("REFUNDD__DATABASE__URL", &url)
            .env("REFUNDD__CTBC__BASE_URL", &sim.base_url)
            .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
            .env("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY)
            .env("REFUNDD__CTBC__IV", REFERENCE_IV)
            .env("REFUNDD__CTBC__MAX_REQUESTS_PER_SEC", "0")
            .env("REFUNDD__WORKER__CONCURRENCY", args.concurrency.to_string())
            .env("REFUNDD__WORKER__BATCH_SIZE", args.batch_size.to_string())
            .env("REFUNDD__HTTP__LISTEN", "off")
            .env("REFUNDD__LOG__FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::inherit());
        if let Some(m) = args.max_connections {
            cmd.env("REFUNDD__DATABASE__MAX_CONNECTIONS", m.to_string());
        }
        if let Some(l) = &args.rust_log {
            cmd.env("RUST_LOG", l);
        }
        let child = cmd.spawn().expect("start refundd once");
        let pid = child.id();
        let usage = tokio::task::spawn_blocking(move || wait4(pid))
            .await
            .expect("join")
            .expect("wait4");
        // wait4 reaped it; the handle must not be waited on again.
        std::mem::forget(child);
        assert!(usage.success, "refundd once failed; see {}", log.display());
        cpu += usage.cpu;
        max_rss_kib = max_rss_kib.max(usage.max_rss_kib);
    }
    let wall = started.elapsed();
    let sim_cpu = proc_cpu(sim.child.id(), false).saturating_sub(sim_cpu0);
    let pg_cpu = proc_cpu(pg.server_pid(), true).saturating_sub(pg_cpu0);

    let ledger = admin.ledger().await.expect("ledger");
    let (refunded, failed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'refunded'), count(*) FILTER (WHERE status = 'refund_failed') FROM orders",
    )
    .fetch_one(&pool)
    .await
    .expect("count outcomes");
    pool.close().await;
    Run {
        wall,
        passes,
        calls: ledger.calls,
        cpu,
        max_rss_kib,
        sim_cpu,
        pg_cpu,
        refunded,
        failed,
        duplicates: ledger.duplicates,
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

#[tokio::main]
async fn main() {
    let args = Args::parse();
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
    let pg = tokio::task::spawn_blocking(ThrowawayPostgres::start)
        .await
        .expect("join")
        .expect("start a throwaway PostgreSQL");
    let sim = start_sim(&args.refundd, &plan).await;
    let dir = tempfile::Builder::new()
        .prefix("refundd-load-")
        .tempdir()
        .expect("temporary directory");
    println!(
        "orders={} latency_ms={} concurrency={} batch_size={} max_connections={} repeat={}",
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
             refundd CPU {:.0} µs/order, peak RSS {:.1} MiB, sim CPU {:.0} µs/order, \
             PostgreSQL CPU {:.0} µs/order, refunded {} failed {} duplicates {}",
            secs,
            r.passes,
            n / secs,
            r.calls as f64 / secs,
            r.calls as f64 / n,
            r.cpu.as_secs_f64() * 1e6 / n,
            r.max_rss_kib as f64 / 1024.0,
            r.sim_cpu.as_secs_f64() * 1e6 / n,
            r.pg_cpu.as_secs_f64() * 1e6 / n,
            r.refunded,
            r.failed,
            r.duplicates,
        );
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
}
