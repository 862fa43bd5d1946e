// Text that comes from the bank is untrusted even after the MAC: the MAC says
// who sealed it, not that it is safe to print, and notice pages have no MAC at
// all. Every text the client keeps from an answer passes through `sanitise`
// here, once, where the answer is read: nothing the bank chose reaches an
// error, a log line or the database with control characters or a full card
// number in it.

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

/// Masks anything in free text that looks like a full card number (a run of
/// 13 to 19 digits, spaces or dashes allowed between them), keeping the first
/// six and last four digits as the bank does.
pub fn mask_card_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run of digits, possibly grouped by single spaces or dashes.
        let start = i;
        let mut end = i;
        let mut digits = 0;
        let mut j = i;
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if (chars[j] == ' ' || chars[j] == '-')
                && j + 1 < chars.len()
                && chars[j + 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        let run = &chars[start..end];
        if (13..=19).contains(&digits) {
            let mut seen = 0;
            for &c in run {
                if c.is_ascii_digit() {
                    seen += 1;
                    if seen <= 6 || seen > digits - 4 {
                        out.push(c);
                    } else {
                        out.push('*');
                    }
                } else {
                    out.push(c);
                }
            }
        } else {
            out.extend(run);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
