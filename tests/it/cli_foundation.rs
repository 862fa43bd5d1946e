//! The command line's contract: exit codes, named settings, migrate, and the
//! throwaway cluster vanishing with its owner.

use crate::common::{
    client_with_keys, empty_db, eventually, fresh_db, listening_addr, refundd_bin, secret_file,
    Running,
};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn a_bad_setting_stops_start_up_with_code_2_and_its_name() {
    let out = refundd_bin()
        .arg("migrate")
        .env("REFUNDD__WORKER__LEASE_SECS", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("worker.lease_secs") && err.contains("fix:"),
        "{err}"
    );
}

#[test]
fn a_secret_is_never_echoed_in_a_settings_error() {
    let out = refundd_bin()
        .arg("migrate")
        .env("REFUNDD__CTBC__MAC_KEY", "TOPSECRET-TOO-SHORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("ctbc.mac_key"));
    assert!(!all.contains("TOPSECRET"));
}

#[test]
fn settings_that_defeat_a_rule_stop_every_command_that_reads_settings() {
    let refused: &[(&[(&str, &str)], &str)] = &[
        (
            &[("REFUNDD__WORKER__RECHECK_SECS", "0")],
            "worker.recheck_secs",
        ),
        (
            &[
                ("REFUNDD__WORKER__LEASE_SECS", "120"),
                ("REFUNDD__WORKER__RECHECK_SECS", "60"),
            ],
            "worker.recheck_secs",
        ),
        (
            &[("REFUNDD__SCHEDULE__CRON", "0 0 0 31 2 *")],
            "schedule.cron",
        ),
        (
            &[
                ("REFUNDD__SCHEDULE__CRON", "0 0 0 * * *"),
                ("REFUNDD__SCHEDULE__BLACKOUT", "23:30-01:30"),
            ],
            "schedule.cron",
        ),
    ];
    for (vars, setting) in refused {
        for command in ["migrate", "once", "run", "status", "demo"] {
            let out = refundd_bin()
                .arg(command)
                .envs(vars.iter().copied())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {vars:?}: {err}");
            assert!(
                err.contains(setting) && err.contains("fix:"),
                "{command} {vars:?}: {err}"
            );
        }
    }
}

#[test]
fn the_simulator_takes_no_key_or_iv_on_the_command_line() {
    for flag in ["--mac-key", "--iv"] {
        // Were the flag taken, the non-loopback address would still stop it.
        let out = refundd_bin()
            .args(["sim", "--listen", "0.0.0.0:0", flag, KEY_LIKE])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("unexpected argument"), "{err}");
    }
}

/// A client of the simulator at `base_url` sealing with `key` and `iv`.
fn client_with(base_url: &str, key: &str, iv: &str) -> refundd::ctbc::Client {
    client_with_keys(base_url, Duration::from_secs(10), key, iv)
}

#[tokio::test]
async fn the_simulator_reads_its_key_and_iv_from_files_only_their_owner_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let iv = "iv345678";
    let key_file = secret_file(dir.path(), "mac_key", &format!("{KEY_LIKE}\n"), 0o600);
    let iv_file = secret_file(dir.path(), "iv", &format!("{iv}\n"), 0o600);
    let shared = secret_file(dir.path(), "shared_key", KEY_LIKE, 0o644);

    let out = refundd_bin()
        .args(["sim", "--listen", "127.0.0.1:0", "--mac-key-file"])
        .arg(&shared)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--mac-key-file") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains(&KEY_LIKE[..12]), "{err}");

    let mut sim = Running(
        refundd_bin()
            .args(["sim", "--listen", "127.0.0.1:0", "--mac-key-file"])
            .arg(&key_file)
            .arg("--iv-file")
            .arg(&iv_file)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base_url = format!("http://{}", listening_addr(&mut sim));
    let tx = refundd::sim::SimTx::new(
        "O1",
        "X-O1",
        "AB1234",
        1500,
        refundd::ctbc::TxState::Settled,
    );
    refundd::sim::SimAdmin::new(&base_url)
        .load(&[tx])
        .await
        .unwrap();
    let order = refundd::ctbc::types::OrderNo::parse("O1").unwrap();
    let answer = client_with(&base_url, KEY_LIKE, iv)
        .inquiry(&order)
        .await
        .unwrap();
    assert_eq!(answer.state, refundd::ctbc::TxState::Settled);
    let reference = client_with(
        &base_url,
        refundd::sim::REFERENCE_MAC_KEY,
        refundd::sim::REFERENCE_IV,
    );
    assert!(
        reference.inquiry(&order).await.is_err(),
        "the file's key is the one in use"
    );
}

/// Looks like a MAC key: it must never be echoed, whatever the file around it.
const KEY_LIKE: &str = "QWERTYUIOPASDFGHJKLZXCVB";

fn a_broken_settings_file() -> String {
    format!("[ctbc]\nmac_key = {KEY_LIKE}\n")
}

/// Runs `refundd status` and asserts the broken file stopped it by place alone.
fn assert_refused_by_place(out: &std::process::Output, path: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for half in [&KEY_LIKE[..12], &KEY_LIKE[12..]] {
        assert!(!stdout.contains(half), "{stdout}");
        assert!(!stderr.contains(half), "{stderr}");
    }
    assert!(stderr.contains(path), "{stderr}");
    assert!(stderr.contains("line 2, column 11"), "{stderr}");
}

#[test]
fn a_syntax_error_in_the_config_file_names_the_place_not_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refundd.toml");
    std::fs::write(&path, a_broken_settings_file()).unwrap();
    let out = refundd_bin()
        .arg("--config")
        .arg(&path)
        .arg("status")
        .output()
        .unwrap();
    assert_refused_by_place(&out, path.to_str().unwrap());
}

