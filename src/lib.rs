pub mod cli;
pub mod ctbc;
