//! A look at refundd's health and metrics endpoint, as a probe or a
//! scraper takes one over plain HTTP on loopback.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;

/// GET `path` at `addr`: the status code and body, or None if no answer came.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let answer = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
    let code = answer.status().as_u16();
    Some((code, answer.text().await.ok()?))
}

/// The address `refundd run` logged (JSON lines in `log`) for its health and
/// metrics endpoint, once it has.
pub fn endpoint_of(log: &Path) -> Option<SocketAddr> {
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
