//! Maintenance: the bank's daily windows when every call gets an HTML notice
//! page instead of an answer, plus a switch the admin API can throw at any time.
//! Windows are wall-clock times in Asia/Taipei, like the bank's own notices and
//! the engine's blackout windows.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Asia::Taipei;
use serde::{Deserialize, Serialize};

/// A daily window `HH:MM-HH:MM` in Asia/Taipei time; it may cross midnight
/// (`23:30-01:00`). The start is inside the window, the end is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl MaintenanceWindow {
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let t = now.with_timezone(&Taipei).time();
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl FromStr for MaintenanceWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a window HH:MM-HH:MM (Asia/Taipei time)");
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?;
        if start == end {
            return Err(format!("{s:?} is an empty window"));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl Serialize for MaintenanceWindow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MaintenanceWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether the bank is down for maintenance now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// Switched on by the admin API: maintenance regardless of the clock.
    pub on: bool,
    /// Daily windows.
    pub windows: Vec<MaintenanceWindow>,
}

impl Maintenance {
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.on || self.windows.iter().any(|w| w.contains(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn taipei(h: u32, m: u32) -> DateTime<Utc> {
        // Taipei is UTC+8 all year.
        Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap()
            + chrono::Duration::hours(h as i64 - 8)
            + chrono::Duration::minutes(m as i64)
    }

    #[test]
    fn windows_parse_and_contain() {
        let w: MaintenanceWindow = "02:00-04:00".parse().unwrap();
        assert!(w.contains(taipei(2, 0)));
        assert!(w.contains(taipei(3, 59)));
        assert!(!w.contains(taipei(4, 0)));
        assert!(!w.contains(taipei(1, 59)));
        let night: MaintenanceWindow = "23:30-01:00".parse().unwrap();
        assert!(night.contains(taipei(23, 45)));
        assert!(night.contains(taipei(0, 30)));
        assert!(!night.contains(taipei(12, 0)));
        assert_eq!(night.to_string(), "23:30-01:00");
        for bad in ["", "2-3", "02:00", "25:00-26:00", "02:00-02:00"] {
            assert!(bad.parse::<MaintenanceWindow>().is_err(), "{bad}");
        }
    }

    #[test]
    fn switch_overrides_windows() {
        let m = Maintenance {
            on: true,
            windows: vec![],
        };
        assert!(m.active(taipei(12, 0)));
        assert!(!Maintenance::default().active(taipei(12, 0)));
    }
}
