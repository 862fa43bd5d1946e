//! A throwaway PostgreSQL cluster for the test suite and the demo, so that both
//! work on a fresh machine with nothing set up by hand. The cluster lives in a
//! temporary directory on a free loopback port and is removed when its owner
//! goes away: a small reaper shell holds the server and waits for the owner's
//! end of a pipe to close, which the kernel does however the owner ends (normal
//! exit, panic, SIGKILL). `run`, `once`, `migrate` and `status` never use this.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The settings a throwaway cluster runs with: durability off, because its
/// data dies with it anyway.
const SERVER_OPTIONS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=400",
    "shared_buffers=64MB",
];

const REAPER: &str = r#"
"$1" -D "$2/data" -p "$3" -k "$2" </dev/null >>"$2/postgres.log" 2>&1 &
pg=$!
echo "$pg"
# Returns when the owner's end of stdin closes, however the owner ended.
cat >/dev/null
kill -QUIT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$2"
"#;

#[derive(Debug, thiserror::Error)]
pub enum ThrowawayError {
    #[error("no PostgreSQL server binaries ({0}) on PATH or under /usr/lib/postgresql/*/bin: run `apt-get install postgresql`, or set REFUNDD__DATABASE__URL to a database you already have")]
    NoBinaries(&'static str),
    #[error("running as root, but there is no `postgres` system user to run a throwaway PostgreSQL as (PostgreSQL refuses root): create one with `useradd --system postgres`, or set REFUNDD__DATABASE__URL")]
    NoPostgresUser,
    #[error("could not set up the throwaway PostgreSQL in {dir}: {reason}")]
    Setup { dir: String, reason: String },
    #[error("could not create a database in the throwaway PostgreSQL: {0}")]
    CreateDatabase(String),
}

/// A running throwaway cluster. Dropping it stops the server and removes its
/// directory; so does the end of the owning process.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    dir: PathBuf,
    port: u16,
    server_pid: u32,
    reaper: Child,
    owner_end: Option<ChildStdin>,
}

impl ThrowawayPostgres {
    /// Starts a new cluster; blocks until it accepts connections.
    pub fn start() -> Result<Self, ThrowawayError> {
        Self::start_with(&[])
    }

    /// Starts a new cluster with extra server settings (`name=value`, after
    /// the usual ones), such as a profiling extension to preload.
    pub fn start_with(extra: &[&str]) -> Result<Self, ThrowawayError> {
        let initdb = find_binary("initdb").ok_or(ThrowawayError::NoBinaries("initdb"))?;
        let postgres = find_binary("postgres").ok_or(ThrowawayError::NoBinaries("postgres"))?;
        let run_as = server_user()?;
        let dir = tempfile::Builder::new()
            .prefix("refundd-pg-")
            .tempdir()
            .map_err(|e| setup_error(Path::new("/tmp"), format!("temporary directory: {e}")))?
            .keep();
        let fail = |reason: String| {
            let _ = std::fs::remove_dir_all(&dir);
            setup_error(&dir, reason)
        };
        if let Some((uid, gid)) = run_as {
            nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into()))
                .map_err(|e| fail(format!("chown to the postgres user: {e}")))?;
        }
        let mut init = Command::new(&initdb);
        init.args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
            "-D",
        ])
        .arg(dir.join("data"))
        .stdin(Stdio::null());
        as_user(&mut init, run_as);
        let out = init
            .output()
            .map_err(|e| fail(format!("running initdb: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut conf = String::new();
        for opt in SERVER_OPTIONS.iter().chain(extra) {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            conf.push_str(&format!("{k} = '{v}'\n"));
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("data/postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
            .map_err(|e| fail(format!("writing postgresql.conf: {e}")))?;

        let port = free_port().map_err(|e| fail(format!("finding a free port: {e}")))?;
        let mut reaper = Command::new("sh");
        reaper
            .arg("-c")
            .arg(REAPER)
            .arg("refundd-pg-reaper")
            .arg(&postgres)
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C meant for the owner must not
            // kill the reaper before it has cleaned up.
            .process_group(0);
        as_user(&mut reaper, run_as);
        let mut reaper = reaper
            .spawn()
            .map_err(|e| fail(format!("starting the server: {e}")))?;
        let owner_end = reaper.stdin.take();
        let mut first_line = String::new();
        if let Some(out) = reaper.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut first_line);
        }
        let server_pid: u32 = first_line.trim().parse().unwrap_or(0);
        let cluster = Self {
            dir,
            port,
            server_pid,
            reaper,
            owner_end,
        };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn wait_ready(&self) -> Result<(), ThrowawayError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let pid_file = self.dir.join("data/postmaster.pid");
        loop {
            // postmaster.pid's eighth line says "ready" once connections are accepted.
            if let Ok(text) = std::fs::read_to_string(&pid_file) {
                if text.lines().nth(7).map(str::trim) == Some("ready") {
                    return Ok(());
                }
            }
            let server_gone = self.server_pid == 0
                || nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.server_pid as i32), None)
                    .is_err();
            if server_gone || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
                return Err(setup_error(
                    &self.dir,
                    format!("the server did not become ready: {}", log.trim()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id of the PostgreSQL server.
    pub fn server_pid(&self) -> u32 {
        self.server_pid
    }

    /// URL of a database in this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new empty database and returns its URL; each test gets its own.
    pub async fn fresh_database(&self) -> Result<String, ThrowawayError> {
        let name = format!("refundd_{}", uuid::Uuid::new_v4().simple());
        crate::store::create_database(&self.url("postgres"), &name)
            .await
            .map_err(|e| ThrowawayError::CreateDatabase(e.to_string()))?;
        Ok(self.url(&name))
    }

    /// One cluster per process, started on first use and removed when the
    /// process ends (statics are never dropped, so the reaper does it).
    pub fn shared() -> Result<&'static ThrowawayPostgres, ThrowawayError> {
        static SHARED: OnceLock<Result<ThrowawayPostgres, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| ThrowawayPostgres::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| ThrowawayError::Setup {
                dir: "(shared)".into(),
                reason: e.clone(),
            })
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        // Closing our end tells the reaper to stop the server and remove the directory.
        self.owner_end.take();
        let _ = self.reaper.wait();
    }
}

fn setup_error(dir: &Path, reason: String) -> ThrowawayError {
    ThrowawayError::Setup {
        dir: dir.display().to_string(),
        reason,
    }
}

/// The uid and gid to run PostgreSQL as: the `postgres` user when we are root.
fn server_user() -> Result<Option<(u32, u32)>, ThrowawayError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid.as_raw(), user.gid.as_raw()))),
        _ => Err(ThrowawayError::NoPostgresUser),
    }
}

fn as_user(cmd: &mut Command, run_as: Option<(u32, u32)>) {
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
        cmd.env("HOME", "/tmp");
    }
}

/// A binary from PATH, else from the newest `/usr/lib/postgresql/<version>/bin`.
fn find_binary(name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin").join(name)))
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
