//! Test helpers: each test gets its own database in this process's throwaway
//! PostgreSQL cluster, with the schema applied, so tests run in parallel.
//! The cluster is started once for the whole test process, by the first test
//! that asks (`ThrowawayPostgres::shared`, a process-wide `OnceLock`): it is
//! a child process owned by no tokio runtime, so it outlives the runtime of
//! the test that started it (each `#[tokio::test]` has its own), and its
//! reaper removes it when the process ends, SIGKILL included.
#![allow(dead_code)]

mod bank_states;
mod books;
mod both_modes;
mod clocks;
mod commands;
mod db_proxy;
mod eventually;
pub mod fake_bank;
mod http;
mod logs;
mod requests;
mod running;
mod secret_files;
pub use bank_states::{
    ended_in_one_pass, ending_as, whole_refund_in, Ends, StateCase, EVERY_BANK_STATE,
};
pub use books::{assert_books_explained, assert_shop_told, refund_records, RefundRecord};
pub(crate) use both_modes::in_both_modes;
pub use clocks::{as_setting, taipei, window_around_now};
pub use commands::{output_off_runtime, refundd_bin, run_off_runtime, succeeds};
pub use db_proxy::DbProxy;
pub use eventually::{eventually, WithLog};
pub use http::{http_get, metrics_page, run_with_endpoint};
pub use logs::{on_this_thread, Captured};
pub use requests::{ask_for_refunds, bank_tx, declined_too, request, twd};
pub use running::{exited, listening_addr, terminate, Running};
pub use secret_files::secret_file;

use refundd::store::Store;
use refundd::throwaway_pg::ThrowawayPostgres;
use sqlx::PgPool;

/// A new, empty database and its URL.
pub async fn empty_db() -> (PgPool, String) {
    // Started off the runtime's threads: initdb and start-up block.
    let cluster = tokio::task::spawn_blocking(ThrowawayPostgres::shared)
        .await
        .expect("join")
        .expect("throwaway PostgreSQL");
    let url = cluster.fresh_database().await.expect("create database");
    let pool = refundd::store::connect(&url, 20).await.expect("connect");
    (pool, url)
}

/// refundd's default schema (`database.schema` left out).
pub const DEFAULT_SCHEMA: &str = "refundd";

/// Connections for a test's own SQL, which names refundd's tables without a
/// schema: `schema` first on the search path, then `public` (the shop's).
pub async fn test_pool(url: &str, schema: &str) -> PgPool {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .unwrap()
        .options([("search_path", format!("{schema},public"))]);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await
        .expect("connect the test's own pool")
}

/// A new database migrated for the built-in orders table, and its URL.
pub async fn fresh_db() -> (PgPool, String) {
    let (pool, url) = empty_db().await;
    Store::builtin(pool.clone())
        .migrate()
        .await
        .expect("migrate");
    (pool, url)
}

use refundd::ctbc::envelope::Envelope;
use refundd::ctbc::types::MerId;
use refundd::ctbc::{Client, ClientConfig};
use refundd::domain::blackout::Blackout;
use refundd::engine::clock::{Clock, SystemClock};
use refundd::engine::pass::Engine;
use refundd::engine::settings::EngineSettings;
use refundd::engine::summary::{PassCounters, PassSummary};
use refundd::sim::{
    SimAdmin, SimConfig, SimServer, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID,
};
use std::sync::Arc;
use std::time::Duration;

/// A database and a simulator, seeded together.
pub struct Rig {
    /// The test's own connections: refundd's tables unqualified (its schema,
    /// then `public`, on the search path). refundd itself (`store`) has a
    /// pool of its own with no such path, so a statement of refundd's that
    /// named the wrong schema fails as it would in production.
    pub pool: PgPool,
    pub store: Store,
    /// `database.schema`: where refundd keeps its records.
    pub schema: &'static str,
    /// The example shop whose tables hold the requests; None: the built-in table.
    pub shop: Option<&'static refundd::ops::shop_examples::ShopExample>,
    pub url: String,
    pub sim: SimServer,
    pub admin: SimAdmin,
}

/// A further merchant id of the shop's: its name in refundd's settings
/// (`[ctbc.merchants.NAME]`), and the MERID and keys the bank issued it.
#[derive(Debug, Clone, Copy)]
pub struct MerchantAtBank {
    pub name: &'static str,
    pub mer_id: &'static str,
    pub mac_key: &'static str,
    pub iv: &'static str,
}

