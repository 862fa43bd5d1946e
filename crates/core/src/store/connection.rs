//! Opening refundd's pool, and saying why a database cannot be reached: the
//! server it tried (host and port, never the URL, which may carry a password)
//! and the cause (refused, authentication, no such database, no answer), each
//! with what to do. One connection is tried first, alone: a pool waits out its
//! timeout on a refused connection and then names no cause.

use super::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long refundd waits for the database to answer a connection.
pub(crate) const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Where refundd tried to connect, as an operator can check it: host and
/// port (or the Unix socket), database and user; never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    at: String,
    database: String,
    user: String,
}

impl Server {
    fn of(options: &PgConnectOptions) -> Server {
        let port = options.get_port();
        let host = options.get_host();
        let at = match options.get_socket() {
            Some(dir) => format!("the Unix socket {}/.s.PGSQL.{port}", dir.display()),
            // An IPv6 address given without its brackets (`?host=::1`).
            None if host.contains(':') && !host.starts_with('[') => format!("[{host}]:{port}"),
            None => format!("{host}:{port}"),
        };
        let user = options.get_username().to_string();
        let database = options.get_database().unwrap_or(&user).to_string();
        Server { at, database, user }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (database {}, user {})",
            self.at, self.database, self.user
        )
    }
}

/// Why a connection failed, sorted by what the operator does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectCause {
    #[error("connection refused: nothing listens there; start PostgreSQL, or correct the host and port in database.url")]
    Refused,
    #[error("no such socket: PostgreSQL is not running there; start it, or correct the socket directory (host) and port in database.url")]
    NoSocket,
    /// The server's own words, which name the user and never the password.
    #[error("authentication failed ({0}); correct the user and password in database.url, or let the server admit this user (pg_hba.conf)")]
    Authentication(String),
    #[error(
        "database {0:?} does not exist; create it, or correct the database name in database.url"
    )]
    NoSuchDatabase(String),
    #[error("timeout: no answer within {} s; check the host and port in database.url, the network and any firewall between", .0.as_secs())]
    Timeout(Duration),
    #[error("TLS failed ({0}); check sslmode in database.url and the server's certificate")]
    Tls(String),
    #[error("{0}")]
    Other(String),
}

impl ConnectCause {
    fn of(e: sqlx::Error, server: &Server) -> ConnectCause {
        match e {
            sqlx::Error::Io(e) => match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ConnectCause::Refused,
                std::io::ErrorKind::NotFound => ConnectCause::NoSocket,
                std::io::ErrorKind::TimedOut => ConnectCause::Timeout(CONNECT_WAIT),
                _ => ConnectCause::Other(e.to_string()),
            },
            sqlx::Error::Database(e) => match e.code().as_deref() {
                // invalid_password, invalid_authorization_specification
                Some("28P01" | "28000") => ConnectCause::Authentication(e.message().to_string()),
                // invalid_catalog_name
                Some("3D000") => ConnectCause::NoSuchDatabase(server.database.clone()),
                _ => ConnectCause::Other(e.message().to_string()),
            },
            sqlx::Error::PoolTimedOut => ConnectCause::Timeout(CONNECT_WAIT),
            sqlx::Error::Tls(e) => ConnectCause::Tls(e.to_string()),
            e => ConnectCause::Other(e.to_string()),
        }
    }

    /// Whether the fix is in the settings (a wrong password or database
    /// name in `database.url`), not in a server that is down.
    pub fn is_settings_problem(&self) -> bool {
        matches!(
            self,
            ConnectCause::Authentication(_) | ConnectCause::NoSuchDatabase(_)
        )
    }
}

/// The database could not be reached: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot reach the database at {server}: {cause}")]
pub struct Unreachable {
    pub server: Server,
    pub cause: ConnectCause,
}

/// Opens a pool. The URL is never logged: it may carry a password.
///
/// refundd's sessions plan each prepared statement once (`plan_cache_mode =
/// force_generic_plan`): its statements find records by key, and those of a
/// group commit take arrays whose length changes with every batch, so with
/// custom plans PostgreSQL would plan them again on every execution, for the
/// same plan, at about a quarter of its CPU time under load.
///
/// A batch statement reads its orders from arrays through
/// `(SELECT * FROM unnest(...) LIMIT cardinality($1))`. The LIMIT takes every
/// element; it is there for the planner, which guesses ten rows for an array
/// parameter and one in ten of those for a LIMIT it cannot evaluate: planned
/// for one order, the statement looks each record up by its key whatever the
/// table's statistics say. Without it, a generic plan made while the
/// statistics still described the table before the backlog arrived (or a
/// table of a few thousand records) scanned the whole table, or every due
/// record, for each batch: about 1 ms a batch at 3,000 orders, a third of
/// PostgreSQL's CPU at 50 ms of bank latency, where batches hold one or two
/// orders.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(StoreError::BadUrl)?
        .application_name("refundd")
        .options([("plan_cache_mode", "force_generic_plan")]);
    let server = Server::of(&options);
    let unreachable = |cause| Unreachable {
        server: server.clone(),
        cause,
    };
    try_once(&options, &server).await.map_err(unreachable)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(CONNECT_WAIT)
        .connect_with(options)
        .await
        .map_err(|e| unreachable(ConnectCause::of(e, &server)).into())
}

/// One connection, opened and closed: fails at once, with the cause.
async fn try_once(options: &PgConnectOptions, server: &Server) -> Result<(), ConnectCause> {
    match tokio::time::timeout(CONNECT_WAIT, PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(ConnectCause::of(e, server)),
        Err(_) => Err(ConnectCause::Timeout(CONNECT_WAIT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> String {
        Server::of(&PgConnectOptions::from_str(url).unwrap()).to_string()
    }

    #[test]
    fn the_server_is_named_by_host_port_database_and_user_never_the_password() {
        let s = server("postgres://shop:s3cret@10.0.0.5:6432/orders");
        assert_eq!(s, "10.0.0.5:6432 (database orders, user shop)");
        assert_eq!(
            server("postgres://shop@[::1]:5432/orders"),
            "[::1]:5432 (database orders, user shop)"
        );
        assert_eq!(
            server("postgres:///shop?host=/run/postgresql&user=refundd"),
            "the Unix socket /run/postgresql/.s.PGSQL.5432 (database shop, user refundd)"
        );
    }
}
