//! Rebuilds the core when a migration is added or changed: `sqlx::migrate!`
//! embeds the migrations at compile time, and cargo does not watch a
//! directory outside the crate on its own.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
