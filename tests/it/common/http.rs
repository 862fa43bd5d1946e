//! A look at refundd's health and metrics endpoint, as a probe or a
//! scraper takes one over plain HTTP on loopback.

use std::net::SocketAddr;

/// GET `path` at `addr`: the status code and body, or None if no answer came.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let answer = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
    let code = answer.status().as_u16();
    Some((code, answer.text().await.ok()?))
}
