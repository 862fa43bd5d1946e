//! The shop's side of the database, as the operator describes it in settings:
//! the query that lists the orders to refund and the statements that write the
//! outcome back, run exactly as written. A shop with no orders table of its own
//! gets the built-in `orders` table and built-in statements through the same path.
//! Before anything is sent, each statement is checked against the database.

use super::{Store, StoreError};
use sqlx::{Column, Executor, PgPool, TypeInfo};

/// The columns `shop.requests` must return, by name.
pub(crate) const REQUIRED_COLUMNS: [&str; 5] = [
    "order_no",
    "xid",
    "auth_code",
    "auth_amount",
    "refund_amount",
];

/// Marks the built-in table as refundd's, so `migrate` never mistakes a shop's
/// own `orders` table for it.
const BUILTIN_COMMENT: &str = "refundd built-in orders";

/// The shop's statements, as written in the settings.
#[derive(Clone, PartialEq, Eq)]
pub struct ShopStatements {
    /// One row per order to refund.
    pub requests: String,
    /// `$1` order_no, `$2` amount given back, `$3` method, `$4` the
    /// refund's id; any subset.
    pub on_refunded: String,
    /// `$1` order_no, `$2` reason, `$4` the refund's id; any subset.
    pub on_failed: Option<String>,
    /// `$1` order_no, `$2` the amount no longer given back, `$3` the reason
    /// (who asked and why), `$4` the refund's id; any subset.
    pub on_cancelled: Option<String>,
    builtin: bool,
}

impl std::fmt::Debug for ShopStatements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopStatements")
            .field("builtin", &self.builtin)
            .finish_non_exhaustive()
    }
}

impl ShopStatements {
    /// The statements of a shop's own tables.
    pub fn of_shop(requests: String, on_refunded: String, on_failed: Option<String>) -> Self {
        Self {
            requests,
            on_refunded,
            on_failed,
            on_cancelled: None,
            builtin: false,
        }
    }

    /// With `shop.on_cancelled`, run when a refund is cancelled before the
    /// bank's batch (`refundd cancel-refund`).
    pub fn with_on_cancelled(mut self, on_cancelled: Option<String>) -> Self {
        self.on_cancelled = on_cancelled;
        self
    }

    /// The built-in `orders` table (the README's contract).
    pub fn builtin() -> Self {
        Self {
            requests: "SELECT order_no, xid, auth_code, auth_amount, refund_amount, currency, \
                       refund_id, merchant FROM orders WHERE status = 'refund_requested'"
                .into(),
            // A further part adds to what the order had back.
            on_refunded: "UPDATE orders SET status = 'refunded', refunded_at = now(), \
                          refunded_amount = CASE WHEN $4::text IS NULL THEN $2 \
                          ELSE coalesce(refunded_amount, 0) + $2 END, \
                          refund_method = $3, refund_error = NULL WHERE order_no = $1"
                .into(),
            on_failed: Some(
                "UPDATE orders SET status = 'refund_failed', refund_error = $2 WHERE order_no = $1"
                    .into(),
            ),
            // The money stays with the shop: the order is paid again, or
            // refunded by its other parts only, with why.
            on_cancelled: Some(
                "UPDATE orders SET \
                 status = CASE WHEN coalesce(refunded_amount, 0) > $2 THEN 'refunded' ELSE 'paid' END, \
                 refunded_amount = nullif(coalesce(refunded_amount, 0) - $2, 0), \
                 refund_error = $3 WHERE order_no = $1"
                    .into(),
            ),
            builtin: true,
        }
    }

    pub fn is_builtin(&self) -> bool {
        self.builtin
    }
}

/// Whether the default schema has an `orders` table: `None` when it has
/// none, `Some(true)` when it is refundd's built-in one.
async fn builtin_orders_exists(pool: &PgPool) -> Result<Option<bool>, StoreError> {
    let comment: Option<Option<String>> = sqlx::query_scalar(
        "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c
          WHERE c.oid = to_regclass('orders')",
    )
    .fetch_optional(pool)
    .await?;
    Ok(comment.map(|c| c.as_deref() == Some(BUILTIN_COMMENT)))
}

/// Refuses to use an `orders` table that is not refundd's built-in one.
pub(super) async fn refuse_foreign_orders(pool: &PgPool) -> Result<(), StoreError> {
    match builtin_orders_exists(pool).await? {
        Some(false) => Err(StoreError::ForeignOrdersTable),
        _ => Ok(()),
    }
}

/// Creates the built-in `orders` table in the default schema, unless it is
/// there already (then `false`); a table of that name that is not refundd's
/// is refused.
pub(super) async fn create_builtin_orders(pool: &PgPool) -> Result<bool, StoreError> {
    match builtin_orders_exists(pool).await? {
        Some(true) => {
            // A table made before several refunds of an order and several
            // merchants gains their columns (NULL: as before).
            sqlx::raw_sql(
                "ALTER TABLE orders ADD COLUMN IF NOT EXISTS refund_id text, \
                 ADD COLUMN IF NOT EXISTS merchant text",
            )
            .execute(pool)
            .await?;
            return Ok(false);
        }
        Some(false) => return Err(StoreError::ForeignOrdersTable),
        None => {}
    }
    sqlx::raw_sql(include_str!("builtin_orders.sql"))
        .execute(pool)
        .await?;
    Ok(true)
}

