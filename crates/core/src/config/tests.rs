//! Layering, environment overrides and every kind of bad setting.

use super::*;
use secrecy::ExposeSecret;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Sources {
    Sources {
        env: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn built_in_defaults() {
    let s = Settings::defaults().unwrap();
    assert_eq!(s.schedule.cron.as_str(), DEFAULT_CRON);
    assert!(s.schedule.blackout.is_empty());
    assert!(s.database.url.is_none());
    assert!(s.ctbc.mac_key.is_none(), "no key is ever a default");
    assert!(!s.ctbc.allow_insecure_http);
    assert_eq!(s.http.listen, Some("127.0.0.1:9187".parse().unwrap()));
    assert_eq!(s.log.format, LogFormat::Auto);
    assert!(s.worker.lease > s.ctbc.timeout);
    assert_eq!(s.ctbc.unknown_order_codes, vec![("99".into(), "01".into())]);
}

#[test]
fn shipped_default_file_matches_built_in_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DEFAULT_FILE);
    let with_file = Settings::load(&Sources {
        default_file: Some(path),
        ..Default::default()
    })
    .unwrap();
    let built_in = Settings::defaults().unwrap();
    assert_eq!(format!("{with_file:?}"), format!("{built_in:?}"));
}

#[test]
fn layers_file_then_config_then_environment() {
    let default_file =
        toml_file("[worker]\nconcurrency = 3\nbatch_size = 7\n[log]\nformat = \"pretty\"\n");
    let file = toml_file("[worker]\nbatch_size = 9\n[ctbc]\nmer_id = \"1234567\"\n");
    let mut sources = env(&[
        ("REFUNDD__LOG__FORMAT", "json"),
        ("REFUNDD__CTBC__MAC_KEY", "ABCDEFGHIJKLMNOPQRSTUVWX"),
        ("REFUNDD__HTTP__LISTEN", "off"),
        ("REFUNDD__SCHEDULE__BLACKOUT", "23:30-01:30"),
    ]);
    sources.default_file = Some(default_file.path().into());
    sources.file = Some(file.path().into());
    let s = Settings::load(&sources).unwrap();
    assert_eq!(s.worker.concurrency, 3, "from the default file");
    assert_eq!(s.worker.batch_size, 9, "--config beats the default file");
    assert_eq!(s.log.format, LogFormat::Json, "environment beats files");
    assert_eq!(s.ctbc.mer_id.unwrap().as_str(), "1234567");
    assert_eq!(
        s.ctbc.mac_key.unwrap().expose_secret(),
        "ABCDEFGHIJKLMNOPQRSTUVWX"
    );
    assert_eq!(s.http.listen, None);
    assert_eq!(s.schedule.blackout.to_string(), "23:30-01:30");
}

#[test]
fn database_url_from_either_variable() {
    let s = Settings::load(&env(&[("DATABASE_URL", "postgres://a@h/d")])).unwrap();
    assert_eq!(s.require_database_url().unwrap(), "postgres://a@h/d");
    let s = Settings::load(&env(&[
        ("DATABASE_URL", "postgres://a@h/d"),
        ("REFUNDD__DATABASE__URL", "postgres://b@h/d"),
    ]))
    .unwrap();
    assert_eq!(s.require_database_url().unwrap(), "postgres://b@h/d");
    let missing = Settings::defaults()
        .unwrap()
        .require_database_url()
        .unwrap_err();
    assert!(missing.names("database.url"));
    assert!(missing.to_string().contains("REFUNDD__DATABASE__URL"));
}

#[test]
fn each_bad_setting_is_named_with_its_fix() {
    let cases: &[(&str, &str, &str)] = &[
        ("REFUNDD__DATABASE__URL", "mysql://x", "database.url"),
        (
            "REFUNDD__DATABASE__MAX_CONNECTIONS",
            "0",
            "database.max_connections",
        ),
        ("REFUNDD__CTBC__BASE_URL", "not a url", "ctbc.base_url"),
        ("REFUNDD__CTBC__MER_ID", "12ab", "ctbc.mer_id"),
        ("REFUNDD__CTBC__MAC_KEY", "short", "ctbc.mac_key"),
        ("REFUNDD__CTBC__IV", "toolongiv", "ctbc.iv"),
        ("REFUNDD__CTBC__TIMEOUT_SECS", "0", "ctbc.timeout_secs"),
        (
            "REFUNDD__CTBC__MAX_REQUESTS_PER_SEC",
            "-1",
            "ctbc.max_requests_per_sec",
        ),
        (
            "REFUNDD__CTBC__UNKNOWN_ORDER_CODES",
            "99",
            "ctbc.unknown_order_codes",
        ),
        ("REFUNDD__SCHEDULE__CRON", "0 */2 * * *", "schedule.cron"),
        (
            "REFUNDD__SCHEDULE__BLACKOUT",
            "25:00-01:00",
            "schedule.blackout",
        ),
        ("REFUNDD__WORKER__CONCURRENCY", "0", "worker.concurrency"),
        ("REFUNDD__WORKER__BATCH_SIZE", "0", "worker.batch_size"),
        ("REFUNDD__WORKER__LEASE_SECS", "30", "worker.lease_secs"),
        ("REFUNDD__WORKER__MAX_ATTEMPTS", "0", "worker.max_attempts"),
        ("REFUNDD__WORKER__CONCURRENCY", "many", "worker.concurrency"),
        ("REFUNDD__HTTP__LISTEN", "localhost", "http.listen"),
        ("REFUNDD__LOG__FORMAT", "xml", "log.format"),
    ];
    for (var, value, setting) in cases {
        let err = Settings::load(&env(&[(var, value)])).unwrap_err();
        assert!(err.names(setting), "{var}={value}: {err}");
        let text = err.to_string();
        assert!(text.contains(setting) && text.contains("fix:"), "{text}");
    }
}

#[test]
fn several_problems_are_reported_together() {
    let err = Settings::load(&env(&[
        ("REFUNDD__WORKER__CONCURRENCY", "0"),
        ("REFUNDD__LOG__FORMAT", "xml"),
    ]))
    .unwrap_err();
    assert_eq!(err.problems.len(), 2);
}

#[test]
fn secrets_never_print() {
    let key = "QWERTYUIOPASDFGHJKLZXCVB";
    let s = Settings::load(&env(&[
        ("REFUNDD__CTBC__MAC_KEY", key),
        ("REFUNDD__CTBC__IV", "iv345678"),
        ("REFUNDD__DATABASE__URL", "postgres://u:hunter2@h/d"),
    ]))
    .unwrap();
    let debug = format!("{s:?} {s:#?}");
    assert!(!debug.contains(key));
    assert!(!debug.contains("iv345678"));
    assert!(!debug.contains("hunter2"));
    let bad = Settings::load(&env(&[("REFUNDD__CTBC__MAC_KEY", "secret-but-short")])).unwrap_err();
    assert!(!bad.to_string().contains("secret-but-short"));
}

