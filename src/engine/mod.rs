//! The reconciliation engine: what to do with each refund request, and when.
pub mod blackout;
pub mod clock;
pub mod cron;
pub mod decide;
pub mod mapping;
pub mod next_move;
pub mod pass;
pub mod plan;
pub mod refund_request;
pub mod schedule;
pub mod settings;
mod steps;
pub mod summary;
mod turns;
pub(crate) use turns::outlasts;
mod watch;
