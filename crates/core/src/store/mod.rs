//! Every SQL statement of refundd lives under this module: the connection pool,
//! refundd's own schema and its migrations, the shop's configured statements
//! (reading requests, writing outcomes back), claims and leases, the order's
//! story, the passes. Nothing here talks to the bank.

#[cfg(test)]
mod batch_plans;
pub mod cancels;
pub mod catalog;
pub(crate) mod connection;
mod endings;
mod group_commit;
pub(crate) mod intake;
pub mod intents;
pub mod manual_queue;
mod order_rows;
pub mod outbox;
pub mod passes;
pub mod plan;
mod queue_rules;
pub mod reconcile;
pub mod refunds;
pub mod rehearsal;
pub(crate) mod seed;
pub(crate) mod shop;
pub mod shop_examples;
pub mod status;
mod step_outcomes;
pub mod story;
mod word_columns;
pub mod writeback;

pub use connection::connect;
pub use shop::ShopStatements;

use endings::EndingJob;
use group_commit::Lane;
use intents::IntentJob;
use sqlx::PgPool;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use step_outcomes::StepJob;

/// The schema, embedded in the binary; applied inside refundd's own schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The schema that holds everything refundd keeps: a plain lower-case
/// identifier, so it can be written into statements as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema(String);

impl Schema {
    pub const DEFAULT: &'static str = "refundd";