#[test]
fn missing_config_file_is_named() {
    let err = Settings::load(&Sources {
        file: Some("/nonexistent/refundd.toml".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.names("--config"));
}

#[test]
fn a_broken_file_is_named_by_place_and_kind_never_by_its_text() {
    let key = "QWERTYUIOPASDFGHJKLZXCVB";
    let file = toml_file(&format!(
        "[worker]\nconcurrency = 2\n[ctbc]\nmac_key = {key}\n"
    ));
    let err = Settings::load(&Sources {
        file: Some(file.path().into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.names("--config"), "{err}");
    let text = err.to_string();
    assert!(
        !text.contains(&key[..12]) && !text.contains(&key[12..]),
        "{text}"
    );
    assert!(text.contains(&file.path().display().to_string()), "{text}");
    assert!(text.contains("line 4, column 11"), "{text}");
    assert!(text.contains("invalid string"), "{text}");
    assert!(
        !text.contains("environment variable"),
        "a file has none: {text}"
    );

    let default_file = toml_file(&format!("[ctbc]\nmac_key = {key}\n"));
    let err = Settings::load(&Sources {
        default_file: Some(default_file.path().into()),
        ..Default::default()
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(!text.contains(&key[..12]), "{text}");
    assert!(text.contains("line 2, column 11"), "{text}");
}

/// The one problem a setting has, as an operator reads it.
fn refusal(pairs: &[(&str, &str)], setting: &str) -> String {
    let err = Settings::load(&env(pairs)).unwrap_err();
    let problem = err.problems.iter().find(|p| p.setting == setting);
    let problem = problem.unwrap_or_else(|| panic!("{setting} not named: {err}"));
    problem.to_string()
}

#[test]
fn a_recheck_of_zero_is_refused_because_a_lost_answer_would_be_resent_at_once() {
    let text = refusal(
        &[("REFUNDD__WORKER__RECHECK_SECS", "0")],
        "worker.recheck_secs",
    );
    assert!(
        text.contains("is 0") && text.contains("next pass"),
        "{text}"
    );
    assert!(text.contains("fix:"), "{text}");
}

#[test]
fn a_recheck_shorter_than_the_lease_is_refused() {
    let text = refusal(
        &[
            ("REFUNDD__WORKER__LEASE_SECS", "120"),
            ("REFUNDD__WORKER__RECHECK_SECS", "119"),
        ],
        "worker.recheck_secs",
    );
    assert!(
        text.contains("119") && text.contains("worker.lease_secs (120)"),
        "{text}"
    );
    assert!(text.contains("second worker"), "{text}");
    let s = Settings::load(&env(&[
        ("REFUNDD__WORKER__LEASE_SECS", "120"),
        ("REFUNDD__WORKER__RECHECK_SECS", "120"),
    ]))
    .unwrap();
    assert_eq!(
        s.worker.recheck, s.worker.lease,
        "as long as the lease is enough"
    );
}

#[test]
fn a_cron_that_never_fires_is_refused() {
    // February 31st parses as a cron expression but never comes.
    let text = refusal(
        &[("REFUNDD__SCHEDULE__CRON", "0 0 0 31 2 *")],
        "schedule.cron",
    );
    assert!(
        text.contains("0 0 0 31 2 *") && text.contains("never"),
        "{text}"
    );
}

#[test]
fn a_cron_whose_every_firing_is_in_a_blackout_window_is_refused() {
    let text = refusal(
        &[
            ("REFUNDD__SCHEDULE__CRON", "0 0 0,1 * * *"),
            ("REFUNDD__SCHEDULE__BLACKOUT", "12:00-12:30,23:30-01:30"),
        ],
        "schedule.cron",
    );
    assert!(text.contains("schedule.blackout"), "{text}");
    assert!(text.contains("12:00-12:30,23:30-01:30"), "{text}");
    // One firing outside the windows is enough: 01:30 is where the window ends.
    let s = Settings::load(&env(&[
        ("REFUNDD__SCHEDULE__CRON", "0 30 0,1 * * *"),
        ("REFUNDD__SCHEDULE__BLACKOUT", "23:30-01:30"),
    ]))
    .unwrap();
    assert_eq!(
        s.schedule.cron.as_str(),
        "0 30 0,1 * * *",
        "kept parsed, shown as written"
    );
}

#[test]
fn reconciliation_runs_once_a_day_by_default_and_can_be_turned_off() {
    let s = Settings::defaults().unwrap();
    let cron = s.reconcile.cron.as_ref().map(|c| c.as_str());
    assert_eq!(cron, Some(DEFAULT_RECONCILE_CRON));
    assert_eq!(s.reconcile.window, Duration::from_secs(7 * 86_400));
    let s = Settings::load(&env(&[
        ("REFUNDD__RECONCILE__CRON", "off"),
        ("REFUNDD__RECONCILE__WINDOW_DAYS", "2"),
    ]))
    .unwrap();
    assert!(s.reconcile.cron.is_none());
    assert_eq!(s.reconcile.window, Duration::from_secs(2 * 86_400));
}

#[test]
fn a_reconciliation_schedule_that_cannot_run_is_refused_as_the_passes_is() {
    let text = refusal(
        &[("REFUNDD__RECONCILE__CRON", "every day")],
        "reconcile.cron",
    );
    assert!(
        text.contains("\"every day\"") && text.contains("off"),
        "{text}"
    );
    let text = refusal(
        &[("REFUNDD__RECONCILE__CRON", "0 0 0 31 2 *")],
        "reconcile.cron",
    );
    assert!(text.contains("no reconciliation would ever run"), "{text}");
    let text = refusal(
        &[
            ("REFUNDD__RECONCILE__CRON", "0 0 0 * * *"),
            ("REFUNDD__SCHEDULE__BLACKOUT", "23:30-01:30"),
        ],
        "reconcile.cron",
    );
    assert!(text.contains("schedule.blackout (23:30-01:30)"), "{text}");
    let text = refusal(
        &[("REFUNDD__RECONCILE__WINDOW_DAYS", "0")],
        "reconcile.window_days",
    );
    assert!(text.contains("outside 1..=366"), "{text}");
}

#[test]
fn sources_and_raw_settings_never_print_secrets() {
    let key = "QWERTYUIOPASDFGHJKLZXCVB";
    let sources = env(&[
        ("REFUNDD__CTBC__MAC_KEY", key),
        ("REFUNDD__CTBC__IV", "iv345678"),
        ("REFUNDD__DATABASE__URL", "postgres://u:hunter2@h/d"),
        ("DATABASE_URL", "postgres://v:swordfish@h/d"),
    ]);
    let debug = format!("{sources:?} {sources:#?}");
    for secret in [key, "iv345678", "hunter2", "swordfish"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(
        debug.contains("REFUNDD__CTBC__MAC_KEY"),
        "names help: {debug}"
    );
    let raw = RawSettings::load(&sources).unwrap();
    let debug = format!("{raw:?} {raw:#?}");
    for secret in [key, "iv345678", "hunter2"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn a_webhook_needs_https_or_loopback_and_a_secret_that_is_never_shown() {
    let refused = |pairs: &[(&str, &str)], setting: &str| {
        let e = Settings::load(&env(pairs)).unwrap_err();
        assert!(e.problems.iter().any(|p| p.setting == setting), "{e}");
        assert!(!e.to_string().contains("0123456789abcdef-secret"), "{e}");
    };
    refused(
        &[
            (
                "REFUNDD__NOTIFY__WEBHOOK_URL",
                "http://hooks.example.com/refundd",
            ),
            ("REFUNDD__NOTIFY__WEBHOOK_SECRET", "0123456789abcdef-secret"),
        ],
        "notify.webhook_url",
    );
    refused(
        &[(
            "REFUNDD__NOTIFY__WEBHOOK_URL",
            "https://hooks.example.com/refundd",
        )],
        "notify.webhook_secret",
    );
    refused(
        &[
            (
                "REFUNDD__NOTIFY__WEBHOOK_URL",
                "https://hooks.example.com/refundd",
            ),
            ("REFUNDD__NOTIFY__WEBHOOK_SECRET", "short"),
        ],
        "notify.webhook_secret",
    );
    refused(&[("REFUNDD__NOTIFY__FORMAT", "xml")], "notify.format");
    let s = Settings::load(&env(&[
        ("REFUNDD__NOTIFY__WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        ("REFUNDD__NOTIFY__WEBHOOK_SECRET", "0123456789abcdef-secret"),
        ("REFUNDD__NOTIFY__FORMAT", "slack"),
    ]))
    .unwrap();
    let w = s.notify.webhook.unwrap();
    assert_eq!(w.format, crate::notify::WebhookFormat::Slack);
    assert!(!format!("{w:?}").contains("0123456789abcdef-secret"));
    assert!(Settings::defaults().unwrap().notify.webhook.is_none());
}

#[test]
fn only_literal_loopback_addresses_allow_plain_http() {
    let webhook = |url: &str| {
        Settings::load(&env(&[
            ("REFUNDD__NOTIFY__WEBHOOK_URL", url),
            ("REFUNDD__NOTIFY__WEBHOOK_SECRET", "0123456789abcdef-secret"),
        ]))
    };
    let client = |url: &str| {
        Settings::load(&env(&[
            ("REFUNDD__CTBC__BASE_URL", url),
            ("REFUNDD__CTBC__MER_ID", "1234567"),
            ("REFUNDD__CTBC__MAC_KEY", "ABCDEFGHIJKLMNOPQRSTUVWX"),
            ("REFUNDD__CTBC__IV", "test8iv!"),
        ]))
        .unwrap()
        .require_client()
    };
    // A name is resolved by whoever answers for it: only an address counts.
    for url in ["http://localhost:9/hook", "http://LOCALHOST./hook"] {
        let e = webhook(url).unwrap_err();
        let p = e
            .problems
            .iter()
            .find(|p| p.setting == "notify.webhook_url");
        assert!(
            p.is_some_and(|p| p.fix.contains("127.0.0.1") && p.fix.contains("localhost")),
            "{url}: {e}"
        );
        let e = client(url).unwrap_err();
        let p = e.problems.iter().find(|p| p.setting == "ctbc.base_url");
        assert!(
            p.is_some_and(|p| p.fix.contains("127.0.0.1") && p.fix.contains("localhost")),
            "{url}: {e}"
        );
    }
    for url in [
        "http://127.0.0.1:9/hook",
        "http://127.8.9.10/hook",
        "http://[::1]:9/hook",
    ] {
        assert!(webhook(url).unwrap().notify.webhook.is_some(), "{url}");
        assert!(client(url).is_ok(), "{url}");
    }
}

// Secrets from files: `_FILE` variables and systemd credentials.

const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWX";
const IV: &str = "12345678";

/// A file holding `text`, with the given mode, in `dir`.
fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

fn with_env(pairs: &[(&str, &str)], default_file: Option<&Path>) -> Sources {
    let mut s = env(pairs);
    s.default_file = default_file.map(Into::into);
    s
}

#[test]
fn secrets_are_read_from_file_variables_without_trailing_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let key = secret_file(dir.path(), "key", &format!("{KEY}\n"), 0o600);
    let iv = secret_file(dir.path(), "iv", &format!("{IV}\r\n"), 0o400);
    let url = secret_file(
        dir.path(),
        "url",
        "postgres://refundd:pw@127.0.0.1/shop\n\n",
        0o600,
    );
    let hook = secret_file(dir.path(), "hook", "0123456789abcdef-hook", 0o600);
    let s = Settings::load(&env(&[
        ("REFUNDD__CTBC__MAC_KEY_FILE", &key),
        ("REFUNDD__CTBC__IV_FILE", &iv),
        ("REFUNDD__DATABASE__URL_FILE", &url),
        (
            "REFUNDD__NOTIFY__WEBHOOK_URL",
            "https://hooks.example.com/refundd",
        ),
        ("REFUNDD__NOTIFY__WEBHOOK_SECRET_FILE", &hook),
    ]))
    .unwrap();
    assert_eq!(s.ctbc.mac_key.unwrap().expose_secret(), KEY);
    assert_eq!(s.ctbc.iv.unwrap().expose_secret(), IV);
    assert_eq!(
        s.database.url.unwrap().expose_secret(),
        "postgres://refundd:pw@127.0.0.1/shop"
    );
    assert_eq!(
        s.notify.webhook.unwrap().secret.expose_secret(),
        "0123456789abcdef-hook"
    );
}

#[test]
fn secrets_are_read_from_systemd_credentials_by_name() {
    let dir = tempfile::tempdir().unwrap();
    secret_file(dir.path(), "mac_key", KEY, 0o400);
    secret_file(dir.path(), "iv", &format!("{IV}\n"), 0o400);
    secret_file(
        dir.path(),
        "database_url",
        "postgres://refundd:pw@127.0.0.1/shop",
        0o400,
    );
    let s = Settings::load(&env(&[(
        "CREDENTIALS_DIRECTORY",
        &dir.path().display().to_string(),
    )]))
    .unwrap();
    assert_eq!(s.ctbc.mac_key.unwrap().expose_secret(), KEY);
    assert_eq!(s.ctbc.iv.unwrap().expose_secret(), IV);
    assert!(s.database.url.is_some());
    assert!(s.notify.webhook.is_none(), "no credential, no webhook");
}

#[test]
fn a_secret_given_two_ways_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let key = secret_file(dir.path(), "mac_key", KEY, 0o600);
    let dir_s = dir.path().display().to_string();

    // A value and a file.
    let e = Settings::load(&env(&[
        ("REFUNDD__CTBC__MAC_KEY", KEY),
        ("REFUNDD__CTBC__MAC_KEY_FILE", &key),
    ]))
    .unwrap_err();
    let m = e.to_string();
    assert!(e.names("ctbc.mac_key"), "{m}");
    assert!(m.contains("variable REFUNDD__CTBC__MAC_KEY and"), "{m}");
    assert!(m.contains("REFUNDD__CTBC__MAC_KEY_FILE"), "{m}");

    // A file and a credential.
    let e = Settings::load(&env(&[
        ("REFUNDD__CTBC__MAC_KEY_FILE", &key),
        ("CREDENTIALS_DIRECTORY", &dir_s),
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("REFUNDD__CTBC__MAC_KEY_FILE"), "{e}");
    assert!(e.contains("systemd credential mac_key"), "{e}");

    // A value in a settings file and a file.
    let toml = toml_file(&format!("[ctbc]\nmac_key = \"{KEY}\"\n"));
    let e = Settings::load(&with_env(
        &[("REFUNDD__CTBC__MAC_KEY_FILE", &key)],
        Some(toml.path()),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains(&toml.path().display().to_string()), "{e}");
    assert!(e.contains("REFUNDD__CTBC__MAC_KEY_FILE"), "{e}");

    // DATABASE_URL and a credential.
    secret_file(dir.path(), "database_url", "postgres://a:b@h/d", 0o600);
    let e = Settings::load(&env(&[
        ("DATABASE_URL", "postgres://a:b@h/d"),
        ("CREDENTIALS_DIRECTORY", &dir_s),
    ]))
    .unwrap_err();
    assert!(e.names("database.url"), "{e}");
    let m = e.to_string();
    assert!(
        m.contains("DATABASE_URL") && m.contains("credential database_url"),
        "{m}"
    );
    assert!(!m.contains("a:b@"), "{m}");
}

#[test]
fn a_secret_file_group_or_others_can_read_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o640, 0o604, 0o644] {
        let key = secret_file(dir.path(), "key", KEY, mode);
        let e = Settings::load(&env(&[("REFUNDD__CTBC__MAC_KEY_FILE", &key)])).unwrap_err();
        let m = e.to_string();
        assert!(e.names("ctbc.mac_key_file"), "{m}");
        assert!(m.contains(&key), "names the file: {m}");
        assert!(m.contains("chmod 600"), "gives the fix: {m}");
        assert!(!m.contains(KEY), "never the content: {m}");
    }
    // A credential is held to the same rule.
    secret_file(dir.path(), "mac_key", KEY, 0o644);
    let e = Settings::load(&env(&[(
        "CREDENTIALS_DIRECTORY",
        &dir.path().display().to_string(),
    )]))
    .unwrap_err();
    assert!(e.names("credential mac_key"), "{e}");
    assert!(e.to_string().contains("chmod 600"), "{e}");
}

#[test]
fn a_missing_or_unreadable_secret_file_names_the_setting_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-key").display().to_string();
    let e = Settings::load(&env(&[("REFUNDD__CTBC__IV_FILE", &missing)])).unwrap_err();
    let m = e.to_string();
    assert!(e.names("ctbc.iv_file"), "{m}");
    assert!(
        m.contains(&missing) && m.contains("REFUNDD__CTBC__IV_FILE"),
        "{m}"
    );

    let not_a_file = dir.path().display().to_string();
    let e = Settings::load(&env(&[("REFUNDD__DATABASE__URL_FILE", &not_a_file)])).unwrap_err();
    assert!(e.names("database.url_file"), "{e}");
    assert!(e.to_string().contains("not a file"), "{e}");

    let empty = secret_file(dir.path(), "empty", "\n", 0o600);
    let e = Settings::load(&env(&[("REFUNDD__CTBC__MAC_KEY_FILE", &empty)])).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");

    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, b'S', b'E', b'C']).unwrap();
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let e = Settings::load(&env(&[(
        "REFUNDD__CTBC__MAC_KEY_FILE",
        &binary.display().to_string(),
    )]))
    .unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}

#[test]
fn a_bad_secret_from_a_file_is_refused_without_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let short = "SHORT-SECRET-KEY";
    let key = secret_file(dir.path(), "key", &format!("{short}\n"), 0o600);
    let url = secret_file(dir.path(), "url", "mysql://user:hunter2@h/d", 0o600);
    let e = Settings::load(&env(&[
        ("REFUNDD__CTBC__MAC_KEY_FILE", &key),
        ("REFUNDD__DATABASE__URL_FILE", &url),
    ]))
    .unwrap_err();
    assert!(e.names("ctbc.mac_key") && e.names("database.url"), "{e}");
    let m = format!("{e}\n{e:?}");
    assert!(!m.contains(short) && !m.contains("hunter2"), "{m}");
}

#[test]
fn a_file_variable_is_not_itself_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let key = secret_file(dir.path(), "key", KEY, 0o600);
    let sources = env(&[("REFUNDD__CTBC__MAC_KEY_FILE", &key)]);
    let s = Settings::load(&sources).unwrap();
    assert!(!format!("{s:?}").contains(KEY));
    assert!(format!("{sources:?}").contains("REFUNDD__CTBC__MAC_KEY_FILE"));
}

#[test]
fn a_lease_shorter_than_a_call_behind_the_rate_limit_is_refused() {
    // 30 s per call, plus 64 calls waiting for 2 per second: 62 s.
    let slow = [
        ("REFUNDD__CTBC__TIMEOUT_SECS", "30"),
        ("REFUNDD__WORKER__CONCURRENCY", "64"),
        ("REFUNDD__CTBC__MAX_REQUESTS_PER_SEC", "2"),
    ];
    let text = refusal(
        &[slow.as_slice(), &[("REFUNDD__WORKER__LEASE_SECS", "60")]].concat(),
        "worker.lease_secs",
    );
    assert!(text.contains("is 60") && text.contains("62.0 s"), "{text}");
    // Longer than the call, but without a tenth of the lease to spare.
    let text = refusal(
        &[slow.as_slice(), &[("REFUNDD__WORKER__LEASE_SECS", "68")]].concat(),
        "worker.lease_secs",
    );
    assert!(text.contains("is 68") && text.contains("a tenth"), "{text}");
    let s = Settings::load(&env(&[
        slow.as_slice(),
        &[("REFUNDD__WORKER__LEASE_SECS", "69")],
    ]
    .concat()))
    .unwrap();
    assert_eq!(s.worker.lease, Duration::from_secs(69));
}

// Unknown names: a misspelt setting is refused, never ignored.

/// The problems of loading `sources`, as an operator reads them.
fn refused(sources: &Sources) -> SettingsError {
    match Settings::load(sources) {
        Ok(_) => panic!("accepted: {sources:?}"),
        Err(e) => e,
    }
}

/// The problem about `setting`, as an operator reads it.
fn about(err: &SettingsError, setting: &str) -> String {
    let problem = err.problems.iter().find(|p| p.setting == setting);
    problem
        .unwrap_or_else(|| panic!("{setting} not named: {err}"))
        .to_string()
}

#[test]
fn an_unknown_key_in_a_settings_file_is_refused_with_the_nearest_known_name() {
    let file = toml_file(
        "[schedule]\nblackouts = \"23:30-01:30\"\n[http]\nlistn = \"127.0.0.1:9\"\n\
         [ctbc]\nmerchant_id = \"1234567\"\n",
    );
    let path = file.path().display().to_string();
    let err = refused(&Sources {
        file: Some(file.path().into()),
        ..Default::default()
    });
    let text = about(&err, "schedule.blackouts");
    assert!(text.contains("did you mean `schedule.blackout`?"), "{text}");
    assert!(text.contains(&path), "names the file: {text}");
    assert!(
        !text.contains("REFUNDD__SCHEDULE__BLACKOUTS"),
        "no variable sets what is no setting: {text}"
    );
    let text = about(&err, "http.listn");
    assert!(text.contains("did you mean `http.listen`?"), "{text}");
    // Too far from any name to guess: the section's settings are listed.
    let text = about(&err, "ctbc.merchant_id");
    assert!(!text.contains("did you mean"), "{text}");
    assert!(
        text.contains("mer_id") && text.contains("base_url"),
        "{text}"
    );
    assert_eq!(err.problems.len(), 3, "all at once: {err}");
}

#[test]
fn an_unknown_key_in_the_default_file_is_refused_too() {
    let default_file = toml_file("[worker]\nconcurency = 4\n");
    let err = refused(&with_env(&[], Some(default_file.path())));
    let text = about(&err, "worker.concurency");
    assert!(
        text.contains("did you mean `worker.concurrency`?"),
        "{text}"
    );
    assert!(
        text.contains(&default_file.path().display().to_string()),
        "{text}"
    );
}

#[test]
fn an_unknown_section_or_a_key_outside_any_section_is_refused() {
    let file = toml_file(
        "listn = \"127.0.0.1:9\"\n[schedul]\nblackout = \"23:30-01:30\"\n[colours]\nred = 1\n",
    );
    let err = refused(&Sources {
        file: Some(file.path().into()),
        ..Default::default()
    });
    let text = about(&err, "listn");
    assert!(text.contains("did you mean `http.listen`?"), "{text}");
    let text = about(&err, "[schedul]");
    assert!(text.contains("did you mean [schedule]?"), "{text}");
    let text = about(&err, "[colours]");
    assert!(!text.contains("did you mean"), "{text}");
    assert!(
        text.contains("schedule") && text.contains("worker"),
        "{text}"
    );
}

#[test]
fn an_unknown_environment_variable_is_refused_with_the_nearest_known_one() {
    let err = refused(&env(&[
        ("REFUNDD__WORKER__CONCURENCY", "4"),
        ("REFUNDD__SCHEDULE__BLACKOUTS", "23:30-01:30"),
        ("REFUNDD__COLOUR", "QWERTYUIOPASDFGHJKLZXCVB"),
    ]));
    let text = about(&err, "REFUNDD__WORKER__CONCURENCY");
    assert!(
        text.contains("did you mean REFUNDD__WORKER__CONCURRENCY (`worker.concurrency`)?"),
        "{text}"
    );
    let text = about(&err, "REFUNDD__SCHEDULE__BLACKOUTS");
    assert!(
        text.contains("did you mean REFUNDD__SCHEDULE__BLACKOUT (`schedule.blackout`)?"),
        "{text}"
    );
    let text = about(&err, "REFUNDD__COLOUR");
    assert!(!text.contains("did you mean"), "{text}");
    assert!(
        !err.to_string().contains("QWERTYUIOP"),
        "an unknown variable's value may be a secret: {err}"
    );
    assert_eq!(err.problems.len(), 3, "all at once: {err}");
}

#[test]
fn only_a_secret_may_be_given_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mer_id = secret_file(dir.path(), "mer_id", "1234567", 0o600);
    let err = refused(&env(&[("REFUNDD__CTBC__MER_ID_FILE", &mer_id)]));
    let text = about(&err, "REFUNDD__CTBC__MER_ID_FILE");
    assert!(
        text.contains("REFUNDD__CTBC__MAC_KEY_FILE") && text.contains("set REFUNDD__CTBC__MER_ID"),
        "says which may, and what to do instead: {text}"
    );
    let err = refused(&env(&[("REFUNDD__CTBC__MAC_KEY_FIEL", &mer_id)]));
    let text = about(&err, "REFUNDD__CTBC__MAC_KEY_FIEL");
    assert!(
        text.contains("did you mean REFUNDD__CTBC__MAC_KEY_FILE"),
        "{text}"
    );
    // In a settings file, a secret's file has no key of its own.
    let file = toml_file(&format!("[ctbc]\nmac_key_file = \"{mer_id}\"\n"));
    let err = refused(&Sources {
        file: Some(file.path().into()),
        ..Default::default()
    });
    let text = about(&err, "ctbc.mac_key_file");
    assert!(
        text.contains("REFUNDD__CTBC__MAC_KEY_FILE") && text.contains("credential mac_key"),
        "{text}"
    );
}

#[test]
fn a_variable_with_one_underscore_after_refundd_is_refused_when_it_names_a_setting() {
    let err = refused(&env(&[("REFUNDD_WORKER__CONCURRENCY", "4")]));
    let text = about(&err, "REFUNDD_WORKER__CONCURRENCY");
    assert!(text.contains("REFUNDD__WORKER__CONCURRENCY"), "{text}");
    // The simulator's and the compose file's own variables are no settings of refundd's.
    Settings::load(&env(&[
        ("REFUNDD_SIM_MAC_KEY", KEY),
        ("REFUNDD_SIM_LISTEN", "127.0.0.1:0"),
        ("REFUNDD_SECRETS_DIR", "/tmp"),
        ("REFUNDD_CRON", "0 * * * * *"),
        ("REFUNDD_BIN", "target/debug/refundd"),
    ]))
    .unwrap();
}

/// The settings `RawSettings` reads, dotted, as serde's derive lists its
/// fields: a deserializer that answers every struct with all its fields, and
/// every map (the merchants' tables) with one entry, `NAME`.
fn raw_fields() -> Vec<String> {
    use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
    use serde::Deserialize;
    use std::cell::RefCell;
    type E = de::value::Error;

    struct Fields<'a> {
        path: String,
        found: &'a RefCell<Vec<String>>,
    }
    impl<'a> Fields<'a> {
        fn leaf(self) {
            self.found.borrow_mut().push(self.path);
        }
    }
    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = E;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, E> {
            v.visit_map(Each {
                fields: fields.iter(),
                current: "",
                path: self.path,
                found: self.found,
            })
        }
        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            self.leaf();
            v.visit_none()
        }
        fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            self.leaf();
            v.visit_i64(0)
        }
        fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            self.leaf();
            v.visit_bool(false)
        }
        fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            self.leaf();
            v.visit_string(String::new())
        }
        fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            self.deserialize_string(v)
        }
        fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            v.visit_map(OneEntry {
                path: Some(format!("{}.NAME", self.path)),
                found: self.found,
            })
        }
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, E> {
            Err(de::Error::custom(format!(
                "{}: a kind of field this test does not know",
                self.path
            )))
        }
        serde::forward_to_deserialize_any! {
            i8 i16 i32 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
            unit_struct newtype_struct seq tuple tuple_struct enum identifier ignored_any
        }
    }
    struct OneEntry<'a> {
        /// The entry's path until its key is taken.
        path: Option<String>,
        found: &'a RefCell<Vec<String>>,
    }
    impl<'de> MapAccess<'de> for OneEntry<'_> {
        type Error = E;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, E> {
            if self.path.is_none() {
                return Ok(None);
            }
            seed.deserialize(IntoDeserializer::<E>::into_deserializer("NAME"))
                .map(Some)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, E> {
            let path = self.path.take().unwrap_or_default();
            seed.deserialize(Fields {
                path,
                found: self.found,
            })
        }
    }
    struct Each<'a> {
        fields: std::slice::Iter<'static, &'static str>,
        current: &'static str,
        path: String,
        found: &'a RefCell<Vec<String>>,
    }
    impl<'de> MapAccess<'de> for Each<'_> {
        type Error = E;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, E> {
            let Some(field) = self.fields.next() else {
                return Ok(None);
            };
            self.current = field;
            seed.deserialize(IntoDeserializer::<E>::into_deserializer(*field))
                .map(Some)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, E> {
            let path = match self.path.as_str() {
                "" => self.current.to_string(),
                section => format!("{section}.{}", self.current),
            };
            seed.deserialize(Fields {
                path,
                found: self.found,
            })
        }
    }
    let found = RefCell::new(Vec::new());
    RawSettings::deserialize(Fields {
        path: String::new(),
        found: &found,
    })
    .unwrap();
    found.into_inner()
}

