//! Properties of the CTBC envelope and form over many generated messages: what
//! is sealed opens to exactly the same JSON and amounts, and no single damaged
//! hex digit of a ciphertext passes for the original, and none in the part the
//! MAC covers is accepted at all.

use crate::common::fake_bank::envelope;
use proptest::prelude::*;
use refundd::ctbc::envelope::to_big5;
use refundd::ctbc::wire::{json_text, open_answer, seal_form, string_object};
use refundd::ctbc::{AuthCode, Money, OrderNo, Refund, Xid};
use serde_json::{Map, Value};

/// Characters the bank's Big5 carries: printable ASCII, a few controls JSON
/// escapes, and CJK text merchants and the bank use (許 and 功 end in the
/// byte of a backslash, the classic Big5 trap).
fn big5_char() -> impl Strategy<Value = char> {
    const CJK: &[char] = &[
        '交', '易', '失', '敗', '退', '款', '訂', '單', '中', '國', '信', '託', '請', '清', '算',
        '成', '功', '許', '維', '護', '。', '，', '（', '）',
    ];
    prop_oneof![
        4 => (0x20u8..0x7f).prop_map(char::from),
        1 => prop::sample::select(vec!['\n', '\t', '"', '\\', '}', '{']),
        3 => prop::sample::select(CJK.to_vec()),
    ]
}

fn big5_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(big5_char(), 0..max).prop_map(|cs| cs.into_iter().collect())
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((big5_string(12), big5_string(40)), 0..8).prop_map(string_object)
}

fn money() -> impl Strategy<Value = Money> {
    (0u16..=999, 0i64..=i64::MAX, 0u8..=9).prop_map(|(currency, amount, exponent)| {
        Money::from_parts(currency, amount, exponent).unwrap()
    })
}

proptest! {
    #[test]
    fn any_object_of_strings_survives_the_form(json in json_object()) {
        let body = seal_form(&envelope(), "1234567", &json).unwrap();
        let opened = open_answer(&envelope(), body.as_bytes()).unwrap();
        // Same keys, same values, same order.
        prop_assert_eq!(
            opened.iter().collect::<Vec<_>>(),
            json.iter().collect::<Vec<_>>()
        );
        prop_assert_eq!(json_text(&opened), json_text(&json));
    }

    #[test]
    fn any_amount_survives_the_wire(original in money(), part in 0i64..=i64::MAX) {
        prop_assert_eq!(Money::parse(&original.to_string()).unwrap(), original);
        let req = Refund {
            order_no: OrderNo::parse("ORDER_1").unwrap(),
            xid: Xid::parse("X1").unwrap(),
            auth_code: AuthCode::parse("A1").unwrap(),
            original,
            amount: original.with_amount(part.min(original.amount())).unwrap(),
        };
        let mer = refundd::ctbc::MerId::parse("1234567").unwrap();
        let body = seal_form(&envelope(), mer.as_str(), &req.request_json(&mer, "rev")).unwrap();
        let json = open_answer(&envelope(), body.as_bytes()).unwrap();
        let (_, back) = Refund::from_request_json(&json).unwrap();
        prop_assert_eq!(back, req);
    }

    /// The protocol's MAC is a CBC-MAC under the encryption key: it covers
    /// the end of the message. A damaged digit there (from the block before
    /// the one where the MAC starts, through the padding) is always rejected.
    #[test]
    fn a_flipped_hex_digit_in_the_mac_covered_tail_is_rejected(
        json in json_object(),
        position in any::<prop::sample::Index>(),
        delta in 1u8..16,
    ) {
        let e = envelope();
        let text = json_text(&json);
        let api_enc = e.seal(&text).unwrap();
        let mac_block = to_big5(&text).unwrap().len() / 8;
        let first_covered = 16 * mac_block.saturating_sub(1);
        let i = first_covered + position.index(api_enc.len() - first_covered);
        let damaged = flip(&api_enc, i, delta);
        prop_assert!(e.open(&damaged).is_err(), "digit {} of {} accepted", i, api_enc.len());
    }

    /// Anywhere else a damaged digit garbles one block and flips bits in the
    /// next, and CBC re-encryption heals before the MAC: `open` then returns
    /// altered text (usually not JSON, or failing the answer's field checks),
    /// never the original as if nothing happened.
    #[test]
    fn a_flipped_hex_digit_anywhere_never_opens_to_the_original(
        json in json_object(),
        position in any::<prop::sample::Index>(),
        delta in 1u8..16,
    ) {
        let e = envelope();
        let text = json_text(&json);
        let api_enc = e.seal(&text).unwrap();
        let damaged = flip(&api_enc, position.index(api_enc.len()), delta);
        prop_assert_ne!(e.open(&damaged), Ok(text));
    }
}

/// `api_enc` with hex digit `i` replaced by another one.
fn flip(api_enc: &str, i: usize, delta: u8) -> String {
    let digit = u8::from_str_radix(&api_enc[i..=i], 16).unwrap();
    let damaged = format!(
        "{}{:X}{}",
        &api_enc[..i],
        (digit + delta) % 16,
        &api_enc[i + 1..]
    );
    assert_ne!(damaged, api_enc);
    damaged
}
