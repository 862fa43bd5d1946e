//! Several merchants through a whole pass, `refundd plan` and `refundd
//! status`, against real PostgreSQL, the returns shop's own tables (its
//! orders name the merchant they were paid to) and the bank simulator serving
//! two merchants, each with its own MERID and keys. The simulator opens a call
//! only with the keys of the MERID it names and finds only that merchant's
//! transactions, so a call it accepts went out under the order's own merchant.

use crate::common::{bank_tx, pass_of, request, succeeds, MerchantAtBank, Rig, BRAND_MERCHANT};
use refundd::ctbc::{InquiryBanks, TxState};
use refundd::domain::reconcile::Class;
use refundd::engine::reconcile::{reconcile, Window};
use refundd::ops::shop_examples::RETURNS;
use refundd::sim::{CallDisposition, PortalChange, REFERENCE_MER_ID};
use refundd::store::shop_examples::{approve_return, returns_of, seed_returns_at};
use serde_json::Value;

/// The returns shop and a bank serving the reference merchant and `brand`.
async fn shop_of_two_merchants() -> Rig {
    Rig::in_shop_with_merchant(&RETURNS, &BRAND_MERCHANT).await
}

/// The bank holds `order_no` for `merchant` (None: the reference merchant),
/// and the shop's order, paid to the merchant it names (`shop_says`), is
/// returned whole.
async fn paid_and_returned(
    rig: &Rig,
    order_no: &str,
    amount: i64,
    state: TxState,
    (merchant, shop_says): (Option<&MerchantAtBank>, Option<&str>),
) {
    let mut tx = bank_tx(order_no, amount, state);
    tx.mer_id = merchant.map(|m| m.mer_id.to_string());
    rig.admin.load(&[tx]).await.unwrap();
    seed_returns_at(&rig.pool, &[request(order_no, amount, None)], shop_says)
        .await
        .unwrap();
}

/// The calls the bank took for `order_no`: (operation, accepted).
async fn calls_at_bank(rig: &Rig, order_no: &str) -> Vec<(String, bool)> {
    rig.admin
        .calls_of(order_no)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.operation, c.outcome == CallDisposition::Accepted))
        .collect()
}

/// What the plan says of one refund.
fn planned<'a>(plan: &'a Value, order_no: &str) -> &'a Value {
    plan["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["order_no"] == order_no)
        .unwrap_or_else(|| panic!("{order_no} is not in the plan: {plan:#}"))
}

