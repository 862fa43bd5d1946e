//! `refundd sim`: a CTBC POS API simulator that speaks the bank's wire format
//! through the same envelope as the client, keeps a ledger with the bank's state
//! machine, runs the capture batch, goes down for maintenance and misbehaves on
//! request. This file holds the running server and the routing of bank calls;
//! the books, faults, admin API and command line each live next to it.

pub mod admin;
pub(crate) mod admin_client;
pub mod batch;
pub mod cli;
pub mod faults;
mod in_flight;
mod keys;
pub mod ledger;
pub mod maintenance;
mod merchants;
pub mod transactions_file;
pub mod wire;

// The bank's vocabulary and envelope, as the client uses them.
pub(crate) use refundd_core::{ctbc, sync};
pub(crate) use refundd_domain as domain;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ctbc::envelope::EnvelopeError;
use crate::ctbc::operation::PUBLISHED_BASE_PATH;
use crate::ctbc::types::MerId;
use crate::ctbc::Operation;

use crate::domain::daily_window::DailyWindow;
pub use admin_client::{SimAdmin, SimAdminError};
pub use cli::{run_cli, SimArgs};
pub use faults::{FaultKind, FaultPlan, FaultRule};
pub use ledger::{
    BatchMoved, CallDisposition, CallRecord, CallsPage, LedgerReport, OperationTotals,
    OtherAuthorisation, PortalApplied, PortalChange, PortalRecord, SimRefund, SimTx,
};
pub use maintenance::Maintenance;
use merchants::Merchants;
pub use merchants::SimMerchant;

/// The protocol document's reference values: for tests and rehearsals only.
pub const REFERENCE_MER_ID: &str = "1234567";
pub const REFERENCE_MAC_KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWX";
pub const REFERENCE_IV: &str = "test8iv!";

/// The simulated bank's MAC key or IV: used as text, never shown by Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct SimSecret(String);

impl std::fmt::Debug for SimSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::ops::Deref for SimSecret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SimSecret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl std::str::FromStr for SimSecret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(s.into())
    }
}

impl PartialEq<&str> for SimSecret {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Everything the simulator is started with. Debug leaves out the keys and IVs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub listen: SocketAddr,
    /// Listening on (and taking admin calls from) other than loopback must be asked for.
    pub allow_non_loopback: bool,
    /// The first merchant: its MERID, MAC key and IV. A transaction that
    /// names no merchant is this one's.
    pub mer_id: MerId,
    pub mac_key: SimSecret,
    pub iv: SimSecret,
    /// Further merchants, each with a MERID, MAC key and IV of its own.
    pub other_merchants: Vec<SimMerchant>,
    /// Seed of the fault generator: the same seed and the same calls in the
    /// same order give the same faults.
    pub seed: u64,
    pub faults: FaultPlan,
    /// Run the capture batch on this period; `None` runs it only when asked.
    pub batch_every: Option<Duration>,
    /// How long transactions stay 11/21 when the batch runs on the clock.
    pub batch_duration: Duration,
    /// Daily maintenance windows (Asia/Taipei).
    pub maintenance: Vec<DailyWindow>,
    /// Transactions the books hold from the start, and again after a reset.
    pub transactions: Vec<SimTx>,
}

impl SimConfig {
    /// Loopback on a free port, the reference MERID, key and IV, seed 1, no faults.
    pub fn for_tests() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_non_loopback: false,
            // A constant of the bank's document: digits of the right length.
            #[allow(clippy::expect_used)]
            mer_id: MerId::parse(REFERENCE_MER_ID).expect("the reference MERID is digits"),
            mac_key: REFERENCE_MAC_KEY.into(),
            iv: REFERENCE_IV.into(),
            other_merchants: Vec::new(),
            seed: 1,
            faults: FaultPlan::none(),
            batch_every: None,
            batch_duration: Duration::from_secs(60),
            maintenance: Vec::new(),
            transactions: Vec::new(),
        }
    }

    /// The first merchant, as the others are written.
    pub fn first_merchant(&self) -> SimMerchant {
        SimMerchant {
            mer_id: self.mer_id.clone(),
            mac_key: self.mac_key.clone(),
            iv: self.iv.clone(),
        }
    }
}

/// Why the simulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("--listen {0}: not a loopback address; pass --allow-non-loopback to listen there")]
    NonLoopbackListen(SocketAddr),
    #[error("--listen {addr}: cannot listen: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("merchant {mer_id}'s MAC key or IV: {source}")]
    Keys {
        mer_id: String,
        source: EnvelopeError,
    },
    #[error(
        "--other-merchant {0}: the simulator serves that MERID already; give each merchant once"
    )]
    MerchantTwice(String),
    #[error("--faults: {0}")]
    Faults(String),
    #[error("--transactions: {0}")]
    Transactions(String),
}

