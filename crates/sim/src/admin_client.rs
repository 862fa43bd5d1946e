//! A Rust wrapper of the simulator's admin API, so tests, the demo and the
//! benchmarks set up and inspect the bank without writing HTTP by hand.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::admin::{BatchRun, Duplicates, Loaded, MaintenanceUpdate};
use super::faults::FaultPlan;
use super::ledger::{
    BatchMoved, CallRecord, CallsPage, LedgerReport, PortalApplied, PortalChange, PortalRecord,
    SimRefund, SimTx,
};
use super::maintenance::Maintenance;
use crate::domain::daily_window::DailyWindow;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum SimAdminError {
    #[error("simulator admin API unreachable or unreadable: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("simulator admin API answered {status}: {body}")]
    Status { status: StatusCode, body: String },
}

/// Talks to one simulator's admin API.
#[derive(Clone, Debug)]
pub struct SimAdmin {
    http: reqwest::Client,
    base_url: String,
}

const CALLS_PAGE: u64 = 10_000;
const TRANSACTIONS_PAGE: u64 = 10_000;

impl SimAdmin {
    /// `base_url` is the simulator's, e.g. `http://127.0.0.1:8990`.
    pub fn new(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, SimAdminError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            Err(SimAdminError::Status { status, body })
        }
    }

    async fn json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, SimAdminError> {
        Ok(self.send(method, path, body).await?.json().await?)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, SimAdminError> {
        self.json::<(), T>(Method::GET, path, None).await
    }

    /// Loads (or replaces, by order number) transactions in one request.
    pub async fn load(&self, txs: &[SimTx]) -> Result<u64, SimAdminError> {
        let l: Loaded = self
            .json(Method::POST, "/admin/transactions", Some(txs))
            .await?;
        Ok(l.loaded)
    }

    pub async fn transaction(&self, order_no: &str) -> Result<Option<SimTx>, SimAdminError> {
        match self.get(&format!("/admin/transactions/{order_no}")).await {
            Ok(tx) => Ok(Some(tx)),
            Err(SimAdminError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Transactions in order-number order.
    pub async fn transactions(&self, offset: u64, limit: u64) -> Result<Vec<SimTx>, SimAdminError> {
        self.get(&format!(
            "/admin/transactions?offset={offset}&limit={limit}"
        ))
        .await
    }

    /// Every transaction the books hold, in order-number order, read page by page.
    pub async fn all_transactions(&self) -> Result<Vec<SimTx>, SimAdminError> {
        let mut all = Vec::new();
        loop {
            let page = self
                .transactions(all.len() as u64, TRANSACTIONS_PAGE)
                .await?;
            let done = (page.len() as u64) < TRANSACTIONS_PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Every refund the bank holds of one order, oldest first, reversed ones
    /// included, with the references it filed each under; `None` for an
    /// order it does not know.
    pub async fn refunds_of(
        &self,
        order_no: &str,
    ) -> Result<Option<Vec<SimRefund>>, SimAdminError> {
        Ok(self.transaction(order_no).await?.map(|tx| tx.refunds))
    }

    pub async fn ledger(&self) -> Result<LedgerReport, SimAdminError> {
        self.get("/admin/ledger").await
    }

    /// One page of the call log, optionally of one order.
    pub async fn calls_page(
        &self,
        order_no: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<CallsPage, SimAdminError> {
        let order = order_no.unwrap_or("");
        self.get(&format!(
            "/admin/calls?order_no={order}&offset={offset}&limit={limit}"
        ))
        .await
    }

    /// The whole call log, read page by page.
    pub async fn calls(&self) -> Result<Vec<CallRecord>, SimAdminError> {
        self.all_calls(None).await
    }

    /// Every call about one order.
    pub async fn calls_of(&self, order_no: &str) -> Result<Vec<CallRecord>, SimAdminError> {
        self.all_calls(Some(order_no)).await
    }

    async fn all_calls(&self, order_no: Option<&str>) -> Result<Vec<CallRecord>, SimAdminError> {
        let mut all = Vec::new();
        loop {
            let page = self
                .calls_page(order_no, all.len() as u64, CALLS_PAGE)
                .await?;
            let done =
                page.calls.is_empty() || all.len() as u64 + page.calls.len() as u64 >= page.total;
            all.extend(page.calls);
            if done {
                return Ok(all);
            }
        }
    }

    pub async fn duplicates(&self) -> Result<u64, SimAdminError> {
        let d: Duplicates = self.get("/admin/duplicates").await?;
        Ok(d.duplicates)
    }

    /// Batch start: 10 -> 11, 20 -> 21.
    pub async fn batch_start(&self) -> Result<BatchMoved, SimAdminError> {
        self.json::<(), _>(Method::POST, "/admin/batch/start", None)
            .await
    }

    /// Batch finish: 11 -> 12, 21 -> 22.
    pub async fn batch_finish(&self) -> Result<BatchMoved, SimAdminError> {
        self.json::<(), _>(Method::POST, "/admin/batch/finish", None)
            .await
    }

    /// Start and finish at once.
    pub async fn run_batch(&self) -> Result<BatchRun, SimAdminError> {
        self.json::<(), _>(Method::POST, "/admin/batch", None).await
    }

    /// Changes the transaction of `order_no` as the bank's portal would,
    /// behind the back of whoever calls the bank: no call is logged. A change
    /// its state does not allow comes back as `Status` 409, an unknown order
    /// as 404.
    pub async fn portal(
        &self,
        order_no: &str,
        change: &PortalChange,
    ) -> Result<PortalApplied, SimAdminError> {
        self.json(
            Method::POST,
            &format!("/admin/portal/{order_no}"),
            Some(change),
        )
        .await
    }

    /// Every change made at the bank's portal, oldest first.
    pub async fn portal_changes(&self) -> Result<Vec<PortalRecord>, SimAdminError> {
        Ok(self.ledger().await?.portal_changes)
    }

    pub async fn faults(&self) -> Result<FaultPlan, SimAdminError> {
        self.get("/admin/faults").await
    }

    pub async fn set_faults(&self, plan: &FaultPlan) -> Result<(), SimAdminError> {
        self.send(Method::PUT, "/admin/faults", Some(plan)).await?;
        Ok(())
    }

    /// Throws the maintenance switch (the daily windows stay as they are).
    pub async fn set_maintenance(&self, on: bool) -> Result<Maintenance, SimAdminError> {
        let update = MaintenanceUpdate { on, windows: None };
        self.json(Method::PUT, "/admin/maintenance", Some(&update))
            .await
    }

    /// Replaces the daily windows and sets the switch.
    pub async fn set_maintenance_windows(
        &self,
        on: bool,
        windows: Vec<DailyWindow>,
    ) -> Result<Maintenance, SimAdminError> {
        let update = MaintenanceUpdate {
            on,
            windows: Some(windows),
        };
        self.json(Method::PUT, "/admin/maintenance", Some(&update))
            .await
    }

    /// Forgets every transaction and call; faults, windows and the seed go
    /// back to how the simulator was started.
    pub async fn reset(&self) -> Result<(), SimAdminError> {
        self.send::<()>(Method::POST, "/admin/reset", None).await?;
        Ok(())
    }
}
