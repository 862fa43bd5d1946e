// `refundd sim` on the command line (or the environment, for docker compose):
// options into a checked SimConfig, then run until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::ctbc::types::MerId;

use super::{
    FaultPlan, MaintenanceWindow, SimConfig, SimError, SimSecret, SimServer, REFERENCE_IV,
    REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};

/// Options of `refundd sim`. Debug leaves out the key and IV.
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
    /// 24-character MAC key (default: TEST-ONLY reference value).
    #[arg(long, env = "REFUNDD_SIM_MAC_KEY", default_value = REFERENCE_MAC_KEY, hide_default_value = true, hide_env_values = true)]
    pub mac_key: SimSecret,
    /// 8-character IV (default: TEST-ONLY reference value).
    #[arg(long, env = "REFUNDD_SIM_IV", default_value = REFERENCE_IV, hide_default_value = true, hide_env_values = true)]
    pub iv: SimSecret,
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
}

impl SimArgs {
    /// Checks the options; the error names the option at fault.
    pub fn config(&self) -> Result<SimConfig, String> {
        let mer_id = MerId::parse(&self.mer_id).map_err(|e| format!("--mer-id: {}", e.problem))?;
        crate::ctbc::envelope::Envelope::new(self.mac_key.as_bytes(), self.iv.as_bytes())
            .map_err(|e| format!("--mac-key/--iv: {e}"))?;
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
            .map(|w| w.parse::<MaintenanceWindow>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--maintenance: {e}"))?;
        Ok(SimConfig {
            listen: self.listen,
            allow_non_loopback: self.allow_non_loopback,
            mer_id,
            mac_key: self.mac_key.clone(),
            iv: self.iv.clone(),
            seed: self.seed,
            faults,
            batch_every: self.batch_every_secs.map(Duration::from_secs),
            batch_duration: Duration::from_secs(self.batch_duration_secs),
            maintenance,
        })
    }
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
    if cfg.mer_id.as_str() == REFERENCE_MER_ID
        || cfg.mac_key == REFERENCE_MAC_KEY
        || cfg.iv == REFERENCE_IV
    {
        tracing::warn!(
            "using the protocol document's reference MERID/MAC key/IV: TEST-ONLY values, never a real merchant's"
        );
    }
    for w in &cfg.maintenance {
        tracing::info!(window = %w, "maintenance window (Asia/Taipei)");
    }
    let server = match SimServer::start(cfg).await {
        Ok(s) => s,
        Err(e @ SimError::NonLoopbackListen(_))
        | Err(e @ SimError::Keys(_))
        | Err(e @ SimError::Faults(_)) => {
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

    #[test]
    fn debug_output_never_shows_the_key_or_iv() {
        let a = args(&["--mac-key", "QWERTYUIOPASDFGHJKLZXCVB", "--iv", "iv345678"]).unwrap();
        let cfg = a.config().unwrap();
        let text = format!("{a:?} {cfg:?}");
        assert!(
            !text.contains("QWERTYUIOPASDFGHJKLZXCVB") && !text.contains("iv345678"),
            "{text}"
        );
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let cfg = args(&[]).unwrap().config().unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8990");
        assert_eq!(cfg.mer_id.as_str(), REFERENCE_MER_ID);
        assert_eq!(cfg.mac_key, REFERENCE_MAC_KEY);
        assert_eq!(cfg.iv, REFERENCE_IV);
        assert_eq!(cfg.faults, FaultPlan::none());
        assert!(cfg.batch_every.is_none());
    }

    #[test]
    fn bad_options_name_the_option() {
        let e = args(&["--mac-key", "short"]).unwrap().config().unwrap_err();
        assert!(e.starts_with("--mac-key"), "{e}");
        let e = args(&["--mer-id", "12a"]).unwrap().config().unwrap_err();
        assert!(e.starts_with("--mer-id"), "{e}");
        let e = args(&["--faults", "{nope"]).unwrap().config().unwrap_err();
        assert!(e.starts_with("--faults"), "{e}");
        let e = args(&["--faults", "@/nonexistent/plan.json"])
            .unwrap()
            .config()
            .unwrap_err();
        assert!(e.starts_with("--faults"), "{e}");
        let e = args(&["--maintenance", "02:00-04:00,25:00-26:00"])
            .unwrap()
            .config()
            .unwrap_err();
        assert!(e.starts_with("--maintenance"), "{e}");
        assert!(args(&["--listen", "nowhere"]).is_err());
    }

    #[test]
    fn options_reach_the_config() {
        let cfg = args(&[
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
        .unwrap()
        .config()
        .unwrap();
        assert!(cfg.allow_non_loopback);
        assert_eq!(cfg.seed, 42);
        assert_eq!(cfg.faults.rules.len(), 1);
        assert_eq!(cfg.batch_every, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.maintenance.len(), 2);
    }

    #[tokio::test]
    async fn run_cli_exits_2_on_bad_options() {
        let bad_key = args(&["--mac-key", "short"]).unwrap();
        assert_eq!(run_cli(bad_key).await, ExitCode::from(2));
        let open = args(&["--listen", "0.0.0.0:0"]).unwrap();
        assert_eq!(run_cli(open).await, ExitCode::from(2));
    }
}
