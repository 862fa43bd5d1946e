//! refundd's database as PostgreSQL enforces it: everything of refundd's in a
//! schema of its own, the built-in orders table only where there is no shop
//! table of that name, a refund never undone, every status change an event,
//! every column of words limited to the words the code writes.

use crate::common::{empty_db, fresh_db};
use refundd::ctbc::Operation;
use refundd::domain::words::{
    CallOutcome, EventKind, PassOutcome, RefundMethod, RefundStatus, SettlementState, StepReached,
    Word,
};
use refundd::store::{Schema, ShopStatements, Store, StoreError};

async fn tables_in(pool: &sqlx::PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migrations_live_in_refundds_schema_and_a_second_run_is_a_no_op() {
    let (pool, _) = fresh_db().await;
    let store = Store::builtin(pool.clone());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM refundd._sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n as usize, refundd::store::MIGRATOR.iter().count());
    assert_eq!(
        tables_in(&pool, "refundd").await,
        [
            "_sqlx_migrations",
            "events",
            "outbox",
            "reconcile_mismatches",
            "reconcile_runs",
            "refund_events",
            "refund_passes",
            "refunds"
        ]
    );
    // The built-in mode adds the orders table to the default schema, and nothing else.
    assert_eq!(tables_in(&pool, "public").await, ["orders"]);
}

#[tokio::test]
async fn a_schema_of_the_operators_choice_holds_everything_and_public_stays_empty() {
    let (pool, _) = empty_db().await;
    let shop = ShopStatements::of_shop(
        "SELECT 'A1'::text AS order_no, 'X'::text AS xid, 'C'::text AS auth_code, 1::int AS auth_amount, NULL::int AS refund_amount".into(),
        "SELECT $1::text".into(),
        None,
    );
    let store = Store::new(
        pool.clone(),
        Schema::parse("billing_refunds").unwrap(),
        shop,
    );
    store.migrate().await.unwrap();
    assert!(tables_in(&pool, "billing_refunds")
        .await
        .contains(&"refunds".to_string()));
    assert!(tables_in(&pool, "public").await.is_empty());
    assert!(tables_in(&pool, "refundd").await.is_empty());
}

#[tokio::test]
async fn a_shops_own_orders_table_is_never_taken_for_the_built_in_one() {
    let (pool, _) = empty_db().await;
    sqlx::query("CREATE TABLE orders (oid text PRIMARY KEY, status text)")
        .execute(&pool)
        .await
        .unwrap();
    let err = Store::builtin(pool.clone()).migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::ForeignOrdersTable), "{err}");
    assert!(err.to_string().contains("shop.requests"));
    assert!(err.is_settings_problem());
    assert!(
        tables_in(&pool, "refundd").await.is_empty(),
        "nothing created"
    );
}

#[tokio::test]
async fn the_built_in_orders_table_refuses_an_unknown_status() {
    let (pool, _) = fresh_db().await;
    let err = sqlx::query("INSERT INTO orders (order_no, status) VALUES ('O1', 'cancelled')")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("orders_status_known"), "{err}");
}

#[tokio::test]
async fn refundds_record_of_a_refund_is_never_undone_and_every_status_change_is_an_event() {
    let (pool, _) = fresh_db().await;
    sqlx::query("INSERT INTO refundd.refunds (order_no, auth_amount) VALUES ('O2', 1500)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE refundd.refunds SET status = 'refunded', refunded_amount = 1500 WHERE order_no = 'O2'")
        .execute(&pool)
        .await
        .unwrap();
    let err =
        sqlx::query("UPDATE refundd.refunds SET status = 'refund_requested' WHERE order_no = 'O2'")
            .execute(&pool)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("already refunded"), "{err}");
    let story: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT from_status, to_status FROM refundd.refund_events WHERE order_no = 'O2' AND kind = 'status' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        story,
        [
            (None, Some("refund_requested".to_string())),
            (
                Some("refund_requested".to_string()),
                Some("refunded".to_string())
            )
        ]
    );
    let err = sqlx::query("DELETE FROM refundd.refund_events")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[tokio::test]
async fn the_built_in_statements_pass_their_own_checks() {
    let (pool, _) = fresh_db().await;
    Store::builtin(pool).check_shop().await.unwrap();
}

