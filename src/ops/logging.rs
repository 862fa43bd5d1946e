//! Log set-up: JSON lines for journald and docker when stdout is not a terminal,
//! human-readable on a terminal, on stderr for a command whose stdout is its
//! report; RUST_LOG picks what is shown. The JSON layer
//! is a function of its own so tests can capture exactly what operators read.

use crate::config::LogFormat;
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{fmt, prelude::*, reload, EnvFilter, Layer, Registry};

/// What is logged when RUST_LOG is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// What [`quiet_unless_asked`] shows: warnings and errors, minus the pool's
/// chatter when a throwaway database goes away.
pub const QUIET_FILTER: &str = "warn,sqlx=error,sqlx_core=error";

/// Lets a command (the demo) quieten the logs after start-up.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// For the services (`run`, `once`, `sim`): journald and docker read it.
    Stdout,
    /// For a command whose stdout is its report (`demo`), so that
    /// `refundd demo | cat` and `refundd demo > FILE` hold the report alone.
    Stderr,
}

/// Installs the global subscriber once; later calls are no-ops. `auto` means
/// JSON unless the stream the lines go to is a terminal.
pub fn init(format: LogFormat, to: LogTo) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // refundd's own spans (`order{order_no}`, `pass{pass_id}`) are declared at
    // ERROR level, so a warning under RUST_LOG=warn still names its order.
    let (filter, handle) = reload::Layer::new(filter);
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => match to {
            LogTo::Stdout => !std::io::stdout().is_terminal(),
            LogTo::Stderr => !std::io::stderr().is_terminal(),
        },
    };
    // The filter is a layer of its own over the registry (the documented use
    // of a reloadable EnvFilter), so every event it admits reaches the output.
    let output = match (json, to) {
        (true, LogTo::Stdout) => json_layer(std::io::stdout).boxed(),
        (true, LogTo::Stderr) => json_layer(std::io::stderr).boxed(),
        (false, LogTo::Stdout) => fmt::layer().with_target(false).boxed(),
        (false, LogTo::Stderr) => fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
    // Already installed (tests, or a second call): keep the first.
    if result.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// The JSON lines layer: one object per line, the event's fields at the top
/// level and the fields of the span it happened in (`order_no` of the
/// `order` span, `pass_id` of the `pass` span) under `"span"`.
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
}

/// Shows only warnings and errors from now on, unless the operator chose a
/// filter with RUST_LOG: for commands whose own output is the point.
pub fn quiet_unless_asked() {
    if std::env::var_os("RUST_LOG").is_some() {
        return;
    }
    if let Some(handle) = FILTER.get() {
        let _ = handle.modify(|f| *f = EnvFilter::new(QUIET_FILTER));
    }
}
