//! Settings each fine on its own that together would defeat a rule keeping
//! money safe or keep refundd from ever working: refused at start-up, naming
//! the setting and saying why, like every other bad setting.

use crate::domain::blackout::Blackout;
use crate::domain::cron::CronSchedule;
use crate::domain::daily_window::DailyWindow;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Asia::Taipei;

/// Reports a problem: setting, what is wrong, the fix.
pub(super) type Report<'a> = dyn FnMut(&str, String, &str) + 'a;

/// A call whose answer was lost is sent again only after `worker.recheck_secs`
/// and a fresh inquiry: zero would resend at the next pass, and less than the
/// lease lets a second worker resend while the first's answer is still coming.
pub(super) fn recheck_outlasts_lease(p: &mut Report<'_>, recheck_secs: i64, lease_secs: i64) {
    let fix = format!("make it at least worker.lease_secs ({lease_secs}); the default is 300");
    if recheck_secs == 0 {
        p(
            "worker.recheck_secs",
            "is 0: a call whose answer was lost would be sent again at the next pass, before \
             the bank had time to show whether it acted"
                .into(),
            &fix,
        );
    } else if recheck_secs < lease_secs {
        p(
            "worker.recheck_secs",
            format!(
                "is {recheck_secs}, shorter than worker.lease_secs ({lease_secs}): a second worker \
                 could send a call again while the first one's answer is still on its way"
            ),
            &fix,
        );
    }
}

/// How far ahead the schedule's firings are checked against the blackout
/// windows: a year and a day covers every cron with yearly or shorter period.
const HORIZON_DAYS: i64 = 366;

/// What a cron setting starts, for its refusals: `schedule.cron` starts
/// passes, `reconcile.cron` reconciliations.
pub(super) struct CronOf<'a> {
    pub setting: &'a str,
    /// "pass", "reconciliation".
    pub runs: &'a str,
    /// What never happens when none runs: "send anything".
    pub loss: &'a str,
    pub example: &'a str,
}

/// `schedule.cron`'s words.
pub(super) const PASSES: CronOf<'static> = CronOf {
    setting: "schedule.cron",
    runs: "pass",
    loss: "send anything",
    example: "\"0 0 */2 * * *\" (every two hours, Asia/Taipei)",
};

/// A schedule that never fires (`0 0 0 31 2 *` parses) or fires only inside
/// the blackout windows would leave the queue (or the books) untouched while
/// /healthz says ok.
pub(super) fn cron_fires_outside_blackout(
    p: &mut Report<'_>,
    of: &CronOf<'_>,
    cron: &CronSchedule,
    blackout: &Blackout,
    now: DateTime<Utc>,
) {
    let Some(first) = cron.next_after(now) else {
        p(
            of.setting,
            format!(
                "is {:?}, which never fires: no {} would ever run",
                cron.as_str(),
                of.runs
            ),
            &format!("use a date that exists, e.g. {}", of.example),
        );
        return;
    };
    // A schedule firing less often than yearly has nothing to check in the horizon.
    let until = now + chrono::Duration::days(HORIZON_DAYS);
    if first <= until && first_firing_outside(cron, blackout, first, until).is_none() {
        p(
            of.setting,
            format!(
                "is {:?}, and every firing in the next {HORIZON_DAYS} days falls inside \
                 schedule.blackout ({blackout}): no {} would ever {}",
                cron.as_str(),
                of.runs,
                of.loss
            ),
            "let the cron fire outside the blackout windows, or narrow schedule.blackout",
        );
    }
}

/// The first firing from `firing` on that no blackout window covers, if one
/// comes by `until`. Each firing inside a window skips to the window's end, so
/// a schedule firing every second costs no more than one firing a day.
fn first_firing_outside(
    cron: &CronSchedule,
    blackout: &Blackout,
    mut firing: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    while firing <= until {
        let Some(window) = blackout.window_at(firing) else {
            return Some(firing);
        };
        firing = cron.next_from(window_end(window, firing)?)?;
    }
    None
}

/// When the window covering `t` ends: its end time on `t`'s Taipei date, or on
/// the next day for a window that crosses midnight. Always after `t`.
fn window_end(window: DailyWindow, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = t.with_timezone(&Taipei).naive_local();
    let mut end = local.date().and_time(window.end);
    if end <= local {
        end += chrono::Duration::days(1);
    }
    Taipei
        .from_local_datetime(&end)
        .earliest()
        .map(|end| end.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cron: &str, blackout: &str, now: DateTime<Utc>) -> Vec<String> {
        let mut found = Vec::new();
        let mut p = |setting: &str, problem: String, _fix: &str| {
            found.push(format!("{setting} {problem}"));
        };
        let cron = CronSchedule::parse(cron).unwrap();
        let blackout = Blackout::parse(blackout).unwrap();
        cron_fires_outside_blackout(&mut p, &PASSES, &cron, &blackout, now);
        found
    }

    fn taipei(h: u32, m: u32) -> DateTime<Utc> {
        Taipei
            .with_ymd_and_hms(2026, 11, 27, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_second_inside_windows_that_cover_the_day_is_refused() {
        let found = problems("* * * * * *", "00:00-12:00,12:00-00:00", taipei(3, 0));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("schedule.blackout"), "{found:?}");
    }

    #[test]
    fn a_free_minute_is_enough_wherever_the_search_starts() {
        for now in [taipei(0, 0), taipei(12, 0), taipei(23, 58)] {
            assert!(problems("* * * * * *", "00:00-23:59", now).is_empty());
            assert!(problems("0 0 */2 * * *", "23:30-01:30", now).is_empty());
        }
        // Yearly, on a day the window leaves free at that hour.
        assert!(problems("0 0 3 1 1 *", "23:30-01:30", taipei(12, 0)).is_empty());
        // Every four years: the next firing (2028) lies beyond the horizon.
        assert!(problems("0 0 12 29 2 *", "", taipei(12, 0)).is_empty());
    }

    #[test]
    fn windows_crossing_midnight_are_followed_to_their_end() {
        assert_eq!(
            problems("0 0 0,1 * * *", "23:30-01:30", taipei(1, 0)).len(),
            1
        );
        assert!(problems("0 30 1 * * *", "23:30-01:30", taipei(1, 0)).is_empty());
        assert!(problems("0 0 0 31 2 *", "", taipei(1, 0))[0].contains("never fires"));
    }
}
