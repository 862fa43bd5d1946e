// The reconciliation engine: what to do with each refund request, and when.
pub mod blackout;
