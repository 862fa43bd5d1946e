//! The rules every HTTP request refundd sends keeps, to the bank and to the
//! operator's webhook alike, in one place so the two cannot drift apart:
//! plain http only to a loopback address written as an address, and no
//! redirect followed. A redirect could carry a money call or a signed event
//! (body and headers) to wherever the answering side points, past the
//! https-or-loopback check made on the configured URL; so a 3xx is a failure,
//! reported with its status and where it pointed.

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::StatusCode;
use url::Host;

/// The longest `Location` kept in a reason, in characters.
const MAX_LOCATION_CHARS: usize = 200;

/// 127.0.0.0/8 and ::1, written as addresses. A name is never loopback, not
/// even `localhost`: where a name leads is for the resolver, `/etc/hosts` or a
/// proxy to decide, none of which the check can see.
pub fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(_) => false,
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// What to write in place of a host that is not loopback: the fix, and why
/// `localhost` is not taken for one.
pub const LOOPBACK_FIX: &str =
    "http://127.0.0.1:PORT or http://[::1]:PORT (an address: the name localhost does not count)";

/// The client setting every outgoing request uses: no redirect is followed,
/// the 3xx comes back as the answer.
pub fn no_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::none()
}

/// Why an answer with a 3xx status is not taken: the status and the
/// `Location` it pointed to (cleaned of control characters, cut short).
/// `None` for any other status.
pub fn redirect_reason(status: StatusCode, headers: &HeaderMap) -> Option<String> {
    if !status.is_redirection() {
        return None;
    }
    let location = headers.get(LOCATION).map(|value| {
        let text = String::from_utf8_lossy(value.as_bytes());
        let clean = crate::ctbc::bank_text::sanitise(&text);
        let mut kept: String = clean.chars().take(MAX_LOCATION_CHARS).collect();
        if kept.len() < clean.len() {
            kept.push_str("...");
        }
        kept
    });
    Some(match location {
        Some(to) => {
            format!("HTTP {status} pointing to Location {to:?}, and redirects are not followed")
        }
        None => format!("HTTP {status} without a Location, and redirects are not followed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn host(url: &str) -> bool {
        let url = url::Url::parse(url).unwrap();
        is_loopback(&url.host().unwrap())
    }

    #[test]
    fn only_loopback_addresses_are_loopback() {
        for yes in ["http://127.0.0.1", "http://127.8.9.10:1", "http://[::1]:9"] {
            assert!(host(yes), "{yes}");
        }
        for no in [
            "http://localhost",
            "http://LOCALHOST.",
            "http://localhost.evil.com",
            "http://127.0.0.1.evil.com",
            "http://10.0.0.1",
            "http://[::2]",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(!host(no), "{no}");
        }
    }

    #[test]
    fn a_redirect_is_named_with_its_location_cleaned() {
        let mut headers = HeaderMap::new();
        assert_eq!(redirect_reason(StatusCode::OK, &headers), None);
        let bare = redirect_reason(StatusCode::FOUND, &headers).unwrap();
        assert!(
            bare.contains("302") && bare.contains("without a Location"),
            "{bare}"
        );
        // A C1 control character (CSI) in UTF-8, which a header may carry.
        let long = format!("https://elsewhere.example/\u{9b}{}", "x".repeat(500));
        headers.insert(LOCATION, HeaderValue::from_bytes(long.as_bytes()).unwrap());
        let text = redirect_reason(StatusCode::TEMPORARY_REDIRECT, &headers).unwrap();
        assert!(
            text.contains("307") && text.contains("https://elsewhere.example/x"),
            "{text}"
        );
        assert!(!text.contains('\u{9b}') && text.len() < 300, "{text}");
    }
}