/// The shop's second merchant id, `brand`.
pub const BRAND_MERCHANT: MerchantAtBank = MerchantAtBank {
    name: "brand",
    mer_id: "7654321",
    mac_key: "BRANDKEYBRANDKEYBRANDKEY",
    iv: "brand8iv",
};

impl MerchantAtBank {
    /// The merchant as the simulator serves it.
    pub fn at_sim(&self) -> refundd::sim::SimMerchant {
        refundd::sim::SimMerchant {
            mer_id: MerId::parse(self.mer_id).unwrap(),
            mac_key: self.mac_key.into(),
            iv: self.iv.into(),
        }
    }

    /// The merchant as refundd's settings give it, at the default's endpoint.
    pub fn for_refundd(&self) -> refundd::ctbc::OtherMerchant {
        refundd::ctbc::OtherMerchant {
            name: refundd::domain::merchant::MerchantName::parse(self.name).unwrap(),
            mer_id: MerId::parse(self.mer_id).unwrap(),
            envelope: Envelope::new(self.mac_key.as_bytes(), self.iv.as_bytes()).unwrap(),
            base_url: None,
        }
    }
}

/// refundd's client of the simulator at `base_url`, with the reference
/// merchant id, MAC key and IV.
pub fn client_for(base_url: &str, timeout: Duration) -> Client {
    client_with_keys(base_url, timeout, REFERENCE_MAC_KEY, REFERENCE_IV)
}

/// refundd's client of the simulator at `base_url` sealing with `key` and `iv`.
pub fn client_with_keys(base_url: &str, timeout: Duration, key: &str, iv: &str) -> Client {
    Client::new(reference_config(base_url, timeout, key, iv)).unwrap()
}

/// The settings of refundd's client of the simulator at `base_url`, for the
/// reference merchant id, sealing with `key` and `iv`.
fn reference_config(base_url: &str, timeout: Duration, key: &str, iv: &str) -> ClientConfig {
    ClientConfig {
        base_url: url::Url::parse(base_url).unwrap(),
        merchant: None,
        mer_id: MerId::parse(REFERENCE_MER_ID).unwrap(),
        envelope: Envelope::new(key.as_bytes(), iv.as_bytes()).unwrap(),
        connect_timeout: Duration::from_secs(5),
        timeout,
        allow_insecure_http: false,
        max_requests_per_sec: None,
        unknown_order_codes: vec![("99".into(), "01".into())],
        sw_revision: "refundd tests".into(),
    }
}

pub fn engine_settings() -> EngineSettings {
    EngineSettings {
        concurrency: 8,
        batch_size: 50,
        lease: Duration::from_secs(30),
        max_attempts: 5,
        recheck: Duration::from_secs(300),
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(600),
        settlement_watch_days: 14,
        attention_after: Duration::from_secs(3600),
        blackout: Blackout::default(),
    }
}

impl Rig {
    pub async fn new() -> Rig {
        Rig::new_in(DEFAULT_SCHEMA).await
    }

    /// A rig whose refundd keeps its records in `schema` (`database.schema`),
    /// on the built-in orders table.
    pub async fn new_in(schema: &'static str) -> Rig {
        let (plain, url) = empty_db().await;
        let store = Store::new(
            plain,
            refundd::store::Schema::parse(schema).unwrap(),
            refundd::store::ShopStatements::builtin(),
        );
        store.migrate().await.unwrap();
        Rig::with_store(store, None, url, schema).await
    }

    async fn with_store(
        store: Store,
        shop: Option<&'static refundd::ops::shop_examples::ShopExample>,
        url: String,
        schema: &'static str,
    ) -> Rig {
        Rig::with_store_at(store, shop, url, schema, SimConfig::for_tests()).await
    }

    async fn with_store_at(
        store: Store,
        shop: Option<&'static refundd::ops::shop_examples::ShopExample>,
        url: String,
        schema: &'static str,
        bank: SimConfig,
    ) -> Rig {
        let sim = SimServer::start(bank).await.unwrap();
        let admin = sim.admin();
        Rig {
            pool: test_pool(&url, schema).await,
            store,
            shop,
            schema,
            url,
            sim,
            admin,
        }
    }

    /// A database holding one of the example shops' own tables, described to
    /// refundd through `shop.*`, and a simulator.
    pub async fn in_shop(example: &'static refundd::ops::shop_examples::ShopExample) -> Rig {
        Rig::in_shop_in(example, DEFAULT_SCHEMA).await
    }

