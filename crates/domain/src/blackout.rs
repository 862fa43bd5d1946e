//! The bank's capture batch locks the capture file for about two hours a day;
//! blackout windows are when refundd must not start a money-moving call. They
//! are wall-clock times in Asia/Taipei, whatever the server's own time zone.

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Asia::Taipei;
use std::fmt;

use crate::daily_window::DailyWindow;

/// All configured windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blackout(pub Vec<DailyWindow>);

impl Blackout {
    /// Parses `HH:MM-HH:MM, HH:MM-HH:MM`; empty means no window.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(DailyWindow::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Blackout)
    }

    /// The window covering this instant, if any.
    pub fn window_at(&self, now: DateTime<Utc>) -> Option<DailyWindow> {
        let local = now.with_timezone(&Taipei).time();
        let minute = NaiveTime::from_hms_opt(local.hour(), local.minute(), 0).unwrap_or(local);
        self.0.iter().copied().find(|w| w.contains_time(minute))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Blackout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|w| w.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn taipei(h: u32, m: u32) -> DateTime<Utc> {
        Taipei
            .with_ymd_and_hms(2026, 11, 27, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn windows_in_taipei_time_including_midnight() {
        let b = Blackout::parse("23:30-01:30, 12:00-12:15").unwrap();
        assert!(b.window_at(taipei(23, 30)).is_some());
        assert!(b.window_at(taipei(0, 10)).is_some());
        assert!(b.window_at(taipei(1, 30)).is_none());
        assert!(b.window_at(taipei(12, 14)).is_some());
        assert!(b.window_at(taipei(12, 15)).is_none());
        assert!(b.window_at(taipei(22, 0)).is_none());
        assert_eq!(b.to_string(), "23:30-01:30,12:00-12:15");
    }

    #[test]
    fn bad_windows_are_explained() {
        assert!(Blackout::parse("").unwrap().is_empty());
        for bad in [
            "1:00",
            "25:00-01:00",
            "01:00-01:00",
            "aa-bb",
            "01:00-02:00,x",
        ] {
            assert!(Blackout::parse(bad).is_err(), "{bad}");
        }
    }
}
