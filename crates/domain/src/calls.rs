//! A step of a plan as the call the bank is sent: built from the request and
//! checked locally (the amounts, the auth code, every field the bank's
//! rules allow), so what could stop it is found before its intent is recorded,
//! by the pass and by `refundd plan` alike.

use super::bank::{CaptureReversal, CtbcError, InvalidField, Refund, Reversal};
use super::decide::Step;
use super::refund_request::RefundRequest;

/// A money-moving call that passed every local check and only waits to be sent.
pub enum Call {
    Reversal(Reversal),
    CaptureReversal(CaptureReversal),
    Refund(Refund),
}

/// Builds the call of `step` and checks it locally: what could stop it is
/// found before its intent is recorded.
pub fn prepare(req: &RefundRequest, step: Step) -> Result<Call, CtbcError> {
    let auth_code = req.auth_code.clone().ok_or_else(|| {
        InvalidField::new(
            "auth_code",
            "the order has no auth code and the bank did not give one",
        )
    })?;
    let original = req.authorised;
    let (order_no, xid) = (req.order_no.clone(), req.xid.clone());
    let call = match step {
        Step::Reversal { new_auth_amount } => {
            let r = Reversal {
                order_no,
                xid,
                auth_code,
                original,
                new_auth_amount,
            };
            r.validate()?;
            Call::Reversal(r)
        }
        Step::CaptureReversal => {
            let r = CaptureReversal {
                order_no,
                xid,
                auth_code,
                original,
                amount: step.call_amount(req.currency),
            };
            r.validate()?;
            Call::CaptureReversal(r)
        }
        Step::Refund { amount } => {
            let r = Refund {
                order_no,
                xid,
                auth_code,
                original,
                amount,
            };
            r.validate()?;
            Call::Refund(r)
        }
    };
    Ok(call)
}

/// Why a step that failed its local checks is not sent, as the order records it.
pub fn refused_locally(step: Step, e: &CtbcError) -> String {
    format!("invalid {} request, nothing sent: {e}", step.operation())
}

/// The local checks a step must pass before its intent is recorded, without
/// building anything to send: the reason the order would fail, if it would.
pub fn local_check(req: &RefundRequest, step: Step) -> Result<(), String> {
    prepare(req, step)
        .map(|_| ())
        .map_err(|e| refused_locally(step, &e))
}
