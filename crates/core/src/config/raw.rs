//! Settings as the `config` crate layers them, before any checking, and the one
//! function that turns them into typed settings or a list of problems.

use super::files::{check_toml, Role};
use super::known;
use super::merchants::RawMerchant;
use super::rules;
use super::secrets::{read_secret_files, ReadFile};
use super::{
    CtbcSettings, DatabaseSettings, HttpSettings, LogFormat, LogSettings, Problem,
    ReconcileSettings, ScheduleSettings, Settings, SettingsError, Sources, WorkerSettings,
    DEFAULT_CRON, DEFAULT_RECONCILE_CRON,
};
use crate::ctbc::client::longest_call;
use crate::ctbc::envelope::{IV_LEN, MAC_KEY_LEN};
use crate::ctbc::operation::DEFAULT_SW_REVISION;
use crate::ctbc::types::MerId;
use crate::domain::blackout::Blackout;
use crate::domain::cron::CronSchedule;
use chrono::Utc;
use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Debug, Deserialize)]
pub(super) struct RawSettings {
    database: RawDatabase,
    ctbc: RawCtbc,
    schedule: RawSchedule,
    reconcile: RawReconcile,
    worker: RawWorker,
    http: RawHttp,
    log: RawLog,
    #[serde(default)]
    shop: RawShop,
    notify: RawNotify,
    /// The names no setting has, found before layering (`known`).
    #[serde(skip)]
    unknown: Vec<Problem>,
}

#[derive(Deserialize)]
struct RawNotify {
    attention_after_secs: i64,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    format: String,
}

/// The webhook's secret signs every event: Debug says only whether it is set.
impl std::fmt::Debug for RawNotify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawNotify")
            .field("attention_after_secs", &self.attention_after_secs)
            .field("webhook_url", &self.webhook_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("format", &self.format)
            .finish()
    }
}

/// The shop's statements, exactly as written in the file or the environment.
#[derive(Debug, Default, Deserialize)]
struct RawShop {
    requests: Option<String>,
    on_refunded: Option<String>,
    on_failed: Option<String>,
    on_cancelled: Option<String>,
}

#[derive(Deserialize)]
struct RawDatabase {
    url: Option<String>,
    max_connections: i64,
    schema: String,
}

/// The URL may carry a password: Debug says only whether it is set.
impl std::fmt::Debug for RawDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDatabase")
            .field("url", &self.url.as_ref().map(|_| "[redacted]"))
            .field("max_connections", &self.max_connections)
            .field("schema", &self.schema)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawCtbc {
    base_url: Option<String>,
    mer_id: Option<String>,
    mac_key: Option<String>,
    iv: Option<String>,
    timeout_secs: i64,
    connect_timeout_secs: i64,
    allow_insecure_http: bool,
    max_requests_per_sec: i64,
    unknown_order_codes: String,
    sw_revision: String,
    /// `[ctbc.merchants.NAME]`: the shop's other merchants.
    #[serde(default)]
    merchants: BTreeMap<String, RawMerchant>,
}

impl std::fmt::Debug for RawCtbc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCtbc")
            .field("base_url", &self.base_url)
            .field("mer_id", &self.mer_id)
            .field("mac_key", &"[redacted]")
            .field("iv", &"[redacted]")
            .field("merchants", &self.merchants)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct RawSchedule {
    cron: String,
    blackout: String,
}

#[derive(Debug, Deserialize)]
struct RawReconcile {
    cron: String,
    window_days: i64,
}

#[derive(Debug, Deserialize)]
struct RawWorker {
    concurrency: i64,
    batch_size: i64,
    lease_secs: i64,
    max_attempts: i64,
    shutdown_grace_secs: i64,
    recheck_secs: i64,
    backoff_base_secs: i64,
    backoff_max_secs: i64,
    settlement_watch_days: i64,
}

#[derive(Debug, Deserialize)]
struct RawHttp {
    listen: String,
}

#[derive(Debug, Deserialize)]
struct RawLog {
    format: String,
}