/// The fault plan in force and the generator its draws come from.
pub(crate) struct FaultState {
    pub plan: FaultPlan,
    pub rng: StdRng,
}

/// What every handler shares. Locks are held only for bookkeeping, never
/// across cryptography or waiting.
pub(crate) struct Shared {
    pub merchants: Merchants,
    pub allow_non_loopback: bool,
    pub seed: u64,
    pub initial_faults: FaultPlan,
    pub initial_windows: Vec<DailyWindow>,
    pub initial_transactions: Vec<SimTx>,
    pub ledger: Mutex<ledger::Ledger>,
    pub faults: Mutex<FaultState>,
    pub maintenance: Mutex<Maintenance>,
    pub in_flight: in_flight::InFlight,
}

pub(crate) use crate::sync::lock;

impl Shared {
    /// Back to the state at start: the transactions it started with, no
    /// calls, the configured faults and windows, the generator reseeded.
    pub(crate) fn reset(&self) {
        // Checked at start, so they load again; checking runs outside the lock.
        let initial = starting_books(&self.merchants.ids(), &self.initial_transactions);
        *lock(&self.ledger) = initial.unwrap_or_default();
        self.in_flight.reset();
        *lock(&self.faults) = FaultState {
            plan: self.initial_faults.clone(),
            rng: StdRng::seed_from_u64(self.seed),
        };
        *lock(&self.maintenance) = Maintenance {
            on: false,
            windows: self.initial_windows.clone(),
        };
    }
}

/// The books as they are at start: the configured transactions, no calls.
/// `merchants` are the MERIDs served, the first first.
fn starting_books(merchants: &[String], txs: &[SimTx]) -> Result<ledger::Ledger, SimError> {
    let now = Utc::now()
        .with_timezone(&chrono_tz::Asia::Taipei)
        .fixed_offset();
    let prepared =
        ledger::Ledger::prepare(txs.to_vec(), now, merchants).map_err(SimError::Transactions)?;
    let mut books = ledger::Ledger::default();
    books.load(prepared);
    Ok(books)
}

/// A running simulator. Dropping it stops it; `shutdown` also waits for that.
pub struct SimServer {
    addr: SocketAddr,
    stop: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    clock: Option<JoinHandle<()>>,
}

