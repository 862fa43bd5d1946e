//! A newcomer's first connection, end to end from a blank database: a shop
//! whose schema refundd has never seen (dashed order numbers the bank knows
//! without their dashes, `numeric(10,2)` amounts, an earlier failed payment
//! kept beside the one that went through, statuses of its own). Each
//! ordinary mistake is made once and refused or shown before anything moves;
//! then the corrected settings pass `check`, and `once` refunds every order
//! at the bank and writes each back into the shop's rows.

use crate::common::{bank_tx, empty_db, refundd_bin, run_off_runtime};
use refundd::ctbc::TxState;
use refundd::sim::{SimConfig, SimServer, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};
use std::process::Command;

const SHOP: &str = "
CREATE SCHEMA wc;
CREATE TABLE wc.orders (
    id           bigserial PRIMARY KEY,
    number       text NOT NULL UNIQUE,
    status       text NOT NULL CHECK (status IN ('paid', 'refund-requested', 'refunded', 'refund-failed')),
    total        numeric(10,2) NOT NULL,
    refund_total numeric(10,2)
);
CREATE TABLE wc.payments (
    order_id  bigint NOT NULL REFERENCES wc.orders (id),
    xid       text NOT NULL,
    auth_code text NOT NULL,
    amount    numeric(10,2) NOT NULL,
    succeeded boolean NOT NULL
);";

/// The orders the shop asks back: its number and what the bank knows it by.
fn orders() -> Vec<(String, String)> {
    (121..=127)
        .map(|n| (format!("WC-2026-000{n}"), format!("WC2026000{n}")))
        .collect()
}

/// The corrected statements: `lidm` for the bank, the succeeded payment only.
const REQUESTS: &str = "SELECT o.number AS order_no, replace(o.number, '-', '') AS lidm,
       p.xid, p.auth_code, p.amount AS auth_amount, o.refund_total AS refund_amount
  FROM wc.orders o JOIN wc.payments p ON p.order_id = o.id AND p.succeeded
 WHERE o.status = 'refund-requested'";
const ON_REFUNDED: &str =
    "UPDATE wc.orders SET status = 'refunded', refund_total = $2 WHERE number = $1";
const ON_FAILED: &str = "UPDATE wc.orders SET status = 'refund-failed' WHERE number = $1";

/// `refundd <command>` against the shop, with `shop` = (requests, on_refunded).
fn refundd(url: &str, bank: &str, command: &str, shop: (&str, &str)) -> Command {
    let mut cmd = refundd_bin();
    cmd.arg(command)
        .env("REFUNDD__DATABASE__URL", url)
        .env("REFUNDD__SHOP__REQUESTS", shop.0)
        .env("REFUNDD__SHOP__ON_REFUNDED", shop.1)
        .env("REFUNDD__SHOP__ON_FAILED", ON_FAILED)
        .env("REFUNDD__CTBC__BASE_URL", bank)
        .env("REFUNDD__CTBC__MER_ID", REFERENCE_MER_ID)
        .env("REFUNDD__CTBC__MAC_KEY", REFERENCE_MAC_KEY)
        .env("REFUNDD__CTBC__IV", REFERENCE_IV)
        .env("REFUNDD__HTTP__LISTEN", "off");
    cmd
}

/// Runs a command: its exit code and everything it printed.
async fn run(cmd: Command) -> (Option<i32>, String) {
    let (code, text, _) = run_off_runtime(cmd).await;
    (code, text)
}