    /// A shop's own tables, with refundd's records in `schema`.
    pub async fn in_shop_in(
        example: &'static refundd::ops::shop_examples::ShopExample,
        schema: &'static str,
    ) -> Rig {
        let statements = refundd::store::ShopStatements::of_shop(
            example.requests.into(),
            example.on_refunded.into(),
            Some(example.on_failed.into()),
        )
        .with_on_cancelled(example.on_cancelled.map(Into::into));
        Rig::in_shop_with(example, schema, statements).await
    }

    /// A shop's own tables described by `statements` of the test's own.
    pub async fn in_shop_with(
        example: &'static refundd::ops::shop_examples::ShopExample,
        schema: &'static str,
        statements: refundd::store::ShopStatements,
    ) -> Rig {
        let (plain, url) = empty_db().await;
        example.create(&plain).await.unwrap();
        let store = Store::new(
            plain,
            refundd::store::Schema::parse(schema).unwrap(),
            statements,
        );
        store.migrate().await.unwrap();
        store.check_shop().await.unwrap();
        Rig::with_store(store, Some(example), url, schema).await
    }

    /// A shop's own tables, and a simulator serving the reference merchant
    /// and `other` too.
    pub async fn in_shop_with_merchant(
        example: &'static refundd::ops::shop_examples::ShopExample,
        other: &MerchantAtBank,
    ) -> Rig {
        let (plain, url) = empty_db().await;
        example.create(&plain).await.unwrap();
        let store = Store::new(
            plain,
            refundd::store::Schema::parse(DEFAULT_SCHEMA).unwrap(),
            refundd::store::ShopStatements::of_shop(
                example.requests.into(),
                example.on_refunded.into(),
                Some(example.on_failed.into()),
            ),
        );
        store.migrate().await.unwrap();
        store.check_shop().await.unwrap();
        let bank = SimConfig {
            other_merchants: vec![other.at_sim()],
            ..SimConfig::for_tests()
        };
        Rig::with_store_at(store, Some(example), url, DEFAULT_SCHEMA, bank).await
    }

    /// refundd's clients of the simulator: the reference merchant's, the
    /// default, and one for each of `others`, as `Settings::require_merchants`
    /// builds them.
    pub fn merchants(&self, others: &[&MerchantAtBank]) -> refundd::ctbc::Merchants {
        let config = reference_config(
            &self.sim.base_url(),
            Duration::from_secs(10),
            REFERENCE_MAC_KEY,
            REFERENCE_IV,
        );
        let others = others.iter().map(|m| m.for_refundd()).collect();
        refundd::ctbc::Merchants::new(config, others).unwrap()
    }

    /// The engine of the rig's store, working at every merchant of `merchants`.
    pub fn engine_of(&self, merchants: refundd::ctbc::Merchants) -> Engine {
        Engine::new(
            self.store.clone(),
            merchants,
            engine_settings(),
            Arc::new(SystemClock),
        )
    }

    /// Every answer to `operation` is lost (the connection drops after the
    /// bank acted): its outcome is unknown to refundd.
    pub async fn lose_answers_of(&self, operation: refundd::ctbc::Operation) {
        let plan = refundd::sim::FaultPlan::always(refundd::sim::FaultKind::Reset, Some(operation));
        self.admin.set_faults(&plan).await.unwrap();
    }

    pub fn engine_with(
        &self,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Engine {
        Engine::new(
            self.store.clone(),
            client_for(&self.sim.base_url(), timeout),
            settings,
            clock,
        )
    }

    pub fn engine(&self) -> Engine {
        self.engine_with(
            engine_settings(),
            Arc::new(SystemClock),
            Duration::from_secs(10),
        )
    }

    pub async fn pass(&self) -> PassSummary {
        pass_of(&self.engine()).await
    }

    /// The order as refundd records it.
    pub async fn order(&self, order_no: &str) -> OrderView {
        order_view(&self.pool, order_no).await
    }

    /// One refund of an order with several, as refundd records it.
    pub async fn refund(&self, order_no: &str, refund_id: &str) -> OrderView {
        refund_view(&self.pool, order_no, refund_id).await
    }

    /// The one value `sql` (the test's own, `$1` the order) selects.
    pub async fn scalar<T>(&self, sql: &str, order_no: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        sqlx::query_scalar(sql)
            .bind(order_no)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{order_no}: {sql}: {e}"))
    }

    /// The calls of the bank that could move money, for one order, in the
    /// order the bank took them.
    pub async fn money_calls(&self, order_no: &str) -> Vec<String> {
        self.admin
            .calls_of(order_no)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.operation != "inquiry")
            .map(|c| c.operation)
            .collect()
    }