/// Built-in defaults: the lowest layer. `config/default.toml` repeats them for
/// operators to read.
pub(super) const DEFAULTS: &[(&str, &str)] = &[
    ("database.max_connections", "10"),
    ("database.schema", crate::store::Schema::DEFAULT),
    ("ctbc.timeout_secs", "30"),
    ("ctbc.connect_timeout_secs", "10"),
    ("ctbc.allow_insecure_http", "false"),
    ("ctbc.max_requests_per_sec", "20"),
    ("ctbc.unknown_order_codes", "99:01"),
    ("ctbc.sw_revision", DEFAULT_SW_REVISION),
    ("schedule.cron", DEFAULT_CRON),
    ("schedule.blackout", ""),
    ("reconcile.cron", DEFAULT_RECONCILE_CRON),
    ("reconcile.window_days", "7"),
    ("worker.concurrency", "8"),
    ("worker.batch_size", "100"),
    ("worker.lease_secs", "120"),
    ("worker.max_attempts", "10"),
    ("worker.shutdown_grace_secs", "30"),
    ("worker.recheck_secs", "300"),
    ("worker.backoff_base_secs", "60"),
    ("worker.backoff_max_secs", "3600"),
    ("worker.settlement_watch_days", "14"),
    ("notify.attention_after_secs", "3600"),
    ("notify.format", "json"),
    ("http.listen", "127.0.0.1:9187"),
    ("log.format", "auto"),
];

impl RawSettings {
    /// The sources layered, once every name in them is checked: an unknown
    /// one is reported with whatever else is wrong, all at once.
    pub(super) fn load(sources: &Sources) -> Result<RawSettings, SettingsError> {
        let files = read_files(sources)?;
        let mut unknown: Vec<Problem> = files
            .iter()
            .flat_map(|f| known::in_file(&f.table, &f.path.display().to_string()))
            .collect();
        unknown.extend(known::in_env(&sources.env));
        let mut raw = layer(sources, &files).map_err(|e| e.after(&unknown))?;
        raw.unknown = unknown;
        Ok(raw)
    }

    /// Every section checked, every problem collected: typed settings only
    /// when there is none.
    pub(super) fn validate(self) -> Result<Settings, SettingsError> {
        let mut problems = self.unknown;
        let mut p = |setting: &str, problem: String, fix: &str| {
            problems.push(Problem::new(setting, problem, fix));
        };
        let database = database_settings(&mut p, self.database);
        let shop = shop_statements(&mut p, self.shop);
        let notify = notify_settings(&mut p, &self.notify);
        let ctbc = ctbc_settings(&mut p, self.ctbc);
        let (cron, blackout) = schedule_settings(&mut p, &self.schedule);
        let reconcile = reconcile_settings(&mut p, &self.reconcile, &blackout);
        let worker = worker_settings(&mut p, &self.worker, &ctbc);
        let http = http_settings(&mut p, &self.http);
        let log = log_settings(&mut p, &self.log);
        // A schedule that did not parse is among the problems.
        let Some(cron) = cron.filter(|_| problems.is_empty()) else {
            return Err(SettingsError { problems });
        };
        Ok(Settings {
            database,
            shop: shop.unwrap_or_else(crate::store::ShopStatements::builtin),
            ctbc,
            schedule: ScheduleSettings { cron, blackout },
            reconcile,
            worker,
            http,
            notify,
            log,
        })
    }
}

/// The settings files that exist, checked as TOML: the default file, then
/// the one given with `--config`, which must exist.
fn read_files(sources: &Sources) -> Result<Vec<ReadFile>, SettingsError> {
    let mut read = Vec::new();
    if let Some(path) = &sources.default_file {
        if let Some(table) = check_toml(path, Role::Default)? {
            read.push(ReadFile {
                path: path.clone(),
                table,
            });
        }
    }
    if let Some(path) = &sources.file {
        if !path.is_file() {
            return Err(SettingsError::one(Problem::new(
                "--config",
                format!(
                    "names {:?}, which is not a readable file",
                    path.display().to_string()
                ),
                "pass the path of an existing TOML settings file",
            )));
        }
        if let Some(table) = check_toml(path, Role::Given)? {
            read.push(ReadFile {
                path: path.clone(),
                table,
            });
        }
    }
    Ok(read)
}

