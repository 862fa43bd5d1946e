//! Maintenance: the bank's daily windows when every call gets an HTML notice
//! page instead of an answer, plus a switch the admin API can throw at any time.
//! Windows are wall-clock times in Asia/Taipei, like the bank's own notices and
//! the engine's blackout windows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::daily_window::DailyWindow;

/// Whether the bank is down for maintenance now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// Switched on by the admin API: maintenance regardless of the clock.
    pub on: bool,
    /// Daily windows.
    pub windows: Vec<DailyWindow>,
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
    fn switch_overrides_windows() {
        let m = Maintenance {
            on: true,
            windows: vec![],
        };
        assert!(m.active(taipei(12, 0)));
        assert!(!Maintenance::default().active(taipei(12, 0)));
    }
}
