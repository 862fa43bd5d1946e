// What an operator touches: logs, status, health and metrics, the demo.
pub mod logging;
