//! The simulator's documentation kept true: every route the simulator serves
//! is in docs/simulator.md, every example call there is taken by a real
//! simulator on loopback and answers as shown, and the README publishes the
//! test MERID, MAC key and IV the code uses.

use crate::common::client_for;
use refundd::ctbc::types::OrderNo;
use refundd::ctbc::Operation;
use refundd::sim::{SimConfig, SimServer, REFERENCE_IV, REFERENCE_MAC_KEY, REFERENCE_MER_ID};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `(METHOD, PATH)` of every `.route(...)` in the admin API's router.
fn admin_routes_in_the_code() -> BTreeSet<(String, String)> {
    let source = read("crates/sim/src/admin.rs");
    let start = source.find("fn routes(").expect("admin.rs has fn routes");
    let end = start + source[start..].find(".route_layer(").expect("routes end");
    let mut routes = BTreeSet::new();
    for call in source[start..end].split(".route(").skip(1) {
        let path = call.split('"').nth(1).expect("a route's path literal");
        for method in ["get", "post", "put", "patch", "delete"] {
            let named = call
                .match_indices(&format!("{method}("))
                .any(|(i, _)| i == 0 || !call.as_bytes()[i - 1].is_ascii_alphanumeric());
            if named {
                routes.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    assert!(routes.len() >= 10, "the route reader found {routes:?}");
    routes
}

/// `(METHOD, PATH)` of every `### \`METHOD /admin/...\`` heading of the doc.
fn admin_routes_in_the_doc(doc: &str) -> BTreeSet<(String, String)> {
    doc.lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.split('`').next())
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, path)| path.starts_with("/admin"))
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

#[test]
fn every_route_the_simulator_serves_is_documented() {
    let doc = read("docs/simulator.md");
    assert_eq!(
        admin_routes_in_the_doc(&doc),
        admin_routes_in_the_code(),
        "docs/simulator.md's headings against src/sim/admin.rs's routes"
    );
    for op in Operation::ALL {
        assert!(
            doc.contains(&format!("`POST {}`", op.path())),
            "{op} ({}) is not in docs/simulator.md",
            op.path()
        );
    }
    let readme = read("README.md");
    assert!(
        readme.contains("(docs/simulator.md)"),
        "the README links it"
    );
}

/// One example call of the doc and the answer it shows.
#[derive(Debug)]
struct Example {
    method: String,
    path: String,
    body: Option<String>,
    status: u16,
    answer: Option<Value>,
}

/// The ```http blocks of the doc, a request and then its answer.
fn http_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```http" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(block.join("\n"));
        }
    }
    blocks
}

/// The start line and the body (after the first blank line) of a block.
fn message(block: &str) -> (&str, Option<&str>) {
    let (head, body) = block.split_once("\n\n").unwrap_or((block, ""));
    let start = head.lines().next().unwrap_or("");
    (start, Some(body.trim()).filter(|b| !b.is_empty()))
}

fn examples(doc: &str) -> Vec<Example> {
    let blocks = http_blocks(doc);
    assert!(
        blocks.len().is_multiple_of(2),
        "every request has its answer"
    );
    blocks
        .chunks(2)
        .map(|pair| {
            let (request, body) = message(&pair[0]);
            let (answer, answer_body) = message(&pair[1]);
            let (method, path) = request.split_once(' ').expect("METHOD PATH");
            let status = answer.split(' ').nth(1).expect("HTTP/1.1 STATUS");
            Example {
                method: method.to_string(),
                path: path.to_string(),
                body: body.map(str::to_string),
                status: status.parse().expect("a status code"),
                answer: answer_body.map(|b| {
                    serde_json::from_str(b).unwrap_or_else(|e| panic!("{request}: {e}\n{b}"))
                }),
            }
        })
        .collect()
}

/// The documented route a call's path (query left out) is made to.
fn route_of(path: &str, routes: &BTreeSet<(String, String)>) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let fits = |route: &str| {
        let (r, p): (Vec<_>, Vec<_>) = (route.split('/').collect(), path.split('/').collect());
        r.len() == p.len() && r.iter().zip(&p).all(|(r, p)| r == p || r.starts_with('{'))
    };
    routes
        .iter()
        .map(|(_, route)| route)
        .find(|route| fits(route))
        .unwrap_or_else(|| panic!("{path} is no documented route"))
        .clone()
}

/// Where `shown` and `got` differ in their keys: objects must have the same
/// keys, arrays compare their first elements; values may differ.
fn key_difference(shown: &Value, got: &Value, at: &str) -> Option<String> {
    match (shown, got) {
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (BTreeSet<_>, BTreeSet<_>) = (a.keys().collect(), b.keys().collect());
            if ka != kb {
                return Some(format!("{at}: shown keys {ka:?}, the simulator's {kb:?}"));
            }
            a.iter()
                .find_map(|(k, v)| key_difference(v, &b[k], &format!("{at}.{k}")))
        }
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(x), Some(y)) => key_difference(x, y, &format!("{at}[0]")),
            (None, None) => None,
            _ => Some(format!("{at}: one array is empty, the other not")),
        },
        _ => None,
    }
}

#[tokio::test]
async fn every_example_call_of_the_doc_is_taken_and_answers_as_shown() {
    let doc = read("docs/simulator.md");
    let examples = examples(&doc);
    let documented = admin_routes_in_the_doc(&doc);
    let exampled: BTreeSet<(String, String)> = examples
        .iter()
        .map(|ex| (ex.method.clone(), route_of(&ex.path, &documented)))
        .collect();
    assert_eq!(exampled, documented, "an example for every route");
    let sim = SimServer::start(SimConfig::for_tests()).await.unwrap();
    let http = reqwest::Client::new();
    let mut asked = false;
    for ex in &examples {
        let method = reqwest::Method::from_bytes(ex.method.as_bytes()).unwrap();
        let mut request = http.request(method, format!("{}{}", sim.base_url(), ex.path));
        if let Some(body) = &ex.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let call = format!("{} {}", ex.method, ex.path);
        assert!(status.is_success(), "{call}: {status} {text}");
        assert_eq!(status.as_u16(), ex.status, "{call}: {text}");
        if let Some(shown) = &ex.answer {
            let got: Value = serde_json::from_str(&text).unwrap();
            if let Some(diff) = key_difference(shown, &got, "answer") {
                panic!("{call}: {diff}\nthe simulator answered:\n{got:#}");
            }
        }
        // As in the doc: refundd asks about the first order once it is loaded.
        if !asked && ex.method == "POST" && ex.path == "/admin/transactions" {
            let order = OrderNo::parse("A20261127001").unwrap();
            client_for(&sim.base_url(), Duration::from_secs(10))
                .inquiry(&order)
                .await
                .unwrap();
            asked = true;
        }
    }
    assert!(asked, "the doc loads A20261127001 first");
}

#[test]
fn the_readme_publishes_the_simulators_test_values() {
    let readme = read("README.md");
    let start = readme.find("## The bank simulator").expect("the section");
    let end = start
        + 3
        + readme[start + 3..]
            .find("\n## ")
            .unwrap_or(readme.len() - start - 3);
    let section = &readme[start..end];
    for (what, value) in [
        ("MERID", REFERENCE_MER_ID),
        ("MAC key", REFERENCE_MAC_KEY),
        ("IV", REFERENCE_IV),
    ] {
        assert!(
            section.contains(&format!("{what} `{value}`")),
            "the README's simulator section does not give the {what} as `{value}`"
        );
    }
}
