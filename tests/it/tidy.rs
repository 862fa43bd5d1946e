//! The code map's promises, checked on the source tree: every module says
//! why it exists in a `//!` doc (rustdoc shows it), and the boundaries that
//! ARCHITECTURE.md states as invariants hold under a plain text search.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("read source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sources(under: &str) -> Vec<(String, String)> {
    let root = root();
    rust_files(&root.join(under))
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read source file");
            let name = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            (name, text)
        })
        .collect()
}

#[test]
fn every_file_opens_with_a_module_doc() {
    let mut missing = Vec::new();
    for dir in ["src", "tests", "examples", "benches"] {
        for (name, text) in sources(dir) {
            if !text.starts_with("//!") {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` doc saying why they exist: {missing:?}"
    );
}

/// Lines of `src/` outside `allowed` that contain `needle`.
fn uses_outside(needle: &str, allowed: &[&str]) -> Vec<String> {
    sources("src")
        .into_iter()
        .filter(|(name, _)| !allowed.iter().any(|a| name.starts_with(a)))
        .flat_map(|(name, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| line.contains(needle))
                .map(|(i, line)| format!("{name}:{}: {}", i + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn sql_is_sent_only_by_the_store() {
    // throwaway_pg creates test databases on a cluster it owns.
    let allowed = ["src/store/", "src/throwaway_pg.rs"];
    for needle in [
        "sqlx::query",
        "query_as(",
        "query_scalar(",
        "raw_sql(",
        "INSERT INTO",
    ] {
        let found = uses_outside(needle, &allowed);
        assert!(found.is_empty(), "SQL outside store: {found:#?}");
    }
}

#[test]
fn cryptography_lives_only_in_the_envelope() {
    let allowed = ["src/ctbc/envelope.rs"];
    for needle in ["des::", "cbc::", "hmac::", "sha2::", "cipher::"] {
        let found = uses_outside(needle, &allowed);
        assert!(
            found.is_empty(),
            "cryptography outside ctbc::envelope: {found:#?}"
        );
    }
}

#[test]
fn the_engine_never_names_sql_or_http() {
    for needle in ["sqlx", "reqwest", "axum"] {
        let found: Vec<_> = uses_outside(needle, &[])
            .into_iter()
            .filter(|l| l.starts_with("src/engine/"))
            .collect();
        assert!(found.is_empty(), "the engine names {needle}: {found:#?}");
    }
}
