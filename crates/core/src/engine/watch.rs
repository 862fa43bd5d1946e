//! The settlement watch: a refund of settled money is recorded refunded when
//! the bank accepts it, then inquired on later passes until the bank's batch
//! settles it (22); one that fails there or vanishes goes to a person at once.

use super::bank::Banks;
use super::held::Held;
use super::recorder::Recorder;
use super::settings::EngineSettings;
use super::summary::PassCounters;
use crate::ctbc::types::{InvalidField, OrderNo, Xid};
use crate::ctbc::Operation;
use crate::domain::decide::watch_verdict;
use crate::domain::decide::Settlement;
use crate::domain::record::GatewayEvent;
use crate::domain::record::OrderRecord;
use crate::domain::words::{CallOutcome, EventKind};
use crate::store::StoreError;
use futures::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};
use uuid::Uuid;

/// The settlement watch of one pass, with the parts it needs.
pub(super) struct SettlementWatch<'a> {
    pub(super) banks: &'a Banks,
    pub(super) recorder: &'a Recorder,
    pub(super) settings: &'a EngineSettings,
    pub(super) worker: Uuid,
}

impl SettlementWatch<'_> {
    /// Inquires refunded orders until the bank settles their refund. One
    /// order's trouble never stops the others; only a lost database does.
    pub(super) async fn watch_settlements(
        &self,
        stop: &CancellationToken,
        counters: &Arc<PassCounters>,
        due_by: chrono::DateTime<chrono::Utc>,
        held: &Held,
    ) -> Result<(), StoreError> {
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            let rows = self
                .recorder
                .store
                .claim_settlement_watch(
                    self.worker,
                    self.settings.lease,
                    self.settings.batch_size,
                    due_by,
                )
                .await?;
            if rows.is_empty() {
                return Ok(());
            }
            held.add(
                rows.iter()
                    .map(|r| (r.id, r.lease_token.unwrap_or_default())),
            );
            let results: Vec<Result<(), StoreError>> = futures::stream::iter(rows)
                .map(|row| {
                    let span = tracing::error_span!("settlement_watch", order_no = %row.order_no);
                    async move {
                        let r = self.watch_one(&row, counters).await;
                        let r = match r {
                            Err(e) if e.is_about_one_order() => self.watch_refused(&row, &e).await,
                            other => other,
                        };
                        held.remove(row.id);
                        r
                    }
                    .instrument(span)
                })
                .buffer_unordered(self.settings.concurrency)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(()) | Err(StoreError::LeaseLost) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    async fn watch_one(
        &self,
        row: &OrderRecord,
        counters: &PassCounters,
    ) -> Result<(), StoreError> {
        counters.watched.fetch_add(1, Relaxed);
        let (order_no, xid) = match watched(row) {
            Ok(asked) => asked,
            Err(e) => {
                let reason = format!(
                    "needs a person: the settlement of this refund cannot be watched: invalid row: {e}"
                );
                return self
                    .watch_outcome(row, None, Settlement::Failed(reason), counters)
                    .await;
            }
        };
        let bank = match self.banks.of_record(row) {
            Ok(bank) => bank,
            Err(e) => {
                let reason =
                    format!("needs a person: the settlement of this refund cannot be watched: {e}");
                return self
                    .watch_outcome(row, None, Settlement::Failed(reason), counters)
                    .await;
            }
        };
        let started = Instant::now();
        let result = bank.inquiry(&order_no, &xid).await;
        let mut ev = GatewayEvent {
            kind: EventKind::Outcome,
            operation: Some(Operation::Inquiry),
            elapsed_ms: Some(started.elapsed().as_millis() as i32),
            ..Default::default()
        };
        let outcome = match &result {
            Ok(bank) => {
                ev.outcome = Some(CallOutcome::Accepted);
                ev.bank_state = Some(bank.state.code().to_string());
                watch_verdict(bank, &xid)
            }
            Err(e) => {
                ev.outcome = Some(CallOutcome::of_error(e));
                ev.message = Some(e.to_string());
                Settlement::StillSettling
            }
        };
        self.watch_outcome(row, Some(&ev), outcome, counters).await
    }

    async fn watch_outcome(
        &self,
        row: &OrderRecord,
        ev: Option<&GatewayEvent>,
        outcome: Settlement,
        counters: &PassCounters,
    ) -> Result<(), StoreError> {
        match &outcome {
            Settlement::Settled => {
                counters.settled.fetch_add(1, Relaxed);
                info!(step = "settled", "the bank settled the refund");
            }
            Settlement::Failed(reason) => {
                counters.settlement_failed.fetch_add(1, Relaxed);
                warn!(step = "failed", reason = %reason, "refund will not settle; needs a person");
            }
            Settlement::StillSettling => {}
        }
        let lease = row.lease(self.worker);
        let wb = self
            .recorder
            .store
            .record_settlement(
                &lease,
                ev.map(std::slice::from_ref).unwrap_or_default(),
                outcome,
                Duration::ZERO,
            )
            .await?;
        self.recorder.note_write_back(&wb);
        Ok(())
    }

    /// PostgreSQL refused what the watch wrote of one order: it is watched
    /// again after the backoff, with the error kept for `status`.
    async fn watch_refused(&self, row: &OrderRecord, e: &StoreError) -> Result<(), StoreError> {
        let reason =
            super::pass::printable(&format!("the database refused this order's record: {e}"));
        error!(step = "settlement_watch", reason = %reason, "order left for a later pass");
        let ev = GatewayEvent {
            kind: EventKind::Note,
            message: Some(reason),
            ..Default::default()
        };
        let still = Settlement::StillSettling;
        let wait = self.settings.backoff_base;
        let lease = row.lease(self.worker);
        match self
            .recorder
            .store
            .record_settlement(&lease, std::slice::from_ref(&ev), still, wait)
            .await
        {
            Err(e) if e.is_about_one_order() => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// What the watch asks the bank about: the order number and the XID of the
/// refunded authorisation (its record, when the bank holds several).
fn watched(row: &OrderRecord) -> Result<(OrderNo, Xid), InvalidField> {
    watched_at_bank(row.bank_order_no(), row.xid.as_deref())
}

/// The order number and XID a watched refund is asked by, from its record's
/// text: the pass's watch and `refundd plan`'s read them alike.
pub(super) fn watched_at_bank(
    order_no: &str,
    xid: Option<&str>,
) -> Result<(OrderNo, Xid), InvalidField> {
    let order_no = OrderNo::parse(order_no)?;
    let xid = Xid::parse(xid.unwrap_or_default().trim())?;
    Ok((order_no, xid))
}
