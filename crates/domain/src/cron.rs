//! `schedule.cron`, parsed once when settings are read: the scheduler, the
//! "is a pass due" check and the settings' own checks all use this one parsed
//! schedule, read in Asia/Taipei time like the blackout windows.

use chrono::{DateTime, Utc};
use chrono_tz::Asia::Taipei;
use std::fmt;

/// A six-field cron expression (with seconds) that parsed.
#[derive(Clone)]
pub struct CronSchedule(croner::Cron);

impl CronSchedule {
    /// Parses `sec min hour dom month dow`; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        croner::Cron::new(raw.trim())
            .with_seconds_required()
            .with_dom_and_dow()
            .parse()
            .map(Self)
            .map_err(|e| e.to_string())
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The first firing strictly after `t`; none if the schedule never fires.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next(t, false)
    }

    /// The first firing at `t` or after it.
    pub fn next_from(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next(t, true)
    }

    fn next(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        self.0
            .find_next_occurrence(&t.with_timezone(&Taipei), inclusive)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronSchedule").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn taipei(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Taipei
            .with_ymd_and_hms(2026, 11, d, h, m, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn firings_are_in_taipei_time() {
        let c = CronSchedule::parse(" 0 0 */2 * * * ").unwrap();
        assert_eq!(c.as_str(), "0 0 */2 * * *");
        assert_eq!(
            c.next_after(taipei(27, 9, 0, 0)),
            Some(taipei(27, 10, 0, 0))
        );
        assert_eq!(
            c.next_after(taipei(27, 10, 0, 0)),
            Some(taipei(27, 12, 0, 0))
        );
        assert_eq!(
            c.next_from(taipei(27, 10, 0, 0)),
            Some(taipei(27, 10, 0, 0))
        );
        assert_eq!(
            c.next_after(taipei(27, 23, 0, 1)),
            Some(taipei(28, 0, 0, 0))
        );
    }

    #[test]
    fn bad_and_never_firing_expressions() {
        assert!(CronSchedule::parse("0 */2 * * *").is_err(), "five fields");
        assert!(CronSchedule::parse("0 0 25 * * *").is_err());
        let feb31 = CronSchedule::parse("0 0 0 31 2 *").unwrap();
        assert_eq!(feb31.next_after(taipei(27, 0, 0, 0)), None);
    }
}
