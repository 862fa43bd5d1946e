//! A CTBC client that can only ask: `refundd plan` must be unable to move money,
//! and holding this type instead of `Client` makes the compiler prove it. The
//! wrapped client is private and never handed back, so no reversal, capture
//! reversal, refund or refund reversal can be reached through it. Each
//! merchant of the shop's has one (`InquiryBanks`), so an order is asked
//! about with its own merchant's id and keys.

use super::error::CtbcError;
use super::merchants::Merchants;
use super::types::{OrderNo, Xid};
use super::{answer::Inquiry, client::Client};
use crate::domain::merchant::MerchantName;
use std::collections::BTreeMap;

/// The CTBC client with its money-moving operations out of reach: only
/// [`InquiryClient::inquiry`] (and its narrowing to one authorisation,
/// [`InquiryClient::inquiry_for`]) exists.
///
/// ```compile_fail
/// // An inquiry-only client has no `refund`, nor any other money-moving call.
/// async fn refund(bank: &refundd_core::ctbc::InquiryClient, r: &refundd_core::ctbc::Refund) {
///     let _ = bank.refund(r).await;
/// }
/// ```
#[derive(Debug, Clone)]
pub struct InquiryClient(Client);

impl InquiryClient {
    /// Takes the client over; it is never given back.
    pub fn new(client: Client) -> InquiryClient {
        InquiryClient(client)
    }

    /// Whether the last answer did not open with the keys (`Client::answer_did_not_open`).
    pub fn answer_did_not_open(&self) -> bool {
        self.0.answer_did_not_open()
    }

    /// The merchant id the client speaks for.
    pub fn mer_id(&self) -> &crate::ctbc::MerId {
        self.0.mer_id()
    }

    /// The merchant the client speaks for: `None` for the `[ctbc]` table's own.
    pub fn merchant(&self) -> Option<&MerchantName> {
        self.0.merchant()
    }

    /// Why the bank's answers say the keys are wrong, if they do
    /// (`Client::keys_look_wrong`).
    pub fn keys_look_wrong(&self) -> Option<String> {
        self.0.keys_look_wrong()
    }

    /// What the bank holds under an order number: the one call that moves
    /// nothing (`Client::inquiry`).
    pub async fn inquiry(&self, order_no: &OrderNo) -> Result<Inquiry, CtbcError> {
        self.0.inquiry(order_no).await
    }

    /// Where the order's own authorisation stands (`Client::inquiry_for`).
    pub async fn inquiry_for(&self, order_no: &OrderNo, xid: &Xid) -> Result<Inquiry, CtbcError> {
        self.0.inquiry_for(order_no, xid).await
    }
}

/// An inquiry-only client per merchant of the shop's: the default merchant's
/// and each `[ctbc.merchants.NAME]`'s, built from `Merchants`.
#[derive(Debug, Clone)]
pub struct InquiryBanks {
    default: InquiryClient,
    named: BTreeMap<MerchantName, InquiryClient>,
}

impl InquiryBanks {
    /// Every merchant's client, able only to ask.
    pub fn new(merchants: &Merchants) -> InquiryBanks {
        let named = merchants
            .iter()
            .filter_map(|(name, client)| Some((name?.clone(), InquiryClient::new(client.clone()))))
            .collect();
        InquiryBanks {
            default: InquiryClient::new(merchants.default_client().clone()),
            named,
        }
    }

    /// The client of the merchant a record names (the shop's column
    /// `merchant`, `None` the default's), or why the record cannot be worked
    /// at any merchant's bank, in the pass's words
    /// (`domain::merchant::of_record`).
    pub fn of_merchant(&self, given: Option<&str>) -> Result<&InquiryClient, String> {
        crate::domain::merchant::of_record(given, &self.default, &self.named)
    }

    /// Every merchant's client, the default's first, then by name.
    pub fn iter(&self) -> impl Iterator<Item = &InquiryClient> {
        std::iter::once(&self.default).chain(self.named.values())
    }

    /// Why the bank's answers say a merchant's keys are wrong, if they do
    /// for any (the message names that merchant's settings).
    pub fn keys_look_wrong(&self) -> Option<String> {
        self.iter().find_map(InquiryClient::keys_look_wrong)
    }
}

/// One merchant alone: the default, and no other.
impl From<InquiryClient> for InquiryBanks {
    fn from(default: InquiryClient) -> InquiryBanks {
        InquiryBanks {
            default,
            named: BTreeMap::new(),
        }
    }
}
