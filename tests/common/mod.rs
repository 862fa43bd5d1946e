// Test helpers: each test gets its own database in this process's throwaway
// PostgreSQL cluster, with the schema applied, so tests run in parallel.
#![allow(dead_code)]

use refundd::throwaway_pg::ThrowawayPostgres;
use sqlx::PgPool;

/// A new, migrated database and its URL.
pub async fn fresh_db() -> (PgPool, String) {
    let cluster = tokio::task::spawn_blocking(ThrowawayPostgres::shared)
        .await
        .expect("join")
        .expect("throwaway PostgreSQL");
    let url = cluster.fresh_database().await.expect("create database");
    let pool = refundd::store::connect(&url, 20).await.expect("connect");
    refundd::store::migrate(&pool).await.expect("migrate");
    (pool, url)
}

/// The refundd binary built for these tests.
pub fn refundd_bin() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_refundd"));
    // Tests must not pick up a developer's settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("REFUNDD__") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("REFUNDD__LOG__FORMAT", "json");
    cmd
}