#[test]
fn a_syntax_error_in_the_default_file_names_the_place_not_the_text() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/default.toml"),
        a_broken_settings_file(),
    )
    .unwrap();
    let out = refundd_bin()
        .current_dir(dir.path())
        .arg("status")
        .output()
        .unwrap();
    assert_refused_by_place(&out, "config/default.toml");
}

/// The issue's own examples: each was accepted, and `check` said "settings are usable".
#[tokio::test]
async fn a_misspelt_setting_stops_every_command_naming_it_and_the_nearest_name() {
    let (_pool, url) = fresh_db().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refundd.toml");
    std::fs::write(&path, "[schedule]\nblackouts = \"23:30-01:30\"\n").unwrap();
    for command in ["check", "migrate", "status"] {
        let out = refundd_bin()
            .arg("--config")
            .arg(&path)
            .arg(command)
            .env("REFUNDD__DATABASE__URL", &url)
            .env("REFUNDD__WORKER__CONCURENCY", "4")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stdout}{stderr}");
        for needle in [
            "REFUNDD__WORKER__CONCURENCY",
            "did you mean REFUNDD__WORKER__CONCURRENCY",
            "schedule.blackouts",
            "did you mean `schedule.blackout`?",
        ] {
            assert!(stderr.contains(needle), "{command}: {needle:?} in {stderr}");
        }
        assert!(!stdout.contains("usable"), "{command}: {stdout}");
    }
}

#[test]
fn migrate_needs_a_database_url() {
    let out = refundd_bin().arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("REFUNDD__DATABASE__URL"));
}

#[test]
fn bad_usage_is_code_2() {
    let out = refundd_bin().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn migrate_creates_the_schema_at_the_configured_url() {
    let (pool, url) = fresh_db().await;
    // fresh_db migrated already; use a second, empty database for the command.
    sqlx::query("CREATE DATABASE cli_migrate")
        .execute(&pool)
        .await
        .unwrap();
    let target = url.rsplit_once('/').unwrap().0.to_string() + "/cli_migrate";
    let out = refundd_bin()
        .arg("migrate")
        .env("REFUNDD__DATABASE__URL", &target)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = refundd::store::connect(&target, 2).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('orders', 'refund_events', 'refund_passes')")
        .fetch_one(&other)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

/// `refundd migrate` says what it did: the run that creates the schema is
/// not "up to date", and a run with nothing to do says so.
#[tokio::test]
async fn migrate_says_what_it_did() {
    let (_pool, url) = empty_db().await;
    let migrate = || {
        let out = refundd_bin()
            .arg("migrate")
            .env("REFUNDD__DATABASE__URL", &url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let n = refundd::store::MIGRATOR.iter().count();
    assert_eq!(
        migrate(),
        format!(
            "created schema refundd and applied {n} migrations; created the built-in orders table\n"
        )
    );
    assert_eq!(
        migrate(),
        format!("schema refundd was already up to date ({n} migrations applied before)\n")
    );
}

#[tokio::test]
async fn the_throwaway_cluster_is_gone_after_its_owner_is_killed() {
    let mut owner = refundd_bin()
        .arg("throwaway-db")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(owner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    let (url, dir, pid) = (parts[0], std::path::PathBuf::from(parts[1]), parts[2]);
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    owner.kill().unwrap(); // SIGKILL: no destructor runs
    owner.wait().unwrap();
    // The reaper notices the closed pipe; allow it a generous deadline.
    let server = nix::unistd::Pid::from_raw(pid.parse().unwrap());
    eventually(
        Duration::from_secs(30),
        "the cluster's directory and server to go with their owner",
        || async { !dir.exists() && nix::sys::signal::kill(server, None).is_err() },
    )
    .await;
}

/// The package's manual: a page for every command an operator can type, the
/// settings page, the exit codes, and completions for the three shells.
#[test]
fn the_manual_has_a_page_for_every_command_and_completions_for_three_shells() {
    use clap::CommandFactory;
    use refundd::cli::Cli;
    use refundd::ops::manual::{write_completions, write_man_pages};
    let dir = tempfile::tempdir().unwrap();
    let pages = write_man_pages(&dir.path().join("man"), Cli::command()).unwrap();
    let page = |name: &str| {
        let path = pages.iter().find(|p| p.ends_with(name));
        std::fs::read_to_string(path.unwrap_or_else(|| panic!("no {name}: {pages:?}"))).unwrap()
    };
    for sub in Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
    {
        let text = page(&format!("man1/refundd-{}.1", sub.get_name()));
        assert!(text.contains(".TH"), "{}", sub.get_name());
    }
    page("man1/refundd-reconcile-resolve.1");
    assert!(!pages
        .iter()
        .any(|p| p.to_string_lossy().contains("throwaway")));
    let main = page("man1/refundd.1");
    assert!(
        main.contains("EXIT STATUS") && main.contains("refundd\\-settings"),
        "{main}"
    );
    assert!(!main.contains("refundd\\-help"), "{main}");
    let settings = page("man5/refundd-settings.5");
    for name in [
        "reconcile.cron",
        "schedule.blackout",
        "REFUNDD__WORKER__LEASE_SECS",
    ] {
        assert!(settings.contains(name), "{name}");
    }
    let completions = write_completions(&dir.path().join("completions"), Cli::command()).unwrap();
    assert_eq!(completions.len(), 3, "{completions:?}");
    for file in &completions {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.contains("reconcile") && text.contains("cancel-refund"),
            "{file:?}"
        );
    }
}
