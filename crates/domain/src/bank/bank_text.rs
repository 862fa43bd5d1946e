//! Text that comes from the bank is untrusted even after the MAC: the MAC says
//! who sealed it, not that it is safe to print, and notice pages have no MAC at
//! all. Every text the client keeps from an answer passes through `sanitise`
//! here, once, where the answer is read: nothing the bank chose reaches an
//! error, a log line or the database with control characters or a full card
//! number in it.

use std::ops::Range;

/// The bank's text made safe to keep: control characters (C0 including NUL,
/// DEL, C1) removed, the line breaks and tabs among them read as spaces, card
/// numbers masked, surrounding space trimmed.
pub fn sanitise(raw: &str) -> String {
    let visible: String = raw
        .chars()
        .filter_map(|c| match c {
            c if !c.is_control() => Some(c),
            c if c.is_whitespace() => Some(' '),
            _ => None,
        })
        .collect();
    mask_card_numbers(visible.trim())
}

/// Whether a text holds any control character; a code that drives what
/// happens next is refused rather than mended when it does.
pub fn has_control_chars(raw: &str) -> bool {
    raw.chars().any(char::is_control)
}

/// Masks every card number in free text, keeping the first six and last four
/// digits as the bank does. A card number is 13 to 19 digits that pass the
/// Luhn check, in one run or in groups joined by single spaces or dashes,
/// whatever stands next to it: other numbers, letters, punctuation.
pub fn mask_card_numbers(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for chain in digit_chains(&chars) {
        for hidden in hidden_digits(&chars, &chain) {
            chars[hidden] = '*';
        }
    }
    chars.into_iter().collect()
}

/// Runs of digits joined by single spaces or dashes ("1500 4111-1111"): each
/// chain lists its groups as index ranges into `chars`.
fn digit_chains(chars: &[char]) -> Vec<Vec<Range<usize>>> {
    let mut chains: Vec<Vec<Range<usize>>> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let joined = chains
            .last()
            .and_then(|chain| chain.last())
            .is_some_and(|prev| prev.end + 1 == start && matches!(chars[prev.end], ' ' | '-'));
        match chains.last_mut() {
            Some(chain) if joined => chain.push(start..i),
            _ => chains.push(std::iter::once(start..i).collect()),
        }
    }
    chains
}

/// The digits to hide in one chain: for every run of whole groups that is a
/// card number, all but its first six and last four digits.
fn hidden_digits(chars: &[char], chain: &[Range<usize>]) -> Vec<usize> {
    let mut hidden = Vec::new();
    for first in 0..chain.len() {
        let mut positions: Vec<usize> = Vec::new();
        for group in &chain[first..] {
            positions.extend(group.clone());
            if positions.len() > MAX_CARD_DIGITS {
                break;
            }
            let digits: Vec<u32> = positions
                .iter()
                .filter_map(|&p| chars[p].to_digit(10))
                .collect();
            if positions.len() >= MIN_CARD_DIGITS && luhn_valid(&digits) {
                hidden.extend(&positions[6..positions.len() - 4]);
            }
        }
    }
    hidden
}

/// Card numbers are 13 to 19 digits long.
const MIN_CARD_DIGITS: usize = 13;
const MAX_CARD_DIGITS: usize = 19;

