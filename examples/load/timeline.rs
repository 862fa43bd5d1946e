//! Where an order's time goes in a drain, read from refundd's own JSON log:
//! each order's bank calls (the time refundd measured for each) and the time
//! between them, which is refundd's and the database's (an intent committed
//! before a call, a step's outcome, the ending after the last call).

use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Means per order over the orders that ended refunded in the run.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    pub(crate) orders: usize,
    /// From the start of the order's inquiry to the log line of its ending.
    pub(crate) span_ms: f64,
    pub(crate) calls: f64,
    /// The bank calls, as timed by refundd (whole milliseconds, so a little low).
    pub(crate) calls_ms: f64,
    /// Between one call's answer and the next call: the intent (and a step's outcome).
    pub(crate) before_calls_ms: f64,
    /// After the last call: the ending (refundd's record and the shop's write-back).
    pub(crate) ending_ms: f64,
}

struct Line {
    at_ms: f64,
    elapsed_ms: Option<f64>,
    refunded: bool,
}

/// Reads every `once-{rep}-*.log` of a run in `dir`.
pub(crate) fn of_run(dir: &Path, rep: usize) -> Timeline {
    let mut orders: HashMap<String, Vec<Line>> = HashMap::new();
    let prefix = format!("once-{rep}-");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(&prefix) && name.ends_with(".log")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for (order, line) in text.lines().filter_map(parse) {
            orders.entry(order).or_default().push(line);
        }
    }
    let mut t = Timeline::default();
    for lines in orders.values() {
        let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
            continue;
        };
        if !last.refunded {
            continue;
        }
        t.orders += 1;
        t.span_ms += last.at_ms - (first.at_ms - first.elapsed_ms.unwrap_or(0.0));
        let mut previous = first.at_ms;
        for line in lines {
            if let Some(e) = line.elapsed_ms {
                t.calls += 1.0;
                t.calls_ms += e;
                if !std::ptr::eq(line, first) {
                    t.before_calls_ms += line.at_ms - e - previous;
                }
            } else if line.refunded {
                t.ending_ms += line.at_ms - previous;
            }
            previous = line.at_ms;
        }
    }
    let n = t.orders.max(1) as f64;
    for v in [
        &mut t.span_ms,
        &mut t.calls,
        &mut t.calls_ms,
        &mut t.before_calls_ms,
        &mut t.ending_ms,
    ] {
        *v /= n;
    }
    t
}

/// An order's log line: its order number, when, and what it says.
fn parse(text: &str) -> Option<(String, Line)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let order = v["span"]["order_no"].as_str()?.to_string();
    let at = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?).ok()?;
    let line = Line {
        at_ms: at.timestamp_micros() as f64 / 1000.0,
        elapsed_ms: v["elapsed_ms"].as_f64(),
        refunded: v["step"].as_str() == Some("done"),
    };
    Some((order, line))
}
