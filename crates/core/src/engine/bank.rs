//! The bank as a pass uses it: the client (one merchant's keys and endpoint)
//! and the turns its orders share (`turns`), so every call to the bank takes
//! a turn; one `Bank` per merchant (`Banks`), the merchants at one endpoint
//! sharing its turns as their clients share its rate limit.

use super::turns::Turns;
use crate::ctbc::{
    Client, CtbcError, Inquiry, Merchants, Operation, OrderNo, RefundPlace, RefundReferences,
    RefundReversal, Xid,
};
use crate::domain::calls::Call;
use crate::domain::merchant::MerchantName;
use crate::domain::record::{GatewayEvent, OrderRecord};
use crate::domain::refund_request::RefundRequest;
use crate::domain::words::{CallOutcome, EventKind};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::SemaphorePermit;
use tracing::info;

/// Every merchant's `Bank`: the default merchant's and each named one's.
#[derive(Debug, Clone)]
pub(super) struct Banks {
    default: Bank,
    named: BTreeMap<MerchantName, Bank>,
}

impl Banks {
    /// `calls_at_once` calls in flight at most to each endpoint
    /// (`worker.concurrency`), whichever merchants make them.
    pub(super) fn new(merchants: &Merchants, calls_at_once: usize) -> Self {
        let mut at_endpoint: Vec<(url::Url, Turns)> = Vec::new();
        let mut bank_of = |client: &Client| {
            let turns = match at_endpoint.iter().find(|(u, _)| u == client.base_url()) {
                Some((_, turns)) => turns.clone(),
                None => {
                    let turns = Turns::new(calls_at_once);
                    at_endpoint.push((client.base_url().clone(), turns.clone()));
                    turns
                }
            };
            Bank::new(client.clone(), turns, calls_at_once)
        };
        let default = bank_of(merchants.default_client());
        let named = merchants
            .iter()
            .filter_map(|(merchant, client)| Some((merchant?.clone(), bank_of(client))))
            .collect();
        Self { default, named }
    }

    /// The bank of an order's merchant (`None`: the default merchant's);
    /// `None` for a merchant no settings table names.
    #[cfg(test)]
    pub(super) fn for_merchant(&self, merchant: Option<&MerchantName>) -> Option<&Bank> {
        match merchant {
            None => Some(&self.default),
            Some(name) => self.named.get(name),
        }
    }

    /// The bank of the merchant a record names (the shop's column
    /// `merchant`), or why the record cannot be worked at any: a name that
    /// is not one, or one no settings table gives.
    pub(super) fn of_record(&self, row: &OrderRecord) -> Result<&Bank, String> {
        crate::domain::merchant::of_record(row.merchant.as_deref(), &self.default, &self.named)
    }

    /// The default merchant's bank (the `[ctbc]` table's).
    #[cfg(test)]
    pub(super) fn default_bank(&self) -> &Bank {
        &self.default
    }

    fn all(&self) -> impl Iterator<Item = &Bank> {
        std::iter::once(&self.default).chain(self.named.values())
    }

    /// Starts counting every merchant's answers that did not open afresh.
    pub(super) fn recount_answers(&self) {
        self.all().for_each(Bank::recount_answers);
    }

    /// Why the bank's answers say a merchant's keys are wrong, if they do
    /// for any (the message names that merchant's settings).
    pub(super) fn keys_look_wrong(&self) -> Option<String> {
        self.all().find_map(Bank::keys_look_wrong)
    }
}

/// One merchant's bank client and the turns of its endpoint.
#[derive(Debug, Clone)]
pub(super) struct Bank {
    client: Client,
    turns: Turns,
    calls_at_once: usize,
}

impl Bank {
    /// `calls_at_once` calls in flight at most (`worker.concurrency`),
    /// taking `turns` shared with the other merchants at the endpoint.
    fn new(client: Client, turns: Turns, calls_at_once: usize) -> Self {
        Self {
            client,
            turns,
            calls_at_once: calls_at_once.max(1),
        }
    }

