pub mod cli;
pub mod ctbc;
pub mod sim;
