//! Time as the engine reads it in tests: instants and times of day in
//! Asia/Taipei (the zone of the bank and of the operator's blackout windows),
//! a clock that walks into a blackout window mid-pass, and a window around
//! now for the tests that run refundd on the real clock.

use super::Rig;
use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Asia::Taipei;
use refundd::domain::blackout::Blackout;
use refundd::domain::daily_window::DailyWindow;
use refundd::engine::clock::Clock;
use refundd::engine::pass::Engine;
use refundd::engine::settings::EngineSettings;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `at` ("2026-11-27 12:00"), a wall-clock time in Taipei, as an instant.
pub fn taipei(at: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M")
        .unwrap_or_else(|e| panic!("{at:?}: {e}"))
        .and_local_timezone(Taipei)
        .single()
        .unwrap()
        .to_utc()
}

/// The blackout window `WindowOpensAfter` walks into.
pub const WINDOW: &str = "11:00-13:00";

/// A clock that is outside `WINDOW` (08:00 Taipei) for its first `calm`
/// readings, then inside it (noon Taipei): a pass that runs into a blackout
/// window.
#[derive(Debug)]
pub struct WindowOpensAfter {
    pub calm: usize,
    pub readings: AtomicUsize,
}

impl WindowOpensAfter {
    pub fn new(calm: usize) -> WindowOpensAfter {
        WindowOpensAfter {
            calm,
            readings: AtomicUsize::new(0),
        }
    }
}

impl Clock for WindowOpensAfter {
    fn now(&self) -> DateTime<Utc> {
        if self.readings.fetch_add(1, Ordering::SeqCst) < self.calm {
            taipei("2026-11-27 08:00")
        } else {
            taipei("2026-11-27 12:00")
        }
    }
}

impl Rig {
    /// An engine with `settings` and blackout `WINDOW`, whose clock reads
    /// outside the window `calm` times, then inside (`WindowOpensAfter`).
    pub fn engine_reaching_window(&self, calm: usize, settings: EngineSettings) -> Engine {
        let settings = EngineSettings {
            blackout: Blackout::parse(WINDOW).unwrap(),
            ..settings
        };
        let clock = Arc::new(WindowOpensAfter::new(calm));
        self.engine_with(settings, clock, Duration::from_secs(5))
    }
}

/// The daily window from `before` minutes ago to `after` minutes from now,
/// in Taipei time.
pub fn window_around_now(before: i64, after: i64) -> DailyWindow {
    let now = Utc::now().with_timezone(&Taipei).time();
    DailyWindow {
        start: now - chrono::Duration::minutes(before),
        end: now + chrono::Duration::minutes(after),
    }
}

/// `window` as an operator writes it in `schedule.blackout` ("HH:MM-HH:MM"),
/// spelled out here rather than by refundd's own `Display`.
pub fn as_setting(window: &DailyWindow) -> String {
    format!(
        "{}-{}",
        window.start.format("%H:%M"),
        window.end.format("%H:%M")
    )
}
