//! `refundd once` and `refundd run` as an operator runs them: real binary,
//! real PostgreSQL, the simulator over HTTP, exit codes and signals.

use crate::common::{eventually, exited, output_off_runtime, refundd_bin, request, terminate, Rig};
use refundd::ctbc::TxState;
use refundd::sim::{FaultPlan, REFERENCE_MAC_KEY};
use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn once_works_the_queue_and_prints_a_summary() {
    let rig = Rig::new().await;
    rig.seed("ONCE1", 1000, TxState::Authorised, None).await;
    rig.seed("ONCE10", 1000, TxState::CapturedNotSettled, None)
        .await;
    rig.seed("ONCE12", 1000, TxState::Settled, Some(100)).await;
    let out = output_off_runtime(rig.refundd("once")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "claimed 3, refunded 3 (reversal 1, capture reversal + reversal 1, refund 1)"
        ),
        "{stdout}"
    );
    for no in ["ONCE1", "ONCE10", "ONCE12"] {
        assert_eq!(rig.order(no).await.status, "refunded");
    }
    let secret_seen = String::from_utf8_lossy(&out.stderr).contains(REFERENCE_MAC_KEY)
        || stdout.contains(REFERENCE_MAC_KEY);
    assert!(!secret_seen, "the MAC key leaked into the output");
}

#[test]
fn once_without_bank_settings_names_each_missing_setting() {
    let out = refundd_bin()
        .arg("once")
        .env(
            "REFUNDD__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for setting in ["ctbc.base_url", "ctbc.mer_id", "ctbc.mac_key", "ctbc.iv"] {
        assert!(err.contains(setting), "{setting} missing from: {err}");
    }
}

#[test]
fn once_refuses_plain_http_to_a_remote_bank() {
    let out = refundd_bin()
        .arg("once")
        .env(
            "REFUNDD__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env(
            "REFUNDD__CTBC__BASE_URL",
            "http://bank.example.com/MicroPos",
        )
        .env("REFUNDD__CTBC__MER_ID", "1234567")
        .env("REFUNDD__CTBC__MAC_KEY", "QWERTYUIOPASDFGHJKLZXCVB")
        .env("REFUNDD__CTBC__IV", "12345678")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_insecure_http"));
}

#[tokio::test]
async fn once_with_the_database_down_names_its_host_port_and_cause() {
    let rig = Rig::new().await;
    let mut cmd = rig.refundd("once");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cmd.env(
        "REFUNDD__DATABASE__URL",
        format!("postgres://postgres@127.0.0.1:{port}/none"),
    );
    let out = output_off_runtime(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The cause at once, not a wait for a pool: where, and what happened.
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "database",
        "127.0.0.1",
        &format!(":{port}"),
        "connection refused",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(!err.contains("pool timed out"), "{err}");
}

/// A wrong password, or a database that does not exist, is a settings
/// problem named as such (exit 2), and the password is never shown. The
/// shared cluster trusts every local connection, so the password is checked
/// by a cluster of the test's own, told to ask one role for it.
#[tokio::test]
async fn a_wrong_password_or_database_name_says_so_and_names_the_setting() {
    let cluster = tokio::task::spawn_blocking(refundd::throwaway_pg::ThrowawayPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let admin = refundd::store::connect(&cluster.url("postgres"), 1)
        .await
        .unwrap();
    sqlx::query("CREATE ROLE shop_app LOGIN PASSWORD 'the-right-one'")
        .execute(&admin)
        .await
        .unwrap();
    let hba = cluster.dir().join("data/pg_hba.conf");
    let trusting = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all shop_app 127.0.0.1/32 scram-sha-256\n{trusting}"),
    )
    .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&admin)
        .await
        .unwrap();
    let port = cluster.port();
    let wrong = format!("postgres://shop_app:not-the-password@127.0.0.1:{port}/postgres");
    let asks_for_it = || {
        let wrong = wrong.clone();
        async move {
            use sqlx::Connection;
            match sqlx::PgConnection::connect(&wrong).await {
                Err(sqlx::Error::Database(e)) => e.code().as_deref() == Some("28P01"),
                _ => false,
            }
        }
    };
    eventually(
        Duration::from_secs(10),
        "the server asks shop_app for its password",
        asks_for_it,
    )
    .await;

    let status = |url: String| {
        let mut cmd = refundd_bin();
        cmd.arg("status").env("REFUNDD__DATABASE__URL", url);
        output_off_runtime(cmd)
    };
    let out = status(wrong).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in [
        "127.0.0.1",
        &format!(":{port}"),
        "authentication",
        "shop_app",
        "database.url",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(
        !err.contains("not-the-password"),
        "the password was shown: {err}"
    );

    let missing = format!("postgres://postgres@127.0.0.1:{port}/no_such_shop");
    let out = status(missing).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in ["no_such_shop", "does not exist", "database.url"] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
}

#[tokio::test]
async fn run_stops_on_sigterm_mid_pass_and_leaves_nothing_claimed() {
    let rig = Rig::new().await;
    let orders: Vec<(String, i64)> = (0..60).map(|i| (format!("RUN{i}"), 1000)).collect();
    rig.bank_knows(&orders, |_| TxState::Settled).await;
    // Requested; `refundd run` reads them.
    let asked: Vec<_> = orders.iter().map(|(no, a)| request(no, *a, None)).collect();
    rig.ask(&asked).await;
    // A slow bank, so the pass is still going when the signal comes.
    let plan = FaultPlan::from_json(r#"{"rules":[{"latency_ms":150}]}"#).unwrap();
    rig.admin.set_faults(&plan).await.unwrap();
    let mut cmd = rig.refundd("run");
    cmd.env("REFUNDD__WORKER__CONCURRENCY", "2")
        .env("REFUNDD__WORKER__BATCH_SIZE", "4")
        .env("REFUNDD__WORKER__SHUTDOWN_GRACE_SECS", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Wait until the pass has refunded something.
    eventually(
        Duration::from_secs(60),
        "a first refund of the pass",
        || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'refunded'")
                    .fetch_one(&rig.pool)
                    .await
                    .unwrap();
            n > 0
        },
    )
    .await;
    terminate(&child);
    let status = exited(child).await;
    assert_eq!(status.code(), Some(0));
    let (claimed, refunded, waiting): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE lease_owner IS NOT NULL),
                count(*) FILTER (WHERE status = 'refunded'),
                count(*) FILTER (WHERE status = 'refund_requested')
           FROM refundd.refunds",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert_eq!(claimed, 0, "nothing left claimed by the exiting process");
    assert!(
        refunded < 60 && waiting > 0,
        "stopped mid-pass: refunded {refunded}, waiting {waiting}"
    );
    // Every refund the bank made is recorded.
    let ledger = rig.admin.ledger().await.unwrap();
    let recorded: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(refunded_amount), 0)::bigint FROM orders WHERE status = 'refunded'",
    )
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert_eq!(recorded, ledger.returned_total);
    let pass_outcome: String =
        sqlx::query_scalar("SELECT outcome FROM refundd.refund_passes ORDER BY id DESC LIMIT 1")
            .fetch_one(&rig.pool)
            .await
            .unwrap();
    assert_eq!(pass_outcome, "stopped");
}
