//! What a refund is, without I/O: the bank's vocabulary (`bank`), the words
//! refundd's record is written in (`words`), the merchant id an order
//! was paid under (`merchant`), a refund request and its record,
//! and the pure decision of what each bank state needs (`decide`, `next_move`,
//! `mapping`), with the calendar they are judged on (blackout windows, the
//! schedule). The bottom of the house: it depends on no other part of refundd.
pub mod bank;
pub mod blackout;
pub mod calls;
pub mod cron;
pub mod daily_window;
pub mod decide;
pub mod mapping;
pub mod merchant;
pub mod next_move;
pub mod reconcile;
pub mod record;
pub mod refund_id;
pub mod refund_request;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod words;
