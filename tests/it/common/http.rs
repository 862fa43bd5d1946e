//! A look at refundd's health and metrics endpoint, as a probe or a
//! scraper takes one over plain HTTP on loopback.

use super::{eventually, Rig, Running, WithLog};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// GET `path` at `addr`: the status code and body, or None if no answer came.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let answer = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
    let code = answer.status().as_u16();
    Some((code, answer.text().await.ok()?))
}

/// The address `refundd run` logged (JSON lines in `log`) for its health and
/// metrics endpoint, once it has.
fn endpoint_of(log: &Path) -> Option<SocketAddr> {
    let text = std::fs::read(log).ok()?;
    text.lines().map_while(Result::ok).find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(&line).ok()?;
        let msg = v["message"].as_str()?;
        if !msg.starts_with("health and metrics endpoint listening") {
            return None;
        }
        v["addr"].as_str()?.parse().ok()
    })
}

/// `refundd run` for the rig, serving its endpoint on a free port and
/// logging to a file of its own; stopped when the `Running` is dropped.
pub fn run_with_endpoint(rig: &Rig) -> (Running, tempfile::NamedTempFile) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = rig.refundd("run");
    cmd.env("REFUNDD__HTTP__LISTEN", "127.0.0.1:0")
        .stdout(std::fs::File::create(log.path()).unwrap())
        .stderr(Stdio::null());
    (Running(cmd.spawn().unwrap()), log)
}

/// The first `/metrics` page of the `refundd run` logging to `log` for
/// which `holds` is true, waiting for it (`what` names it if it never comes).
pub async fn metrics_page(log: &Path, what: &str, holds: impl Fn(&str) -> bool) -> String {
    let awaited = WithLog { what, log };
    eventually(Duration::from_secs(60), awaited, || async {
        match http_get(endpoint_of(log)?, "/metrics").await {
            Some((200, page)) if holds(&page) => Some(page),
            _ => None,
        }
    })
    .await
}