#[test]
fn the_known_names_are_exactly_the_settings_read_and_the_readme_lists() {
    let sorted = |mut names: Vec<String>| {
        names.sort_unstable();
        names.dedup();
        names
    };
    let known = sorted(known::settings().map(String::from).collect());
    let of_a_merchant = |key: &&str| format!("{}.NAME.{key}", merchants::TABLES);
    let with_merchants = sorted(
        known
            .iter()
            .cloned()
            .chain(merchants::KEYS.iter().map(of_a_merchant))
            .collect(),
    );
    assert_eq!(
        with_merchants,
        sorted(raw_fields()),
        "known names and RawSettings"
    );
    // The first column of the tables of the README's section "Configuration".
    let readme = include_str!("../../../../README.md");
    let section = readme.split("\n## Configuration\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let listed = section.lines().filter_map(|line| {
        let name = line.strip_prefix("| `")?.split('`').next()?;
        let (section, key) = name.split_once('.')?;
        let word =
            |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        (word(section) && word(key)).then(|| name.to_string())
    });
    assert_eq!(
        known,
        sorted(listed.collect()),
        "known names and the README"
    );
    // A merchant's table, in a table of its own: `ctbc.merchants.NAME.mer_id`.
    let listed = section.lines().filter_map(|line| {
        let name = line.strip_prefix("| `")?.split('`').next()?;
        name.starts_with("ctbc.merchants.NAME.")
            .then(|| name.to_string())
    });
    assert_eq!(
        sorted(merchants::KEYS.iter().map(of_a_merchant).collect()),
        sorted(listed.collect()),
        "a merchant's settings and the README"
    );
}