#[tokio::test]
async fn each_order_is_refunded_at_its_own_merchant_and_an_unknown_merchant_fails_alone() {
    let rig = shop_of_two_merchants().await;
    let brand = Some(&BRAND_MERCHANT);
    paid_and_returned(&rig, "M1", 1000, TxState::Authorised, (None, None)).await;
    let b1 = (brand, Some(BRAND_MERCHANT.name));
    paid_and_returned(&rig, "B1", 800, TxState::CapturedNotSettled, b1).await;
    // The shop names a merchant refundd's settings do not give.
    paid_and_returned(&rig, "U1", 500, TxState::Authorised, (None, Some("outlet"))).await;
    let merchants = rig.merchants(&[&BRAND_MERCHANT]);

    // The plan asks each order at its own merchant's bank: the bank finds
    // brand's transaction only for brand's call, opened with brand's keys.
    let plan = refundd::engine::plan::plan(
        &refundd::store::plan::PlanReader::new(rig.store.clone()),
        &InquiryBanks::new(&merchants),
        &crate::common::engine_settings(),
        &refundd::engine::clock::SystemClock,
    )
    .await
    .unwrap();
    let plan = serde_json::to_value(&plan).unwrap();
    let (m1, b1, u1) = (
        planned(&plan, "M1"),
        planned(&plan, "B1"),
        planned(&plan, "U1"),
    );
    assert_eq!(
        (&m1["merchant"], &m1["bank_state"]),
        (&"default".into(), &"1".into())
    );
    assert_eq!(
        (&b1["merchant"], &b1["bank_state"]),
        (&"brand".into(), &"10".into())
    );
    assert_eq!(b1["refund_id"], "B1-1");
    assert_eq!(b1["action"]["method"], "capture_reversal+reversal", "{b1}");
    assert_eq!(u1["merchant"], "outlet");
    assert_eq!(u1["inquired"], false, "{u1}");
    assert_eq!(u1["action"]["kind"], "needs_person");
    let reason = u1["action"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("merchant outlet is not one of refundd's merchants")
            && reason.contains("[ctbc.merchants.outlet]")
            && reason.contains("[brand]"),
        "{reason}"
    );
    assert_eq!(plan["totals"]["worked_by_merchant"]["brand"], 1);

    // One pass of the real engine holding both merchants' clients.
    pass_of(&rig.engine_of(merchants)).await;
    rig.refund("M1", "M1-1")
        .await
        .assert_refunded("reversal", 1000);
    rig.refund("B1", "B1-1")
        .await
        .assert_refunded("capture_reversal+reversal", 800);
    let every_call_accepted = |calls: &[(String, bool)]| calls.iter().all(|(_, ok)| *ok);
    let b1_calls = calls_at_bank(&rig, "B1").await;
    assert!(every_call_accepted(&b1_calls), "{b1_calls:?}");
    let moved: Vec<&str> = (b1_calls.iter())
        .map(|(op, _)| op.as_str())
        .filter(|op| *op != "inquiry")
        .collect();
    assert_eq!(moved, ["capture_reversal", "reversal"]);
    let held = rig.admin.transaction("B1").await.unwrap().unwrap();
    assert_eq!(held.mer_id.as_deref(), Some(BRAND_MERCHANT.mer_id));
    assert_eq!(held.state, TxState::AuthCancelled.code());
    let m1 = rig.admin.transaction("M1").await.unwrap().unwrap();
    assert_eq!(m1.mer_id.as_deref(), Some(REFERENCE_MER_ID));
    assert!(every_call_accepted(&calls_at_bank(&rig, "M1").await));

    // The unknown merchant's order failed alone, with the reason the plan
    // gave, and the bank never heard of it.
    let failed = rig.refund("U1", "U1-1").await;
    assert_eq!(failed.status, "refund_failed");
    assert_eq!(failed.refund_error.as_deref(), Some(reason));
    assert!(calls_at_bank(&rig, "U1").await.is_empty());
    let returns = returns_of(&rig.pool, "U1").await.unwrap();
    assert_eq!(returns[0].state, "refund_failed");
    assert!(returns[0]
        .note
        .as_deref()
        .unwrap_or_default()
        .contains("outlet"));
    assert_eq!(
        returns_of(&rig.pool, "B1").await.unwrap()[0].state,
        "refunded"
    );
}

