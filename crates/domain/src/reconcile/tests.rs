//! Every bank state against each kind of refundd record: reversed whole, in
//! part, refunded (settling and not), nothing given back.

use super::*;

const AUTH: i64 = 1000;

fn reversed(amount: i64) -> OwnSide {
    OwnSide {
        authorised: Some(AUTH),
        reversed: amount,
        ..OwnSide::default()
    }
}

fn refunded(amount: i64, settling: bool) -> OwnSide {
    OwnSide {
        authorised: Some(AUTH),
        refunded: amount,
        settling,
        ..OwnSide::default()
    }
}

fn nothing_back() -> OwnSide {
    reversed(0)
}

fn bank(code: &str, auth_amount: i64) -> BankSide {
    BankSide::Holds {
        state: TxState::from_code(code),
        auth_amount: Some(auth_amount),
    }
}

fn class(own: OwnSide, bank: BankSide) -> Class {
    reconcile(&own, &bank).class
}

#[test]
fn a_whole_reversal_matches_state_0_only() {
    assert_eq!(class(reversed(AUTH), bank("0", AUTH)), Class::Matched);
    for code in ["1", "10", "11", "12", "20", "22", "23", "-1", "13"] {
        assert_eq!(
            class(reversed(AUTH), bank(code, AUTH)),
            Class::Mismatch,
            "state {code}"
        );
    }
}

#[test]
fn a_part_reversed_matches_the_lowered_authorisation_captured_or_not() {
    for code in ["1", "10", "11", "12"] {
        assert_eq!(class(reversed(300), bank(code, 700)), Class::Matched);
    }
    let more_back = reconcile(&reversed(300), &bank("1", 600));
    assert_eq!(more_back.class, Class::Mismatch);
    assert!(more_back
        .reason
        .contains("more than refundd's calls explain"));
    let less_back = reconcile(&reversed(300), &bank("12", 800));
    assert_eq!(less_back.class, Class::Mismatch);
    assert!(
        less_back.reason.contains("amount differs"),
        "{}",
        less_back.reason
    );
    assert_eq!(class(reversed(300), bank("0", AUTH)), Class::Mismatch);
}

#[test]
fn a_refund_settles_through_20_and_21_to_22() {
    assert_eq!(
        class(refunded(AUTH, false), bank("22", AUTH)),
        Class::Matched
    );
    assert_eq!(
        class(refunded(400, false), bank("22", AUTH)),
        Class::Matched
    );
    for code in ["20", "21"] {
        assert_eq!(
            class(refunded(400, true), bank(code, AUTH)),
            Class::Expected
        );
        let late = reconcile(&refunded(400, false), &bank(code, AUTH));
        assert_eq!(late.class, Class::Mismatch);
        assert!(late.reason.contains("not settled"), "{}", late.reason);
    }
}

#[test]
fn a_refund_failed_at_settlement_is_a_mismatch_whatever_refundd_says() {
    for own in [refunded(AUTH, true), refunded(AUTH, false), nothing_back()] {
        let v = reconcile(&own, &bank("23", AUTH));
        assert_eq!(v.class, Class::Mismatch);
        assert!(v.reason.contains("state 23"), "{}", v.reason);
    }
}

#[test]
fn refunded_while_the_bank_still_holds_the_money_is_a_mismatch() {
    for code in ["1", "10", "11", "12", "0"] {
        let v = reconcile(&refunded(AUTH, false), &bank(code, AUTH));
        assert_eq!(v.class, Class::Mismatch, "state {code}");
    }
    let v = reconcile(&refunded(AUTH, false), &bank("12", AUTH));
    assert!(v.reason.contains("still with the shop"), "{}", v.reason);
}

#[test]
fn a_settled_refund_of_another_amount_is_a_mismatch() {
    let v = reconcile(&refunded(400, false), &bank("22", 900));
    assert_eq!(v.class, Class::Mismatch);
    assert!(v.reason.contains("amount differs"), "{}", v.reason);
}

#[test]
fn failed_or_cancelled_matches_a_bank_that_still_holds_the_money() {
    for code in ["1", "10", "11", "12", "-1", "13"] {
        assert_eq!(
            class(nothing_back(), bank(code, AUTH)),
            Class::Matched,
            "state {code}"
        );
    }
}

#[test]
fn failed_or_cancelled_and_money_back_at_the_bank_is_a_refund_made_elsewhere() {
    for (code, amount) in [("0", AUTH), ("1", 600), ("20", AUTH), ("22", AUTH)] {
        let v = reconcile(&nothing_back(), &bank(code, amount));
        assert_eq!(v.class, Class::Mismatch, "state {code}");
        assert!(v.reason.contains("made elsewhere"), "{}", v.reason);
    }
}

#[test]
fn money_back_in_states_where_nothing_was_taken_is_a_mismatch() {
    for code in ["-1", "13", "99"] {
        assert_eq!(class(reversed(AUTH), bank(code, AUTH)), Class::Mismatch);
    }
}