impl SimServer {
    pub async fn start(cfg: SimConfig) -> Result<SimServer, SimError> {
        if !cfg.allow_non_loopback && !cfg.listen.ip().to_canonical().is_loopback() {
            return Err(SimError::NonLoopbackListen(cfg.listen));
        }
        cfg.faults.validate().map_err(SimError::Faults)?;
        let merchants = Merchants::new(&cfg.first_merchant(), &cfg.other_merchants)?;
        let books = starting_books(&merchants.ids(), &cfg.transactions)?;
        let shared = Arc::new(Shared {
            merchants,
            allow_non_loopback: cfg.allow_non_loopback,
            seed: cfg.seed,
            initial_faults: cfg.faults.clone(),
            initial_windows: cfg.maintenance.clone(),
            ledger: Mutex::new(books),
            initial_transactions: cfg.transactions,
            in_flight: in_flight::InFlight::default(),
            faults: Mutex::new(FaultState {
                plan: cfg.faults.clone(),
                rng: StdRng::seed_from_u64(cfg.seed),
            }),
            maintenance: Mutex::new(Maintenance {
                on: false,
                windows: cfg.maintenance.clone(),
            }),
        });
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let stop = CancellationToken::new();
        let app = router(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        let clock = cfg.batch_every.map(|every| {
            batch::spawn_clock(shared.clone(), every, cfg.batch_duration, stop.clone())
        });
        let mer_ids = shared.merchants.ids().join(",");
        tracing::info!(%addr, mer_id = %cfg.mer_id, %mer_ids, seed = cfg.seed, "bank simulator listening");
        Ok(SimServer {
            addr,
            stop,
            server: Some(server),
            clock,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`: the client appends `Operation::path()`. The same
    /// calls answer under `http://IP:PORT/MicroPos`, the bank's own base path.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin(&self) -> SimAdmin {
        SimAdmin::new(&self.base_url())
    }

    /// Stops accepting, lets calls in flight finish, and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(clock) = self.clock.take() {
            let _ = clock.await;
        }
        if let Some(server) = self.server.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "bank simulator stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "bank simulator task failed"),
            }
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Holds an answer back until `deadline`. tokio's timer fires on the whole
/// millisecond after a deadline and then waits for a worker (1.3 ms late on
/// average at 50 ms on two busy cores); a timerfd comes within a few tenths
/// of a millisecond, so a latency fault costs about what it says.
async fn hold_until(deadline: tokio::time::Instant) {
    #[cfg(target_os = "linux")]
    if let Ok(delay) = tokio_timerfd::Delay::new(deadline.into_std()) {
        if delay.await.is_ok() {
            return;
        }
    }
    tokio::time::sleep_until(deadline).await;
}

/// Bank calls at the root and under the bank's published base path, so a
/// client configured like the real one needs only the host changed.
fn router(shared: Arc<Shared>) -> Router {
    let mut bank: Router<Arc<Shared>> = Router::new();
    for op in Operation::ALL {
        let call = post(move |State(s): State<Arc<Shared>>, body: Bytes| bank_call(op, s, body));
        bank = bank
            .route(op.path(), call.clone())
            .route(&format!("{PUBLISHED_BASE_PATH}{}", op.path()), call);
    }
    bank.merge(admin::routes(shared.clone()))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(shared)
}

/// One call to the bank: read it, let maintenance or a fault stand in for the
/// bank, or apply it to the books and seal the answer.
async fn bank_call(operation: Operation, s: Arc<Shared>, body: Bytes) -> Response {
    // A latency fault holds the answer back that long after the call arrived,
    // its reading included, as a slow bank would.
    let arrived = tokio::time::Instant::now();
    let _answering = s.in_flight.begin();
    let read = wire::read_request(&body, operation, &s.merchants);
    let known = match &read {
        Ok(call) => Some(call),
        Err(unread) => unread.call.as_deref(),
    };
    if lock(&s.maintenance).active(Utc::now()) {
        lock(&s.ledger).record_unprocessed(Utc::now(), operation, known, "maintenance");
        return wire::maintenance_page();
    }
    let order_no = known.map(|c| c.order_no.as_str()).unwrap_or("");
    let (draw, detail, page) = {
        let mut f = lock(&s.faults);
        let FaultState { plan, rng } = &mut *f;
        let draw = plan.draw(operation, order_no, rng);
        let detail: u64 = if draw.kind.is_some() { rng.gen() } else { 0 };
        let page = plan.page(operation, order_no).map(str::to_string);
        (draw, detail, page)
    };
    if !draw.latency.is_zero() {
        hold_until(arrived + draw.latency).await;
    }
    if let Some(kind) = draw.kind.filter(|k| !k.applies_the_call()) {
        let mut ledger = lock(&s.ledger);
        ledger.record_unprocessed(Utc::now(), operation, known, kind.as_str());
        ledger.held_back(draw.latency);
        drop(ledger);
        tracing::debug!(%operation, order_no, fault = kind.as_str(), "fault instead of the bank");
        return match (kind, page) {
            (FaultKind::ServerError, Some(p)) => wire::page(StatusCode::SERVICE_UNAVAILABLE, p),
            (FaultKind::Html200, Some(p)) => wire::page(StatusCode::OK, p),
            (FaultKind::ServerError, None) => wire::server_error(detail),
            (FaultKind::Html200, None) => wire::html_200(),
            (FaultKind::Maintenance200, _) => wire::maintenance_page_utf8_200(),
            _ => wire::dropped_connection(),
        };
    }
    let fault = draw.kind.map(FaultKind::as_str);
    // Sealed for the merchant the call named, if the simulator serves it.
    let merchant = s.merchants.answering(match &read {
        Ok(call) => Some(call.mer_id.as_str()),
        Err(unread) => unread.mer_id.as_deref(),
    });
    let answer = {
        let mut ledger = lock(&s.ledger);
        let answer = match &read {
            Ok(call) => ledger.apply(Utc::now(), call, fault),
            Err(u) => ledger.refuse_unread(
                Utc::now(),
                &merchant.mer_id,
                operation,
                u.call.as_deref(),
                (u.code, &u.errdesc),
                fault,
            ),
        };
        ledger.held_back(draw.latency);
        answer
    };
    match draw.kind {
        Some(FaultKind::ApplyThenDrop) => wire::dropped_connection(),
        Some(FaultKind::Garbage) => wire::garbage(detail),
        Some(FaultKind::WrongMac) => {
            wire::sealed_with_wrong_mac(&merchant.mer_id, &merchant.envelope, &answer)
        }
        _ => wire::sealed(&merchant.mer_id, &merchant.envelope, &answer),
    }
}
