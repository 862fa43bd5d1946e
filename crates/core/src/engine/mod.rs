//! The reconciliation engine: what to do with each refund request, and when.
pub mod clock;
pub mod pass;
pub mod plan;
pub mod schedule;
pub mod settings;
mod steps;
pub mod summary;
mod turns;
mod watch;