/// Built-in defaults, then the files, the environment and the secrets read
/// from files, each over the one before.
fn layer(sources: &Sources, files: &[ReadFile]) -> Result<RawSettings, SettingsError> {
    let mut builder = Config::builder();
    for (key, value) in DEFAULTS {
        builder = builder
            .set_default(*key, *value)
            .map_err(|e| source_problem("(defaults)", e))?;
    }
    for file in files {
        builder = builder.add_source(File::from(file.path.as_path()).format(FileFormat::Toml));
    }
    let secret_files = read_secret_files(sources, files)?;
    // Only settings: `_FILE` variables name files, read above, and an unknown
    // name is among the problems already.
    let env: config::Map<String, String> = sources
        .env
        .iter()
        .filter(|(k, _)| known::is_setting_variable(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("REFUNDD")
            .prefix_separator("__")
            .separator("__")
            .source(Some(env)),
    );
    // DATABASE_URL is the convention of many tools; REFUNDD__DATABASE__URL wins.
    if !sources.env.contains_key("REFUNDD__DATABASE__URL") {
        if let Some(url) = sources.env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
            builder = builder
                .set_override("database.url", url.as_str())
                .map_err(|e| source_problem("database.url", e))?;
        }
    }
    for (setting, value) in secret_files {
        builder = builder
            .set_override(&setting, value)
            .map_err(|e| source_problem(&setting, e))?;
    }
    let config = builder
        .build()
        .map_err(|e| source_problem("(settings files)", e))?;
    config
        .try_deserialize::<RawSettings>()
        .map_err(|e| source_problem("(settings)", e))
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

/// `[database]`: the URL (never shown: it may hold a password), the pool, the schema.
fn database_settings(p: &mut impl FnMut(&str, String, &str), raw: RawDatabase) -> DatabaseSettings {
    let url = raw.url.filter(|u| !u.trim().is_empty());
    if let Some(u) = &url {
        if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
            p(
                "database.url",
                "is not a postgres:// URL (value hidden: it may hold a password)".into(),
                "use postgres://user:password@host:5432/dbname",
            );
        }
    }
    let max_connections = in_range(p, "database.max_connections", raw.max_connections, 1, 1000);
    let schema = crate::store::Schema::parse(&raw.schema)
        .map_err(|e| {
            p(
                "database.schema",
                e,
                "name the schema that holds refundd's own tables, e.g. refundd",
            )
        })
        .ok();
    DatabaseSettings {
        url: url.map(SecretString::from),
        max_connections: max_connections as u32,
        schema: schema.unwrap_or_default(),
    }
}

/// `[notify]`: when a person is told, and the webhook.
fn notify_settings(
    p: &mut impl FnMut(&str, String, &str),
    raw: &RawNotify,
) -> super::NotifySettings {
    let webhook = webhook_settings(p, raw);
    let attention_after = in_range(
        p,
        "notify.attention_after_secs",
        raw.attention_after_secs,
        1,
        30 * 86_400,
    );

    super::NotifySettings {
        attention_after: Duration::from_secs(attention_after.max(1) as u64),
        webhook,
    }
}

/// `[ctbc]`: where the bank is, who the merchant is, the keys, the limits,
/// and the shop's other merchants (`merchants`).
fn ctbc_settings(p: &mut impl FnMut(&str, String, &str), raw: RawCtbc) -> CtbcSettings {
    let base_url = base_url(p, "ctbc.base_url", raw.base_url.as_deref());
    let mer_id = mer_id(p, "ctbc.mer_id", raw.mer_id.as_deref());
    let mac_key = secret(
        p,
        "ctbc.mac_key",
        raw.mac_key,
        MAC_KEY_LEN,
        "the 24-character MAC key the bank issued",
    );
    let iv = secret(
        p,
        "ctbc.iv",
        raw.iv,
        IV_LEN,
        "the 8-character IV the bank issued",
    );
    let timeout_secs = in_range(p, "ctbc.timeout_secs", raw.timeout_secs, 1, 600);
    let connect_timeout_secs = in_range(
        p,
        "ctbc.connect_timeout_secs",
        raw.connect_timeout_secs,
        1,
        600,
    );
    let rps = in_range(
        p,
        "ctbc.max_requests_per_sec",
        raw.max_requests_per_sec,
        0,
        100_000,
    );
    let mut unknown_order_codes = Vec::new();
    for pair in raw
        .unknown_order_codes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match pair.split_once(':') {
            Some((r, e)) if !r.trim().is_empty() => {
                unknown_order_codes.push((r.trim().to_string(), e.trim().to_string()))
            }
            _ => p(
                "ctbc.unknown_order_codes",
                format!("has {pair:?}, not RespCode:ErrCode"),
                "list pairs like 99:01,99:02",
            ),
        }
    }
    let sw_revision = raw.sw_revision;
    if sw_revision.is_empty() || sw_revision.len() > 64 {
        p(
            "ctbc.sw_revision",
            format!("is {sw_revision:?}"),
            "use a short client label, 1 to 64 characters",
        );
    }

    let merchants = super::merchants::checked(p, raw.merchants, mer_id.as_ref());

    CtbcSettings {
        base_url,
        mer_id,
        mac_key,
        iv,
        timeout: secs(timeout_secs),
        connect_timeout: secs(connect_timeout_secs),
        allow_insecure_http: raw.allow_insecure_http,
        max_requests_per_sec: NonZeroU32::new(rps as u32),
        unknown_order_codes,
        sw_revision,
        merchants,
    }
}

