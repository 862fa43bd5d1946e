//! The five calls of the POS API and where each is posted. One table, so that a
//! merchant holding the bank's own document can correct a path in one place.

use std::fmt;

/// The path under which the bank publishes the POS API; its test host's base
/// URL is `https://testepos.ctbcbank.com/MicroPos`.
pub const PUBLISHED_BASE_PATH: &str = "/MicroPos";
/// Client label sent as `SwRevision` unless settings say otherwise.
pub const DEFAULT_SW_REVISION: &str = "MicroQuery Server 3.2 (2019/10/25)";
/// Protocol version sent as `VERSION`.
pub const PROTOCOL_VERSION: &str = "3.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Ask where one transaction stands.
    Inquiry,
    /// Cancel (or lower) an authorisation that is not in the capture file.
    Reversal,
    /// Take a captured, not yet settled transaction back out of the capture file.
    CaptureReversal,
    /// Refund all or part of a settled transaction.
    Refund,
    /// Cancel a refund that has not settled yet.
    RefundReversal,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Inquiry,
        Operation::Reversal,
        Operation::CaptureReversal,
        Operation::Refund,
        Operation::RefundReversal,
    ];

    /// Path below the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Operation::Inquiry => "/NewQuery/InquiryByLidm",
            Operation::Reversal => "/NewPos/Reversal",
            Operation::CaptureReversal => "/NewPos/CapRev",
            Operation::Refund => "/NewPos/Refund",
            Operation::RefundReversal => "/NewPos/RefundRev",
        }
    }

    /// Our name for it, used in logs, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Inquiry => "inquiry",
            Operation::Reversal => "reversal",
            Operation::CaptureReversal => "capture_reversal",
            Operation::Refund => "refund",
            Operation::RefundReversal => "refund_reversal",
        }
    }

    pub fn parse(name: &str) -> Option<Operation> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Whether the call can move money (and so can never simply be repeated).
    pub fn moves_money(self) -> bool {
        !matches!(self, Operation::Inquiry)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
