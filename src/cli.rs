//! The command line: parses arguments with clap, reads settings once, runs the
//! subcommand and turns its result into the exit code operators script against:
//! 0 done, 1 a runtime failure, 2 bad usage, settings or input.

use crate::config::{Settings, Sources};
use crate::ctbc::{InquiryBanks, Merchants};
use crate::engine::clock::SystemClock;
use crate::engine::pass::Engine;
use crate::engine::schedule;
use crate::engine::settings::EngineSettings;
use crate::engine::summary::PassCounters;
use crate::ops::exit::CliError;
use crate::ops::manual_queue;
use crate::ops::status;
use crate::store::plan::PlanReader;
use crate::store::{self, Store};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `refundd --version`: the release and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("REFUNDD_COMMIT"),
    ")"
);

/// What every command's exit code means (`--help`, `refundd(1)`).
const EXIT_CODES: &str = "Exit codes: 0 done; 1 a runtime failure (the database lost, the bank \
unreachable for a command that needs it); 2 bad usage, settings or input (the message names the \
setting or the field and the fix); 130 the demo interrupted. Settings: refundd-settings(5).";

#[derive(Debug, Parser)]
#[command(
    name = "refundd",
    version = VERSION,
    about = "Works off credit-card refund requests (申請退款) against CTBC's POS API",
    after_long_help = EXIT_CODES
)]
pub struct Cli {
    /// A TOML settings file, layered over config/default.toml and under REFUNDD__* variables.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database schema (safe to run again).
    Migrate,
    /// Check the settings and the shop's statements against the database, rehearse the
    /// write-backs (rolled back) and judge the requested rows, sending nothing that moves money.
    Check {
        /// Also make one inquiry, to prove the endpoint, the merchant id and the keys.
        #[arg(long)]
        bank: bool,
    },
    /// The webhook: send a signed test event, or put dead events back in line.
    Notify {
        #[command(subcommand)]
        what: NotifyCommand,
    },
    /// Run one pass over the refund requests, then exit.
    Once,
    /// Run passes on the schedule until SIGTERM or SIGINT.
    Run,
    /// Show the refund queue: counts, oldest request, failures, last pass.
    Status {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show what a pass started now would do, asking the bank by inquiry only; sends and writes nothing.
    Plan {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Mark a paid order refund requested (申請退款).
    Request {
        /// The order number (CTBC LID-M).
        order_no: String,
        /// Refund only this much (integer minor units); the whole amount when left out.
        #[arg(long)]
        amount: Option<i64>,
    },
    /// Put a refund_failed order back in the queue, attempts reset.
    Retry {
        /// The order number (CTBC LID-M).
        order_no: String,
        /// Which refund of the order (the shop's refund_id), when it has several.
        #[arg(long, value_name = "ID")]
        refund: Option<String>,
    },
    /// Cancel a refund refundd made before the bank's batch (state 20); the money stays with the shop.
    CancelRefund {
        /// The order number, as the shop's requests give it.
        order_no: String,
        /// Which refund of the order (the shop's refund_id), when it has several.
        #[arg(long, value_name = "ID")]
        refund: Option<String>,
        /// Why: recorded in the refund's story with who asked, and given to shop.on_cancelled.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Ask the bank again about every order refundd worked in a window and classify each
    /// (matched, expected, mismatch) against refundd's records; inquiries only, nothing moves money.
    #[command(args_conflicts_with_subcommands = true)]
    Reconcile {
        #[command(subcommand)]
        what: Option<ReconcileCommand>,
        #[command(flatten)]
        run: crate::ops::reconcile::ReconcileArgs,
    },
    /// Run the CTBC POS API simulator (test keys by default), for rehearsal.
    Sim(crate::sim::SimArgs),
    /// Show refundd working end to end on throwaway PostgreSQL and the simulator.
    Demo,
    /// Start a throwaway PostgreSQL, print its URL, keep it until stdin closes.
    #[command(hide = true)]
    ThrowawayDb,
}

/// What `refundd reconcile` does besides a run.
#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Close an order's open mismatch once a person has dealt with it (changes no money, asks no bank).
    Resolve {
        /// The order number, as the report shows it.
        order_no: String,
        /// What was found and done: recorded with the operating-system user.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

impl Command {
    /// Where the command's logs go: stderr when its stdout is a report that
    /// is read or saved whole.
    fn logs_to(&self) -> crate::ops::logging::LogTo {
        use crate::ops::logging::LogTo;
        match self {
            Command::Demo | Command::Reconcile { .. } => LogTo::Stderr,
            _ => LogTo::Stdout,
        }
    }
}

/// The database of a command that needs one (`status`, `request`, `retry`),
/// migrated, and by no newer refundd than this one.
async fn connect(settings: &Settings) -> Result<Store, CliError> {
    let store = open(settings).await?;
    store.require_migrated().await?;
    Ok(store)
}

/// The database, migrated or not (`check` looks before `migrate`).
async fn open(settings: &Settings) -> Result<Store, CliError> {
    let url = settings.require_database_url()?;
    let pool = store::connect(url, 2).await?;
    Ok(store_of(settings, pool))
}

/// refundd's database as the settings describe it: its schema, and the
/// shop's statements (or the built-in orders table).
fn store_of(settings: &Settings, pool: sqlx::PgPool) -> Store {
    Store::new(
        pool,
        settings.database.schema.clone(),
        settings.shop.clone(),
    )
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&Sources::from_process(cli.config.as_deref())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("refundd: cannot start, settings are not usable:\n{e}");
            return ExitCode::from(2);
        }
    };
    crate::ops::logging::init(settings.log.format, cli.command.logs_to());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("refundd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("refundd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(command: Command, settings: Settings) -> Result<ExitCode, CliError> {
    match command {
        Command::Migrate => {
            let url = settings.require_database_url()?;
            let pool = store::connect(url, settings.database.max_connections).await?;
            let store = store_of(&settings, pool);
            let migrated = store.migrate().await?;
            println!("{migrated}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { bank } => check(&settings, bank).await,
        Command::Notify { what } => notify(what, &settings).await,
        Command::ThrowawayDb => throwaway_db().await,
        Command::Once => once(settings).await,
        Command::Run => run(settings).await,
        Command::Status { json } => {
            let store = connect(&settings).await?;
            let webhook = match settings.notify.webhook {
                Some(_) => status::Webhook::Set,
                None => status::Webhook::NotSet,
            };
            let report = status::report(&store, webhook).await?;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { json } => plan(settings, json).await,
        Command::Request { order_no, amount } => {
            let store = connect(&settings).await?;
            let queued = manual_queue::request(&store, &order_no, amount).await?;
            println!("{}", queued.line("requested"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry { order_no, refund } => {
            let store = connect(&settings).await?;
            let queued = manual_queue::retry(&store, &order_no, refund.as_deref()).await?;
            println!("{}", queued.line("back in the queue"));
            Ok(ExitCode::SUCCESS)
        }
        Command::CancelRefund {
            order_no,
            refund,
            reason,
        } => {
            let store = connect(&settings).await?;
            let which = (order_no.as_str(), refund.as_deref());
            let line =
                crate::ops::cancel_refund::command(&settings, &store, which, &reason).await?;
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile { what, run } => match what {
            Some(ReconcileCommand::Resolve { order_no, reason }) => {
                let store = connect(&settings).await?;
                let line = crate::ops::reconcile::resolve(&store, &order_no, &reason).await?;
                println!("{line}");
                Ok(ExitCode::SUCCESS)
            }
            None => reconcile(settings, run).await,
        },
        Command::Sim(args) => Ok(crate::sim::run_cli(args).await),
        Command::Demo => crate::ops::demo::command().await,
    }
}

/// `refundd reconcile`: a run at every merchant's bank by inquiry only, or
/// with `--last` the latest kept run without the bank.
async fn reconcile(
    settings: Settings,
    args: crate::ops::reconcile::ReconcileArgs,
) -> Result<ExitCode, CliError> {
    args.window()?;
    if args.last {
        let store = connect(&settings).await?;
        return crate::ops::reconcile::last(&store, &args).await;
    }
    let url = settings.require_database_url()?;
    let merchants = settings.require_merchants()?;
    let pool = store::connect(url, settings.database.max_connections).await?;
    let store = store_of(&settings, pool);
    store.require_migrated().await?;
    let banks = InquiryBanks::new(&merchants);
    crate::ops::reconcile::run(&store, &banks, settings.worker.concurrency, &args).await
}

/// What `once` and `run` share: settings checked, database reachable and
/// migrated, every merchant's bank client built (and its calls counted from
/// start-up on `/metrics`).
async fn engine_for(settings: &Settings) -> Result<Engine, CliError> {
    engine_with(settings, settings.require_merchants()?).await
}

/// `engine_for` with the merchants' clients already built (`run` shares them
/// with its reconciliation, and so their rate limit).
async fn engine_with(settings: &Settings, merchants: Merchants) -> Result<Engine, CliError> {
    let url = settings.require_database_url()?;
    let pool = store::connect(url, settings.database.max_connections).await?;
    let store = store_of(settings, pool);
    store.migrate().await?;
    store.check_shop().await?;
    crate::ops::metrics::show_merchants(&merchants);
    Ok(Engine::new(
        store,
        merchants,
        EngineSettings::from_settings(settings),
        Arc::new(SystemClock),
    ))
}

/// `refundd plan`: the next pass's decisions from inquiries alone. The plan
/// gets an inquiry-only client per merchant and a read-only view of the
/// database, nothing else.
async fn plan(settings: Settings, json: bool) -> Result<ExitCode, CliError> {
    let url = settings.require_database_url()?;
    let merchants = settings.require_merchants()?;
    crate::ops::logging::quiet_unless_asked();
    let pool = store::connect(url, settings.database.max_connections).await?;
    let store = store_of(&settings, pool);
    store.require_migrated().await?;
    store.check_shop().await?;
    let reader = PlanReader::new(store);
    let banks = InquiryBanks::new(&merchants);
    let engine_settings = EngineSettings::from_settings(&settings);
    let plan = crate::engine::plan::plan(&reader, &banks, &engine_settings, &SystemClock).await?;
    if let Some(why) = banks.keys_look_wrong() {
        return Err(CliError::Runtime(format!("no plan: {why}")));
    }
    if let Some(e) = plan.bank_unreachable() {
        return Err(CliError::Runtime(format!(
            "no plan: the bank answered none of the {} inquiries (last: {e}); check ctbc.base_url and the network, then run refundd plan again",
            plan.totals.inquiries
        )));
    }
    if json {
        println!("{}", crate::ops::plan::to_json(&plan));
    } else {
        print!("{}", crate::ops::plan::render(&plan));
    }
    if plan.settings_problem.is_some() {
        // As `once` would: the settings must be fixed before a pass works.
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// `refundd check`: the settings `once` needs (the bank's included), the
/// shop's statements, then what `ops::check` finds; exit 2 on any problem.
async fn check(settings: &Settings, bank: bool) -> Result<ExitCode, CliError> {
    let merchants = settings.require_merchants()?;
    let store = open(settings).await?;
    store.require_not_newer().await?;
    store.check_shop().await?;
    let what = if store.shop().is_builtin() {
        "the built-in orders table's statements"
    } else {
        "shop.requests, shop.on_refunded and shop.on_failed"
    };
    println!("settings are usable; {what} check out against the database");
    let mut report = crate::ops::check::check_shop_rows(&store).await?;
    if bank {
        crate::ops::check::check_banks(&merchants, &mut report).await;
    }
    for line in &report.lines {
        println!("{line}");
    }
    for problem in &report.problems {
        eprintln!("refundd: {problem}");
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn once(settings: Settings) -> Result<ExitCode, CliError> {
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    schedule::cancel_on_termination(&tasks, stop.clone());
    let result = once_with(&settings, &stop).await;
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

async fn once_with(settings: &Settings, stop: &CancellationToken) -> Result<ExitCode, CliError> {
    let engine = engine_for(settings).await?;
    crate::ops::metrics::install_metrics();
    let counters = Arc::new(PassCounters::default());
    let progress = crate::ops::progress::spawn_progress(counters.clone(), logs_are_json(settings));
    let result = engine.run_pass(stop, counters).await;
    progress.finish();
    let summary = result.map_err(CliError::Pass)?;
    println!("{}", summary.line());
    if let Some(problem) = &summary.problem {
        eprintln!("refundd: {problem}");
        // A mapping mistake is the settings' (2); answers that do not open
        // with the keys stopped a pass that had begun (1).
        let code = match summary.outcome {
            crate::domain::words::PassOutcome::SettingsProblem => 2,
            _ => 1,
        };
        return Ok(ExitCode::from(code));
    }
    if let Some(w) = &settings.notify.webhook {
        let webhook = w.webhook().map_err(CliError::Runtime)?;
        let r = webhook.deliver_due(engine.store()).await?;
        println!(
            "webhook: delivered {}, not taken {} (dead {})",
            r.delivered, r.failed, r.dead
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn logs_are_json(settings: &Settings) -> bool {
    use std::io::IsTerminal;
    match settings.log.format {
        crate::config::LogFormat::Json => true,
        crate::config::LogFormat::Pretty => false,
        crate::config::LogFormat::Auto => !std::io::stdout().is_terminal(),
    }
}

/// `refundd run`: passes on the schedule until SIGTERM, with the health and
/// metrics endpoint, the systemd watchdog and webhook delivery beside them.
/// One root token stops everything: a signal cancels the passes' child token
/// first (the pass in hand finishes, the endpoints keep answering), then the
/// root stops the rest, and the tracker waits for every task before exit.
async fn run(settings: Settings) -> Result<ExitCode, CliError> {
    let root = CancellationToken::new();
    let passes = root.child_token();
    let tasks = TaskTracker::new();
    schedule::cancel_on_termination(&tasks, passes.clone());
    let result = run_with(&settings, &root, passes, &tasks).await;
    root.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

async fn run_with(
    settings: &Settings,
    root: &CancellationToken,
    passes: CancellationToken,
    tasks: &TaskTracker,
) -> Result<ExitCode, CliError> {
    let merchants = settings.require_merchants()?;
    let engine = engine_with(settings, merchants.clone()).await?;
    let health = crate::ops::health::Health::new();
    if let Some(listen) = settings.http.listen {
        let (store, stop) = (engine.store().clone(), root.clone());
        let addr = crate::ops::http::serve(listen, store, health.clone(), stop, tasks)
            .await
            .map_err(|source| CliError::Listen { listen, source })?;
        tracing::info!(%addr, "health at /healthz, metrics at /metrics");
    }
    crate::ops::systemd::spawn_watchdog(tasks, health.clone(), root.clone());
    // Delivery is a task of its own: a slow or dead receiver never slows a pass.
    if let Some(w) = &settings.notify.webhook {
        let webhook = w.webhook().map_err(CliError::Runtime)?;
        tasks.spawn(webhook.run(engine.store().clone(), root.clone()));
    }
    let hooks = Arc::new(crate::ops::hooks::OpsHooks { health });
    let plan = schedule::Schedule {
        passes: settings.schedule.cron.clone(),
        reconcile: settings
            .reconcile
            .cron
            .clone()
            .map(|cron| schedule::ScheduledReconcile {
                cron,
                window: settings.reconcile.window,
                banks: InquiryBanks::new(&merchants),
                width: settings.worker.concurrency,
                blackout: settings.schedule.blackout.clone(),
            }),
        grace: settings.worker.shutdown_grace,
    };
    schedule::run(engine, plan, passes, hooks).await?;
    Ok(ExitCode::SUCCESS)
}

/// What `refundd notify` does.
#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send one signed test event to notify.webhook_url and print the answer.
    Test,
    /// Put dead events (delivery given up) back in line.
    Redeliver {
        /// Required: only dead events are put back.
        #[arg(long)]
        dead: bool,
    },
}

async fn notify(what: NotifyCommand, settings: &Settings) -> Result<ExitCode, CliError> {
    match what {
        NotifyCommand::Test => {
            let Some(w) = &settings.notify.webhook else {
                return Err(CliError::Usage(
                    "notify.webhook_url is not set; set it (and notify.webhook_secret) first"
                        .into(),
                ));
            };
            let webhook = w.webhook().map_err(CliError::Runtime)?;
            let event = store::outbox::OutboxEvent::test_event();
            match webhook.post(&event).await {
                Ok(()) => {
                    println!("the webhook took the test event {}", event.id);
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => Err(CliError::Runtime(why)),
            }
        }
        NotifyCommand::Redeliver { dead } => {
            if !dead {
                return Err(CliError::Usage(
                    "refundd notify redeliver --dead: only dead events are put back; say --dead"
                        .into(),
                ));
            }
            let store = connect(settings).await?;
            let n = store.redeliver_dead().await?;
            println!("{n} dead events put back in line");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn throwaway_db() -> Result<ExitCode, CliError> {
    let cluster = tokio::task::spawn_blocking(crate::throwaway_pg::ThrowawayPostgres::start)
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    println!(
        "{} {} {}",
        cluster.url("postgres"),
        cluster.dir().display(),
        cluster.server_pid()
    );
    // Keep it until stdin closes or a signal arrives.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}