    /// Accepted calls of one operation for one order, per the bank's ledger.
    pub async fn accepted(&self, order_no: &str, operation: &str) -> usize {
        self.admin
            .calls_of(order_no)
            .await
            .unwrap()
            .iter()
            .filter(|c| {
                c.operation == operation && c.outcome == refundd::sim::CallDisposition::Accepted
            })
            .count()
    }
}

impl Rig {
    /// What a worker does before it dies: reads the shop's requests, claims
    /// them, and commits the intent of one call of `amount` on the first
    /// (decided on `authorised` and `refund`).
    pub async fn intent_of_a_dead_worker(
        &self,
        operation: refundd::ctbc::Operation,
        amount: i64,
        (authorised, refund): (i64, i64),
    ) -> refundd::domain::record::Lease {
        self.store.intake(1000).await.unwrap();
        let dead = uuid::Uuid::new_v4();
        let lease_for = Duration::from_secs(30);
        let rows = self
            .store
            .claim(dead, lease_for, 10, chrono::Utc::now())
            .await
            .unwrap();
        let lease = rows[0].lease(dead);
        let intent = refundd::domain::record::GatewayEvent {
            kind: refundd::domain::words::EventKind::Intent,
            operation: Some(operation),
            amount: Some(amount),
            ..Default::default()
        };
        let recorded = self
            .store
            .record_intent(
                &lease,
                lease_for,
                &[],
                None,
                &intent,
                (twd(refund), twd(authorised), twd(refund)),
            )
            .await
            .unwrap();
        assert_eq!(recorded, refundd::store::intents::Intent::Recorded);
        lease
    }
}

/// One order as refundd records it in `refunds`, read back by name (through
/// a pool whose search path starts with refundd's schema, `test_pool`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderView {
    pub order_no: String,
    pub status: String,
    pub refund_method: Option<String>,
    pub refunded_amount: Option<i64>,
    pub refund_error: Option<String>,
    pub attempts: i32,
    pub step: Option<String>,
    pub unknown_operation: Option<String>,
    pub last_error: Option<String>,
    pub settlement: Option<String>,
    pub requested_at: chrono::DateTime<chrono::Utc>,
    /// `settled_at` is set.
    pub settled: bool,
    /// A lease owner holds it.
    pub claimed: bool,
}

impl OrderView {
    /// Whether the order's last error holds `words`.
    pub fn last_error_says(&self, words: &str) -> bool {
        self.last_error
            .as_deref()
            .is_some_and(|e| e.contains(words))
    }

    /// Refunded by `method`, `amount` given back, no error.
    #[track_caller]
    pub fn assert_refunded(&self, method: &str, amount: i64) {
        assert_eq!(
            (
                self.status.as_str(),
                self.refund_method.as_deref(),
                self.refunded_amount,
                self.refund_error.as_deref()
            ),
            ("refunded", Some(method), Some(amount), None),
            "{self:?}"
        );
    }
}

/// The order `order_no` (its only refund) as refundd records it.
pub async fn order_view(pool: &PgPool, order_no: &str) -> OrderView {
    refund_view(pool, order_no, "").await
}

/// The refund `refund_id` of order `order_no` as refundd records it.
pub async fn refund_view(pool: &PgPool, order_no: &str, refund_id: &str) -> OrderView {
    sqlx::query_as(
        "SELECT order_no, status, refund_method, refunded_amount, refund_error, attempts, step,
                unknown_operation, last_error, settlement, requested_at, settled_at IS NOT NULL AS settled,
                lease_owner IS NOT NULL AS claimed
           FROM refunds WHERE order_no = $1 AND refund_id = $2",
    )
    .bind(order_no)
    .bind(refund_id)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("order {order_no} refund {refund_id:?}: {e}"))
}

pub async fn pass_of(engine: &Engine) -> PassSummary {
    engine
        .run_pass(
            &tokio_util::sync::CancellationToken::new(),
            Arc::new(PassCounters::default()),
        )
        .await
        .unwrap()
}
