//! The integration tests, as one crate so the suite links the library once
//! and shares one throwaway PostgreSQL cluster (each test still gets a fresh
//! database of its own). One module per concern; `common` holds the helpers.
//!
//! Every test shares this process, so none may change what the others see:
//! no `std::env::set_var` (a `refundd` child gets its settings through its
//! `Command`), no global tracing subscriber that records (a test that reads
//! logs installs its own for its thread only, with `common::on_this_thread`,
//! beside one global subscriber that records nothing and keeps every callsite
//! asking, so no test's lines are lost to tracing's interest cache), and
//! one metrics recorder, refundd's own (`ops::metrics::install_metrics`),
//! whose counters the tests read as "at least", never "exactly".

// Tests may unwrap: a panic is how a test reports its failure; helpers are
// `pub` for their sibling modules in this private crate.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

mod cancel_refund;
mod catalog;
mod chaos;
mod cli_foundation;
mod commands;
mod ctbc_client;
mod deployment;
mod engine;
mod envelope_props;
mod grants;
mod group_commit;
mod merchant_passes;
mod merchants;
mod money_rules;
mod monitoring;
mod newcomer;
mod notify;
mod ops;
mod outbox;
mod plan;
mod reconcile;
mod schema;
mod sending;
mod several_refunds;
mod several_refunds_model;
mod shop;
mod shop_database;
mod shop_examples;
mod shop_modes;
mod sim;
mod sim_client;
mod sim_docs;
mod sim_portal;
mod sim_rehearsal;
mod tidy;

/// Where refundd keeps its records in the suites that run in both schemas
/// (`engine`, `money_rules`, `several_refunds`, `shop`, `shop_database`): here, the default.
const SCHEMA: &str = common::DEFAULT_SCHEMA;

/// The same suites with `database.schema` set to a name of the operator's choice.
mod in_another_schema;
