// Every SQL statement of refundd lives under this module: the connection pool,
// the schema's migrations, claims and leases, the order's story, the passes.
// Nothing here talks to the bank.

pub mod catalog;
pub mod orders;
pub mod passes;
pub mod requests;
pub mod seed;
pub mod shop_examples;
pub mod status;
pub mod story;

pub use orders::OrderRow;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// The schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach the database: {0}")]
    Connect(String),
    #[error("cannot apply the schema migrations: {0}")]
    Migrate(String),
    #[error("this worker no longer holds the order's lease (another worker took it over)")]
    LeaseLost,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether PostgreSQL refused something about one order (a value it cannot
    /// store, a constraint or a trigger of the row) rather than the database
    /// being out of reach: that order waits with the error, the pass goes on.
    pub fn is_about_one_order(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.code().is_some_and(|c| {
                // 22: data exception, 23: integrity constraint, P0001: raised by a trigger.
                c.starts_with("22") || c.starts_with("23") || c == "P0001"
            }),
            StoreError::Database(
                sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. },
            ) => true,
            _ => false,
        }
    }
}

/// Opens a pool. The URL is never logged: it may carry a password.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Connect(format!("the database URL is not valid: {e}")))?
        .application_name("refundd");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))
}

/// Applies the embedded migrations; a second run is a no-op.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))
}

/// Creates an empty database named `name` (letters, digits and `_` only),
/// connecting to the server at `admin_url`: how each test and the demo get a
/// database of their own in a throwaway cluster.
pub async fn create_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Connect(format!(
            "{name:?} is not a plain database name"
        )));
    }
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(())
}
