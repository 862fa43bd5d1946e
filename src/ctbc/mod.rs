//! The CTBC POS API: wire envelope, the bank's vocabulary as types, and (in the
//! client) the typed operations with errors the engine can act on.
pub mod answer;
pub(crate) mod bank_text;
pub mod call_body;
pub mod client;
pub mod envelope;
pub mod error;
mod inquiry_only;
pub mod notice;
pub mod operation;
pub mod types;
pub mod wire;

pub use answer::{Accepted, Inquiry, RefundAccepted};
pub use call_body::{CaptureReversal, Refund, RefundReversal, Reversal};
pub use client::{Client, ClientConfig, ClientSetupError};
pub use envelope::Envelope;
pub use error::CtbcError;
pub use inquiry_only::InquiryClient;
pub use operation::Operation;
pub use types::{AuthCode, Currency, InvalidField, MaskedPan, MerId, Money, OrderNo, TxState, Xid};
