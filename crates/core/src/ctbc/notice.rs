//! The bank's HTML notice pages (maintenance, overload): recognising one, and
//! reading enough of it for an operator to know which page it was. The pages
//! come in Big5 or UTF-8, with 5xx or 200, and one copy of the real maintenance
//! notice writes its Chinese as numeric character references (`&#31995;`).
//! They carry no MAC: their text is sanitised like any other bank text.

use super::bank_text::sanitise;
use super::envelope::from_big5_lossy;

/// Longest notice text kept, in characters.
const MAX_NOTICE_CHARS: usize = 80;
/// Longest character reference decoded, between `&` and `;` (`#x10FFFF`).
const MAX_REF_LEN: usize = 8;

/// Whether a body is one of the bank's HTML notice pages, whatever its status
/// and encoding.
pub(crate) fn is_notice_page(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    trimmed.first() == Some(&b'<') || trimmed.windows(5).any(|w| w.eq_ignore_ascii_case(b"<html"))
}

/// What a notice page says, readable: its `<title>` (or, without one, its
/// text), decoded from UTF-8 or Big5 and from character references,
/// sanitised and shortened.
pub(crate) fn notice_text(body: &[u8]) -> Option<String> {
    let page = match std::str::from_utf8(body) {
        Ok(text) => text.to_string(),
        Err(_) => from_big5_lossy(body),
    };
    let raw = element_text(&page, "title").unwrap_or_else(|| without_tags(&page));
    // References are decoded first, so that one standing for a control
    // character is removed with the rest.
    let text = sanitise(&decode_char_refs(&raw))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!text.is_empty()).then(|| text.chars().take(MAX_NOTICE_CHARS).collect())
}

/// The text between `<tag ...>` and `</tag`, matched without regard to case.
fn element_text(page: &str, tag: &str) -> Option<String> {
    // ASCII lower-casing keeps every byte offset where it was.
    let lower = page.to_ascii_lowercase();
    let open = lower.find(&format!("<{tag}"))?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find(&format!("</{tag}"))?;
    Some(page[start..end].to_string())
}

/// The page with every `<...>` tag taken out.
fn without_tags(page: &str) -> String {
    let mut text = String::with_capacity(page.len());
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// Decodes numeric character references (`&#31995;`, `&#x7CFB;`) and the few
/// named ones a notice uses; anything else is left as it stands.
pub(crate) fn decode_char_refs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after
            .find(';')
            .filter(|&end| end <= MAX_REF_LEN)
            .and_then(|end| char_ref(&after[..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character a reference names, without its `&` and `;`.
fn char_ref(name: &str) -> Option<char> {
    let code = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
        u32::from_str_radix(hex, 16).ok()?
    } else if let Some(decimal) = name.strip_prefix('#') {
        decimal.parse().ok()?
    } else {
        return match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => None,
        };
    };
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_pages_are_recognised() {
        assert!(is_notice_page(
            b"  <!DOCTYPE html><html><body>x</body></html>"
        ));
        assert!(is_notice_page(b"Error\n<HTML>busy</HTML>"));
        assert!(!is_notice_page(b"MERID=1&ApiEnc=AB"));
        let (big5, _, _) = encoding_rs::BIG5.encode("<html><title>系統維護中</title></html>");
        assert!(is_notice_page(&big5));
        assert_eq!(notice_text(&big5).as_deref(), Some("系統維護中"));
    }

    #[test]
    fn character_references_are_decoded() {
        let page = b"<html><title>&#31995;&#32113;&#x7DAD;&#X8B77; &amp; Co</title></html>";
        assert_eq!(notice_text(page).as_deref(), Some("系統維護 & Co"));
        assert_eq!(decode_char_refs("a &#0;&#27;[2J b"), "a \0\u{1b}[2J b");
        assert_eq!(
            notice_text(b"<title>a&#0;b&#x1b;[2J</title>").as_deref(),
            Some("ab[2J")
        );
        // Not references, or none that name a character: left as they are.
        for text in [
            "AT&T",
            "&#xD800;",
            "&#99999999;",
            "&unknown;",
            "&#;",
            "a & b;",
        ] {
            assert_eq!(decode_char_refs(text), text);
        }
    }

    #[test]
    fn a_page_without_title_is_read_by_its_text() {
        let page =
            b"<html><body><h1>&#31995;&#32113;&#24537;&#30860;</h1>\n<p>busy</p></body></html>";
        assert_eq!(notice_text(page).as_deref(), Some("系統忙碌 busy"));
        assert_eq!(notice_text(b"<html><body></body></html>"), None);
        let long = format!("<title>{}</title>", "維".repeat(200));
        assert_eq!(notice_text(long.as_bytes()).unwrap().chars().count(), 80);
    }
}