/// A bank's base URL (`setting`), when one is given.
pub(super) fn base_url(
    p: &mut impl FnMut(&str, String, &str),
    setting: &str,
    raw: Option<&str>,
) -> Option<url::Url> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty())?;
    match url::Url::parse(raw) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(u),
        _ => {
            p(
                setting,
                format!("is {raw:?}, not an https:// URL"),
                "use the base URL the bank gave you, e.g. https://testepos.ctbcbank.com/MicroPos",
            );
            None
        }
    }
}

/// A merchant id (`setting`), when one is given.
pub(super) fn mer_id(
    p: &mut impl FnMut(&str, String, &str),
    setting: &str,
    raw: Option<&str>,
) -> Option<MerId> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty())?;
    match MerId::parse(raw) {
        Ok(m) => Some(m),
        Err(e) => {
            p(
                setting,
                format!("is invalid: {}", e.problem),
                "use the merchant id (digits) the bank issued",
            );
            None
        }
    }
}

/// `[schedule]`: the cron (None when it does not parse) and the blackout windows.
fn schedule_settings(
    p: &mut impl FnMut(&str, String, &str),
    raw: &RawSchedule,
) -> (Option<CronSchedule>, Blackout) {
    let raw_cron = raw.cron.trim();
    let cron = match CronSchedule::parse(raw_cron) {
        Ok(c) => Some(c),
        Err(e) => {
            p(
                "schedule.cron",
                format!("is {raw_cron:?}, not a six-field cron expression with seconds ({e})"),
                "use e.g. \"0 0 */2 * * *\" (every two hours, Asia/Taipei)",
            );
            None
        }
    };
    let blackout = match Blackout::parse(&raw.blackout) {
        Ok(b) => b,
        Err(e) => {
            p(
                "schedule.blackout",
                e,
                "list Asia/Taipei windows like 23:30-01:30,12:00-12:30, or leave it empty",
            );
            Blackout::default()
        }
    };
    if let Some(cron) = &cron {
        rules::cron_fires_outside_blackout(p, &rules::PASSES, cron, &blackout, Utc::now());
    }

    (cron, blackout)
}

/// `[reconcile]`: when `run` reconciles with the bank (`off`: never; the
/// command still does) and how many days back each run looks.
fn reconcile_settings(
    p: &mut impl FnMut(&str, String, &str),
    raw: &RawReconcile,
    blackout: &Blackout,
) -> ReconcileSettings {
    let days = in_range(p, "reconcile.window_days", raw.window_days, 1, 366);
    let window = Duration::from_secs(days as u64 * 86_400);
    let text = raw.cron.trim();
    if text.eq_ignore_ascii_case("off") {
        return ReconcileSettings { cron: None, window };
    }
    let cron = match CronSchedule::parse(text) {
        Ok(cron) => {
            let of = rules::CronOf {
                setting: "reconcile.cron",
                runs: "reconciliation",
                loss: "run",
                example: "\"0 30 7 * * *\" (07:30 every day, Asia/Taipei)",
            };
            rules::cron_fires_outside_blackout(p, &of, &cron, blackout, Utc::now());
            Some(cron)
        }
        Err(e) => {
            p(
                "reconcile.cron",
                format!("is {text:?}, not a six-field cron expression with seconds ({e})"),
                "use e.g. \"0 30 7 * * *\" (07:30 every day, Asia/Taipei), or \"off\"",
            );
            None
        }
    };
    ReconcileSettings { cron, window }
}

