//! The simulator's admin API under /admin: load transactions, read the books,
//! run the batch, change a transaction as the bank's portal would, set faults
//! and maintenance, reset. JSON in and out, and only for loopback peers
//! unless the simulator was told to serve other hosts.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use chrono_tz::Asia::Taipei;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::faults::FaultPlan;
use super::ledger::{BatchMoved, Ledger, PortalChange, PortalRefusal, SimTx};
use super::maintenance::Maintenance;
use super::{lock, Shared};
use crate::domain::daily_window::DailyWindow;

/// Bulk loads are large: 100,000 transactions are about 25 MB of JSON.
const LOAD_LIMIT_BYTES: usize = 512 * 1024 * 1024;
const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 100_000;

pub(crate) fn routes(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/admin/transactions",
            post(load)
                .get(list_transactions)
                .layer(DefaultBodyLimit::max(LOAD_LIMIT_BYTES)),
        )
        .route("/admin/transactions/{order_no}", get(transaction))
        .route("/admin/ledger", get(ledger))
        .route("/admin/calls", get(calls))
        .route("/admin/duplicates", get(duplicates))
        .route("/admin/batch/start", post(batch_start))
        .route("/admin/batch/finish", post(batch_finish))
        .route("/admin/batch", post(batch_run))
        .route("/admin/portal/{order_no}", post(portal))
        .route("/admin/faults", get(faults).put(set_faults))
        .route("/admin/maintenance", get(maintenance).put(set_maintenance))
        .route("/admin/reset", post(reset))
        .route_layer(middleware::from_fn_with_state(shared, loopback_only))
}

async fn loopback_only(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if !admin_allowed(peer, s.allow_non_loopback) {
        return refuse(StatusCode::FORBIDDEN, "the admin API answers loopback only");
    }
    next.run(req).await
}

/// Loopback peers (IPv4, IPv6, or IPv4 mapped into IPv6) always; others only when allowed.
fn admin_allowed(peer: SocketAddr, allow_non_loopback: bool) -> bool {
    allow_non_loopback || peer.ip().to_canonical().is_loopback()
}

fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(json!({ "error": error.into() }))).into_response()
}

/// Answer of a bulk load.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub loaded: u64,
}

