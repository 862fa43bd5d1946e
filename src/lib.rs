//! refundd: works off credit-card refund requests against CTBC's POS API.
pub mod cli;
pub mod config;
pub mod ctbc;
pub mod engine;
pub mod notify;
pub mod ops;
pub mod sim;
pub mod store;
pub mod throwaway_pg;