#[test]
fn a_missing_secret_names_its_file_variable_its_credential_and_its_variable() {
    let fix_of = |err: SettingsError, setting: &str| {
        let problem = err.problems.into_iter().find(|p| p.setting == setting);
        problem.unwrap_or_else(|| panic!("{setting} not named")).fix
    };
    let defaults = Settings::defaults().unwrap();
    let client = defaults.require_client().unwrap_err();
    let database = defaults.require_database_url().unwrap_err();
    let webhook = Settings::load(&env(&[(
        "REFUNDD__NOTIFY__WEBHOOK_URL",
        "https://hooks.example.com/refundd",
    )]))
    .unwrap_err();
    let cases = [
        (
            fix_of(client.clone(), "ctbc.mac_key"),
            "CTBC__MAC_KEY",
            "mac_key",
        ),
        (fix_of(client, "ctbc.iv"), "CTBC__IV", "iv"),
        (
            fix_of(database, "database.url"),
            "DATABASE__URL",
            "database_url",
        ),
        (
            fix_of(webhook, "notify.webhook_secret"),
            "NOTIFY__WEBHOOK_SECRET",
            "webhook_secret",
        ),
    ];
    for (fix, var, credential) in cases {
        let file_first = format!("set REFUNDD__{var}_FILE to a file holding it (mode 0600)");
        assert!(fix.contains(&file_first), "{fix}");
        assert!(
            fix.contains(&format!("systemd credential {credential}")),
            "{fix}"
        );
        assert!(fix.contains(&format!("or set REFUNDD__{var} ")), "{fix}");
    }
}

