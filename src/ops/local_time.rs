//! Times for people, on one clock: the merchant's, Asia/Taipei, written with
//! its offset (`2026-11-28 10:02:13 +08:00`), whatever the server's own zone.
//! Blackout windows and the schedule are read in that zone too, so every time
//! an operator reads can be set beside them. JSON for scripts keeps UTC.

use chrono::{DateTime, Utc};

/// `2026-11-28 10:02:13 +08:00`.
pub fn taipei(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Taipei)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// `taipei`, or `-` for a time not known.
pub fn taipei_or_dash(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_string(), taipei)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utc_time_reads_on_the_merchants_clock() {
        let t = DateTime::parse_from_rfc3339("2026-11-28T17:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(taipei(t), "2026-11-29 01:30:00 +08:00");
        assert_eq!(taipei_or_dash(None), "-");
    }
}
