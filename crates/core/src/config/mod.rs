//! Typed settings, read once at start-up from layered sources: built-in defaults,
//! `config/default.toml`, the file named by `--config`, then `REFUNDD__SECTION__KEY`
//! environment variables (and `DATABASE_URL`), then the secrets given as files
//! (`REFUNDD__..._FILE`, systemd credentials). Every name is checked before the
//! layering (`known`) and every value after it, so the rest of refundd only ever
//! sees settings that make sense, and none is lost to a misspelt name.

mod client;
mod error;
mod files;
mod known;
mod merchants;
mod raw;
mod rules;
mod secrets;

pub use error::{Problem, SettingsError};
pub use merchants::MerchantSettings;

use crate::ctbc::types::MerId;
use crate::domain::blackout::Blackout;
use crate::domain::cron::CronSchedule;
use raw::RawSettings;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default cron expression: second 0 of minute 0 of every second hour, Asia/Taipei.
pub const DEFAULT_CRON: &str = "0 0 */2 * * *";
/// The default reconciliation: 07:30 every day, Asia/Taipei, after the
/// bank's night batch and before the shop's finance people start.
pub const DEFAULT_RECONCILE_CRON: &str = "0 30 7 * * *";
/// Where the shipped defaults file is looked for, relative to the working directory.
pub const DEFAULT_FILE: &str = "config/default.toml";

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    /// The shop's statements (`shop.*`), or the built-in orders table's.
    pub shop: crate::store::ShopStatements,
    pub ctbc: CtbcSettings,
    pub schedule: ScheduleSettings,
    pub reconcile: ReconcileSettings,
    pub worker: WorkerSettings,
    pub http: HttpSettings,
    pub notify: NotifySettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// May carry a password, so it is kept secret from Debug output.
    pub url: Option<SecretString>,
    pub max_connections: u32,
    /// The schema that holds everything refundd keeps.
    pub schema: crate::store::Schema,
}

#[derive(Debug, Clone)]
pub struct CtbcSettings {
    pub base_url: Option<url::Url>,
    pub mer_id: Option<MerId>,
    pub mac_key: Option<SecretString>,
    pub iv: Option<SecretString>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub allow_insecure_http: bool,
    /// None: no cap.
    pub max_requests_per_sec: Option<NonZeroU32>,
    /// (RespCode, ErrCode) pairs of an inquiry refusal that mean "no such order".
    pub unknown_order_codes: Vec<(String, String)>,
    pub sw_revision: String,
    /// `[ctbc.merchants.NAME]`, by name: the shop's merchants other than the
    /// default one, whose id and keys are the fields above. Every other
    /// setting of this table is theirs too.
    pub merchants: Vec<MerchantSettings>,
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// Six-field cron expression (with seconds), read in Asia/Taipei time.
    pub cron: CronSchedule,
    pub blackout: Blackout,
}

/// `[reconcile]`: the reconciliation `refundd run` does on its own.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// Six-field cron expression, Asia/Taipei; None: `run` does not reconcile.
    pub cron: Option<CronSchedule>,
    /// How far back each run looks, by when refundd's work on an order ended.
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub batch_size: i64,
    pub lease: Duration,
    pub max_attempts: u32,
    pub shutdown_grace: Duration,
    /// How long an order whose money-moving call has an unknown outcome waits
    /// before a new inquiry may allow sending it again.
    pub recheck: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How many days refunds are watched until the bank settles them.
    pub settlement_watch_days: u32,
}

/// Telling people: when money whose fate is unknown is raised for a person.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// A money-moving call whose outcome is still unknown after this raises
    /// `refund.needs_attention`.
    pub attention_after: Duration,
    /// Where events are delivered; None: only the outbox and NOTIFY.
    pub webhook: Option<WebhookSettings>,
}

/// The operator's webhook receiver.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: url::Url,
    /// Signs every event; never shown.
    pub secret: SecretString,
    pub format: crate::notify::WebhookFormat,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url.as_str())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl WebhookSettings {
    pub fn webhook(&self) -> Result<crate::notify::Webhook, String> {
        crate::notify::Webhook::new(self.url.clone(), self.secret.clone(), self.format)
    }
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// None: the health and metrics endpoint is off.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, human-readable when it is.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// Where settings come from; tests build this by hand instead of touching the
/// process environment. Debug shows no value of the environment.
#[derive(Clone, Default)]
pub struct Sources {
    pub default_file: Option<PathBuf>,
    pub file: Option<PathBuf>,
    pub env: HashMap<String, String>,
}

/// The environment holds the MAC key, the IV and the database password: only
/// the names of the variables refundd reads are shown.
impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut read: Vec<&str> = self
            .env
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("REFUNDD__") || *k == "DATABASE_URL")
            .collect();
        read.sort_unstable();
        f.debug_struct("Sources")
            .field("default_file", &self.default_file)
            .field("file", &self.file)
            .field("env_names", &read)
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// The real sources: `config/default.toml` if present, `--config PATH`, the
    /// process environment.
    pub fn from_process(config_path: Option<&Path>) -> Self {
        Self {
            default_file: Some(PathBuf::from(DEFAULT_FILE)),
            file: config_path.map(Path::to_path_buf),
            env: std::env::vars().collect(),
        }
    }
}

impl Settings {
    /// Reads and checks every setting; names each bad one with its fix.
    pub fn load(sources: &Sources) -> Result<Settings, SettingsError> {
        let raw = RawSettings::load(sources)?;
        raw.validate()
    }

    /// Built-in defaults only (with no database and no bank configured).
    pub fn defaults() -> Result<Settings, SettingsError> {
        Self::load(&Sources::default())
    }

    /// The database URL, required by `run`, `once`, `migrate`, `status`, `request`, `retry`.
    pub fn require_database_url(&self) -> Result<&str, SettingsError> {
        self.database
            .url
            .as_ref()
            .map(|u| u.expose_secret())
            .ok_or_else(|| {
                SettingsError::one(Problem::new(
                    "database.url",
                    "is not set",
                    format!(
                        "it is postgres://user:password@host/dbname: {} (or DATABASE_URL)",
                        secrets::ways_to_give("database.url")
                    ),
                ))
            })
    }
}

#[cfg(test)]
mod tests;