/// The shipped file tells what the README's "Secrets from files" tells: each
/// secret in a file of its own, never in the environment or in this file.
#[test]
fn the_shipped_default_file_sends_every_secret_to_a_file_of_its_own() {
    let text = include_str!("../../../../config/default.toml");
    assert!(!text.contains("in the environment"), "{text}");
    for secret in secrets::SECRETS {
        assert!(
            text.contains(&secret.file_var()),
            "{}: {text}",
            secret.setting
        );
    }
    assert!(
        text.contains("Secrets from files"),
        "points to the README: {text}"
    );
}

// Several merchants: `[ctbc.merchants.NAME]`.

const OUTLET_KEY: &str = "OUTLETKEYOUTLETKEYOUTLET";
const OUTLET_IV: &str = "outlet8!";
const BRAND_KEY: &str = "BRANDBKEYBRANDBKEYBRANDB";
const BRAND_IV: &str = "brandb8!";

/// The default merchant at a simulator's address, with its keys.
fn default_merchant() -> Vec<(&'static str, &'static str)> {
    vec![
        ("REFUNDD__CTBC__BASE_URL", "http://127.0.0.1:9/MicroPos"),
        ("REFUNDD__CTBC__MER_ID", "1234567"),
        ("REFUNDD__CTBC__MAC_KEY", KEY),
        ("REFUNDD__CTBC__IV", IV),
    ]
}