async fn load(State(s): State<Arc<Shared>>, Json(txs): Json<Vec<SimTx>>) -> Response {
    // Checking runs outside the lock; inserting is all the lock sees.
    let now = Utc::now().with_timezone(&Taipei).fixed_offset();
    match Ledger::prepare(txs, now, &s.merchants.ids()) {
        Ok(prepared) => {
            let loaded = lock(&s.ledger).load(prepared);
            Json(Loaded { loaded }).into_response()
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
struct Page {
    order_no: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

impl Page {
    fn bounds(&self) -> (usize, usize) {
        (
            self.offset.unwrap_or(0),
            self.limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE),
        )
    }
}

async fn list_transactions(State(s): State<Arc<Shared>>, Query(p): Query<Page>) -> Response {
    let (offset, limit) = p.bounds();
    Json(lock(&s.ledger).transactions(offset, limit)).into_response()
}

async fn transaction(State(s): State<Arc<Shared>>, Path(order_no): Path<String>) -> Response {
    match lock(&s.ledger).transaction(&order_no) {
        Some(tx) => Json(tx).into_response(),
        None => refuse(
            StatusCode::NOT_FOUND,
            format!("no transaction {order_no:?}"),
        ),
    }
}

async fn ledger(State(s): State<Arc<Shared>>) -> Response {
    let mut report = lock(&s.ledger).report();
    report.most_calls_at_once = s.in_flight.most();
    Json(report).into_response()
}

async fn calls(State(s): State<Arc<Shared>>, Query(p): Query<Page>) -> Response {
    let (offset, limit) = p.bounds();
    let order_no = p.order_no.as_deref().filter(|o| !o.is_empty());
    Json(lock(&s.ledger).calls(order_no, offset, limit)).into_response()
}

/// Answer of `/admin/duplicates`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicates {
    pub duplicates: u64,
}

async fn duplicates(State(s): State<Arc<Shared>>) -> Response {
    let duplicates = lock(&s.ledger).duplicates();
    Json(Duplicates { duplicates }).into_response()
}

/// Answer of `/admin/batch`: what the start and the finish moved.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchRun {
    pub started: BatchMoved,
    pub finished: BatchMoved,
}

async fn batch_start(State(s): State<Arc<Shared>>) -> Json<BatchMoved> {
    Json(lock(&s.ledger).batch_start())
}

async fn batch_finish(State(s): State<Arc<Shared>>) -> Json<BatchMoved> {
    Json(lock(&s.ledger).batch_finish())
}

async fn batch_run(State(s): State<Arc<Shared>>) -> Json<BatchRun> {
    let mut ledger = lock(&s.ledger);
    let started = ledger.batch_start();
    let finished = ledger.batch_finish();
    Json(BatchRun { started, finished })
}

/// A change made at the bank's portal: never logged as a call. A body that
/// is not a change the portal knows is refused with `400` and the reason
/// (without `Content-Type: application/json`, `415`).
async fn portal(
    State(s): State<Arc<Shared>>,
    Path(order_no): Path<String>,
    body: Result<Json<PortalChange>, JsonRejection>,
) -> Response {
    let change = match body {
        Ok(Json(change)) => change,
        Err(JsonRejection::MissingJsonContentType(r)) => return r.into_response(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, portal_body_problem(&e)),
    };
    let made = lock(&s.ledger).portal(Utc::now(), &order_no, &change);
    match made {
        Ok(applied) => {
            tracing::info!(order_no, ?change, "changed at the bank's portal");
            Json(applied).into_response()
        }
        Err(PortalRefusal::BadChange(e)) => refuse(StatusCode::BAD_REQUEST, e),
        Err(PortalRefusal::UnknownOrder(e)) => refuse(StatusCode::NOT_FOUND, e),
        Err(PortalRefusal::NotAllowed { state, reason }) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": reason, "state": state })),
        )
            .into_response(),
    }
}

/// What is wrong with a body that is not a portal change.
fn portal_body_problem(e: &JsonRejection) -> String {
    format!(
        "the body is one change: {{\"change\": \"refund\"|\"reverse\"|\"fail_refund\"|\"settle_amount\"|\"forget\"|\"set_state\", ...}}: {}",
        e.body_text()
    )
}

async fn faults(State(s): State<Arc<Shared>>) -> Json<FaultPlan> {
    Json(lock(&s.faults).plan.clone())
}

async fn set_faults(State(s): State<Arc<Shared>>, Json(plan): Json<FaultPlan>) -> Response {
    if let Err(e) = plan.validate() {
        return refuse(StatusCode::BAD_REQUEST, e);
    }
    lock(&s.faults).plan = plan.clone();
    Json(plan).into_response()
}

/// Body of `PUT /admin/maintenance`: the switch, and the daily windows if given.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceUpdate {
    pub on: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<DailyWindow>>,
}

async fn maintenance(State(s): State<Arc<Shared>>) -> Json<Maintenance> {
    Json(lock(&s.maintenance).clone())
}

async fn set_maintenance(
    State(s): State<Arc<Shared>>,
    Json(update): Json<MaintenanceUpdate>,
) -> Json<Maintenance> {
    let mut m = lock(&s.maintenance);
    m.on = update.on;
    if let Some(windows) = update.windows {
        m.windows = windows;
    }
    Json(m.clone())
}

async fn reset(State(s): State<Arc<Shared>>) -> StatusCode {
    s.reset();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_for_loopback_unless_allowed() {
        for ok in ["127.0.0.1:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
            assert!(admin_allowed(ok.parse().unwrap(), false), "{ok}");
        }
        for other in ["10.0.0.2:1", "[2001:db8::1]:1", "[::ffff:10.0.0.2]:1"] {
            assert!(!admin_allowed(other.parse().unwrap(), false), "{other}");
            assert!(admin_allowed(other.parse().unwrap(), true), "{other}");
        }
    }
}
