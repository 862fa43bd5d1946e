//! Orders as the tests seed them: the bank's record of a payment and the
//! shop's request to refund it, written where the shop writes it (an example
//! shop's own tables, or the built-in orders table). Every seeded order has
//! the bank's transaction id `X{order_no}` and auth code `A1B2C3`.

use super::Rig;
use refundd::ctbc::types::{Currency, Money};
use refundd::ctbc::TxState;
use refundd::ops::shop_examples::ShopExample;
use refundd::sim::{OtherAuthorisation, SimTx};
use refundd::store::shop_examples::{AskedBack, SeedOrder};
use sqlx::PgPool;

/// NT$`n`.
pub fn twd(n: i64) -> Money {
    Money::new(Currency::TWD, n).unwrap()
}

/// The bank's record of `order_no`, authorised for `amount`, now in `state`.
pub fn bank_tx(order_no: &str, amount: i64, state: TxState) -> SimTx {
    SimTx::new(order_no, format!("X{order_no}"), "A1B2C3", amount, state)
}

/// `tx` with a declined authorisation of its order number under `xid` too:
/// made before its own, or after it (`later`), the latest then, at the top of
/// an inquiry's answer.
pub fn declined_too(mut tx: SimTx, xid: &str, later: bool) -> SimTx {
    tx.other_authorisations.push(OtherAuthorisation {
        xid: xid.into(),
        auth_code: String::new(),
        amount: tx.original_amount,
        state: TxState::AuthFailed.code().into(),
        later,
    });
    tx
}

/// The shop's order `order_no`, paid `amount`, asked back whole or in `part`.
pub fn request(order_no: &str, amount: i64, part: Option<i64>) -> SeedOrder {
    SeedOrder {
        order_no: order_no.into(),
        xid: format!("X{order_no}"),
        auth_code: "A1B2C3".into(),
        amount,
        refund: part.map_or(AskedBack::Whole, AskedBack::Part),
    }
}

/// The shop writes `orders` as its own code does: into `shop`'s tables, or
/// (None) into the built-in orders table. refundd has not read them yet.
pub async fn ask_for_refunds(pool: &PgPool, shop: Option<&ShopExample>, orders: &[SeedOrder]) {
    if let Some(shop) = shop {
        return shop.seed_orders(pool, orders).await.unwrap();
    }
    let column = |f: fn(&SeedOrder) -> String| orders.iter().map(f).collect::<Vec<_>>();
    let amounts: Vec<i64> = orders.iter().map(|o| o.amount).collect();
    let statuses = column(|o| match o.refund {
        AskedBack::NotAsked => "paid".into(),
        AskedBack::Whole | AskedBack::Part(_) => "refund_requested".into(),
    });
    let parts: Vec<Option<i64>> = orders
        .iter()
        .map(|o| match o.refund {
            AskedBack::Part(part) => Some(part),
            AskedBack::NotAsked | AskedBack::Whole => None,
        })
        .collect();
    sqlx::query(
        "INSERT INTO orders (order_no, xid, auth_code, auth_amount, status, refund_amount)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])",
    )
    .bind(column(|o| o.order_no.clone()))
    .bind(column(|o| o.xid.clone()))
    .bind(column(|o| o.auth_code.clone()))
    .bind(amounts)
    .bind(statuses)
    .bind(parts)
    .execute(pool)
    .await
    .unwrap();
}

impl Rig {
    /// An order the bank knows in `state`, requested for refund (all, or
    /// `part`), and read by refundd as the next pass would.
    pub async fn seed(&self, order_no: &str, amount: i64, state: TxState, part: Option<i64>) {
        self.admin
            .load(&[bank_tx(order_no, amount, state)])
            .await
            .unwrap();
        self.insert_order(order_no, amount, part).await;
    }

    /// As `seed`, but refundd has not read the request yet.
    pub async fn seed_unread(
        &self,
        order_no: &str,
        amount: i64,
        state: TxState,
        part: Option<i64>,
    ) {
        self.admin
            .load(&[bank_tx(order_no, amount, state)])
            .await
            .unwrap();
        self.ask(&[request(order_no, amount, part)]).await;
    }

    /// The bank knows each of `orders` (order, amount) in the state
    /// `state_of` gives for its place in the list.
    pub async fn bank_knows(&self, orders: &[(String, i64)], state_of: impl Fn(usize) -> TxState) {
        let txs: Vec<SimTx> = orders
            .iter()
            .enumerate()
            .map(|(i, (no, amount))| bank_tx(no, *amount, state_of(i)))
            .collect();
        self.admin.load(&txs).await.unwrap();
    }

    /// The shop writes `orders` into the rig's shop tables; refundd has not read them.
    pub async fn ask(&self, orders: &[SeedOrder]) {
        ask_for_refunds(&self.pool, self.shop, orders).await;
    }

    /// A request for the whole or `part` of an order, read by refundd.
    pub async fn insert_order(&self, order_no: &str, amount: i64, part: Option<i64>) {
        self.ask(&[request(order_no, amount, part)]).await;
        // refundd reads the request, as the next pass would.
        self.store.intake(1000).await.unwrap();
    }

    /// Many whole-amount requests at once, as the shop's code writes them:
    /// (order, amount); read by refundd.
    pub async fn insert_orders(&self, orders: &[(String, i64)]) {
        let asked: Vec<SeedOrder> = orders
            .iter()
            .map(|(no, amount)| request(no, *amount, None))
            .collect();
        self.ask(&asked).await;
        self.store.intake(1000).await.unwrap();
    }
}
