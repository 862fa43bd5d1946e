//! A daily wall-clock window in Asia/Taipei, `HH:MM-HH:MM`, that may cross
//! midnight: the engine's blackout windows (when refundd starts no
//! money-moving call) and the simulator's maintenance windows (when the bank
//! answers with a notice page) are both this one type, read by one parser.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Asia::Taipei;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One window `HH:MM-HH:MM`, Asia/Taipei; the start is inside, the end is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl DailyWindow {
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

    /// Whether a Taipei wall-clock time falls inside.
    pub fn contains_time(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// Whether an instant falls inside, read in Taipei time.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.contains_time(now.with_timezone(&Taipei).time())
    }
}

impl FromStr for DailyWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for DailyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl Serialize for DailyWindow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DailyWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
    fn windows_parse_and_contain_including_across_midnight() {
        let w: DailyWindow = "02:00-04:00".parse().unwrap();
        assert!(w.contains(taipei(2, 0)));
        assert!(w.contains(taipei(3, 59)));
        assert!(!w.contains(taipei(4, 0)));
        assert!(!w.contains(taipei(1, 59)));
        let night: DailyWindow = "23:30-01:00".parse().unwrap();
        assert!(night.contains(taipei(23, 45)));
        assert!(night.contains(taipei(0, 30)));
        assert!(!night.contains(taipei(12, 0)));
        assert_eq!(night.to_string(), "23:30-01:00");
        let json = serde_json::to_string(&night).unwrap();
        assert_eq!(json, "\"23:30-01:00\"");
        assert_eq!(serde_json::from_str::<DailyWindow>(&json).unwrap(), night);
        for bad in ["", "2-3", "02:00", "25:00-26:00", "02:00-02:00"] {
            assert!(bad.parse::<DailyWindow>().is_err(), "{bad}");
        }
    }
}
