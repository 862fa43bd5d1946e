//! The bank's capture batch locks the capture file for about two hours a day;
//! blackout windows are when refundd must not start a money-moving call. They
//! are wall-clock times in Asia/Taipei, whatever the server's own time zone.

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Asia::Taipei;
use std::fmt;

/// One window `HH:MM-HH:MM`, Asia/Taipei; it may cross midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlackoutWindow {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl BlackoutWindow {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (a, b) = raw
            .split_once('-')
            .ok_or_else(|| format!("{raw:?} is not a window like 01:30-03:30"))?;
        let time = |s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| {
                format!(
                    "{:?} in {raw:?} is not a time HH:MM (00:00 to 23:59)",
                    s.trim()
                )
            })
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(format!("{raw:?} starts and ends at the same minute"));
        }
        Ok(Self { start, end })
    }

    /// Whether a Taipei wall-clock time falls inside (start inclusive, end exclusive).
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl fmt::Display for BlackoutWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// All configured windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blackout(pub Vec<BlackoutWindow>);

impl Blackout {
    /// Parses `HH:MM-HH:MM, HH:MM-HH:MM`; empty means no window.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(BlackoutWindow::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Blackout)
    }

    /// The window covering this instant, if any.
    pub fn window_at(&self, now: DateTime<Utc>) -> Option<BlackoutWindow> {
        let local = now.with_timezone(&Taipei).time();
        let minute = NaiveTime::from_hms_opt(local.hour(), local.minute(), 0).unwrap_or(local);
        self.0.iter().copied().find(|w| w.contains(minute))
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
