//! refundd: works off credit-card refund requests against CTBC's POS API.
//!
//! A shop marks an order "refund requested"; refundd, woken on a schedule,
//! reads those requests, asks the bank where each transaction stands, sends
//! the call that gives the money back (a reversal, a capture reversal then a
//! reversal, or a refund) and records the order refunded once the bank has
//! accepted it. Every step is written down before the next one, so a crash,
//! a lost answer or a second daemon never sends money twice.
//!
//! The layout follows that path, over four crates whose boundaries the
//! compiler keeps (`ARCHITECTURE.md`, "Crates"); this package holds the
//! command line and operations, and re-exports the others' modules:
//!
//! - [`cli`]: the command line, settings read once, exit codes.
//! - [`ops`]: logs, status, health and metrics, systemd, the demo.
//! - [`domain`] (`refundd-domain`): what a refund is, without I/O: the bank's
//!   vocabulary, the words of refundd's record, the refund request and the
//!   pure decision of what each bank state needs (`domain::decide`,
//!   `domain::next_move`).
//! - [`config`], [`ctbc`], [`store`], [`engine`], [`notify`], [`outbound`],
//!   [`sync`], [`throwaway_pg`] (`refundd-core`): typed settings; the wire
//!   envelope (the only cryptography) and the HTTP client; every SQL
//!   statement; the schedule, the passes and the steps that send calls; the
//!   webhook; what every outbound request keeps; the one lock policy; a
//!   disposable PostgreSQL cluster for the demo and tests.
//! - [`sim`] (`refundd-sim`): a bank simulator speaking the same protocol
//!   over HTTP, for the demo, the tests and the load harness.
//!
//! `ARCHITECTURE.md` is the longer map: what each module owns, what it never
//! does, and where each money rule is kept.
pub mod cli;
pub mod ops;

pub use refundd_core::{config, ctbc, engine, notify, outbound, store, sync, throwaway_pg};
pub use refundd_domain as domain;
pub use refundd_sim as sim;
