//! `refundd sim` on the command line (or the environment, for docker compose):
//! options into a checked SimConfig, then run until SIGINT or SIGTERM. The keys
//! and IVs are never options: see keys.rs.

use crate::domain::daily_window::DailyWindow;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::keys::SecretSource;
use super::transactions_file;
use crate::ctbc::envelope::{IV_LEN, MAC_KEY_LEN};
use crate::ctbc::types::MerId;

use super::{
    FaultPlan, SimConfig, SimError, SimMerchant, SimSecret, SimServer, REFERENCE_IV,
    REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};

/// Options of `refundd sim`. Debug leaves out the keys and IVs.
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// Address and port to listen on.
    #[arg(long, env = "REFUNDD_SIM_LISTEN", default_value = "127.0.0.1:8990")]
    pub listen: SocketAddr,
    /// Allow listening on, and admin calls from, addresses other than loopback.
    #[arg(long, env = "REFUNDD_SIM_ALLOW_NON_LOOPBACK")]
    pub allow_non_loopback: bool,
    /// Merchant id the simulated bank accepts (default: TEST-ONLY reference value).
    #[arg(long, env = "REFUNDD_SIM_MER_ID", default_value = REFERENCE_MER_ID)]
    pub mer_id: String,
    /// File holding the 24-character MAC key, readable by its owner only. Or
    /// set REFUNDD_SIM_MAC_KEY. Neither: the TEST-ONLY reference value.
    #[arg(long, env = "REFUNDD_SIM_MAC_KEY_FILE", value_name = "PATH")]
    pub mac_key_file: Option<PathBuf>,
    /// File holding the 8-character IV, readable by its owner only. Or set
    /// REFUNDD_SIM_IV. Neither: the TEST-ONLY reference value.
    #[arg(long, env = "REFUNDD_SIM_IV_FILE", value_name = "PATH")]
    pub iv_file: Option<PathBuf>,
    /// A further merchant the simulated bank serves, with keys of its own:
    /// MERID alone, its MAC key and IV then in `REFUNDD_SIM_MAC_KEY_<MERID>` and
    /// `REFUNDD_SIM_IV_<MERID>`; or MERID:KEY_FILE:IV_FILE, files readable by
    /// their owner only. Repeated or comma-separated.
    #[arg(
        long = "other-merchant",
        env = "REFUNDD_SIM_OTHER_MERCHANTS",
        value_delimiter = ',',
        value_name = "MERID[:KEY_FILE:IV_FILE]"
    )]
    pub other_merchants: Vec<String>,
    /// Seed of the fault generator, so a run can be replayed.
    #[arg(long, env = "REFUNDD_SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Fault plan as JSON, or @FILE to read it from a file.
    #[arg(long, env = "REFUNDD_SIM_FAULTS")]
    pub faults: Option<String>,
    /// Run the capture batch every this many seconds (default: only when asked
    /// through the admin API).
    #[arg(long, env = "REFUNDD_SIM_BATCH_EVERY_SECS")]
    pub batch_every_secs: Option<u64>,
    /// How long transactions stay in the running batch (11/21) when it runs on the clock.
    #[arg(long, env = "REFUNDD_SIM_BATCH_DURATION_SECS", default_value_t = 60)]
    pub batch_duration_secs: u64,
    /// Daily maintenance windows HH:MM-HH:MM in Asia/Taipei time, comma-separated
    /// or repeated; a window may cross midnight.
    #[arg(long, env = "REFUNDD_SIM_MAINTENANCE", value_delimiter = ',')]
    pub maintenance: Vec<String>,
    /// The shop's transactions to start with: a JSON array or CSV with the
    /// header order_no,xid,auth_code,amount,state (optionally currency and
    /// mer_id); amount in whole NT$, state a CurrentState code such as 1, 10
    /// or 12, mer_id the merchant's (default: --mer-id's).
    #[arg(long, env = "REFUNDD_SIM_TRANSACTIONS", value_name = "FILE")]
    pub transactions: Option<PathBuf>,
}