/// The default merchant, `outlet` and `brand_b` (at an endpoint of its
/// own), all given in the environment.
fn two_merchants() -> Vec<(&'static str, &'static str)> {
    let mut pairs = default_merchant();
    pairs.extend([
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID", "7654321"),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY", OUTLET_KEY),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__IV", OUTLET_IV),
        ("REFUNDD__CTBC__MERCHANTS__BRAND_B__MER_ID", "5550001"),
        ("REFUNDD__CTBC__MERCHANTS__BRAND_B__MAC_KEY", BRAND_KEY),
        ("REFUNDD__CTBC__MERCHANTS__BRAND_B__IV", BRAND_IV),
        (
            "REFUNDD__CTBC__MERCHANTS__BRAND_B__BASE_URL",
            "http://127.0.0.2:9/MicroPos",
        ),
    ]);
    pairs
}

fn merchant(n: &str) -> crate::domain::merchant::MerchantName {
    crate::domain::merchant::MerchantName::parse(n).unwrap()
}

/// Each merchant's client, as `require_merchants` builds them: (name, MERID, endpoint).
fn clients_of(s: &Settings) -> Vec<(String, String, String)> {
    let merchants = s.require_merchants().unwrap();
    merchants
        .iter()
        .map(|(name, client)| {
            (
                crate::domain::merchant::label(name).to_string(),
                client.mer_id().to_string(),
                client.base_url().to_string(),
            )
        })
        .collect()
}