#[tokio::test]
async fn the_checks_can_run_again_on_the_same_connection() {
    let (_, url) = fresh_db().await;
    // One connection: whatever a check leaves on it, the next check meets.
    let pool = refundd::store::connect(&url, 1).await.unwrap();
    let store = Store::builtin(pool);
    store.check_shop().await.unwrap();
    store.check_shop().await.unwrap();
}

#[tokio::test]
async fn migrate_tells_a_schema_the_administrator_created_from_one_it_created() {
    let (pool, _) = empty_db().await;
    sqlx::query("CREATE SCHEMA billing_refunds")
        .execute(&pool)
        .await
        .unwrap();
    let shop = ShopStatements::of_shop(
        "SELECT 'A1'::text AS order_no, 'X'::text AS xid, 'C'::text AS auth_code, 1::int AS auth_amount, NULL::int AS refund_amount".into(),
        "SELECT $1::text".into(),
        None,
    );
    let store = Store::new(pool, Schema::parse("billing_refunds").unwrap(), shop);
    let n = refundd::store::MIGRATOR.iter().count();
    let first = store.migrate().await.unwrap();
    assert!(!first.created_schema && !first.created_orders_table);
    assert_eq!(
        first.to_string(),
        format!("applied {n} migrations to schema billing_refunds")
    );
    let again = store.migrate().await.unwrap();
    assert_eq!((again.applied, again.applied_before), (0, n as u64));
}

/// A column of refundd's that holds a word of a closed set, and that set.
struct WordColumn {
    table: &'static str,
    column: &'static str,
    words: Vec<&'static str>,
}

fn words_of<W: Word>(all: &[W]) -> Vec<&'static str> {
    all.iter().map(|w| w.as_str()).collect()
}

/// Every such column with the words the code writes into it: the sets of
/// `store::vocabulary` and the bank's operations, and, for the outbox, whose
/// words only SQL writes (its migration's trigger and `raise_attention`),
/// those words.
fn word_columns() -> Vec<WordColumn> {
    let col = |table, column, words| WordColumn {
        table,
        column,
        words,
    };
    let moving: Vec<Operation> = Operation::ALL
        .into_iter()
        .filter(|op| op.moves_money())
        .collect();
    vec![
        col("refunds", "status", words_of(RefundStatus::ALL)),
        col("refunds", "step", words_of(StepReached::ALL)),
        // Only a money-moving call's outcome is ever unknown.
        col("refunds", "unknown_operation", words_of(&moving)),
        col("refunds", "refund_method", words_of(RefundMethod::ALL)),
        col("refunds", "settlement", words_of(SettlementState::ALL)),
        // The write-back still to be done: one of the endings the shop is told.
        col(
            "refunds",
            "writeback",
            words_of(&[
                RefundStatus::Refunded,
                RefundStatus::RefundFailed,
                RefundStatus::Cancelled,
            ]),
        ),
        col("refund_events", "kind", words_of(EventKind::ALL)),
        col("refund_events", "operation", words_of(&Operation::ALL)),
        col("refund_events", "outcome", words_of(CallOutcome::ALL)),
        col("refund_events", "from_status", words_of(RefundStatus::ALL)),
        col("refund_events", "to_status", words_of(RefundStatus::ALL)),
        col("refund_passes", "outcome", words_of(PassOutcome::ALL)),
        col(
            "outbox",
            "type",
            vec![
                "refund.succeeded",
                "refund.settled",
                "refund.failed",
                "refund.withdrawn",
                "refund.needs_attention",
                "refund.cancelled",
                "refund.mismatch",
            ],
        ),
        col(
            "outbox",
            "cause",
            vec![
                "not_settled",
                "write_back_refused",
                "outcome_unknown",
                "held_in_batch",
            ],
        ),
    ]
}

/// The CHECK constraints on `c`'s column alone, or on the domain it is of,
/// as PostgreSQL's catalog has them: (name, the words they allow).
async fn checks_of(
    pool: &sqlx::PgPool,
    schema: &str,
    c: &WordColumn,
) -> Vec<(String, Vec<String>)> {
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT con.conname::text, pg_get_constraintdef(con.oid)
           FROM pg_class r
           JOIN pg_namespace n ON n.oid = r.relnamespace
           JOIN pg_attribute a ON a.attrelid = r.oid AND a.attname = $3
           JOIN pg_constraint con ON con.contype = 'c'
                AND ((con.conrelid = r.oid AND con.conkey = ARRAY[a.attnum])
                     OR con.contypid = a.atttypid)
          WHERE n.nspname = $1 AND r.relname = $2
          ORDER BY 1",
    )
    .bind(schema)
    .bind(c.table)
    .bind(c.column)
    .fetch_all(pool)
    .await
    .unwrap();
    defs.into_iter()
        .map(|(name, def)| {
            assert!(!def.contains("''"), "{name}: {def}");
            // The quoted literals: every second piece between quotes.
            let mut words: Vec<String> = def
                .split('\'')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect();
            words.sort();
            (name, words)
        })
        .collect()
}