/// Whether digits pass the Luhn check every card number passes.
fn luhn_valid(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match i % 2 {
            0 => d,
            _ if d * 2 > 9 => d * 2 - 9,
            _ => d * 2,
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_characters_are_removed_and_breaks_read_as_spaces() {
        assert_eq!(sanitise("a\0b"), "ab");
        assert_eq!(sanitise("\u{1b}[31mred\u{7f}\u{9b}"), "[31mred");
        assert_eq!(sanitise("line\r\nnext\tcol\u{85}x"), "line  next col x");
        assert_eq!(sanitise(" \0 "), "");
        assert_eq!(sanitise("交易失敗"), "交易失敗");
        assert!(has_control_chars("0\0") && !has_control_chars("交易 0"));
    }

    #[test]
    fn card_numbers_split_by_control_characters_are_still_masked() {
        assert_eq!(sanitise("4111\u{0}1111\u{7}11111111"), "411111******1111");
    }

    #[test]
    fn card_numbers_are_masked_whatever_surrounds_them() {
        for (text, masked) in [
            ("4111111111111111 1500", "411111******1111 1500"),
            ("1500 4111111111111111", "1500 411111******1111"),
            (
                "金額 1500 4111111111111111 1500 元",
                "金額 1500 411111******1111 1500 元",
            ),
            ("ref12x4111111111111111y", "ref12x411111******1111y"),
            ("12-4111-1111-1111-1111-35", "12-4111-11**-****-1111-35"),
            (
                "4222222222222,6011000990139424",
                "422222***2222,601100******9424",
            ),
            ("4111111111111111110", "411111*********1110"),
            // Two readings that both pass the check: both are masked.
            ("12-4111-1111-1111-1111-34", "12-4111-11**-****-**11-34"),
        ] {
            assert_eq!(mask_card_numbers(text), masked, "{text:?}");
        }
    }

    #[test]
    fn numbers_that_are_no_card_number_stay() {
        for text in [
            // Fails the Luhn check: a reference, not a card.
            "ref 1234567812345678",
            "order 20240101 amount 1500",
            "batch 20240501 110406",
            "411111******1111",
            // 20 digits in one run: too long to be a card number.
            "41111111111111111111",
        ] {
            assert_eq!(mask_card_numbers(text), text, "{text:?}");
        }
    }

    #[test]
    fn card_numbers_in_text_are_masked() {
        assert_eq!(
            mask_card_numbers("card 4111111111111111 declined"),
            "card 411111******1111 declined"
        );
        assert_eq!(
            mask_card_numbers("卡號 4111-1111-1111-1111。"),
            "卡號 4111-11**-****-1111。"
        );
        assert_eq!(
            mask_card_numbers("order 20240101 amount 1500"),
            "order 20240101 amount 1500"
        );
        assert_eq!(mask_card_numbers("411111******1111"), "411111******1111");
    }

    /// A Luhn-valid card number of 13 to 19 digits.
    fn card_number() -> impl Strategy<Value = String> {
        prop::collection::vec(0u32..10, 12..=18).prop_map(|mut body| {
            let check = (0..10)
                .find(|d| {
                    let mut all = body.clone();
                    all.push(*d);
                    luhn_valid(&all)
                })
                .unwrap_or(0);
            body.push(check);
            body.iter().map(|d| char::from(b'0' + *d as u8)).collect()
        })
    }

    /// How a card number may be written: in one run, or in groups of four
    /// separated by spaces or dashes.
    fn written(pan: &str, grouping: Option<char>) -> String {
        let Some(sep) = grouping else {
            return pan.to_string();
        };
        let chars: Vec<char> = pan.chars().collect();
        chars
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(&sep.to_string())
    }

    /// Text around a card number: words, CJK, short numbers, separators.
    fn surrounding() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            "[a-zA-Z]{1,8}",
            "[0-9]{1,12}",
            prop::sample::select(vec!["交易失敗", "金額", "元", "卡號", "。"])
                .prop_map(str::to_string),
        ];
        let sep = prop::sample::select(vec![" ", "-", ", ", ":", "", "/"]);
        prop::collection::vec((token, sep), 0..6).prop_map(|parts| {
            parts
                .into_iter()
                .map(|(t, s)| format!("{t}{s}"))
                .collect::<String>()
        })
    }

    proptest! {
        #[test]
        fn no_card_number_survives_in_full(
            pan in card_number(),
            grouping in prop::option::of(prop::sample::select(vec![' ', '-'])),
            before in surrounding(),
            after in surrounding(),
            left in prop::sample::select(vec![" ", "-", "x", "：", "(", "\n"]),
            right in prop::sample::select(vec![" ", "-", "y", "。", ")", "\t"]),
        ) {
            let pan_text = written(&pan, grouping);
            let text = format!("{before}{left}{pan_text}{right}{after}");
            let out = mask_card_numbers(&text);
            prop_assert!(!out.contains(&pan_text), "{:?} -> {:?}", text, out);
            let joined: String = out.chars().filter(|c| *c != ' ' && *c != '-').collect();
            prop_assert!(!joined.contains(&pan), "{:?} -> {:?}", text, out);
        }
    }
}
