//! refundd: works off credit-card refund requests against CTBC's POS API.
//!
//! A shop marks an order "refund requested"; refundd, woken on a schedule,
//! reads those requests, asks the bank where each transaction stands, sends
//! the call that gives the money back (a reversal, a capture reversal then a
//! reversal, or a refund) and records the order refunded once the bank has
//! accepted it. Every step is written down before the next one, so a crash,
//! a lost answer or a second daemon never sends money twice.
//!
//! The layout follows that path:
//!
//! - [`cli`]: the command line, settings read once, exit codes.
//! - [`config`]: typed settings from files, the environment and secret files;
//!   a setting that would defeat a money rule stops start-up.
//! - [`engine`]: the schedule and blackout windows, a pass over the queue,
//!   the pure decision of what each bank state needs (`engine::decide`), the
//!   steps that send calls, the settlement watch.
//! - [`ctbc`]: the bank's vocabulary as types, its wire envelope (the only
//!   cryptography in the project, `ctbc::envelope`) and the HTTP client whose
//!   errors say what the engine must do next.
//! - [`store`]: every SQL statement: refundd's own schema, the shop's
//!   statements from the settings, claims, leases and fenced writes.
//! - [`notify`]: the outbox's events delivered to the operator's webhook.
//! - [`ops`]: logs, status, health and metrics, systemd, the demo.
//! - [`outbound`]: what every HTTP request refundd sends keeps: plain http
//!   only to a loopback address, no redirect followed.
//! - [`sim`]: a bank simulator speaking the same protocol over HTTP, for the
//!   demo, the tests and the load harness.
//! - [`throwaway_pg`]: a disposable PostgreSQL cluster for the demo and tests.
//!
//! `ARCHITECTURE.md` is the longer map: what each module owns, what it never
//! does, and where each money rule is kept.
pub mod cli;
pub mod ops;

pub use refundd_core::{config, ctbc, engine, notify, outbound, store, sync, throwaway_pg};
pub use refundd_domain as domain;
pub use refundd_sim as sim;
