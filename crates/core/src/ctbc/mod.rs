//! The CTBC POS API as refundd speaks it: the wire envelope (the only
//! cryptography), the HTTP client with errors the engine can act on, one
//! client per merchant of the shop's (`merchants`), the inquiry-only client,
//! the bank's notices. The bank's vocabulary and message
//! shapes are `domain::bank`'s, presented here under the bank's name.
pub mod client;
pub mod envelope;
mod inquiry_only;
pub mod merchants;
pub(crate) mod notice;
pub mod wire;

pub use crate::domain::bank::{
    answer, bank_text, call_body, error, fields, operation, records, types,
};
pub use crate::domain::bank::{Accepted, Inquiry, InquiryRecord, RefundAccepted, RefundReferences};
pub use crate::domain::bank::{AuthCode, Currency, InvalidField, MaskedPan, MerId, Money};
pub use crate::domain::bank::{CaptureReversal, Refund, RefundPlace, RefundReversal, Reversal};
pub use crate::domain::bank::{CtbcError, Operation, OrderNo, TxState, Xid};
pub use client::{Client, ClientConfig, ClientSetupError};
pub use envelope::Envelope;
pub use inquiry_only::{InquiryBanks, InquiryClient};
pub use merchants::{Merchants, OtherMerchant};
