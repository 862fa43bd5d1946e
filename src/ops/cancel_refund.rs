//! `refundd cancel-refund ORDER_NO [--refund ID] --reason TEXT`: the
//! operator's side of a cancellation (`engine::cancel`): who asks, read from
//! the operating system rather than from anything the caller types, and
//! what the operator reads afterwards.

use crate::config::Settings;
use crate::domain::refund_id::RefundId;
use crate::engine::cancel::{cancel_refund, CancelOrder, Cancelled, NotCancelled};
use crate::engine::clock::SystemClock;
use crate::engine::settings::EngineSettings;
use crate::ops::exit::CliError;
use crate::store::writeback::WriteBack;
use crate::store::Store;

/// Cancels one refund and says what became of it.
pub async fn command(
    settings: &Settings,
    store: &Store,
    (order_no, refund): (&str, Option<&str>),
    reason: &str,
) -> Result<String, CliError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(CliError::Usage(
            "--reason: say why the refund is cancelled (it goes into the refund's story and the shop's on_cancelled)".into(),
        ));
    }
    let merchants = settings.require_merchants()?;
    let (refund_id, _) = RefundId::from_shop(refund);
    let order = CancelOrder {
        order_no: order_no.to_string(),
        refund_id,
        asked_by: asked_by(),
        reason: reason.to_string(),
    };
    let engine = EngineSettings::from_settings(settings);
    match cancel_refund(store, &merchants, &engine, &SystemClock, &order).await {
        Ok(done) => Ok(cancelled_line(&order, &done)),
        Err(e) => Err(not_cancelled(&order, e)),
    }
}

fn cancelled_line(order: &CancelOrder, done: &Cancelled) -> String {
    let shop = match &done.write_back {
        WriteBack::Done => "the shop was told (shop.on_cancelled, where set)".to_string(),
        WriteBack::Refused(why) => {
            format!(
                "the shop's database refused on_cancelled ({why}); refundd retries it every pass"
            )
        }
    };
    format!(
        "order {}{}: the refund of {} was cancelled before the bank's batch; the money stays with the shop; {shop}",
        order.order_no,
        order.refund_id,
        done.amount.amount()
    )
}

fn not_cancelled(order: &CancelOrder, e: NotCancelled) -> CliError {
    let text = format!(
        "order {}{}: not cancelled: {e}",
        order.order_no, order.refund_id
    );
    match e.exit_code() {
        2 => CliError::Usage(text),
        _ => CliError::Runtime(text),
    }
}

/// The operating-system user running the command, by its user id (and the
/// user who ran it through sudo, where that is so): what the story records
/// as who asked.
pub fn asked_by() -> String {
    let uid = own_uid();
    let name = uid.and_then(user_name);
    let me = match (name, uid) {
        (Some(name), Some(uid)) => format!("{name} (uid {uid})"),
        (None, Some(uid)) => format!("uid {uid}"),
        _ => "an unknown user".to_string(),
    };
    match std::env::var("SUDO_USER") {
        Ok(sudo) if !sudo.is_empty() => format!("{me}, through sudo by {sudo}"),
        _ => me,
    }
}

/// The real user id of this process, from the kernel's account of it.
fn own_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The user name of `uid` in the system's user database.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_asks_is_the_user_the_system_says() {
        let who = asked_by();
        let uid = own_uid().expect("a uid on Linux");
        assert!(who.contains(&format!("uid {uid}")), "{who}");
        if uid == 0 {
            assert!(who.starts_with("root (uid 0)"), "{who}");
        }
    }
}
