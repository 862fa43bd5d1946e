//! How a command fails, and the exit code each failure maps to (0 done, 1 a
//! runtime failure, 2 bad usage, settings or input): shared by the command
//! line (`cli`) and the commands it runs (`ops::demo`), so neither imports
//! the other's.

use crate::config::SettingsError;
use crate::engine::schedule;
use crate::ops::manual_queue::QueueError;
use crate::store::StoreError;

/// A failure of a command, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
    /// The database refused or could not be reached; a settings problem when
    /// the shop's statements or refundd's schema are at fault.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// `request` or `retry` refused the order, or could not reach it.
    #[error("{0}")]
    Queue(#[from] QueueError),
    #[error("the pass could not finish: {0}")]
    Pass(#[source] StoreError),
    #[error("{0}")]
    Schedule(#[from] schedule::ScheduleError),
    #[error("http.listen {listen}: cannot listen: {source}")]
    Listen {
        listen: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Settings(_) | CliError::Usage(_) => 2,
            CliError::Store(e) if e.is_settings_problem() => 2,
            CliError::Queue(e) if e.is_input() => 2,
            CliError::Runtime(_)
            | CliError::Store(_)
            | CliError::Queue(_)
            | CliError::Pass(_)
            | CliError::Schedule(_)
            | CliError::Listen { .. } => 1,
        }
    }
}