#[test]
fn merchants_are_read_from_the_environment_each_with_its_own_keys() {
    let s = Settings::load(&env(&two_merchants())).unwrap();
    let names: Vec<&str> = s.ctbc.merchants.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["brand_b", "outlet"], "by name");
    let outlet = &s.ctbc.merchants[1];
    assert_eq!(outlet.mac_key.as_ref().unwrap().expose_secret(), OUTLET_KEY);
    assert_eq!(outlet.iv.as_ref().unwrap().expose_secret(), OUTLET_IV);
    assert!(outlet.base_url.is_none(), "the default merchant's endpoint");
    assert_eq!(
        clients_of(&s),
        [
            ("default", "1234567", "http://127.0.0.1:9/MicroPos"),
            ("brand_b", "5550001", "http://127.0.0.2:9/MicroPos"),
            ("outlet", "7654321", "http://127.0.0.1:9/MicroPos"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    let merchants = s.require_merchants().unwrap();
    let mer_id = |m: Option<&crate::domain::merchant::MerchantName>| {
        merchants.for_merchant(m).map(|c| c.mer_id().to_string())
    };
    assert_eq!(mer_id(None).as_deref(), Some("1234567"));
    assert_eq!(
        mer_id(Some(&merchant("outlet"))).as_deref(),
        Some("7654321")
    );
    assert_eq!(mer_id(Some(&merchant("nowhere"))), None);
    // `require_client` is the default merchant's.
    assert_eq!(s.require_client().unwrap().mer_id().as_str(), "1234567");
    // One merchant is what it was: no table, no other client.
    let one = Settings::load(&env(&default_merchant())).unwrap();
    assert!(one.ctbc.merchants.is_empty());
    assert_eq!(clients_of(&one).len(), 1);
}

/// The README's example of several merchants, with each merchant's secrets in files.
#[test]
fn the_readme_example_of_several_merchants_loads_with_secrets_from_files() {
    let readme = include_str!("../../../../README.md");
    let section = readme.split("\n### Several merchants\n").nth(1).unwrap();
    let example = section.split("```toml\n").nth(1).unwrap();
    let example = example.split("```").next().unwrap();
    let file = toml_file(example);
    let (dir, credentials) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let in_file = |name: &str, text: &str| secret_file(dir.path(), name, text, 0o600);
    let (key, iv) = (in_file("key", KEY), in_file("iv", IV));
    let (outlet_key, outlet_iv) = (in_file("ok", OUTLET_KEY), in_file("oi", OUTLET_IV));
    // brand_b's secrets as systemd credentials, by their names.
    let credential = |name: &str, text: &str| secret_file(credentials.path(), name, text, 0o400);
    credential("merchants.brand_b.mac_key", BRAND_KEY);
    credential("merchants.brand_b.iv", &format!("{BRAND_IV}\n"));
    let mut sources = env(&[
        ("REFUNDD__CTBC__MAC_KEY_FILE", &key),
        ("REFUNDD__CTBC__IV_FILE", &iv),
        (
            "REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY_FILE",
            &outlet_key,
        ),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__IV_FILE", &outlet_iv),
        (
            "CREDENTIALS_DIRECTORY",
            &credentials.path().display().to_string(),
        ),
    ]);
    sources.file = Some(file.path().into());
    let s = Settings::load(&sources).unwrap();
    let by_name = |n: &str| {
        s.ctbc
            .merchants
            .iter()
            .find(|m| m.name.as_str() == n)
            .unwrap()
    };
    assert_eq!(
        by_name("outlet").iv.as_ref().unwrap().expose_secret(),
        OUTLET_IV
    );
    assert_eq!(
        by_name("brand_b").mac_key.as_ref().unwrap().expose_secret(),
        BRAND_KEY
    );
    assert_eq!(
        by_name("brand_b").iv.as_ref().unwrap().expose_secret(),
        BRAND_IV
    );
    let clients = clients_of(&s);
    assert_eq!(clients.len(), 3, "{clients:?}");
    assert_eq!(
        clients[1],
        (
            "brand_b".to_string(),
            "5550001".to_string(),
            "https://epos.ctbcbank.com/MicroPos".to_string()
        )
    );
}

#[test]
fn a_merchants_secret_given_two_ways_or_in_a_loose_file_is_refused_under_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let key = secret_file(dir.path(), "key", OUTLET_KEY, 0o600);
    let file = toml_file(&format!(
        "[ctbc.merchants.outlet]\nmer_id = \"7654321\"\nmac_key = \"{OUTLET_KEY}\"\n"
    ));
    let mut sources = env(&[("REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY_FILE", &key)]);
    sources.file = Some(file.path().into());
    let e = refused(&sources);
    let text = about(&e, "ctbc.merchants.outlet.mac_key");
    assert!(text.contains("is given 2 ways"), "{text}");
    assert!(
        text.contains("mac_key of [ctbc.merchants.outlet] in"),
        "{text}"
    );
    assert!(
        text.contains("REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY_FILE"),
        "{text}"
    );
    assert!(!e.to_string().contains(OUTLET_KEY), "{e}");

    let loose = secret_file(dir.path(), "loose", OUTLET_IV, 0o644);
    let e = refused(&env(&[(
        "REFUNDD__CTBC__MERCHANTS__OUTLET__IV_FILE",
        &loose,
    )]));
    let text = about(&e, "ctbc.merchants.outlet.iv_file");
    assert!(text.contains("chmod 600"), "{text}");
    assert!(!text.contains(OUTLET_IV), "{text}");
}

#[test]
fn names_that_are_no_merchant_or_no_merchants_setting_are_refused_with_the_fix() {
    let file = toml_file(
        "[ctbc.merchants.outlet]\nmerid = \"7654321\"\niv_file = \"/run/iv\"\n\
         [ctbc.merchants.Brand-B]\nmer_id = \"5550001\"\n\
         [ctbc.merchants.default]\nmer_id = \"5550002\"\n",
    );
    let err = refused(&Sources {
        file: Some(file.path().into()),
        ..Default::default()
    });
    let text = about(&err, "ctbc.merchants.outlet.merid");
    assert!(
        text.contains("did you mean `ctbc.merchants.outlet.mer_id`?"),
        "{text}"
    );
    let text = about(&err, "ctbc.merchants.outlet.iv_file");
    assert!(
        text.contains("REFUNDD__CTBC__MERCHANTS__OUTLET__IV_FILE")
            && text.contains("credential merchants.outlet.iv"),
        "{text}"
    );
    for table in ["[ctbc.merchants.Brand-B]", "[ctbc.merchants.default]"] {
        let text = about(&err, table);
        assert!(text.contains("lowercase ASCII letters"), "{text}");
    }
    assert_eq!(err.problems.len(), 4, "all at once, once each: {err}");

    let err = refused(&env(&[
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__MERID", "7654321"),
        ("REFUNDD__CTBC__MERCHANTS__BRAND__B__MER_ID", "5550001"),
        (
            "REFUNDD__CTBC__MERCHANTS__SHOP_B__MER_ID_FILE",
            "/run/mer_id",
        ),
        ("REFUNDD__CTBC__MERCHANTS__DEFAULT__MER_ID", "5550002"),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY_FIEL", "/run/key"),
    ]));
    let text = about(&err, "REFUNDD__CTBC__MERCHANTS__OUTLET__MERID");
    assert!(
        text.contains("did you mean REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID?"),
        "{text}"
    );
    let text = about(&err, "REFUNDD__CTBC__MERCHANTS__BRAND__B__MER_ID");
    assert!(
        text.contains("did you mean REFUNDD__CTBC__MERCHANTS__BRAND_B__MER_ID?")
            && text.contains("single underscores"),
        "{text}"
    );
    let text = about(&err, "REFUNDD__CTBC__MERCHANTS__SHOP_B__MER_ID_FILE");
    assert!(
        text.contains("set REFUNDD__CTBC__MERCHANTS__SHOP_B__MER_ID"),
        "{text}"
    );
    let text = about(&err, "REFUNDD__CTBC__MERCHANTS__DEFAULT__MER_ID");
    assert!(text.contains("not `default`"), "{text}");
    let text = about(&err, "REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY_FIEL");
    assert!(
        text.contains("did you mean REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY_FILE?"),
        "{text}"
    );
    assert_eq!(err.problems.len(), 5, "all at once: {err}");

    let file = toml_file("[ctbc]\nmerchants = \"outlet\"\n");
    let err = refused(&Sources {
        file: Some(file.path().into()),
        ..Default::default()
    });
    assert!(
        about(&err, "ctbc.merchants").contains("[ctbc.merchants.NAME]"),
        "{err}"
    );
}

#[test]
fn a_merchants_missing_part_is_named_by_its_full_setting_with_the_ways_to_give_it() {
    let mut pairs = default_merchant();
    pairs.push(("REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID", "7654321"));
    let s = Settings::load(&env(&pairs)).unwrap();
    let e = s.require_merchants().unwrap_err();
    let text = about(&e, "ctbc.merchants.outlet.mac_key");
    assert!(
        text.contains("set REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY_FILE to a file holding it")
            && text.contains("systemd credential merchants.outlet.mac_key")
            && text.contains("for merchant outlet"),
        "{text}"
    );
    assert!(
        text.contains("(environment variable REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY)"),
        "{text}"
    );
    assert!(e.names("ctbc.merchants.outlet.iv"), "{e}");
    assert!(
        s.require_client().is_err(),
        "every merchant's settings are checked"
    );

    // Without ctbc.base_url a merchant without its own has no endpoint.
    let s = Settings::load(&env(&[
        ("REFUNDD__CTBC__MER_ID", "1234567"),
        ("REFUNDD__CTBC__MAC_KEY", KEY),
        ("REFUNDD__CTBC__IV", IV),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID", "7654321"),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY", OUTLET_KEY),
        ("REFUNDD__CTBC__MERCHANTS__OUTLET__IV", OUTLET_IV),
    ]))
    .unwrap();
    let e = s.require_merchants().unwrap_err();
    assert!(
        e.names("ctbc.base_url") && e.names("ctbc.merchants.outlet.base_url"),
        "{e}"
    );

    // A merchant's own endpoint is held to the rules of ctbc.base_url.
    let mut pairs = two_merchants();
    pairs.retain(|(k, _)| !k.ends_with("BRAND_B__BASE_URL"));
    pairs.push((
        "REFUNDD__CTBC__MERCHANTS__BRAND_B__BASE_URL",
        "http://10.0.0.5/MicroPos",
    ));
    let e = Settings::load(&env(&pairs))
        .unwrap()
        .require_merchants()
        .unwrap_err();
    let text = about(&e, "ctbc.merchants.brand_b.base_url");
    assert!(text.contains("loopback"), "{text}");
    let text = refusal(
        &[("REFUNDD__CTBC__MERCHANTS__OUTLET__BASE_URL", "not a url")],
        "ctbc.merchants.outlet.base_url",
    );
    assert!(text.contains("not an https:// URL"), "{text}");
}