    /// Waits for a turn at the bank (see `turns`).
    pub(super) async fn turn(&self) -> Option<SemaphorePermit<'_>> {
        self.turns.take().await
    }

    /// An inquiry outside any order's story (the settlement watch's), as it
    /// concerns the authorisation `xid` (`Client::inquiry_for`).
    pub(super) async fn inquiry(
        &self,
        order_no: &OrderNo,
        xid: &Xid,
    ) -> Result<Inquiry, CtbcError> {
        self.client.inquiry_for(order_no, xid).await
    }

    /// Why the bank's answers say refundd's keys are wrong, if they do.
    pub(super) fn keys_look_wrong(&self) -> Option<String> {
        self.client.keys_look_wrong()
    }

    /// Starts counting the answers that did not open afresh, for a new pass.
    pub(super) fn recount_answers(&self) {
        self.client.recount_answers();
    }

    /// The longest one call to the bank can take once it has its turn.
    pub(super) fn longest_call(&self) -> Duration {
        self.client.longest_call(self.calls_at_once)
    }

    /// Sends one money-moving call that passed its local checks; an accepted
    /// refund says where the bank filed it.
    pub(super) async fn send(&self, call: &Call) -> Result<RefundReferences, CtbcError> {
        let none = |_| RefundReferences::default();
        match call {
            Call::Reversal(r) => self.client.reversal(r).await.map(none),
            Call::CaptureReversal(r) => self.client.capture_reversal(r).await.map(none),
            Call::Refund(r) => self.client.refund(r).await.map(|a| a.references()),
        }
    }

    /// Cancels the refund the bank filed at `place` (the caller holds a turn).
    pub(super) async fn cancel_refund(
        &self,
        req: &RefundReversal,
        place: &RefundPlace,
    ) -> Result<(), CtbcError> {
        self.client.refund_reversal_of(req, place).await.map(|_| ())
    }

    /// Asks the bank in a turn about the order's own authorisation (its
    /// record, when the bank holds several of the order number); the answer
    /// goes into the order's story with the next write.
    pub(super) async fn inquire(&self, req: &mut RefundRequest) -> Result<Inquiry, CtbcError> {
        let turn = self.turns.take().await;
        let started = Instant::now();
        let result = self.client.inquiry_for(&req.order_no, &req.xid).await;
        drop(turn);
        let elapsed_ms = started.elapsed().as_millis() as i32;
        let mut ev = GatewayEvent {
            kind: EventKind::Outcome,
            operation: Some(Operation::Inquiry),
            elapsed_ms: Some(elapsed_ms),
            ..Default::default()
        };
        match &result {
            Ok(bank) => {
                ev.outcome = Some(CallOutcome::Accepted);
                ev.bank_state = Some(bank.state.code().to_string());
                ev.amount = bank.auth_amount.map(|m| m.amount());
                info!(
                    step = "inquiry",
                    operation = "inquiry",
                    bank_state = bank.state.code(),
                    elapsed_ms,
                    "bank answered"
                );
            }
            Err(e) => {
                ev.outcome = Some(CallOutcome::of_error(e));
                ev.message = Some(e.to_string());
                if let CtbcError::UnknownOrder {
                    resp_code,
                    err_code,
                    ..
                }
                | CtbcError::Refused {
                    resp_code,
                    err_code,
                    ..
                } = e
                {
                    ev.resp_code = Some(resp_code.clone());
                    ev.err_code = Some(err_code.clone());
                }
                info!(
                    step = "inquiry",
                    operation = "inquiry",
                    error = e.kind(),
                    elapsed_ms,
                    "inquiry gave no verdict: {e}"
                );
            }
        }
        req.unrecorded.push(ev);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctbc::{ClientConfig, Envelope, MerId, OtherMerchant};
    use futures::FutureExt;

    fn name(n: &str) -> MerchantName {
        MerchantName::parse(n).unwrap()
    }

    fn other(n: &str, mer_id: &str, base_url: Option<&str>) -> OtherMerchant {
        OtherMerchant {
            name: name(n),
            mer_id: MerId::parse(mer_id).unwrap(),
            envelope: Envelope::new(b"ZYXWVUTSRQPONMLKJIHGFEDC", b"other8iv").unwrap(),
            base_url: base_url.map(|u| url::Url::parse(u).unwrap()),
        }
    }

    /// The default merchant and `outlet` at one endpoint, `brand` at another.
    fn merchants() -> Merchants {
        let default = ClientConfig::new(
            url::Url::parse("http://127.0.0.1:9/MicroPos").unwrap(),
            MerId::parse("1234567").unwrap(),
            Envelope::new(b"ABCDEFGHIJKLMNOPQRSTUVWX", b"test8iv!").unwrap(),
        );
        let others = vec![
            other("outlet", "7654321", None),
            other("brand", "5555555", Some("http://127.0.0.2:9/MicroPos")),
        ];
        Merchants::new(default, others).unwrap()
    }

    #[test]
    fn each_merchant_has_its_bank_and_an_unknown_one_none() {
        let banks = Banks::new(&merchants(), 4);
        let mer_id = |m: Option<&MerchantName>| {
            let bank = banks.for_merchant(m).unwrap();
            bank.client.mer_id().as_str().to_string()
        };
        assert_eq!(mer_id(None), "1234567");
        assert_eq!(mer_id(Some(&name("outlet"))), "7654321");
        assert_eq!(mer_id(Some(&name("brand"))), "5555555");
        assert_eq!(banks.default_bank().client.mer_id().as_str(), "1234567");
        assert!(banks.for_merchant(Some(&name("unknown"))).is_none());
    }

    #[test]
    fn merchants_at_one_endpoint_share_its_turns() {
        let banks = Banks::new(&merchants(), 1);
        let outlet = banks.for_merchant(Some(&name("outlet"))).unwrap();
        let brand = banks.for_merchant(Some(&name("brand"))).unwrap();
        let held = banks.default_bank().turn().now_or_never().flatten();
        assert!(held.is_some(), "the endpoint's one turn");
        assert!(
            outlet.turn().now_or_never().is_none(),
            "the same endpoint: it waits for the default merchant's call"
        );
        assert!(
            brand.turn().now_or_never().flatten().is_some(),
            "another endpoint has turns of its own"
        );
        drop(held);
        assert!(outlet.turn().now_or_never().flatten().is_some());
    }
}
