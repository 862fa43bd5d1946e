//! What an operator touches: logs, status, request and retry, health and
//! metrics, systemd notifications, progress, the demo and the example shops.
//! No business rules here.
pub mod cancel_refund;
pub mod check;
pub mod demo;
pub mod exit;
pub mod health;
pub(crate) mod hooks;
pub mod http;
pub mod labels;
pub mod local_time;
pub mod logging;
pub mod manual;
pub mod manual_queue;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod reconcile;
pub mod shop_examples;
pub mod status;
pub mod systemd;
pub mod table;