#[test]
fn an_order_the_bank_does_not_know_is_a_mismatch() {
    let v = reconcile(&refunded(AUTH, false), &BankSide::UnknownOrder);
    assert_eq!(v.class, Class::Mismatch);
    assert!(v.reason.contains("does not know"));
}

#[test]
fn an_answer_without_an_amount_cannot_match_a_held_authorisation() {
    let v = reconcile(
        &nothing_back(),
        &BankSide::Holds {
            state: TxState::Settled,
            auth_amount: None,
        },
    );
    assert_eq!(v.class, Class::Mismatch);
}

#[test]
fn class_words_read_back() {
    for c in Class::ALL {
        assert_eq!(Class::parse(c.as_str()), Some(c));
    }
    assert_eq!(Class::parse("other"), None);
}

#[test]
fn an_order_with_a_refund_under_way_is_expected_whatever_the_bank_shows() {
    let own = OwnSide {
        under_way: true,
        ..refunded(400, false)
    };
    for code in ["12", "20", "23"] {
        assert_eq!(class(own.clone(), bank(code, AUTH)), Class::Expected);
    }
}

#[test]
fn a_row_that_failed_as_invalid_has_no_amount_and_matches_a_bank_that_holds_the_money() {
    let invalid = OwnSide {
        authorised: None,
        ..nothing_back()
    };
    for code in ["1", "10", "12", "-1", "13"] {
        assert_eq!(
            class(invalid.clone(), bank(code, AUTH)),
            Class::Matched,
            "state {code}"
        );
    }
    // Money back at the bank is still a refund made elsewhere.
    for code in ["0", "20", "22"] {
        let v = reconcile(&invalid, &bank(code, AUTH));
        assert_eq!(v.class, Class::Mismatch, "state {code}");
        assert!(v.reason.contains("made elsewhere"), "{}", v.reason);
    }
}

#[test]
fn a_refund_settling_after_refundds_own_settled_is_one_made_elsewhere() {
    let seen_settled = OwnSide {
        settled_seen: true,
        ..refunded(400, false)
    };
    let v = reconcile(&seen_settled, &bank("20", AUTH));
    assert_eq!(v.class, Class::Mismatch);
    assert!(v.reason.contains("made elsewhere"), "{}", v.reason);
    assert!(
        v.reason.contains("after refundd's own had settled"),
        "{}",
        v.reason
    );
    // Never seen settled (the watch ran out): the bank is late, not another refund.
    let v = reconcile(&refunded(400, false), &bank("20", AUTH));
    assert!(
        v.reason.contains("after the settlement watch"),
        "{}",
        v.reason
    );
}

#[test]
fn an_order_ended_without_money_back_is_matched_while_the_bank_shows_what_refundd_saw() {
    // The bank's batches move the money on within where it is.
    let pairs = [
        ("22", "22"),
        ("0", "0"),
        ("23", "23"),
        ("20", "22"),
        ("10", "12"),
        ("13", "13"),
    ];
    for (seen, now) in pairs {
        let own = OwnSide {
            last_seen: Some(bank(seen, AUTH)),
            ..nothing_back()
        };
        let v = reconcile(&own, &bank(now, AUTH));
        assert_eq!(v.class, Class::Matched, "{seen}: {}", v.reason);
        assert!(v.reason.contains("when refundd ended"), "{}", v.reason);
    }
    let unknown = OwnSide {
        last_seen: Some(BankSide::UnknownOrder),
        ..nothing_back()
    };
    assert_eq!(class(unknown, BankSide::UnknownOrder), Class::Matched);
    // The bank moved since: refunded behind refundd's back after it failed the order.
    let failed_at_13 = OwnSide {
        last_seen: Some(bank("13", AUTH)),
        ..nothing_back()
    };
    assert_eq!(class(failed_at_13, bank("22", AUTH)), Class::Mismatch);
    let seen_settling = OwnSide {
        last_seen: Some(bank("20", AUTH)),
        ..nothing_back()
    };
    assert_eq!(class(seen_settling, bank("23", AUTH)), Class::Mismatch);
    // The bank settled another amount since: compared as any order is.
    let seen_captured = OwnSide {
        last_seen: Some(bank("10", AUTH)),
        ..nothing_back()
    };
    let v = reconcile(&seen_captured, &bank("12", AUTH - 100));
    assert_eq!(v.class, Class::Mismatch, "{}", v.reason);
    assert!(v.reason.contains("less than"), "{}", v.reason);
    // Money refundd gave back is always compared.
    let reversed_seen_0 = OwnSide {
        last_seen: Some(bank("0", AUTH)),
        ..reversed(400)
    };
    assert_eq!(class(reversed_seen_0, bank("0", AUTH)), Class::Mismatch);
}
