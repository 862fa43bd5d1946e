//! The operators' HTTP endpoint: `/healthz` for load balancers, docker and
//! monitoring (database reachable, scheduler alive, the last pass) and
//! `/metrics` for Prometheus. It reads; it never changes an order.

use super::health::Health;
use super::metrics::{install_metrics, show_queue};
use crate::domain::words::PassOutcome;
use crate::store::Store;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long `/healthz` waits for the database's `SELECT 1`.
pub const DATABASE_PROBE: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct AppState {
    store: Store,
    health: Arc<Health>,
    metrics: PrometheusHandle,
}

/// Binds `listen` (port 0 picks a free port), serves on a task of `tasks`
/// until `stop`, and returns the address it listens on. Installs the metrics
/// recorder.
pub async fn serve(
    listen: SocketAddr,
    store: Store,
    health: Arc<Health>,
    stop: CancellationToken,
    tasks: &TaskTracker,
) -> std::io::Result<SocketAddr> {
    let state = AppState {
        store,
        health,
        metrics: install_metrics(),
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    tasks.spawn(async move {
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future();
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "health and metrics endpoint stopped with an error");
        }
    });
    tracing::info!(%addr, "health and metrics endpoint listening (/healthz, /metrics)");
    Ok(addr)
}

/// The body of `/healthz`.
#[derive(Debug, Serialize)]
struct HealthReport {
    /// ok | unhealthy
    status: &'static str,
    /// Why it is unhealthy; empty when ok.
    reasons: Vec<String>,
    database: String,
    scheduler: String,
    last_pass: Option<LastPassSeen>,
}

#[derive(Debug, Serialize)]
struct LastPassSeen {
    finished_at: DateTime<Utc>,
    age_secs: i64,
    outcome: PassOutcome,
}

async fn healthz(State(s): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    let db_ok = match s.store.ping(DATABASE_PROBE).await {
        Ok(()) => true,
        Err(e) => {
            reasons.push(format!("database unreachable: {e}"));
            false
        }
    };
    let liveness = s.health.liveness();
    let scheduler = if s.health.scheduler_alive(liveness) {
        "alive".to_string()
    } else {
        let why = match s.health.since_beat() {
            Some(d) => format!(
                "scheduler silent for {} s (more than {} s)",
                d.as_secs(),
                liveness.as_secs()
            ),
            None => "scheduler has not started".to_string(),
        };
        reasons.push(why.clone());
        why
    };
    // A pass this process ran that stopped on the operator's settings (the
    // bank's answers not opening with the keys, a mapping mistake).
    if let Some(problem) = s.health.last_pass().and_then(|p| p.summary.problem) {
        reasons.push(format!("the last pass stopped: {problem}"));
    }
    let last_pass = match s.health.last_pass() {
        Some(p) => Some((p.at, p.summary.outcome)),
        None if db_ok => s
            .store
            .last_finished_pass()
            .await
            .ok()
            .flatten()
            .and_then(|p| Some((p.finished_at?, p.outcome?))),
        None => None,
    }
    .map(|(at, outcome)| LastPassSeen {
        finished_at: at,
        age_secs: (Utc::now() - at).num_seconds(),
        outcome,
    });
    let healthy = reasons.is_empty();
    let body = HealthReport {
        status: if healthy { "ok" } else { "unhealthy" },
        reasons,
        database: if db_ok {
            "ok".into()
        } else {
            "unreachable".into()
        },
        scheduler,
        last_pass,
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    // A scrape must answer even when the database does not: the gauges keep their last values.
    match tokio::time::timeout(DATABASE_PROBE, s.store.queue_gauges()).await {
        Ok(Ok(g)) => show_queue(&g),
        Ok(Err(e)) => tracing::debug!(error = %e, "queue gauges not measured"),
        Err(_) => {
            tracing::debug!("queue gauges not measured: the database did not answer in time")
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}