async fn shop_statuses(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT number, status FROM wc.orders ORDER BY number")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomers_mistakes_are_refused_before_money_moves_then_every_order_is_refunded() {
    let (pool, url) = empty_db().await;
    sqlx::raw_sql(SHOP).execute(&pool).await.unwrap();
    let sim = SimServer::start(SimConfig::for_tests()).await.unwrap();
    let bank = sim.base_url();
    for (i, (number, lidm)) in orders().iter().enumerate() {
        sim.admin()
            .load(&[bank_tx(lidm, 1000, TxState::Authorised)])
            .await
            .unwrap();
        sqlx::query(
            "WITH o AS (INSERT INTO wc.orders (number, status, total) VALUES ($1, 'refund-requested', 1000.00) RETURNING id)
             INSERT INTO wc.payments (order_id, xid, auth_code, amount, succeeded)
             SELECT id, $2, 'A1B2C3', 1000.00, true FROM o
             UNION ALL SELECT id, $2 || '-declined', 'X', 1000.00, false FROM o WHERE $3",
        )
        .bind(number)
        .bind(format!("X{lidm}"))
        .bind(i % 3 == 0)
        .execute(&pool)
        .await
        .unwrap();
    }
    let fixed = (REQUESTS, ON_REFUNDED);
    let (code, text) = run(refundd(&url, &bank, "migrate", fixed)).await;
    assert_eq!(code, Some(0), "{text}");

    // 1. A misspelt setting is refused, with the name it was meant to be.
    let mut typo = refundd(&url, &bank, "check", fixed);
    typo.env("REFUNDD__WORKER__CONCURENCY", "4");
    let (code, text) = run(typo).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("worker.concurrency"), "{text}");

    // 2. The bank's number as order_no, the shop's write-back by its own key:
    //    check rehearses the write-back and finds it changes no row.
    let stripped = REQUESTS.replace(
        "o.number AS order_no, replace(o.number, '-', '') AS lidm",
        "replace(o.number, '-', '') AS order_no",
    );
    let (code, text) = run(refundd(&url, &bank, "check", (&stripped, ON_REFUNDED))).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("shop.on_refunded changed 0 rows"), "{text}");

    // 3. The dashed numbers sent as they are: every row fails the same check,
    //    a mapping mistake: check says so, and once sends nothing, writes
    //    nothing back.
    let dashed = REQUESTS.replace(", replace(o.number, '-', '') AS lidm", "");
    let (code, text) = run(refundd(&url, &bank, "check", (&dashed, ON_REFUNDED))).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(
            "7 rows requested, 0 valid, 7 invalid: 7 × the order number sent to the bank"
        ),
        "{text}"
    );
    let (code, text) = run(refundd(&url, &bank, "once", (&dashed, ON_REFUNDED))).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("7 of the 7") && text.contains("lidm"),
        "{text}"
    );

    // 4. Keys copied wrong: check --bank asks the bank once and says which.
    let mut wrong_iv = refundd(&url, &bank, "check", fixed);
    wrong_iv.arg("--bank").env("REFUNDD__CTBC__IV", "wrongiv!");
    let (code, text) = run(wrong_iv).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("wrong ctbc.mac_key or ctbc.iv"), "{text}");

    // 5. A JOIN to every payment attempt: `plan` names the doubled orders.
    let every_attempt = REQUESTS.replace(" AND p.succeeded", "");
    let (code, text) = run(refundd(&url, &bank, "plan", (&every_attempt, ON_REFUNDED))).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("returned 2 rows for this order"), "{text}");

    // Nothing of it moved money or touched the shop's rows.
    let ledger = sim.admin().ledger().await.unwrap();
    assert_eq!(
        ledger.returned_by_order.values().sum::<i64>(),
        0,
        "{ledger:?}"
    );
    assert!(shop_statuses(&pool)
        .await
        .iter()
        .all(|(_, s)| s == "refund-requested"));

    // The corrected settings: check is clean, once refunds every order.
    let mut clean = refundd(&url, &bank, "check", fixed);
    clean.arg("--bank");
    let (code, text) = run(clean).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("shop.on_refunded changes order"), "{text}");
    assert!(
        text.contains("7 rows requested, 7 valid, 0 invalid"),
        "{text}"
    );
    assert!(text.contains("the keys work"), "{text}");
    let (code, text) = run(refundd(&url, &bank, "once", fixed)).await;
    assert_eq!(code, Some(0), "{text}");
    for (number, lidm) in orders() {
        let accepted = sim
            .admin()
            .calls_of(&lidm)
            .await
            .unwrap()
            .iter()
            .filter(|c| {
                c.operation == "reversal" && c.outcome == refundd::sim::CallDisposition::Accepted
            })
            .count();
        assert_eq!(accepted, 1, "{number}: {text}");
    }
    let statuses = shop_statuses(&pool).await;
    assert!(
        statuses.iter().all(|(_, s)| s == "refunded"),
        "{statuses:?}"
    );
    let totals: Vec<String> =
        sqlx::query_scalar("SELECT refund_total::text FROM wc.orders ORDER BY number")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(totals.iter().all(|t| t == "1000.00"), "{totals:?}");
}