#[tokio::test]
async fn plan_and_status_name_each_refund_and_its_merchant() {
    let rig = shop_of_two_merchants().await;
    // A settled order of brand's, a part of it returned; an order of the
    // default merchant's, returned whole.
    let brand = (Some(&BRAND_MERCHANT), Some(BRAND_MERCHANT.name));
    paid_and_returned(&rig, "S1", 1000, TxState::Settled, brand).await;
    paid_and_returned(&rig, "M2", 600, TxState::Authorised, (None, None)).await;
    sqlx::query("UPDATE shop3.returns SET amount = 300 WHERE return_no = 'S1-1'")
        .execute(&rig.pool)
        .await
        .unwrap();
    let with_brand = |mut cmd: std::process::Command| {
        let m = &BRAND_MERCHANT;
        cmd.env("REFUNDD__CTBC__MERCHANTS__BRAND__MER_ID", m.mer_id)
            .env("REFUNDD__CTBC__MERCHANTS__BRAND__MAC_KEY", m.mac_key)
            .env("REFUNDD__CTBC__MERCHANTS__BRAND__IV", m.iv);
        cmd
    };

    // `refundd plan` builds every merchant's inquiry client from the
    // settings, and groups its lines by merchant.
    let text = succeeds(with_brand(rig.refundd("plan"))).await;
    for line in [
        "  merchant default:\n    M2 (refund M2-1): new request, state 1 → reversal 600\n",
        "  merchant brand:\n    S1 (refund S1-1): new request, state 12 → refund 300\n",
        "works 2 order(s) (by merchant: default 1, brand 1)",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    pass_of(&rig.engine_of(rig.merchants(&[&BRAND_MERCHANT]))).await;
    rig.refund("S1", "S1-1")
        .await
        .assert_refunded("refund", 300);
    rig.refund("M2", "M2-1")
        .await
        .assert_refunded("reversal", 600);

    // A second return of the order, recorded: two refunds of S1 now.
    approve_return(&rig.pool, "S1", "S1-2", Some(200))
        .await
        .unwrap();
    rig.store.intake(1000).await.unwrap();
    let mut as_json = rig.refundd("status");
    as_json.arg("--json");
    let json: Value = serde_json::from_str(&succeeds(as_json).await).unwrap();
    let merchants: Vec<&str> = json["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["merchant"].as_str().unwrap())
        .collect();
    assert_eq!(merchants, ["default", "brand"]);
    let settling = &json["settling"][0];
    assert_eq!(
        (
            &settling["order_no"],
            &settling["refund_id"],
            &settling["merchant"]
        ),
        (&"S1".into(), &"S1-1".into(), &"brand".into()),
        "{json:#}"
    );
    assert_eq!(settling["order_refunded"], 300);
    assert_eq!(json["oldest_request"]["refund_id"], "S1-2");
    let text = succeeds(rig.refundd("status")).await;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("S1 (refund S1-1)"))
        .unwrap_or_else(|| panic!("no line of S1's first refund:\n{text}"));
    // Its merchant, the order's refunded total, the refund's amount.
    let cells: Vec<&str> = line.split_whitespace().skip(3).take(3).collect();
    assert_eq!(cells, ["brand", "300", "300"], "{text}");
    assert!(
        text.contains("oldest refund_requested: S1 (refund S1-2) at merchant brand waiting"),
        "{text}"
    );
}

/// Reconciliation asks each order at its own merchant's bank: the simulator
/// finds brand's transactions only for a call under brand's MERID and keys,
/// so a brand order matched was asked as brand's.
#[tokio::test]
async fn reconcile_asks_each_order_at_its_own_merchant() {
    let rig = shop_of_two_merchants().await;
    let brand = (Some(&BRAND_MERCHANT), Some(BRAND_MERCHANT.name));
    paid_and_returned(&rig, "M2", 1000, TxState::Authorised, (None, None)).await;
    paid_and_returned(&rig, "B2", 800, TxState::Authorised, brand).await;
    paid_and_returned(&rig, "B3", 600, TxState::CapturedNotSettled, brand).await;
    let merchants = rig.merchants(&[&BRAND_MERCHANT]);
    pass_of(&rig.engine_of(merchants.clone())).await;
    rig.admin
        .portal("B3", &PortalChange::Forget {})
        .await
        .unwrap();

    let window = || Window::since(chrono::Utc::now(), "1d").unwrap();
    let banks = InquiryBanks::new(&merchants);
    let report = reconcile(&rig.store, &banks, window(), 4).await.unwrap();
    let row = |o: &str| report.rows.iter().find(|r| r.order_no == o).unwrap();
    assert_eq!(
        (row("M2").class, row("M2").merchant.as_str()),
        (Class::Matched, "default")
    );
    assert_eq!(
        (row("B2").class, row("B2").merchant.as_str()),
        (Class::Matched, "brand")
    );
    assert_eq!(row("B3").class, Class::Mismatch, "{report:?}");
    assert!(row("B3").reason.contains("does not know"), "{report:?}");
    let kept = rig.store.open_mismatches().await.unwrap();
    assert_eq!(kept[0].merchant.as_deref(), Some("brand"), "{kept:?}");

    // Without brand's settings its orders cannot be asked: not checked, and
    // said why, never classified on the default merchant's answer.
    let default_only = InquiryBanks::new(&rig.merchants(&[]));
    let report = reconcile(&rig.store, &default_only, window(), 4)
        .await
        .unwrap();
    let b2 = report.rows.iter().find(|r| r.order_no == "B2").unwrap();
    assert!(b2.unchecked && b2.reason.contains("brand"), "{b2:?}");
    assert_eq!(report.unchecked, 2, "{report:?}");
}
