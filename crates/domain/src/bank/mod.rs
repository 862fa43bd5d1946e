//! The bank's vocabulary and messages, without I/O or cryptography: the parsed
//! types (`OrderNo`, `Money`, `TxState`), the five operations, the call bodies
//! and the answers as typed values (an order number's several records among
//! them), and `CtbcError` sorted by what must happen next. The wire envelope
//! and the HTTP client that carry them are `ctbc`'s.
pub mod answer;
pub mod bank_text;
pub mod call_body;
pub mod error;
pub mod fields;
pub mod operation;
pub mod records;
pub mod types;

pub use answer::{Accepted, Inquiry, RefundAccepted, RefundReferences};
pub use call_body::{CaptureReversal, Refund, RefundPlace, RefundReversal, Reversal};
pub use error::CtbcError;
pub use operation::Operation;
pub use records::InquiryRecord;
pub use types::{AuthCode, Currency, InvalidField, MaskedPan, MerId, Money, OrderNo, TxState, Xid};
