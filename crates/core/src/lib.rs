//! refundd's core: the settings (`config`), the bank client and its envelope
//! (`ctbc`), every SQL statement (`store`), the passes that work the queue
//! (`engine`), the webhook's delivery (`notify`), what every outbound request
//! keeps (`outbound`), the one lock policy (`sync`), and a throwaway
//! PostgreSQL cluster for the demo and the tests (`throwaway_pg`). It depends
//! on the domain below it and on nothing above it: not on the simulator, the
//! demo or the command line.
pub mod config;
pub mod ctbc;
pub mod engine;
pub mod notify;
pub mod outbound;
pub mod store;
pub mod sync;
pub mod throwaway_pg;

pub use refundd_domain as domain;
