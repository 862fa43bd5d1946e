//! `refundd reconcile` as finance and operators read it: the run's window, its
//! totals per class and the money refunded, then one line per order (a table
//! for a person, CSV for a spreadsheet, JSON for machines), times in the
//! merchant's time zone (Asia/Taipei); `--last` prints the latest kept run
//! without asking the bank; `resolve` closes a mismatch a person dealt with.
//! The run itself is `engine::reconcile`'s.

use super::exit::CliError;
use super::local_time::taipei;
use crate::ctbc::InquiryBanks;
use crate::domain::reconcile::Class;
use crate::engine::reconcile::{self, ReconcileError, Report, Window};
use crate::store::Store;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The options of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// The window: orders whose work ended this long ago or less (7d, 36h). Default 7d.
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["from", "last"])]
    pub since: Option<String>,
    /// The window's first day (Asia/Taipei), with --to.
    #[arg(long, value_name = "DATE", requires = "to", conflicts_with = "last")]
    pub from: Option<String>,
    /// The window's last day, included.
    #[arg(long, value_name = "DATE", requires = "from")]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Print the latest kept run without asking the bank.
    #[arg(long)]
    pub last: bool,
}

impl ReconcileArgs {
    /// The window the options give (bad ones refused before anything is asked).
    pub fn window(&self) -> Result<Window, CliError> {
        let now = chrono::Utc::now();
        match (&self.since, &self.from, &self.to) {
            (Some(since), _, _) => Window::since(now, since),
            (None, Some(from), Some(to)) => Window::days(from, to),
            _ => Ok(Window::last(now, Window::DEFAULT_SPAN)),
        }
        .map_err(CliError::Usage)
    }
}

/// `refundd reconcile [...]`: a run asking the bank `width` orders at a time,
/// printed. Exit 0 whatever it found: the classes are the report, not a
/// failure of the command.
pub async fn run(
    store: &Store,
    banks: &InquiryBanks,
    width: usize,
    args: &ReconcileArgs,
) -> Result<ExitCode, CliError> {
    let window = args.window()?;
    let report = reconcile::reconcile(store, banks, window, width.max(1))
        .await
        .map_err(run_error)?;
    print(&report, args)
}

/// `refundd reconcile --last`: the latest kept run, without asking the bank.
pub async fn last(store: &Store, args: &ReconcileArgs) -> Result<ExitCode, CliError> {
    let report = reconcile::last_run(store).await.map_err(run_error)?;
    let report = report.ok_or_else(|| {
        CliError::Runtime("no reconciliation has run yet: run refundd reconcile".to_string())
    })?;
    print(&report, args)
}

/// The report in the format asked, to the file or standard output asked.
fn print(report: &Report, args: &ReconcileArgs) -> Result<ExitCode, CliError> {
    let text = match args.format {
        Format::Table => render(report),
        Format::Csv => to_csv(report).map_err(|e| CliError::Runtime(e.to_string()))?,
        Format::Json => to_json(report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            CliError::Runtime(format!(
                "--output {}: cannot write the report: {e}",
                path.display()
            ))
        })?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_error(e: ReconcileError) -> CliError {
    match e {
        ReconcileError::Store(e) => CliError::Store(e),
        other => CliError::Runtime(other.to_string()),
    }
}

/// `refundd reconcile resolve ORDER_NO --reason TEXT`.
pub async fn resolve(store: &Store, order_no: &str, reason: &str) -> Result<String, CliError> {
    if reason.trim().is_empty() {
        return Err(CliError::Usage(
            "--reason is empty: say what was found and done".to_string(),
        ));
    }
    let by = super::cancel_refund::asked_by();
    if store.resolve_mismatch(order_no, &by, reason.trim()).await? {
        Ok(format!("order {order_no}: mismatch resolved by {by}"))
    } else {
        Err(CliError::Usage(format!(
            "order {order_no} has no open mismatch: refundd reconcile --last shows the latest run's"
        )))
    }
}

/// The header every format's reader needs first.
fn header(report: &Report) -> String {
    let mut out = String::new();
    let run = report
        .run
        .map_or("not kept".to_string(), |id| format!("run {id}"));
    let _ = writeln!(
        out,
        "reconciliation {run}, started {}: orders whose refund refundd ended from {} to {} (Asia/Taipei); inquiries only, nothing was sent that moves money",
        taipei(report.started_at),
        taipei(report.window.from),
        taipei(report.window.to)
    );
    let _ = writeln!(
        out,
        "the shop's orders refundd never worked are out of scope: it compares only its own records with the bank"
    );
    let count = |c: Class| report.totals.get(&c).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "matched {}, expected {} (of which {} not checked: the bank did not answer), mismatch {} ({} new)",
        count(Class::Matched),
        count(Class::Expected),
        report.unchecked,
        count(Class::Mismatch),
        report.new_mismatches.len()
    );
    let totals: Vec<String> = (report.refunded_total.iter())
        .map(|(currency, amount)| format!("{amount} (currency {currency}, minor units)"))
        .collect();
    let totals = if totals.is_empty() {
        "nothing".to_string()
    } else {
        totals.join(", ")
    };
    let _ = writeln!(out, "refunded by refundd in the window: {totals}");
    out
}

/// The report for a person: the header, then the mismatches first.
pub fn render(report: &Report) -> String {
    let mut out = header(report);
    let mut rows: Vec<_> = report.rows.iter().collect();
    rows.sort_by_key(|r| (std::cmp::Reverse(r.class), r.order_no.clone()));
    for r in rows {
        let bank = match (&r.bank_state, r.bank_amount) {
            (Some(state), Some(amount)) => format!("bank state {state}, {amount}"),
            (Some(state), None) => format!("bank state {state}"),
            _ => "bank: -".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<8} {} [{}] refundd {} ({}), {bank}: {}",
            r.class.as_str(),
            r.order_no,
            r.merchant,
            r.refundd_amount,
            r.method.as_deref().unwrap_or("nothing given back"),
            r.reason
        );
    }
    out
}

/// The report for a spreadsheet: one row per order, its class one of
/// `matched`, `expected`, `mismatch`.
pub fn to_csv(report: &Report) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "order_no",
        "merchant",
        "method",
        "refundd_amount",
        "bank_amount",
        "bank_state",
        "class",
        "reason",
        "ended_at",
        "currency",
    ])?;
    for r in &report.rows {
        w.write_record([
            r.order_no.clone(),
            r.merchant.clone(),
            r.method.clone().unwrap_or_default(),
            r.refundd_amount.to_string(),
            r.bank_amount.map(|a| a.to_string()).unwrap_or_default(),
            r.bank_state.clone().unwrap_or_default(),
            r.class.as_str().to_string(),
            r.reason.clone(),
            taipei(r.ended_at),
            r.currency.clone(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The report for machines, with its header's figures.
pub fn to_json(report: &Report) -> String {
    let mut text =
        serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