/// The variables holding the simulator's key and IV themselves.
pub const MAC_KEY_VAR: &str = "REFUNDD_SIM_MAC_KEY";
pub const IV_VAR: &str = "REFUNDD_SIM_IV";

impl SimArgs {
    /// Checks the options, with the key and IV from the process environment
    /// when no file is named; the error names the option at fault.
    pub fn config(&self) -> Result<SimConfig, String> {
        self.config_with_env(|name| std::env::var(name).ok())
    }

    /// As `config`, reading variables through `env`.
    pub fn config_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<SimConfig, String> {
        let mer_id = MerId::parse(&self.mer_id).map_err(|e| format!("--mer-id: {}", e.problem))?;
        let (mac_key, iv) = self.secrets(&env)?;
        let other_merchants = self
            .other_merchants
            .iter()
            .filter(|m| !m.trim().is_empty())
            .map(|m| other_merchant(m, &env))
            .collect::<Result<Vec<_>, _>>()?;
        let faults = match self.faults.as_deref() {
            None => FaultPlan::none(),
            Some(spec) => {
                let text = match spec.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|e| format!("--faults: cannot read {path}: {e}"))?,
                    None => spec.to_string(),
                };
                FaultPlan::from_json(&text).map_err(|e| format!("--faults: {e}"))?
            }
        };
        if self.batch_every_secs == Some(0) {
            return Err("--batch-every-secs: must be at least 1".into());
        }
        let maintenance = self
            .maintenance
            .iter()
            .filter(|w| !w.trim().is_empty())
            .map(|w| w.parse::<DailyWindow>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--maintenance: {e}"))?;
        let transactions = match &self.transactions {
            Some(path) => transactions_file::read(path).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        Ok(SimConfig {
            listen: self.listen,
            allow_non_loopback: self.allow_non_loopback,
            mer_id,
            mac_key,
            iv,
            other_merchants,
            seed: self.seed,
            faults,
            batch_every: self.batch_every_secs.map(Duration::from_secs),
            batch_duration: Duration::from_secs(self.batch_duration_secs),
            maintenance,
            transactions,
        })
    }

    fn secrets(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(SimSecret, SimSecret), String> {
        let mac_key = SecretSource {
            option: "--mac-key-file",
            file: self.mac_key_file.as_deref(),
            var: MAC_KEY_VAR,
            value: env(MAC_KEY_VAR),
            default: Some(REFERENCE_MAC_KEY),
            len: MAC_KEY_LEN,
        }
        .resolve()?;
        let iv = SecretSource {
            option: "--iv-file",
            file: self.iv_file.as_deref(),
            var: IV_VAR,
            value: env(IV_VAR),
            default: Some(REFERENCE_IV),
            len: IV_LEN,
        }
        .resolve()?;
        Ok((mac_key, iv))
    }
}

/// One `--other-merchant`: `MERID`, its keys in the environment, or
/// `MERID:KEY_FILE:IV_FILE`. A further merchant has no default keys.
fn other_merchant(
    spec: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<SimMerchant, String> {
    let mut parts = spec.trim().splitn(3, ':');
    let named = parts.next().unwrap_or_default();
    let mer_id = MerId::parse(named)
        .map_err(|e| format!("--other-merchant {named:?}: the MERID: {}", e.problem))?;
    let (key_file, iv_file) = match (parts.next(), parts.next()) {
        (None, None) => (None, None),
        (Some(key), Some(iv)) if !key.is_empty() && !iv.is_empty() => {
            (Some(Path::new(key)), Some(Path::new(iv)))
        }
        _ => {
            return Err(format!(
                "--other-merchant {mer_id}: write the MERID alone (its keys in the environment) or MERID:KEY_FILE:IV_FILE"
            ))
        }
    };
    let (key_var, iv_var) = (
        format!("{MAC_KEY_VAR}_{mer_id}"),
        format!("{IV_VAR}_{mer_id}"),
    );
    let (key_option, iv_option) = (
        format!("--other-merchant {mer_id} (its MAC key)"),
        format!("--other-merchant {mer_id} (its IV)"),
    );
    let mac_key = SecretSource {
        option: &key_option,
        file: key_file,
        var: &key_var,
        value: env(&key_var),
        default: None,
        len: MAC_KEY_LEN,
    }
    .resolve()?;
    let iv = SecretSource {
        option: &iv_option,
        file: iv_file,
        var: &iv_var,
        value: env(&iv_var),
        default: None,
        len: IV_LEN,
    }
    .resolve()?;
    Ok(SimMerchant {
        mer_id,
        mac_key,
        iv,
    })
}

/// Runs the simulator until SIGINT or SIGTERM. Bad options: a message naming
/// the option and exit status 2.
pub async fn run_cli(args: SimArgs) -> ExitCode {
    // The caller may already have set up logging; then this does nothing.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let cfg = match args.config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("refundd sim: {e}");
            return ExitCode::from(2);
        }
    };
    let reference = |m: &SimMerchant| {
        m.mer_id.as_str() == REFERENCE_MER_ID
            || m.mac_key == REFERENCE_MAC_KEY
            || m.iv == REFERENCE_IV
    };
    if reference(&cfg.first_merchant()) || cfg.other_merchants.iter().any(reference) {
        tracing::warn!(
            "using the protocol document's reference MERID/MAC key/IV: TEST-ONLY values, never a real merchant's"
        );
    }
    for w in &cfg.maintenance {
        tracing::info!(window = %w, "maintenance window (Asia/Taipei)");
    }
    if let Some(file) = &args.transactions {
        let file = file.display().to_string();
        let loaded = cfg.transactions.len();
        tracing::info!(loaded, %file, "transactions loaded before the first call");
    }
    let server = match SimServer::start(cfg).await {
        Ok(s) => s,
        Err(e @ SimError::NonLoopbackListen(_))
        | Err(e @ SimError::Keys { .. })
        | Err(e @ SimError::MerchantTwice(_))
        | Err(e @ SimError::Faults(_))
        | Err(e @ SimError::Transactions(_)) => {
            eprintln!("refundd sim: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("refundd sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    wait_for_stop().await;
    tracing::info!("stopping the bank simulator");
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn args(extra: &[&str]) -> Result<SimArgs, clap::Error> {
        let mut v = vec!["sim"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).map(|c| c.sim)
    }

    /// The options' checks with no REFUNDD_SIM_MAC_KEY or REFUNDD_SIM_IV set.
    fn config(extra: &[&str]) -> Result<SimConfig, String> {
        args(extra).unwrap().config_with_env(|_| None)
    }

    /// A file holding `text`, with the given mode.
    fn secret_file(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    fn path(f: &tempfile::NamedTempFile) -> &str {
        f.path().to_str().unwrap()
    }

    #[test]
    fn keys_on_the_command_line_are_refused() {
        for flag in ["--mac-key", "--iv"] {
            let e = args(&[flag, "QWERTYUIOPASDFGHJKLZXCVB"]).err().unwrap();
            assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{flag}");
        }
    }

    #[test]
    fn key_and_iv_files_with_a_trailing_newline() {
        let key = secret_file("QWERTYUIOPASDFGHJKLZXCVB\n", 0o600);
        let iv = secret_file("iv345678\r\n", 0o400);
        let cfg = config(&["--mac-key-file", path(&key), "--iv-file", path(&iv)]).unwrap();
        assert_eq!(cfg.mac_key, "QWERTYUIOPASDFGHJKLZXCVB");
        assert_eq!(cfg.iv, "iv345678");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        for mode in [0o640, 0o604, 0o644] {
            let key = secret_file("QWERTYUIOPASDFGHJKLZXCVB", mode);
            let e = config(&["--mac-key-file", path(&key)]).unwrap_err();
            assert!(e.starts_with("--mac-key-file"), "{e}");
            assert!(
                e.contains("group or others") && e.contains("chmod 600"),
                "{e}"
            );
        }
        let iv = secret_file("iv345678", 0o644);
        let e = config(&["--iv-file", path(&iv)]).unwrap_err();
        assert!(e.starts_with("--iv-file"), "{e}");
    }

    #[test]
    fn key_and_iv_from_the_environment() {
        let env = |name: &str| match name {
            "REFUNDD_SIM_MAC_KEY" => Some("QWERTYUIOPASDFGHJKLZXCVB".to_string()),
            "REFUNDD_SIM_IV" => Some("iv345678".to_string()),
            _ => None,
        };
        let cfg = args(&[]).unwrap().config_with_env(env).unwrap();
        assert_eq!(cfg.mac_key, "QWERTYUIOPASDFGHJKLZXCVB");
        assert_eq!(cfg.iv, "iv345678");
        // A file and a value for the same secret: which one was meant is unclear.
        let key = secret_file("QWERTYUIOPASDFGHJKLZXCVB", 0o600);
        let e = args(&["--mac-key-file", path(&key)])
            .unwrap()
            .config_with_env(env)
            .unwrap_err();
        assert!(e.contains("REFUNDD_SIM_MAC_KEY"), "{e}");
    }

    #[test]
    fn debug_output_never_shows_the_key_or_iv() {
        let key = secret_file("QWERTYUIOPASDFGHJKLZXCVB", 0o600);
        let iv = secret_file("iv345678", 0o600);
        let a = args(&["--mac-key-file", path(&key), "--iv-file", path(&iv)]).unwrap();
        let cfg = a.config_with_env(|_| None).unwrap();
        let text = format!("{a:?} {cfg:?}");
        assert!(
            !text.contains("QWERTYUIOPASDFGHJKLZXCVB") && !text.contains("iv345678"),
            "{text}"
        );
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let cfg = config(&[]).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8990");
        assert_eq!(cfg.mer_id.as_str(), REFERENCE_MER_ID);
        assert_eq!(cfg.mac_key, REFERENCE_MAC_KEY);
        assert_eq!(cfg.iv, REFERENCE_IV);
        assert_eq!(cfg.faults, FaultPlan::none());
        assert!(cfg.batch_every.is_none());
    }

    #[test]
    fn bad_options_name_the_option() {
        let short = secret_file("short", 0o600);
        let e = config(&["--mac-key-file", path(&short)]).unwrap_err();
        assert!(
            e.starts_with("--mac-key-file") && !e.contains("short"),
            "{e}"
        );
        let e = config(&["--iv-file", "/nonexistent/iv"]).unwrap_err();
        assert!(e.starts_with("--iv-file"), "{e}");
        let e = config(&["--mer-id", "12a"]).unwrap_err();
        assert!(e.starts_with("--mer-id"), "{e}");
        let e = config(&["--faults", "{nope"]).unwrap_err();
        assert!(e.starts_with("--faults"), "{e}");
        let e = config(&["--faults", "@/nonexistent/plan.json"]).unwrap_err();
        assert!(e.starts_with("--faults"), "{e}");
        let e = config(&["--maintenance", "02:00-04:00,25:00-26:00"]).unwrap_err();
        assert!(e.starts_with("--maintenance"), "{e}");
        assert!(args(&["--listen", "nowhere"]).is_err());
    }

    #[test]
    fn options_reach_the_config() {
        let cfg = config(&[
            "--listen",
            "0.0.0.0:9000",
            "--allow-non-loopback",
            "--seed",
            "42",
            "--faults",
            r#"{"rules":[{"operation":"refund","p_reset":0.5}]}"#,
            "--batch-every-secs",
            "3600",
            "--maintenance",
            "02:00-04:00",
            "--maintenance",
            "23:30-00:15",
        ])
        .unwrap();
        assert!(cfg.allow_non_loopback);
        assert_eq!(cfg.seed, 42);
        assert_eq!(cfg.faults.rules.len(), 1);
        assert_eq!(cfg.batch_every, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.maintenance.len(), 2);
    }

    #[test]
    fn other_merchants_with_keys_from_the_environment_or_files() {
        let key = secret_file("ASDFGHJKLZXCVBNMQWERTYUI\n", 0o600);
        let iv = secret_file("iv876543", 0o600);
        let file_spec = format!("7777777:{}:{}", path(&key), path(&iv));
        let env = |name: &str| match name {
            "REFUNDD_SIM_MAC_KEY_7654321" => Some("QWERTYUIOPASDFGHJKLZXCVB".to_string()),
            "REFUNDD_SIM_IV_7654321" => Some("iv345678".to_string()),
            _ => None,
        };
        let a = args(&[
            "--other-merchant",
            "7654321",
            "--other-merchant",
            &file_spec,
        ])
        .unwrap();
        let cfg = a.config_with_env(env).unwrap();
        let merchants: Vec<(&str, &str, &str)> = cfg
            .other_merchants
            .iter()
            .map(|m| (m.mer_id.as_str(), &*m.mac_key, &*m.iv))
            .collect();
        assert_eq!(
            merchants,
            [
                ("7654321", "QWERTYUIOPASDFGHJKLZXCVB", "iv345678"),
                ("7777777", "ASDFGHJKLZXCVBNMQWERTYUI", "iv876543")
            ]
        );
        assert_eq!(
            cfg.mer_id.as_str(),
            REFERENCE_MER_ID,
            "the first stays first"
        );
        let text = format!("{a:?} {cfg:?}");
        for secret in [
            "QWERTYUIOPASDFGHJKLZXCVB",
            "ASDFGHJKLZXCVBNMQWERTYUI",
            "iv345678",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn another_merchant_s_keys_must_be_given_and_kept_private() {
        // No default keys for a further merchant.
        let e = config(&["--other-merchant", "7654321"]).unwrap_err();
        assert!(
            e.starts_with("--other-merchant 7654321") && e.contains("REFUNDD_SIM_MAC_KEY_7654321"),
            "{e}"
        );
        let key = secret_file("ASDFGHJKLZXCVBNMQWERTYUI", 0o644);
        let iv = secret_file("iv876543", 0o600);
        let e = config(&[
            "--other-merchant",
            &format!("7654321:{}:{}", path(&key), path(&iv)),
        ])
        .unwrap_err();
        assert!(e.contains("group or others"), "{e}");
        for bad in ["76a", "7654321:only-one-file", "7654321::"] {
            let e = config(&["--other-merchant", bad]).unwrap_err();
            assert!(e.starts_with("--other-merchant"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn run_cli_exits_2_on_bad_options() {
        let short = secret_file("short", 0o600);
        let bad_key = args(&["--mac-key-file", path(&short)]).unwrap();
        assert_eq!(run_cli(bad_key).await, ExitCode::from(2));
        let open = args(&["--listen", "0.0.0.0:0"]).unwrap();
        assert_eq!(run_cli(open).await, ExitCode::from(2));
        // One MERID served twice: which keys open its calls is unclear.
        let key = secret_file("ASDFGHJKLZXCVBNMQWERTYUI", 0o600);
        let iv = secret_file("iv876543", 0o600);
        let twice = format!("{REFERENCE_MER_ID}:{}:{}", path(&key), path(&iv));
        let twice = args(&["--listen", "127.0.0.1:0", "--other-merchant", &twice]).unwrap();
        assert_eq!(run_cli(twice).await, ExitCode::from(2));
    }
}
