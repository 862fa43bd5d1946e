//! refundd's commands as the tests run them: the binary built for the tests,
//! pointed at a rig's database, bank and shop tables, and run off the
//! runtime's threads (a simulator or receiver of the test's answers on them).

use super::Rig;
use refundd::sim::{REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};
use std::process::{Command, Output};

/// The refundd binary built for these tests.
pub fn refundd_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_refundd"));
    // Tests must not pick up a developer's settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("REFUNDD__") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("REFUNDD__LOG__FORMAT", "json");
    cmd
}

impl Rig {
    /// `refundd command` with the settings to reach the rig's database (its
    /// schema) and bank (no rate limit, no HTTP endpoint) and, when the rig
    /// serves a shop's own tables, the shop's statements.
    pub fn refundd(&self, command: &str) -> Command {
        let mut cmd = refundd_bin();
        cmd.arg(command)
            .env("REFUNDD__DATABASE__URL", &self.url)
            .env("REFUNDD__DATABASE__SCHEMA", self.schema)
            .env("REFUNDD__CTBC__BASE_URL", self.sim.base_url())
            .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
            .env("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY)
            .env("REFUNDD__CTBC__IV", REFERENCE_IV)
            .env("REFUNDD__CTBC__MAX_REQUESTS_PER_SEC", "0")
            .env("REFUNDD__HTTP__LISTEN", "off");
        if let Some(shop) = self.shop {
            cmd.env("REFUNDD__SHOP__REQUESTS", shop.requests)
                .env("REFUNDD__SHOP__ON_REFUNDED", shop.on_refunded)
                .env("REFUNDD__SHOP__ON_FAILED", shop.on_failed);
            if let Some(on_cancelled) = shop.on_cancelled {
                cmd.env("REFUNDD__SHOP__ON_CANCELLED", on_cancelled);
            }
        }
        cmd
    }
}

/// Runs a command off the runtime's threads: its output.
pub async fn output_off_runtime(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("the command runs")
}

/// Runs a command off the runtime's threads: its exit code, what it printed
/// (stdout then stderr), and its stdout alone.
pub async fn run_off_runtime(cmd: Command) -> (Option<i32>, String, String) {
    let out = output_off_runtime(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text, stdout)
}

/// Runs a command that must succeed, off the runtime's threads: its stdout.
pub async fn succeeds(cmd: Command) -> String {
    let (code, text, stdout) = run_off_runtime(cmd).await;
    assert_eq!(code, Some(0), "{text}");
    stdout
}
