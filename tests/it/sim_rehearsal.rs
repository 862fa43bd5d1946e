//! A rehearsal against a shop's own orders in one command: `refundd sim
//! --transactions FILE` loads the shop's transactions before it answers, and
//! refuses a file with a bad row, naming the file, the line and the field.

use crate::common::{client_for, listening_addr, refundd_bin, Running};
use refundd::ctbc::types::{Currency, Money, OrderNo, TxState};
use std::process::Stdio;
use std::time::Duration;

const SHOP_CSV: &str = "order_no,xid,auth_code,amount,state\n\
                        SHOP_001,X20261127001,AB1234,1500,10\n\
                        SHOP_002,X20261127002,CD5678,990,12\n";

fn sim_with(file: &std::path::Path) -> std::process::Command {
    let mut cmd = refundd_bin();
    cmd.arg("sim")
        .arg("--transactions")
        .arg(file)
        .args(["--listen", "127.0.0.1:0"]);
    cmd
}

#[tokio::test]
async fn the_simulator_answers_for_the_shops_transactions_from_its_first_call() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, SHOP_CSV).unwrap();
    let mut sim = Running(
        sim_with(&file)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base_url = format!("http://{}", listening_addr(&mut sim));
    let client = client_for(&base_url, Duration::from_secs(10));
    let settled = client
        .inquiry(&OrderNo::parse("SHOP_002").unwrap())
        .await
        .unwrap();
    assert_eq!(settled.state, TxState::Settled);
    assert_eq!(settled.xid.unwrap().as_str(), "X20261127002");
    assert_eq!(
        settled.auth_amount,
        Some(Money::new(Currency::TWD, 990).unwrap())
    );
    // A reset goes back to the state at start: the file's transactions.
    refundd::sim::SimAdmin::new(&base_url)
        .reset()
        .await
        .unwrap();
    let captured = client
        .inquiry(&OrderNo::parse("SHOP_001").unwrap())
        .await
        .unwrap();
    assert_eq!(captured.state, TxState::CapturedNotSettled);
}

#[test]
fn a_file_with_a_bad_row_stops_the_simulator_with_code_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, format!("{SHOP_CSV}SHOP_003,X3,EF9012,12.50,12\n")).unwrap();
    let out = sim_with(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let place = format!("{}:4: amount: ", file.display());
    assert!(err.contains(&place), "{err}");
    let out = sim_with(&dir.path().join("nowhere.csv")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--transactions") && err.contains("nowhere.csv"),
        "{err}"
    );
}
