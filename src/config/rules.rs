// Settings each fine on its own that together would defeat a rule keeping
// money safe or keep refundd from ever working: refused at start-up, naming
// the setting and saying why, like every other bad setting.

/// Reports a problem: setting, what is wrong, the fix.
pub(super) type Report<'a> = dyn FnMut(&str, String, &str) + 'a;

/// A call whose answer was lost is sent again only after `worker.recheck_secs`
/// and a fresh inquiry: zero would resend at the next pass, and less than the
/// lease lets a second worker resend while the first's answer is still coming.
pub(super) fn recheck_outlasts_lease(p: &mut Report, recheck_secs: i64, lease_secs: i64) {
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
