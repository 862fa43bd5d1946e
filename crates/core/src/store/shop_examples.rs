//! Two example shops, in SQL: their schemas as a shop would have created them
//! long before refundd, the three statements an operator writes in settings to
//! connect refundd to them, and orders written as each shop's own code writes
//! them (paid, then perhaps refund requested). The documentation, the example
//! settings files and the tests that prove refundd leaves a shop's tables alone
//! all use these, so they cannot drift apart.

use super::StoreError;
use sqlx::PgPool;

/// The shop of the well-known CTBC tutorial: Chinese statuses, and the XID and
/// authorised amount in a table of payment results, as the payment page
/// returned them. A trigger and an index of the shop's own.
pub const TUTORIAL_SCHEMA: &str = r#"
CREATE SCHEMA shop;

CREATE TABLE shop.orders (
    oid            text PRIMARY KEY,
    status         text NOT NULL DEFAULT '已付款'
        CONSTRAINT orders_status_known
        CHECK (status IN ('已付款', '申請退款', '已退款', '退款失敗')),
    total          integer NOT NULL CHECK (total > 0),
    -- how much to give back; NULL: the whole amount
    refund_total   integer CHECK (refund_total > 0 AND refund_total <= total),
    refund_method  text,
    refunded_at    timestamptz,
    note           text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_status_created ON shop.orders (status, created_at);

CREATE FUNCTION shop.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER orders_touch_updated_at
    BEFORE UPDATE ON shop.orders
    FOR EACH ROW EXECUTE FUNCTION shop.touch_updated_at();

CREATE TABLE shop.payment_results (
    oid        text NOT NULL REFERENCES shop.orders (oid),
    xid        text NOT NULL,
    auth_code  text NOT NULL,
    auth_amt   integer NOT NULL,
    paid_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_results_one_per_order UNIQUE (oid)
);
"#;

/// One row per order the tutorial shop wants refunded; no `currency`: NT$.
pub const TUTORIAL_REQUESTS: &str = "SELECT o.oid AS order_no,
       r.xid,
       r.auth_code,
       r.auth_amt AS auth_amount,
       o.refund_total AS refund_amount
  FROM shop.orders o
  JOIN shop.payment_results r ON r.oid = o.oid
 WHERE o.status = '申請退款'";

/// Marks a tutorial order refunded: all three parameters.
pub const TUTORIAL_ON_REFUNDED: &str = "UPDATE shop.orders
   SET status = '已退款',
       refund_total = $2,
       refund_method = $3,
       refunded_at = now()
 WHERE oid = $1";

/// Marks a tutorial order failed, with refundd's reason in the shop's note.
pub const TUTORIAL_ON_FAILED: &str = "UPDATE shop.orders
   SET status = '退款失敗',
       note = $2
 WHERE oid = $1";

/// A shop with integer status codes and amounts in numeric(12,2), and an
/// audit table its own trigger writes on every change of state.
pub const CODES_SCHEMA: &str = r#"
CREATE SCHEMA shop2;

CREATE TABLE shop2.sales (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_code       varchar(19) NOT NULL UNIQUE,
    -- 1 paid, 5 refund asked, 6 refunded, 9 refund failed
    state            smallint NOT NULL DEFAULT 1 CHECK (state IN (1, 5, 6, 9)),
    amount           numeric(12,2) NOT NULL,
    -- how much to give back; NULL: all of it
    refund           numeric(12,2),
    refunded         numeric(12,2),
    currency         char(3) NOT NULL DEFAULT '901',
    card_xid         varchar(40),
    card_auth        varchar(6),
    sold_at          timestamptz NOT NULL DEFAULT now(),
    state_changed_at timestamptz
);

CREATE INDEX sales_open_refunds ON shop2.sales (state) WHERE state IN (5, 9);

CREATE TABLE shop2.sales_log (
    id         bigserial PRIMARY KEY,
    sale_id    bigint NOT NULL REFERENCES shop2.sales (id),
    from_state smallint,
    to_state   smallint NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION shop2.log_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shop2.sales_log (sale_id, from_state, to_state)
    VALUES (NEW.id, OLD.state, NEW.state);
    RETURN NEW;
END
$$;

CREATE TRIGGER sales_log_state
    AFTER UPDATE OF state ON shop2.sales
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION shop2.log_state();
"#;

/// One row per sale in state 5, renamed and cast to what refundd reads.
pub const CODES_REQUESTS: &str = "SELECT s.order_code::text AS order_no,
       s.card_xid::text AS xid,
       s.card_auth::text AS auth_code,
       s.amount AS auth_amount,
       s.refund AS refund_amount,
       s.currency::text AS currency
  FROM shop2.sales s
 WHERE s.state = 5";

/// Marks a sale refunded: only `$1` and `$2`; the method is not kept.
pub const CODES_ON_REFUNDED: &str = "UPDATE shop2.sales
   SET state = 6,
       refunded = $2,
       state_changed_at = now()
 WHERE order_code = $1";

/// Marks a sale failed: only `$1`; the reason stays in refundd's records.
pub const CODES_ON_FAILED: &str = "UPDATE shop2.sales
   SET state = 9,
       state_changed_at = now()
 WHERE order_code = $1";

/// A shop that refunds returns: one order, any number of returns, each
/// approved by its customer service with its own number and amount and
/// refunded on its own (several refunds of one order, `refund_id`); its
/// orders are paid to one of its two merchant ids (`merchant`).
pub const RETURNS_SCHEMA: &str = r#"
CREATE SCHEMA shop3;

CREATE TABLE shop3.orders (
    order_id   text PRIMARY KEY,
    total      integer NOT NULL CHECK (total > 0),
    xid        text NOT NULL,
    auth_code  text NOT NULL,
    -- the merchant id that took the payment: NULL the shop's main one, else
    -- the name refundd's settings give the other ([ctbc.merchants.NAME])
    merchant   text,
    paid_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per return the customer service approved; several per order.
CREATE TABLE shop3.returns (
    return_no   text PRIMARY KEY,
    order_id    text NOT NULL REFERENCES shop3.orders (order_id),
    -- how much to give back; NULL: the whole order (a cancellation)
    amount      integer CHECK (amount > 0),
    state       text NOT NULL DEFAULT 'approved'
        CONSTRAINT returns_state_known
        CHECK (state IN ('approved', 'refunded', 'refund_failed', 'cancelled')),
    refunded    integer,
    method      text,
    note        text,
    approved_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX returns_approved ON shop3.returns (approved_at) WHERE state = 'approved';
"#;

/// One row per approved return, its number the refund's id, with the
/// merchant its order was paid to.
pub const RETURNS_REQUESTS: &str = "SELECT o.order_id AS order_no,
       r.return_no AS refund_id,
       o.xid,
       o.auth_code,
       o.total AS auth_amount,
       r.amount AS refund_amount,
       o.merchant
  FROM shop3.returns r
  JOIN shop3.orders o ON o.order_id = r.order_id
 WHERE r.state = 'approved'
 ORDER BY r.approved_at, r.return_no";

/// Marks one return refunded, found by its number (`$4`).
pub const RETURNS_ON_REFUNDED: &str = "UPDATE shop3.returns
   SET state = 'refunded',
       refunded = $2,
       method = $3
 WHERE order_id = $1 AND return_no = $4";

/// Marks one return failed, with refundd's reason.
pub const RETURNS_ON_FAILED: &str = "UPDATE shop3.returns
   SET state = 'refund_failed',
       note = $2
 WHERE order_id = $1 AND return_no = $4";

/// Marks one return's refund cancelled before the bank's batch, with who
/// asked and why (`refundd cancel-refund`): the money stays with the shop.
pub const RETURNS_ON_CANCELLED: &str = "UPDATE shop3.returns
   SET state = 'cancelled',
       refunded = NULL,
       note = $3
 WHERE order_id = $1 AND return_no = $4";

/// What a customer was charged and what the shop later asked back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOrder {
    pub order_no: String,
    pub xid: String,
    pub auth_code: String,
    /// Whole NT$.
    pub amount: i64,
    pub refund: AskedBack,
}

/// Whether, and how much of, a paid order the shop asks back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskedBack {
    /// Paid, and stays so: the shop's query must not list it.
    NotAsked,
    /// Asked back whole (the refund column left NULL).
    Whole,
    /// Asked back in part: this many NT$.
    Part(i64),
}

impl AskedBack {
    fn asked(self) -> Option<Option<i64>> {
        match self {
            AskedBack::NotAsked => None,
            AskedBack::Whole => Some(None),
            AskedBack::Part(amount) => Some(Some(amount)),
        }
    }
}

/// Runs a shop's schema script, all of it or none of it.
pub async fn create_schema(pool: &PgPool, schema_sql: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(schema_sql).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes orders into the tutorial shop as its checkout does (the order and
/// its payment result together), then asks back those the shop refunds.
pub async fn seed_tutorial(pool: &PgPool, orders: &[SeedOrder]) -> Result<(), StoreError> {
    for o in orders {
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO shop.orders (oid, status, total) VALUES ($1, '已付款', $2)")
            .bind(&o.order_no)
            .bind(o.amount)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO shop.payment_results (oid, xid, auth_code, auth_amt)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&o.order_no)
        .bind(&o.xid)
        .bind(&o.auth_code)
        .bind(o.amount)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    for o in orders {
        if let Some(part) = o.refund.asked() {
            sqlx::query(
                "UPDATE shop.orders SET status = '申請退款', refund_total = $2
                  WHERE oid = $1 AND status = '已付款'",
            )
            .bind(&o.order_no)
            .bind(part)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Writes sales into the codes shop as its checkout does, then moves those the
/// shop refunds to state 5.
pub async fn seed_codes(pool: &PgPool, orders: &[SeedOrder]) -> Result<(), StoreError> {
    for o in orders {
        sqlx::query(
            "INSERT INTO shop2.sales (order_code, state, amount, card_xid, card_auth)
             VALUES ($1, 1, $2, $3, $4)",
        )
        .bind(&o.order_no)
        .bind(o.amount)
        .bind(&o.xid)
        .bind(&o.auth_code)
        .execute(pool)
        .await?;
    }
    for o in orders {
        if let Some(part) = o.refund.asked() {
            sqlx::query(
                "UPDATE shop2.sales SET state = 5, refund = $2, state_changed_at = now()
                  WHERE order_code = $1 AND state = 1",
            )
            .bind(&o.order_no)
            .bind(part)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// How many of the tutorial shop's orders are in each of its statuses.
pub async fn tutorial_statuses(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT status, count(*) FROM shop.orders GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?,
    )
}

/// One row of the tutorial shop's `shop.orders`, as the shop's staff see it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TutorialOrder {
    pub oid: String,
    pub status: String,
    pub total: i32,
    pub refund_total: Option<i32>,
    pub refund_method: Option<String>,
    pub note: Option<String>,
}

/// These orders of the tutorial shop, in the order given; unknown ones are
/// left out.
pub async fn tutorial_orders(
    pool: &PgPool,
    oids: &[String],
) -> Result<Vec<TutorialOrder>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT o.oid, o.status, o.total, o.refund_total, o.refund_method, o.note
           FROM unnest($1::text[]) WITH ORDINALITY AS wanted (oid, n)
           JOIN shop.orders o ON o.oid = wanted.oid
          ORDER BY wanted.n",
    )
    .bind(oids)
    .fetch_all(pool)
    .await?)
}

/// Writes orders into the returns shop as its checkout does, then approves
/// one return (`<order>-1`) of each the shop asks back.
pub async fn seed_returns(pool: &PgPool, orders: &[SeedOrder]) -> Result<(), StoreError> {
    seed_returns_at(pool, orders, None).await
}

/// `seed_returns`, the orders paid to `merchant` (`None`: the shop's main
/// merchant id; else its name in refundd's settings).
pub async fn seed_returns_at(
    pool: &PgPool,
    orders: &[SeedOrder],
    merchant: Option<&str>,
) -> Result<(), StoreError> {
    for o in orders {
        sqlx::query(
            "INSERT INTO shop3.orders (order_id, total, xid, auth_code, merchant)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&o.order_no)
        .bind(o.amount)
        .bind(&o.xid)
        .bind(&o.auth_code)
        .bind(merchant)
        .execute(pool)
        .await?;
    }
    for o in orders {
        if let Some(part) = o.refund.asked() {
            approve_return(pool, &o.order_no, &format!("{}-1", o.order_no), part).await?;
        }
    }
    Ok(())
}

/// The returns shop's customer service approves a return of an order:
/// `amount` NT$, or the whole order when `None`.
pub async fn approve_return(
    pool: &PgPool,
    order_id: &str,
    return_no: &str,
    amount: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO shop3.returns (return_no, order_id, amount) VALUES ($1, $2, $3)")
        .bind(return_no)
        .bind(order_id)
        .bind(amount)
        .execute(pool)
        .await?;
    Ok(())
}

/// One return of the returns shop, as its staff see it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReturnRow {
    pub return_no: String,
    pub state: String,
    pub amount: Option<i32>,
    pub refunded: Option<i32>,
    pub method: Option<String>,
    pub note: Option<String>,
}

/// The returns of one order of the returns shop, in the order approved.
pub async fn returns_of(pool: &PgPool, order_id: &str) -> Result<Vec<ReturnRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT return_no, state, amount, refunded, method, note
           FROM shop3.returns WHERE order_id = $1 ORDER BY approved_at, return_no",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?)
}