    pub fn parse(name: &str) -> Result<Schema, String> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !name.starts_with("pg_");
        if ok {
            Ok(Schema(name.to_string()))
        } else {
            Err(format!(
                "{name:?} is not a plain schema name: use lower-case letters, digits and _, starting with a letter (not pg_)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Schema {
    fn default() -> Self {
        Schema(Self::DEFAULT.to_string())
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// refundd's database: the pool, its own schema, and the shop's statements.
/// Every statement of refundd runs through here.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    schema: Schema,
    shop: Arc<ShopStatements>,
    /// Intents, step outcomes and endings waiting to be committed with those of other orders.
    intents: Lane<IntentJob>,
    steps: Lane<StepJob>,
    endings: Lane<EndingJob>,
}

impl Store {
    pub fn new(pool: PgPool, schema: Schema, shop: ShopStatements) -> Store {
        Store {
            pool,
            schema,
            shop: Arc::new(shop),
            intents: Lane::default(),
            steps: Lane::default(),
            endings: Lane::default(),
        }
    }

    /// The built-in `orders` table and refundd's default schema.
    pub fn builtin(pool: PgPool) -> Store {
        Store::new(pool, Schema::default(), ShopStatements::builtin())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn shop(&self) -> &ShopStatements {
        &self.shop
    }

    /// A statement of refundd's, with its tables (written `refundd.<table>`)
    /// in the configured schema. This is the one place names are qualified,
    /// and it is applied last to refundd's own text: a part of refundd's is
    /// spliced in before (`sql_with_events`), a statement of the shop's after,
    /// so that the shop's SQL runs exactly as written.
    pub(crate) fn sql<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.schema.as_str() == Schema::DEFAULT {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(text.replace("refundd.", &format!("{}.", self.schema)))
        }
    }

    /// A statement of refundd's whose `__EVENTS__` is the events part
    /// (`refunds::events_cte`, its arrays bound from `$first`), qualified as
    /// a whole: no part of refundd's can keep the default schema's name.
    pub(super) fn sql_with_events(&self, template: &str, first: usize) -> String {
        let whole = template.replace("__EVENTS__", &refunds::events_cte(first));
        self.sql(&whole).into_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A connection could not be opened: where, and why.
    #[error("{0}")]
    Unreachable(#[from] connection::Unreachable),
    #[error("cannot reach the database: the database URL is not valid: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error("cannot reach the database: no answer to SELECT 1 within {} ms", .0.as_millis())]
    NoAnswer(Duration),
    #[error("cannot reach the database: {0:?} is not a plain database name")]
    BadDatabaseName(String),
    #[error("cannot apply the schema migrations: {0}")]
    Migrate(#[source] sqlx::Error),
    #[error("cannot apply the schema migrations: {0}")]
    Migrations(#[source] sqlx::migrate::MigrateError),
    #[error("this worker no longer holds the order's lease (another worker took it over)")]
    LeaseLost,
    /// A table named `orders` exists and is not refundd's built-in one.
    #[error("a table named orders already exists in the database and is not refundd's built-in one; describe your shop's own tables with shop.requests and shop.on_refunded (see the README, \"Connect refundd to your shop's tables\") instead of using the built-in orders table")]
    ForeignOrdersTable,
    /// A newer refundd migrated this database: this one must not work on it.
    #[error("refundd's schema {schema} in this database was migrated by a newer refundd (its migration {applied}; this refundd, {version}, knows none after {known}): a downgrade is refused, so that no older code works on records it does not understand. Install the refundd that migrated it (or a newer one) again")]
    NewerSchema {
        schema: String,
        applied: i64,
        known: i64,
        version: &'static str,
    },
    /// refundd's schema has not been created in this database.
    #[error("refundd's schema {0} has no tables in this database yet: run `refundd migrate` first (with the same settings)")]
    NotMigrated(String),
    /// A statement of the shop's (`shop.*`) does not fit what refundd needs.
    #[error("{0}")]
    ShopStatement(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The error of a group commit that failed as a whole, given to each of its writes.
    #[error("database error: {0}")]
    Shared(#[source] Arc<sqlx::Error>),
    /// A group commit's flusher ended (its runtime shut down) before it
    /// answered: the write may or may not be committed.
    #[error("the database write was interrupted before its commit was confirmed")]
    GroupCommitLost,
}

impl StoreError {
    /// Whether the error is the operator's to fix in the settings or the
    /// database's shape (exit 2), not a runtime failure.
    pub fn is_settings_problem(&self) -> bool {
        matches!(
            self,
            StoreError::ForeignOrdersTable
                | StoreError::ShopStatement(_)
                | StoreError::NotMigrated(_)
                | StoreError::NewerSchema { .. }
        ) || matches!(self, StoreError::Unreachable(u) if u.cause.is_settings_problem())
    }

    /// Whether PostgreSQL refused something about one order (a value it cannot
    /// store, a constraint or a trigger of the row), or rolled back the write
    /// to break a deadlock over its record, rather than the database being out
    /// of reach: that order waits with the error, the pass goes on. Nothing of
    /// the refused write was committed.
    pub fn is_about_one_order(&self) -> bool {
        match self {
            StoreError::Database(e) => about_one_order(e),
            _ => false,
        }
    }
}

/// `StoreError::is_about_one_order`, for the driver's error.
fn about_one_order(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(e) => e.code().is_some_and(|c| {
            // 22: data exception, 23: integrity constraint, P0001: raised
            // by a trigger, 40: transaction rolled back (deadlock, serialization).
            c.starts_with("22") || c.starts_with("23") || c == "P0001" || c.starts_with("40")
        }),
        sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => true,
        _ => false,
    }
}

/// What `Store::migrate` did, for the operator who ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub schema: String,
    /// The schema did not exist before.
    pub created_schema: bool,
    /// Migrations applied by this run.
    pub applied: u64,
    /// Migrations applied before this run.
    pub applied_before: u64,
    /// The built-in `orders` table was created by this run.
    pub created_orders_table: bool,
}

impl fmt::Display for Migrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Migrated {
            schema, applied, ..
        } = self;
        let migrations = if *applied == 1 {
            "migration"
        } else {
            "migrations"
        };
        match (self.created_schema, applied) {
            (true, _) => write!(
                f,
                "created schema {schema} and applied {applied} {migrations}"
            )?,
            (false, 0) => write!(
                f,
                "schema {schema} was already up to date ({} migrations applied before)",
                self.applied_before
            )?,
            (false, _) => write!(f, "applied {applied} {migrations} to schema {schema}")?,
        }
        if self.created_orders_table {
            f.write_str("; created the built-in orders table")?;
        }
        Ok(())
    }
}

impl Store {
    /// Creates refundd's schema and applies the embedded migrations inside it
    /// (a second run is a no-op); in built-in mode also the `orders` table.
    /// Nothing outside refundd's schema is created or altered otherwise.
    pub async fn migrate(&self) -> Result<Migrated, StoreError> {
        use sqlx::Connection;
        let migrate = StoreError::Migrate;
        if self.shop.is_builtin() {
            shop::refuse_foreign_orders(&self.pool).await?;
        }
        // A connection of its own: its search path is changed for the migrations.
        let mut conn = self.pool.acquire().await.map_err(migrate)?.detach();
        let schema = self.schema.as_str();
        // CREATE SCHEMA takes CREATE on the database even when the schema
        // exists: a schema the DBA made for refundd's role needs no such right.
        let created_schema = !schema_exists(&mut conn, schema).await?;
        if created_schema {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&mut conn)
                .await
                .map_err(migrate)?;
        }
        sqlx::query(&format!("SET search_path TO {schema}"))
            .execute(&mut conn)
            .await
            .map_err(migrate)?;
        if let Err(e) = self.refuse_newer_schema(&mut conn).await {
            let _ = conn.close().await;
            return Err(e);
        }
        let applied_before = applied_migrations(&mut conn).await?;
        let applied = MIGRATOR.run(&mut conn).await;
        let applied_after = match applied {
            Ok(()) => applied_migrations(&mut conn).await,
            Err(e) => Err(StoreError::Migrations(e)),
        };
        let _ = conn.close().await;
        let applied_after = applied_after?;
        let created_orders_table =
            self.shop.is_builtin() && shop::create_builtin_orders(&self.pool).await?;
        Ok(Migrated {
            schema: schema.to_string(),
            created_schema,
            applied: applied_after.saturating_sub(applied_before),
            applied_before,
            created_orders_table,
        })
    }
}

/// Whether a schema of this name exists.
async fn schema_exists(conn: &mut sqlx::PgConnection, schema: &str) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(conn)
        .await
        .map_err(StoreError::Migrate)
}

/// How many migrations the schema first on the connection's search path
/// records as applied (none before its migrations table exists).
impl Store {
    /// Refuses a schema holding a migration this binary does not know (a
    /// newer refundd applied it): `NewerSchema`. `conn` is any connection
    /// to the database; refundd's schema is named in full.
    pub(crate) async fn refuse_newer_schema(
        &self,
        conn: &mut sqlx::PgConnection,
    ) -> Result<(), StoreError> {
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let table = self.sql("SELECT to_regclass('refundd._sqlx_migrations')::text");
        let exists: Option<String> = sqlx::query_scalar(&table).fetch_one(&mut *conn).await?;
        if exists.is_none() {
            return Ok(());
        }
        let latest = self.sql("SELECT max(version) FROM refundd._sqlx_migrations WHERE success");
        let applied: Option<i64> = sqlx::query_scalar(&latest).fetch_one(&mut *conn).await?;
        match applied {
            Some(applied) if applied > known => Err(StoreError::NewerSchema {
                schema: self.schema.to_string(),
                applied,
                known,
                version: env!("CARGO_PKG_VERSION"),
            }),
            _ => Ok(()),
        }
    }
}

async fn applied_migrations(conn: &mut sqlx::PgConnection) -> Result<u64, StoreError> {
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::Migrate)?;
    if table.is_none() {
        return Ok(0);
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(conn)
        .await
        .map_err(StoreError::Migrate)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Creates an empty database named `name` (letters, digits and `_` only),
/// connecting to the server at `admin_url`: how each test and the demo get a
/// database of their own in a throwaway cluster.
pub async fn create_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::BadDatabaseName(name.to_string()));
    }
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(StoreError::Connect)?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(())
}
