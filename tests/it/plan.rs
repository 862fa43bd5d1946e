//! `refundd plan` as an operator and a script run it, against real PostgreSQL
//! and the bank simulator: the bank receives inquiries only, neither refundd's
//! records nor the shop's tables change, and what the plan says of each order
//! is what the next pass then does to it, skips included.

use crate::common::{
    as_setting, bank_tx, in_both_modes, output_off_runtime, refundd_bin, succeeds,
    window_around_now, Ends, OrderView, Rig, EVERY_BANK_STATE,
};
use refundd::ctbc::TxState;
use serde_json::Value;
use std::process::Command;

/// `refundd plan` on the rig's database, bank and shop tables.
fn plan_cmd(rig: &Rig, json: bool) -> Command {
    let mut cmd = rig.refundd("plan");
    if json {
        cmd.arg("--json");
    }
    // The same limit as the pass the tests compare with (crate::common::engine_settings).
    cmd.env("REFUNDD__WORKER__MAX_ATTEMPTS", "5");
    cmd
}

/// (exit code, stdout, stderr)
async fn printed(cmd: Command) -> (Option<i32>, String, String) {
    let out = output_off_runtime(cmd).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The plan as a script reads it; the command must succeed.
async fn json_plan(cmd: Command) -> Value {
    let stdout = succeeds(cmd).await;
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Every row of every table outside PostgreSQL's own schemas: refundd's
/// records, its events and passes, and the shop's tables.
async fn snapshot(rig: &Rig) -> Vec<(String, Value)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
          WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
            AND tablename <> '_sqlx_migrations'
          ORDER BY 1",
    )
    .fetch_all(&rig.pool)
    .await
    .unwrap();
    let mut rows = Vec::new();
    for t in tables {
        let all: Value = sqlx::query_scalar(&format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]'::jsonb) FROM {t} t"
        ))
        .fetch_one(&rig.pool)
        .await
        .unwrap();
        rows.push((t, all));
    }
    rows
}

/// Asserts the bank has seen inquiries and nothing else.
async fn bank_saw_inquiries_only(rig: &Rig) -> usize {
    let calls = rig.admin.calls().await.unwrap();
    let others: Vec<_> = calls.iter().filter(|c| c.operation != "inquiry").collect();
    assert!(
        others.is_empty(),
        "the plan sent more than inquiries: {others:?}"
    );
    let ledger = rig.admin.ledger().await.unwrap();
    assert_eq!(ledger.returned_total, 0, "money moved");
    let used: Vec<&String> = ledger
        .by_operation
        .iter()
        .filter(|(_, t)| t.calls > 0)
        .map(|(op, _)| op)
        .collect();
    assert_eq!(used, ["inquiry"]);
    calls.len()
}

/// What the plan says of `order_no`.
fn order_in<'a>(plan: &'a Value, order_no: &str) -> &'a Value {
    plan["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["order_no"] == order_no)
        .unwrap_or_else(|| panic!("{order_no} is not in the plan: {plan:#}"))
}