#[test]
fn two_merchants_with_one_merchant_id_are_refused() {
    let mut pairs = two_merchants();
    pairs.retain(|(k, _)| !k.ends_with("OUTLET__MER_ID"));
    pairs.push(("REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID", "1234567"));
    let text = refusal(&pairs, "ctbc.merchants.outlet.mer_id");
    assert!(
        text.contains("the same merchant id as ctbc.mer_id"),
        "{text}"
    );

    let mut pairs = two_merchants();
    pairs.retain(|(k, _)| !k.ends_with("OUTLET__MER_ID"));
    pairs.push(("REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID", "5550001"));
    let text = refusal(&pairs, "ctbc.merchants.outlet.mer_id");
    assert!(
        text.contains("the same merchant id as ctbc.merchants.brand_b.mer_id"),
        "{text}"
    );
}

/// No merchant's key or IV in any Debug output or any message, whatever
/// goes wrong beside them.
#[test]
fn no_merchants_key_or_iv_is_ever_shown() {
    let secrets = [KEY, IV, OUTLET_KEY, OUTLET_IV, BRAND_KEY, BRAND_IV];
    let shows_one = |text: &str| secrets.iter().find(|s| text.contains(*s)).copied();
    let sources = env(&two_merchants());
    let s = Settings::load(&sources).unwrap();
    let merchants = s.require_merchants().unwrap();
    let raw = RawSettings::load(&sources).unwrap();
    let debug = format!("{s:?} {s:#?} {sources:?} {raw:?} {raw:#?} {merchants:?} {merchants:#?}");
    assert_eq!(shows_one(&debug), None, "{debug}");
    assert!(
        debug.contains("outlet") && debug.contains("brand_b"),
        "{debug}"
    );

    // Everything that can go wrong around the two merchants' keys.
    let with = |changes: &[(&'static str, &'static str)]| {
        let mut pairs = two_merchants();
        pairs.retain(|(k, _)| !changes.iter().any(|(c, _)| c == k));
        pairs.extend_from_slice(changes);
        env(&pairs)
    };
    let wrongs: Vec<Sources> = vec![
        with(&[("REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID", "5550001")]),
        with(&[(
            "REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY",
            "OUTLETKEYOUTLETKEY",
        )]),
        with(&[("REFUNDD__CTBC__MERCHANTS__BRAND_B__IV", "brandb8!brandb8!")]),
        with(&[("REFUNDD__CTBC__MERCHANTS__BRAND_B__MACKEY", BRAND_KEY)]),
        with(&[("REFUNDD__CTBC__MERCHANTS__BRAND__B__MAC_KEY", BRAND_KEY)]),
        with(&[(
            "REFUNDD__CTBC__MERCHANTS__OUTLET__MAC_KEY_FILE",
            "/nonexistent",
        )]),
        with(&[(
            "REFUNDD__CTBC__MERCHANTS__BRAND_B__BASE_URL",
            "http://10.0.0.5/",
        )]),
        with(&[("REFUNDD__CTBC__BASE_URL", "")]),
        with(&[("REFUNDD__CTBC__MERCHANTS__OUTLET__IV", "")]),
    ];
    let mut messages = 0;
    for sources in wrongs {
        let err = match Settings::load(&sources) {
            Ok(s) => s.require_merchants().unwrap_err(),
            Err(e) => e,
        };
        messages += err.problems.len();
        let text = format!("{err}\n{err:?}");
        assert_eq!(shows_one(&text), None, "{text}");
    }
    assert!(messages >= 9, "every case went wrong: {messages}");
}