/// Where each column's CHECK differs from the words the code writes.
async fn checks_unlike_the_code(pool: &sqlx::PgPool, schema: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for c in word_columns() {
        let mut want: Vec<String> = c.words.iter().map(|w| w.to_string()).collect();
        want.sort();
        let checks = checks_of(pool, schema, &c).await;
        match checks.as_slice() {
            [(_, allowed)] if *allowed == want => {}
            _ => wrong.push(format!(
                "{}.{}: checks {checks:?}, code writes {want:?}",
                c.table, c.column
            )),
        }
    }
    wrong
}

/// Writes a row whose `c` column holds `word` (`$1`), the other columns as
/// the code fills them (a fresh order number, `$2`, where one is needed).
async fn write_word(
    pool: &sqlx::PgPool,
    schema: &str,
    c: &WordColumn,
    word: &str,
) -> Result<(), sqlx::Error> {
    let (table, column) = (c.table, c.column);
    let sql = match (table, column) {
        ("refunds", _) => {
            format!("INSERT INTO {schema}.refunds ({column}, order_no) VALUES ($1, $2)")
        }
        ("refund_events", "kind") => {
            format!("INSERT INTO {schema}.refund_events (kind, order_no) VALUES ($1, $2)")
        }
        ("refund_events", _) => format!(
            "INSERT INTO {schema}.refund_events ({column}, order_no, kind) VALUES ($1, $2, 'note')"
        ),
        ("refund_passes", _) => format!(
            "INSERT INTO {schema}.refund_passes ({column}, worker) VALUES ($1, gen_random_uuid())"
        ),
        ("outbox", "type") => {
            format!("INSERT INTO {schema}.outbox (type, order_no, body) VALUES ($1, $2, '{{}}')")
        }
        ("outbox", _) => format!(
            "INSERT INTO {schema}.outbox ({column}, order_no, type, body)
             VALUES ($1, $2, 'refund.needs_attention', '{{}}')"
        ),
        _ => panic!("no way to write {table}.{column}"),
    };
    let q = sqlx::query(&sql).bind(word);
    let q = if sql.contains("$2") {
        q.bind(uuid::Uuid::new_v4().to_string())
    } else {
        q
    };
    q.execute(pool).await.map(|_| ())
}