/// The pass did to the order what the plan said it would: the same outcome
/// and, at the bank, exactly the planned money-moving calls.
async fn pass_did_what_was_planned(rig: &Rig, planned: &Value) {
    let no = planned["order_no"].as_str().unwrap();
    let action = &planned["action"];
    let OrderView {
        status,
        refund_method: method,
        refunded_amount: amount,
        refund_error: error,
        ..
    } = rig.order(no).await;
    let kind = action["kind"].as_str().unwrap();
    match kind {
        "send" | "record_refunded" => assert_eq!(
            (status.as_str(), method.as_deref(), amount, error.as_deref()),
            (
                "refunded",
                action["method"].as_str(),
                action["amount"].as_i64(),
                None
            ),
            "{no}: {planned}"
        ),
        "wait" | "retry_later" => {
            assert_eq!(status, "refund_requested", "{no}: {planned}");
        }
        "needs_person" => assert_eq!(
            (status.as_str(), error.as_deref()),
            ("refund_failed", action["reason"].as_str()),
            "{no}: {planned}"
        ),
        other => panic!("{no}: unexpected action {other}"),
    }
    let sent: Vec<(String, Option<i64>)> = rig
        .admin
        .calls_of(no)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.operation != "inquiry")
        .map(|c| (c.operation, c.amount))
        .collect();
    let planned_calls: Vec<(String, Option<i64>)> = match kind {
        "send" => action["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["operation"].as_str().unwrap().to_string(),
                    c["amount"].as_i64(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    assert_eq!(sent, planned_calls, "{no}: the pass's calls");
}

in_both_modes!(
    the_plan_is_what_the_next_pass_does_and_the_bank_hears_only_inquiries,
    orders_in_backoff_or_within_the_recheck_delay_are_skipped,
    inside_a_blackout_window_every_order_is_skipped,
);

async fn the_plan_is_what_the_next_pass_does_and_the_bank_hears_only_inquiries(rig: Rig) {
    rig.seed_cases(EVERY_BANK_STATE).await;
    rig.insert_order("NOTATBANK", 1000, None).await;
    // A request the shop made that refundd has not read yet.
    rig.seed_unread("NEW1", 800, TxState::Authorised, Some(500))
        .await;
    if rig.shop.is_none() {
        sqlx::query(
            "INSERT INTO orders (order_no, xid, auth_code, auth_amount, status)
             VALUES ('BAD-NO', 'XBAD', 'A1B2C3', 1000, 'refund_requested')",
        )
        .execute(&rig.pool)
        .await
        .unwrap();
    }
    let before = snapshot(&rig).await;

    let (code, text, stderr) = printed(plan_cmd(&rig, false)).await;
    assert_eq!(code, Some(0), "{text}\n{stderr}");
    println!("{text}");
    let plan = json_plan(plan_cmd(&rig, true)).await;

    // Inquiries only, and nothing written anywhere.
    let calls = bank_saw_inquiries_only(&rig).await;
    let asked = plan["totals"]["inquiries"].as_u64().unwrap() as usize;
    assert_eq!(calls, 2 * asked, "one inquiry per order asked, per run");
    assert_eq!(
        snapshot(&rig).await,
        before,
        "the plan changed the database"
    );

    for case in EVERY_BANK_STATE {
        let line = format!("{}: {}", case.order_no, case.plan);
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        let kind = match case.ends {
            Ends::Refunded(..) => "send",
            Ends::Waits => "wait",
            Ends::NeedsPerson | Ends::BackBeforeRefundd => "needs_person",
        };
        let planned = order_in(&plan, case.order_no);
        assert_eq!(planned["action"]["kind"], kind, "{planned}");
    }
    for line in [
        "NOTATBANK: inquiry unknown_order → needs a person: the bank does not know this order",
        "NEW1: new request, state 1 → reversal 500 (the authorisation lowered from 800 to 300)",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        text.contains("sends for 6 (7 calls giving back 4050"),
        "{text}"
    );
    assert_eq!(order_in(&plan, "NEW1")["new_request"], true);
    assert_eq!(order_in(&plan, "S12")["new_request"], false);
    if rig.shop.is_none() {
        let bad = order_in(&plan, "BAD-NO");
        assert_eq!(bad["inquired"], false, "an invalid row is not asked about");
        assert!(
            text.contains("BAD-NO: new request, needs a person: invalid row"),
            "{text}"
        );
    }
    assert_eq!(plan["totals"]["skipped"], 0, "{plan:#}");

    // The next pass does what the plan said, order by order.
    rig.pass().await;
    for planned in plan["orders"].as_array().unwrap() {
        pass_did_what_was_planned(&rig, planned).await;
    }
    for case in EVERY_BANK_STATE {
        rig.assert_ended(case).await;
    }
    assert_eq!(rig.admin.duplicates().await.unwrap(), 0);
}

async fn orders_in_backoff_or_within_the_recheck_delay_are_skipped(rig: Rig) {
    // A worker sent a refund and died before its outcome was known.
    rig.seed("RECHECK", 1000, TxState::Settled, None).await;
    rig.intent_of_a_dead_worker(refundd::ctbc::Operation::Refund, 1000, (1000, 1000))
        .await;
    sqlx::query(
        "UPDATE refundd.refunds SET lease_expires_at = now() - interval '1 second'
          WHERE order_no = 'RECHECK'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    // A failed attempt waiting out its backoff.
    rig.seed("BACKOFF", 1000, TxState::Settled, None).await;
    sqlx::query(
        "UPDATE refundd.refunds
            SET attempts = 1, next_attempt_at = now() + interval '1 hour',
                last_error = 'inquiry: bank unavailable: maintenance'
          WHERE order_no = 'BACKOFF'",
    )
    .execute(&rig.pool)
    .await
    .unwrap();
    rig.seed("DUE", 1000, TxState::Authorised, None).await;
    let before = snapshot(&rig).await;

    let (code, text, stderr) = printed(plan_cmd(&rig, false)).await;
    assert_eq!(code, Some(0), "{text}\n{stderr}");
    println!("{text}");
    let plan = json_plan(plan_cmd(&rig, true)).await;
    bank_saw_inquiries_only(&rig).await;
    assert_eq!(
        snapshot(&rig).await,
        before,
        "the plan changed the database"
    );

    let backoff = order_in(&plan, "BACKOFF");
    assert_eq!(backoff["skipped"]["reason"], "not_due", "{backoff}");
    assert_eq!(
        backoff["skipped"]["last_error"],
        "inquiry: bank unavailable: maintenance"
    );
    assert_eq!(backoff["inquired"], false, "{backoff}");
    assert!(rig.admin.calls_of("BACKOFF").await.unwrap().is_empty());
    let recheck = order_in(&plan, "RECHECK");
    assert_eq!(recheck["skipped"]["reason"], "recheck_delay", "{recheck}");
    assert_eq!(recheck["skipped"]["operation"], "refund");
    assert!(recheck["skipped"]["left_secs"].as_u64().unwrap() <= 300);
    assert_eq!(recheck["action"]["kind"], "send", "then a refund");
    assert_eq!(order_in(&plan, "DUE")["action"]["kind"], "send");
    assert_eq!(plan["totals"]["skipped"], 2);
    assert!(text.contains("BACKOFF: skipped: not due until"), "{text}");
    assert!(
        text.contains("RECHECK: state 12 → skipped: the outcome of an earlier refund is unknown"),
        "{text}"
    );

    // The next pass leaves both alone and works the due one.
    rig.pass().await;
    assert_eq!(rig.order("BACKOFF").await.status, "refund_requested");
    assert!(rig.admin.calls_of("BACKOFF").await.unwrap().is_empty());
    let OrderView { status, .. } = rig.order("RECHECK").await;
    assert_eq!(status, "refunding", "still waiting for its recheck");
    assert_eq!(rig.accepted("RECHECK", "refund").await, 0);
    pass_did_what_was_planned(&rig, order_in(&plan, "DUE")).await;
}

async fn inside_a_blackout_window_every_order_is_skipped(rig: Rig) {
    rig.seed("BL1", 1000, TxState::Authorised, None).await;
    rig.seed("BL10", 1000, TxState::CapturedNotSettled, None)
        .await;
    rig.seed("BL12", 1000, TxState::Settled, None).await;
    rig.seed("BL0", 1000, TxState::AuthCancelled, None).await;
    let before = snapshot(&rig).await;
    // A window around now; the default cron (every second hour) still fires outside it.
    let window = as_setting(&window_around_now(5, 30));
    let mut text_cmd = plan_cmd(&rig, false);
    text_cmd.env("REFUNDD__SCHEDULE__BLACKOUT", &window);
    let (code, text, stderr) = printed(text_cmd).await;
    assert_eq!(code, Some(0), "{text}\n{stderr}");
    println!("{text}");
    let mut json_cmd = plan_cmd(&rig, true);
    json_cmd.env("REFUNDD__SCHEDULE__BLACKOUT", &window);
    let plan = json_plan(json_cmd).await;
    bank_saw_inquiries_only(&rig).await;
    assert_eq!(
        snapshot(&rig).await,
        before,
        "the plan changed the database"
    );

    assert_eq!(plan["blackout"], window.as_str());
    for (no, then) in [
        ("BL1", "send"),
        ("BL10", "send"),
        ("BL12", "send"),
        ("BL0", "needs_person"),
    ] {
        let o = order_in(&plan, no);
        assert_eq!(o["skipped"]["reason"], "blackout", "{o}");
        assert_eq!(o["skipped"]["window"], window.as_str(), "{o}");
        assert_eq!(o["action"]["kind"], then, "{o}");
    }
    assert_eq!(plan["totals"]["worked"], 0);
    assert_eq!(plan["totals"]["skipped_by_reason"]["blackout"], 4);
    assert!(
        text.contains(&format!(
            "BL10: state 10 → skipped: blackout window {window} (Asia/Taipei) (then: capture reversal 1000, then reversal)"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_withdrawn_request_and_a_refund_asked_again_are_listed_not_worked() {
    let rig = Rig::new().await;
    rig.seed("AGAIN", 1000, TxState::Authorised, None).await;
    rig.pass().await;
    assert_eq!(rig.order("AGAIN").await.status, "refunded");
    // The shop asks again for the refunded order and stops asking for the other.
    rig.seed("GONE2", 1000, TxState::Settled, None).await;
    sqlx::query("UPDATE orders SET status = 'refund_requested' WHERE order_no = 'AGAIN'")
        .execute(&rig.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET status = 'paid' WHERE order_no = 'GONE2'")
        .execute(&rig.pool)
        .await
        .unwrap();
    let calls_before = rig.admin.calls().await.unwrap().len();
    let before = snapshot(&rig).await;
    let plan = json_plan(plan_cmd(&rig, true)).await;
    assert_eq!(
        snapshot(&rig).await,
        before,
        "the plan changed the database"
    );
    assert_eq!(order_in(&plan, "GONE2")["skipped"]["reason"], "withdrawn");
    assert_eq!(
        order_in(&plan, "AGAIN")["skipped"]["reason"],
        "refunded_already"
    );
    assert_eq!(
        rig.admin.calls().await.unwrap().len(),
        calls_before,
        "neither is asked about"
    );
    rig.pass().await;
    assert_eq!(rig.order("GONE2").await.status, "withdrawn");
    assert_eq!(rig.order("AGAIN").await.status, "refunded");
    assert_eq!(rig.accepted("AGAIN", "reversal").await, 1, "refunded once");
}

#[tokio::test]
async fn exit_codes_say_whether_a_plan_was_made() {
    // No bank settings: 2, naming them.
    let out = refundd_bin()
        .arg("plan")
        .env(
            "REFUNDD__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ctbc.base_url"));

    let rig = Rig::new().await;
    rig.seed("E1", 1000, TxState::Settled, None).await;
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };

    // The database out of reach: 1.
    let mut cmd = plan_cmd(&rig, true);
    cmd.env(
        "REFUNDD__DATABASE__URL",
        format!("postgres://postgres@127.0.0.1:{}/none", free_port()),
    );
    let (code, _, stderr) = printed(cmd).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("database"), "{stderr}");

    // The bank out of reach: 1, naming the setting to check.
    let mut cmd = plan_cmd(&rig, true);
    cmd.env(
        "REFUNDD__CTBC__BASE_URL",
        format!("http://127.0.0.1:{}/MicroPos", free_port()),
    );
    let (code, stdout, stderr) = printed(cmd).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("ctbc.base_url"), "{stderr}");
    assert!(stdout.is_empty(), "no plan is printed: {stdout}");

    // A database refundd was never migrated into: 2, naming the fix.
    let (_, empty_url) = crate::common::empty_db().await;
    let mut cmd = plan_cmd(&rig, true);
    cmd.env("REFUNDD__DATABASE__URL", &empty_url);
    let (code, _, stderr) = printed(cmd).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("refundd migrate"), "{stderr}");

    // Nothing to do is a plan too: 0.
    let idle = Rig::new().await;
    let (code, stdout, stderr) = printed(plan_cmd(&idle, false)).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("works now (0)"), "{stdout}");
}

/// What the plan says of one refund of an order with several.
fn refund_in<'a>(plan: &'a Value, order_no: &str, refund_id: &str) -> &'a Value {
    plan["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["order_no"] == order_no && o["refund_id"] == refund_id)
        .unwrap_or_else(|| panic!("{order_no} {refund_id} is not in the plan: {plan:#}"))
}

/// An order's refunds go one at a time: the plan names each refund, works
/// the earliest, says the later one waits for it, and the pass does so.
#[tokio::test]
async fn a_later_refund_of_an_order_waits_for_its_earlier_one() {
    use refundd::ops::shop_examples::RETURNS;
    use refundd::store::shop_examples::{approve_return, AskedBack, SeedOrder};
    let rig = Rig::in_shop(&RETURNS).await;
    rig.admin
        .load(&[bank_tx("N1", 1000, TxState::Authorised)])
        .await
        .unwrap();
    let paid = SeedOrder {
        refund: AskedBack::NotAsked,
        ..crate::common::request("N1", 1000, None)
    };
    RETURNS.seed_orders(&rig.pool, &[paid]).await.unwrap();
    approve_return(&rig.pool, "N1", "A1", Some(300))
        .await
        .unwrap();
    rig.store.intake(1000).await.unwrap();
    // A second return, approved after refundd recorded the first.
    approve_return(&rig.pool, "N1", "A2", Some(200))
        .await
        .unwrap();
    let before = snapshot(&rig).await;

    let (code, text, stderr) = printed(plan_cmd(&rig, false)).await;
    assert_eq!(code, Some(0), "{text}\n{stderr}");
    let plan = json_plan(plan_cmd(&rig, true)).await;
    assert_eq!(
        snapshot(&rig).await,
        before,
        "the plan changed the database"
    );
    let first = refund_in(&plan, "N1", "A1");
    assert_eq!(first["skipped"], Value::Null, "{first}");
    assert_eq!(first["action"]["amount"], 300);
    let later = refund_in(&plan, "N1", "A2");
    assert_eq!(
        later["skipped"]["reason"], "waits_for_earlier_refund",
        "{later}"
    );
    assert_eq!(later["skipped"]["earlier"], "A1");
    assert_eq!(later["inquired"], false, "{later}");
    assert_eq!(
        plan["totals"]["skipped_by_reason"]["waits_for_earlier_refund"],
        1
    );
    for line in [
        "N1 (refund A1): state 1 → reversal 300 (the authorisation lowered from 1000 to 700)",
        "N1 (refund A2): new request, skipped: waits for the order's earlier refund A1",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }

    // The pass does the first alone; the next plan and pass, the second.
    rig.pass().await;
    rig.refund("N1", "A1")
        .await
        .assert_refunded("reversal", 300);
    assert_eq!(rig.refund("N1", "A2").await.status, "refund_requested");
    assert_eq!(rig.money_calls("N1").await, ["reversal"]);
    let plan = json_plan(plan_cmd(&rig, true)).await;
    let later = refund_in(&plan, "N1", "A2");
    assert_eq!(later["skipped"], Value::Null, "{later}");
    assert_eq!(later["action"]["kind"], "send", "{later}");
    assert_eq!(later["action"]["amount"], 200, "{later}");
    rig.pass().await;
    rig.refund("N1", "A2")
        .await
        .assert_refunded("reversal", 200);
}