/// `[worker]`: concurrency, leases, attempts and backoff; the lease must
/// outlast one bank call, its wait for the rate limit included.
fn worker_settings(
    p: &mut impl FnMut(&str, String, &str),
    w: &RawWorker,
    ctbc: &CtbcSettings,
) -> WorkerSettings {
    let concurrency = in_range(p, "worker.concurrency", w.concurrency, 1, 1024);
    let batch_size = in_range(p, "worker.batch_size", w.batch_size, 1, 100_000);
    let lease_secs = in_range(p, "worker.lease_secs", w.lease_secs, 1, 86_400);
    let max_attempts = in_range(p, "worker.max_attempts", w.max_attempts, 1, 1000);
    let grace = in_range(
        p,
        "worker.shutdown_grace_secs",
        w.shutdown_grace_secs,
        0,
        3600,
    );
    let recheck = in_range(p, "worker.recheck_secs", w.recheck_secs, 0, 86_400);
    if recheck == w.recheck_secs {
        rules::recheck_outlasts_lease(p, recheck, lease_secs);
    }
    let backoff_base = in_range(
        p,
        "worker.backoff_base_secs",
        w.backoff_base_secs,
        0,
        86_400,
    );
    let backoff_max = in_range(
        p,
        "worker.backoff_max_secs",
        w.backoff_max_secs,
        0,
        7 * 86_400,
    );
    let watch_days = in_range(
        p,
        "worker.settlement_watch_days",
        w.settlement_watch_days,
        0,
        365,
    );
    let longest = longest_call(
        ctbc.timeout,
        ctbc.max_requests_per_sec,
        concurrency.max(1) as usize,
    );
    // The engine sends a call only while the lease certainly outlasts it.
    if !crate::domain::record::outlasts(Duration::ZERO, longest, secs(lease_secs)) {
        p(
            "worker.lease_secs",
            format!(
                "is {lease_secs}, which cannot outlast one bank call with a tenth of the lease to spare ({:.1} s: ctbc.timeout_secs, plus worker.concurrency calls waiting for ctbc.max_requests_per_sec)",
                longest.as_secs_f64()
            ),
            "make the lease longer than one bank call can take by more than a tenth of the lease",
        );
    }
    if backoff_max < backoff_base {
        p(
            "worker.backoff_max_secs",
            format!("is {backoff_max}, less than worker.backoff_base_secs ({backoff_base})"),
            "make the longest backoff at least the first",
        );
    }

    WorkerSettings {
        concurrency: concurrency as usize,
        batch_size,
        lease: secs(lease_secs),
        max_attempts: max_attempts as u32,
        shutdown_grace: secs(grace),
        recheck: secs(recheck),
        backoff_base: secs(backoff_base),
        backoff_max: secs(backoff_max),
        settlement_watch_days: watch_days as u32,
    }
}

/// `[http]`: where health and metrics listen, or off.
fn http_settings(p: &mut impl FnMut(&str, String, &str), raw: &RawHttp) -> HttpSettings {
    let raw_listen = raw.listen.trim();
    let listen = if raw_listen.eq_ignore_ascii_case("off") || raw_listen.is_empty() {
        None
    } else {
        match raw_listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                p(
                    "http.listen",
                    format!("is {raw_listen:?}, not ADDRESS:PORT"),
                    "use e.g. 127.0.0.1:9187, 127.0.0.1:0 for a free port, or off",
                );
                None
            }
        }
    };

    HttpSettings { listen }
}

/// `[log]`: the format of the log lines.
fn log_settings(p: &mut impl FnMut(&str, String, &str), raw: &RawLog) -> LogSettings {
    let format = match raw.format.trim().to_ascii_lowercase().as_str() {
        "auto" => LogFormat::Auto,
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        other => {
            p(
                "log.format",
                format!("is {other:?}"),
                "use auto, json or pretty",
            );
            LogFormat::Auto
        }
    };

    LogSettings { format }
}

/// The shop's statements: all unset for the built-in orders table; otherwise
/// `requests` and `on_refunded` together. Kept exactly as written.
fn shop_statements(
    p: &mut impl FnMut(&str, String, &str),
    raw: RawShop,
) -> Option<crate::store::ShopStatements> {
    let set = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let (requests, on_refunded, on_failed) =
        (set(raw.requests), set(raw.on_refunded), set(raw.on_failed));
    let on_cancelled = set(raw.on_cancelled);
    match (requests, on_refunded) {
        (Some(requests), Some(on_refunded)) => Some(
            crate::store::ShopStatements::of_shop(requests, on_refunded, on_failed)
                .with_on_cancelled(on_cancelled),
        ),
        (Some(_), None) => {
            p(
                "shop.on_refunded",
                "is not set, but shop.requests is: refundd must write back every refund it makes".into(),
                "set shop.on_refunded to the statement that marks an order refunded ($1 order_no, $2 amount, $3 method)",
            );
            None
        }
        (None, Some(_)) => {
            p(
                "shop.requests",
                "is not set, but shop.on_refunded is".into(),
                "set shop.requests to the query that lists the orders to refund, or unset shop.* to use the built-in orders table",
            );
            None
        }
        (None, None) => {
            for (name, set) in [
                ("shop.on_failed", on_failed.is_some()),
                ("shop.on_cancelled", on_cancelled.is_some()),
            ] {
                if set {
                    p(
                        name,
                        "is set without shop.requests and shop.on_refunded".into(),
                        "set all of shop.requests and shop.on_refunded, or unset shop.* to use the built-in orders table",
                    );
                }
            }
            None
        }
    }
}