impl Store {
    /// Checks every statement of the shop against the database without
    /// running it (described or prepared in a transaction rolled back): the
    /// columns `shop.requests` must return and their types, and the parameters
    /// the write-backs may use. Every problem is named with its fix.
    pub async fn check_shop(&self) -> Result<(), StoreError> {
        let mut problems = Vec::new();
        if let Err(p) = self.check_requests().await {
            problems.push(p);
        }
        let writebacks = [
            (
                "shop.on_refunded",
                Some(&self.shop.on_refunded),
                "text, bigint, text, text",
            ),
            (
                "shop.on_failed",
                self.shop.on_failed.as_ref(),
                "text, text, text, text",
            ),
            (
                "shop.on_cancelled",
                self.shop.on_cancelled.as_ref(),
                "text, bigint, text, text",
            ),
        ];
        for (name, stmt, types) in writebacks {
            if let Some(stmt) = stmt {
                if let Err(p) = self.check_writeback(name, stmt, types).await {
                    problems.push(p);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::ShopStatement(problems.join("\n")))
        }
    }

    async fn check_requests(&self) -> Result<(), String> {
        let described = (&self.pool)
            .describe(&self.shop.requests)
            .await
            .map_err(|e| format!("shop.requests: the database refuses the query: {}; fix the query so that it runs on its own", db_message(&e)))?;
        let columns: Vec<(String, String)> = described
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_info().name().to_lowercase()))
            .collect();
        let mut problems = Vec::new();
        for name in REQUIRED_COLUMNS {
            match columns.iter().find(|(n, _)| n == name) {
                None => problems.push(format!(
                    "shop.requests: the query returns no column named {name}; return it (for example `... AS {name}`); it returns: {}",
                    columns.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                )),
                Some((_, ty)) if name.ends_with("amount") && !is_amount_type(ty) => problems.push(format!(
                    "shop.requests: column {name} is of type {ty}, which cannot be an amount; return an integer or numeric (for example `{name}::bigint`)"
                )),
                Some(_) => {}
            }
        }
        if let Some((_, ty)) = columns.iter().find(|(n, _)| n == "currency") {
            if is_amount_type(ty) {
                // Numeric currency codes are fine: they are read as text.
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    async fn check_writeback(&self, name: &str, stmt: &str, types: &str) -> Result<(), String> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        // A prepared statement outlives the transaction: a name of its own,
        // deallocated before the connection goes back to the pool.
        let prepared = format!("refundd_check_{}", uuid::Uuid::new_v4().simple());
        let prepare = format!("PREPARE {prepared} ({types}) AS {stmt}");
        let checked = sqlx::raw_sql(&prepare).execute(&mut *tx).await;
        // PostgreSQL takes parameters beyond those declared: count them.
        let used: Result<Option<i32>, sqlx::Error> = match &checked {
            Ok(_) => {
                let n = sqlx::query_scalar(
                    "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1",
                )
                .bind(&prepared)
                .fetch_optional(&mut *tx)
                .await;
                let _ = sqlx::raw_sql(&format!("DEALLOCATE {prepared}"))
                    .execute(&mut *tx)
                    .await;
                n
            }
            Err(_) => Ok(None),
        };
        let _ = tx.rollback().await;
        let declared = types.split(',').count() as i32;
        if let Ok(Some(n)) = used {
            if n > declared {
                return Err(format!(
                    "{name}: the statement uses ${n}, but refundd supplies only $1 to ${declared}: {}",
                    params_of(name)
                ));
            }
        }
        checked.map(|_| ()).map_err(|e| {
            format!(
                "{name}: the database refuses the statement: {}; it may use {} and must run as written",
                db_message(&e),
                params_of(name)
            )
        })
    }
}

/// What a write-back statement may use.
fn params_of(name: &str) -> &'static str {
    match name {
        "shop.on_refunded" => {
            "$1 order_no (text), $2 the amount given back (bigint), $3 the method (text), $4 the refund's id (text, NULL without shop.requests' column refund_id)"
        }
        "shop.on_cancelled" => "$1 order_no (text), $2 the amount no longer given back (bigint), $3 the reason (text), $4 the refund's id (text, NULL without shop.requests' column refund_id)",
        _ => "$1 order_no (text), $2 the reason (text), $4 the refund's id (text, NULL without shop.requests' column refund_id)",
    }
}

fn is_amount_type(ty: &str) -> bool {
    matches!(
        ty,
        "int2" | "int4" | "int8" | "numeric" | "smallint" | "integer" | "bigint"
    )
}

/// The database's own words about a refused statement, without the statement.
fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}