#[tokio::test]
async fn every_column_of_words_allows_exactly_the_words_the_code_writes() {
    let (pool, _) = fresh_db().await;
    let wrong = checks_unlike_the_code(&pool, "refundd").await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_misspelt_word_is_refused_where_it_is_written() {
    let (pool, _) = fresh_db().await;
    let mut wrong = Vec::new();
    for c in word_columns() {
        for word in &c.words {
            if let Err(e) = write_word(&pool, "refundd", &c, word).await {
                wrong.push(format!("{}.{} refused {word:?}: {e}", c.table, c.column));
            }
        }
        let names: Vec<String> = checks_of(&pool, "refundd", &c)
            .await
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let first = c.words[0];
        let last = first.chars().last().unwrap();
        for misspelt in [
            format!("{first}{last}"),
            first.to_uppercase(),
            format!("{first} "),
        ] {
            assert!(!c.words.contains(&misspelt.as_str()));
            match write_word(&pool, "refundd", &c, &misspelt).await {
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("23514")
                        && names.iter().any(|n| Some(n.as_str()) == e.constraint()) => {}
                other => wrong.push(format!(
                    "{}.{} took {misspelt:?}: {other:?}",
                    c.table, c.column
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The migration that checks the words.
const WORD_CHECKS: i64 = 20261207000002;

/// Words the code writes only since a later migration (a cancelled refund,
/// 20261207000005; a reconciliation's mismatch, 20261207000006): a database
/// from before the word checks never held them.
const LATER_WORDS: [&str; 3] = ["cancelled", "refund.cancelled", "refund.mismatch"];

/// The migrations before `version`, in a directory of their own.
fn migrations_before(version: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let v: i64 = name.split('_').next().unwrap().parse().unwrap();
        if v < version {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    dir
}

#[tokio::test]
async fn a_database_holding_every_word_the_code_writes_takes_the_checks() {
    let (pool, _) = empty_db().await;
    let schema = "billing_refunds";
    let older = sqlx::migrate::Migrator::new(migrations_before(WORD_CHECKS).path())
        .await
        .unwrap();
    let newer = refundd::store::MIGRATOR
        .iter()
        .filter(|m| m.version >= WORD_CHECKS)
        .count() as u64;
    assert!(newer >= 1, "the word checks are among the migrations");
    let mut conn = pool.acquire().await.unwrap().detach();
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    older.run(&mut conn).await.unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    for c in word_columns() {
        for word in c.words.iter().filter(|w| !LATER_WORDS.contains(w)) {
            write_word(&pool, schema, &c, word).await.unwrap();
        }
    }

    let shop = ShopStatements::of_shop(
        "SELECT 'A1'::text AS order_no, 'X'::text AS xid, 'C'::text AS auth_code, 1::int AS auth_amount, NULL::int AS refund_amount".into(),
        "SELECT $1::text".into(),
        None,
    );
    let store = Store::new(pool.clone(), Schema::parse(schema).unwrap(), shop);
    let migrated = store.migrate().await.unwrap();
    assert_eq!(migrated.applied, newer);
    let wrong = checks_unlike_the_code(&pool, schema).await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_withdrawn_requests_note_reads_back_in_the_story() {
    let (pool, _) = fresh_db().await;
    let store = Store::builtin(pool.clone());
    sqlx::query(
        "INSERT INTO orders (order_no, xid, auth_code, auth_amount, status)
         VALUES ('W1', 'X1', 'A1', 1000, 'refund_requested')",
    )
    .execute(&pool)
    .await
    .unwrap();
    store.intake(1000).await.unwrap();
    sqlx::query("UPDATE orders SET status = 'paid' WHERE order_no = 'W1'")
        .execute(&pool)
        .await
        .unwrap();
    store.intake(1000).await.unwrap();
    let from = chrono::Utc::now() - chrono::Duration::hours(1);
    let to = chrono::Utc::now() + chrono::Duration::hours(1);
    let story = store.events_between(from, to).await.unwrap();
    let note = story.iter().find(|e| e.kind == EventKind::Note).unwrap();
    assert_eq!(note.outcome.map(|o| o.as_str()), Some("withdrawn"));
}

/// A database a newer refundd migrated: this one refuses it, by `migrate`
/// (the unit's ExecStartPre) and by every command that reads refundd's
/// records, exit 2, saying what to install; it never starts against it.
#[tokio::test]
async fn a_schema_migrated_by_a_newer_refundd_is_refused_as_a_downgrade() {
    let (pool, url) = fresh_db().await;
    let store = Store::builtin(pool.clone());
    store.migrate().await.unwrap();
    let newer: i64 = 29_991_231_000_000;
    sqlx::query(
        "INSERT INTO refundd._sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, 'from a newer refundd', true, '\\x00', 1)",
    )
    .bind(newer)
    .execute(&pool)
    .await
    .unwrap();
    let refused = store.migrate().await.unwrap_err();
    assert!(
        matches!(refused, StoreError::NewerSchema { applied, .. } if applied == newer),
        "{refused}"
    );
    assert!(refused.is_settings_problem());
    assert!(store.require_migrated().await.is_err());
    for command in ["migrate", "status", "run", "check"] {
        let out = crate::common::refundd_bin()
            .arg(command)
            .env("REFUNDD__DATABASE__URL", &url)
            .env("REFUNDD__CTBC__BASE_URL", "http://127.0.0.1:9")
            .env("REFUNDD__CTBC__MER_ID", refundd::sim::REFERENCE_MER_ID)
            .env("REFUNDD__CTBC__MAC_KEY", refundd::sim::REFERENCE_MAC_KEY)
            .env("REFUNDD__CTBC__IV", refundd::sim::REFERENCE_IV)
            .env("REFUNDD__HTTP__LISTEN", "off")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {said}");
        assert!(
            said.contains("newer refundd") && said.contains("downgrade is refused"),
            "{command}: {said}"
        );
        assert!(said.contains(&newer.to_string()), "{command}: {said}");
    }
}