/// The webhook: `https` (plain `http` only to a loopback address), a secret of at
/// least 16 characters to sign with, and a format.
fn webhook_settings(
    p: &mut impl FnMut(&str, String, &str),
    raw: &RawNotify,
) -> Option<super::WebhookSettings> {
    use crate::notify::WebhookFormat;
    let format = match raw.format.as_str() {
        "json" => WebhookFormat::Json,
        "slack" => WebhookFormat::Slack,
        other => {
            p(
                "notify.format",
                format!("is {other:?}"),
                "use json (the event as JSON, signed) or slack (a chat message body)",
            );
            WebhookFormat::Json
        }
    };
    let url = raw
        .webhook_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())?;
    let url = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            p(
                "notify.webhook_url",
                format!("is not a URL: {e}"),
                "use https://host/path",
            );
            return None;
        }
    };
    let loopback = url.host().is_some_and(|h| crate::outbound::is_loopback(&h));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        p(
            "notify.webhook_url",
            format!(
                "uses {}:// to {}, which is not a loopback address",
                url.scheme(),
                url.host_str().unwrap_or("no host")
            ),
            &format!(
                "use https://, or plain http:// only to {}",
                crate::outbound::LOOPBACK_FIX
            ),
        );
        return None;
    }
    let secret = raw.webhook_secret.clone().filter(|s| !s.is_empty());
    match secret {
        Some(s) if s.len() >= 16 => Some(super::WebhookSettings {
            url,
            secret: SecretString::from(s),
            format,
        }),
        Some(s) => {
            p(
                "notify.webhook_secret",
                format!("has {} characters (value hidden)", s.len()),
                "use a random secret of at least 16 characters, shared with the receiver",
            );
            None
        }
        None => {
            p(
                "notify.webhook_secret",
                "is not set, but notify.webhook_url is".into(),
                &format!(
                    "the receiver checks every event's signature with it: {}",
                    super::secrets::ways_to_give("notify.webhook_secret")
                ),
            );
            None
        }
    }
}

fn in_range(
    p: &mut impl FnMut(&str, String, &str),
    setting: &str,
    value: i64,
    min: i64,
    max: i64,
) -> i64 {
    if value < min || value > max {
        p(
            setting,
            format!("is {value}, outside {min}..={max}"),
            &format!("use a whole number from {min} to {max}"),
        );
        value.clamp(min, max)
    } else {
        value
    }
}

/// A secret of fixed length; its value never appears in a message.
pub(super) fn secret(
    p: &mut impl FnMut(&str, String, &str),
    setting: &str,
    value: Option<String>,
    len: usize,
    what: &str,
) -> Option<SecretString> {
    let value = value.filter(|v| !v.is_empty())?;
    if value.len() != len || !value.is_ascii() {
        p(
            setting,
            format!(
                "must be {len} ASCII characters, it has {} bytes (value hidden)",
                value.len()
            ),
            &format!("set it to {what}"),
        );
        return None;
    }
    Some(SecretString::from(value))
}

fn source_problem(setting: &str, e: config::ConfigError) -> SettingsError {
    // The config crate names the key and the expected type; secrets cannot
    // appear here since every secret is read as a string.
    let key = match &e {
        config::ConfigError::Type { key: Some(k), .. } => k.clone(),
        config::ConfigError::NotFound(k) => k.clone(),
        // The parser's message quotes the file's text; the files were checked
        // before layering, so this is only a file changed since.
        config::ConfigError::FileParse { uri, .. } => {
            return SettingsError::one(Problem::new(
                setting,
                format!(
                    "could not be read: {} is not valid TOML (the text is not shown: it may hold a secret)",
                    uri.as_deref().unwrap_or("a settings file")
                ),
                "correct the file's TOML syntax",
            ))
        }
        _ => setting.to_string(),
    };
    SettingsError::one(Problem::new(
        &key,
        format!("could not be read: {e}"),
        "correct the value's type or the file's TOML syntax",
    ))
}
