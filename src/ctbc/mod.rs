// The CTBC POS API: wire envelope, the bank's vocabulary as types, and (in the
// client) the typed operations with errors the engine can act on.
pub mod envelope;
pub mod operation;
pub mod types;

pub use operation::Operation;
