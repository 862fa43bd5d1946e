//! The reconciliation engine: what to do with each refund request, and when.
mod bank;
pub mod cancel;
pub mod clock;
mod held;
pub mod pass;
pub mod plan;
pub mod reconcile;
mod recorder;
pub mod schedule;
pub mod settings;
mod steps;
pub mod summary;
mod turns;
mod watch;
