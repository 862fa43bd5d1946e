//! The deployments' contract, run against the real binary: secrets read from
//! files (`_FILE` variables, systemd credentials) work and never reach the
//! running process's environment, and `refundd run` speaks systemd's notify
//! protocol: READY, WATCHDOG while its scheduler is alive and none while a pass
//! is stuck, STOPPING on SIGTERM.

use crate::common::{eventually, exited, output_off_runtime, secret_file, terminate, Rig};
use refundd::ctbc::TxState;
use refundd::sim::{REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The database password put in the URL (the throwaway cluster trusts
/// loopback, so any password connects); it must never show in the environment.
const DB_PASSWORD: &str = "pw-from-a-file-7f3a";

/// The rig's URL with a password in it.
fn url_with_password(url: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{DB_PASSWORD}@"),
        1,
    )
}

/// The refundd binary with none of the developer's settings, run through
/// `sh -c 'exec ...'` so that WATCHDOG_PID can be the daemon's own pid.
fn refundd_via_sh(args: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("WATCHDOG_PID=$$ exec \"$0\" {args}"))
        .arg(env!("CARGO_BIN_EXE_refundd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("REFUNDD__")
            || k == "DATABASE_URL"
            || k == "CREDENTIALS_DIRECTORY"
            || k.starts_with("NOTIFY_SOCKET")
            || k.starts_with("WATCHDOG_")
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("REFUNDD__LOG__FORMAT", "json");
    cmd
}

/// Bank and database settings, every secret as a file: MAC key and database
/// URL through `_FILE` variables, the IV as a systemd credential.
fn with_secret_files(cmd: &mut Command, rig: &Rig, dir: &Path) {
    let creds = dir.join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let key = secret_file(dir, "mac_key", &format!("{REFERENCE_MAC_KEY}\n"), 0o600);
    let url = secret_file(dir, "database_url", &url_with_password(&rig.url), 0o400);
    secret_file(&creds, "iv", &format!("{REFERENCE_IV}\r\n"), 0o400);
    cmd.env("REFUNDD__CTBC__MAC_KEY_FILE", key)
        .env("REFUNDD__DATABASE__URL_FILE", url)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("REFUNDD__CTBC__BASE_URL", rig.sim.base_url())
        .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
        .env("REFUNDD__CTBC__MAX_REQUESTS_PER_SEC", "0")
        .env("REFUNDD__HTTP__LISTEN", "off");
}

#[tokio::test]
async fn once_refunds_with_every_secret_read_from_a_file() {
    let rig = Rig::new().await;
    rig.seed("FILE1", 1000, TxState::Authorised, None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = refundd_via_sh("once");
    with_secret_files(&mut cmd, &rig, dir.path());
    let out = output_off_runtime(cmd).await;
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    // The simulator checks the MAC made with the key and IV read from the files.
    assert_eq!(rig.order("FILE1").await.status, "refunded", "{all}");
    for secret in [REFERENCE_MAC_KEY, REFERENCE_IV, DB_PASSWORD] {
        assert!(!all.contains(secret), "a secret reached the output: {all}");
    }
}

#[tokio::test]
async fn a_key_file_others_can_read_stops_start_up_with_exit_2_and_the_fix() {
    let rig = Rig::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = refundd_via_sh("check");
    with_secret_files(&mut cmd, &rig, dir.path());
    let key = dir.path().join("mac_key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = output_off_runtime(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(stderr.contains("REFUNDD__CTBC__MAC_KEY_FILE"), "{stderr}");
    assert!(!stderr.contains(REFERENCE_MAC_KEY), "{stderr}");

    // Given both as a value and as a file: refused, naming both.
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let mut cmd = refundd_via_sh("check");
    with_secret_files(&mut cmd, &rig, &again);
    cmd.env("REFUNDD__CTBC__IV", REFERENCE_IV);
    let out = output_off_runtime(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("REFUNDD__CTBC__IV") && stderr.contains("systemd credential iv"),
        "{stderr}"
    );
}

/// The notify socket a test listens on, as systemd would.
struct NotifySocket {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket { socket, path }
    }

    /// The next message, or None when `within` passes without one.
    fn next(&self, within: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                None
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }

    /// Waits for a message holding `line`, up to `deadline`.
    fn wait_for(&self, line: &str, deadline: Duration, child: &mut Child) {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {line} within {deadline:?}");
            match self.next(left.min(Duration::from_millis(500))) {
                Some(m) if m.lines().any(|l| l == line) => return,
                Some(_) => {}
                // Messages sent before an exit stay queued: only an empty
                // socket and a gone process mean it never came.
                None => {
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("refundd exited ({status}) without sending {line}");
                    }
                }
            }
        }
    }
}

/// Backends of this database waiting for a lock on refundd's queue (other
/// tests' databases share the cluster, and table oids repeat across them).
const WAITING_ON_THE_QUEUE: &str = "SELECT count(*) FROM pg_locks
     WHERE NOT granted AND relation = 'refundd.refunds'::regclass
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The process's environment as the kernel shows it to other processes.
fn environ_of(child: &Child) -> String {
    let raw = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
    String::from_utf8_lossy(&raw).replace('\0', "\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_secrets_given_as_files_out_of_its_environment() {
    let rig = Rig::new().await;
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(dir.path());
    let mut cmd = refundd_via_sh("run");
    with_secret_files(&mut cmd, &rig, dir.path());
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // READY: settings read, schema checked, scheduler started.
    tokio::task::block_in_place(|| notify.wait_for("READY=1", Duration::from_secs(60), &mut child));
    let environ = environ_of(&child);
    terminate(&child);
    let status = exited(child).await;
    assert!(
        environ.contains("REFUNDD__CTBC__MAC_KEY_FILE="),
        "the environment read is refundd's: {environ}"
    );
    for secret in [REFERENCE_MAC_KEY, REFERENCE_IV, DB_PASSWORD] {
        assert!(
            !environ.contains(secret),
            "a secret is in /proc/<pid>/environ"
        );
    }
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_tells_systemd_ready_watchdog_while_alive_none_while_a_pass_is_stuck_and_stopping() {
    let rig = Rig::new().await;
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(dir.path());
    let watchdog = Duration::from_secs(2);
    let mut cmd = refundd_via_sh("run");
    with_secret_files(&mut cmd, &rig, dir.path());
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        // A pass every second, so one starts soon after the table is locked.
        .env("REFUNDD__SCHEDULE__CRON", "* * * * * *")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    tokio::task::block_in_place(|| {
        notify.wait_for("READY=1", Duration::from_secs(60), &mut child);
        notify.wait_for("WATCHDOG=1", Duration::from_secs(30), &mut child);
    });

    // Stall the scheduler for real: hold a lock every pass needs, so the next
    // pass waits on its first statement that touches the queue.
    let mut lock = rig.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE refundd.refunds IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "a pass to wait on the lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(WAITING_ON_THE_QUEUE)
                .fetch_one(&rig.pool)
                .await
                .unwrap();
            waiting > 0
        },
    )
    .await;
    // Pings sent before the pass got stuck may still arrive; then there must
    // be silence: three watchdog intervals with no ping (a live scheduler
    // pings every half interval).
    let socket = &notify;
    let quiet = watchdog * 3;
    let went_silent = tokio::task::block_in_place(|| {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            match socket.next(quiet) {
                None => return true,
                Some(m) => assert!(!m.contains("STOPPING=1"), "{m}"),
            }
        }
        false
    });
    assert!(
        went_silent,
        "the watchdog kept being pinged while a pass was stuck"
    );
    let still_waiting: i64 = sqlx::query_scalar(WAITING_ON_THE_QUEUE)
        .fetch_one(&rig.pool)
        .await
        .unwrap();
    assert!(still_waiting > 0, "the pass was stuck all along");

    // The lock goes, the pass finishes, the pings come back.
    lock.rollback().await.unwrap();
    tokio::task::block_in_place(|| {
        notify.wait_for("WATCHDOG=1", Duration::from_secs(30), &mut child)
    });

    terminate(&child);
    tokio::task::block_in_place(|| {
        notify.wait_for("STOPPING=1", Duration::from_secs(30), &mut child)
    });
    let status = exited(child).await;
    assert_eq!(status.code(), Some(0));
}
