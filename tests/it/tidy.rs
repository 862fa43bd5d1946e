//! The code map's promises, checked on the source tree: every module says
//! why it exists in a `//!` doc (rustdoc shows it), the boundaries that
//! ARCHITECTURE.md states as invariants hold under a plain text search (the
//! crates' arrows as `cargo metadata` reads the manifests, against the crate
//! table; the modules' arrows within a crate; locks only through `sync`),
//! every module, item, file and crate ARCHITECTURE.md names in code exists,
//! and each helper of the integration tests has one home.

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

/// Where each crate's sources are: this package's, then the workspace's crates.
const SOURCE_DIRS: [&str; 4] = [
    "src",
    "crates/domain/src",
    "crates/core/src",
    "crates/sim/src",
];

/// The modules of the core crate, re-exported at the top of `refundd`.
const CORE_MODULES: [&str; 8] = [
    "config",
    "ctbc",
    "engine",
    "notify",
    "outbound",
    "store",
    "sync",
    "throwaway_pg",
];

/// Every source file of every crate of the workspace.
fn all_sources() -> Vec<(String, String)> {
    SOURCE_DIRS.iter().flat_map(|d| sources(d)).collect()
}

#[test]
fn every_file_opens_with_a_module_doc() {
    let mut missing = Vec::new();
    for dir in SOURCE_DIRS.iter().chain(&["tests", "examples", "benches"]) {
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

/// Lines of the workspace's sources outside `allowed` that contain `needle`.
fn uses_outside(needle: &str, allowed: &[&str]) -> Vec<String> {
    all_sources()
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
    let allowed = ["crates/core/src/store/", "crates/core/src/throwaway_pg.rs"];
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
    let allowed = ["crates/core/src/ctbc/envelope.rs"];
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
            .filter(|l| l.starts_with("crates/core/src/engine/"))
            .collect();
        assert!(found.is_empty(), "the engine names {needle}: {found:#?}");
    }
}

/// The names a file declares in its first column: functions, macros and
/// types (a method, a trait's `fn drop`, what a `mod` or a macro nests, are
/// indented and left out).
fn top_level_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let mut rest = line;
            for prefix in ["pub(crate) ", "pub(super) ", "pub ", "async "] {
                rest = rest.strip_prefix(prefix).unwrap_or(rest);
            }
            let rest = [
                "fn ",
                "macro_rules! ",
                "struct ",
                "enum ",
                "trait ",
                "type ",
            ]
            .iter()
            .find_map(|item| rest.strip_prefix(item))?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            is_ident(&name).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A helper has one home: a function, macro or type of the integration tests
/// is declared in one file of `tests/it/` (a shared one in `tests/it/common/`),
/// so a copy does not drift from the one it was taken from.
#[test]
fn no_test_helper_is_declared_in_two_files() {
    let mut homes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (file, text) in sources("tests/it") {
        for name in top_level_names(&text) {
            homes.entry(name).or_default().push(file.clone());
        }
    }
    let twice: Vec<String> = homes
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(name, files)| format!("{name}: {}", files.join(", ")))
        .collect();
    assert!(
        twice.is_empty(),
        "declared in more than one file: keep one, in tests/it/common/ if shared, \
         or name the different things differently: {twice:#?}"
    );
}

#[test]
fn the_helper_check_reads_top_level_functions_macros_and_types() {
    let text = "macro_rules! in_both_modes {\n    () => {};\n}\n\
                pub async fn seed() {}\npub(crate) fn order() {}\nfn xid() {}\n\
                struct Captured;\npub enum Ends {}\n\
                impl Drop for Captured {\n    fn drop(&mut self) {}\n}\n\
                mod nested {\n    fn inner() {}\n}\n/// fn documented() {}\n";
    assert_eq!(
        top_level_names(text),
        ["Captured", "Ends", "in_both_modes", "order", "seed", "xid"]
    );
}

/// What the source tree declares, read as plain text: the names after
/// `struct`, `enum`, `trait`, `type`, `fn`, `const`, `static`, `mod`, `union`
/// and `macro_rules!`, re-exports (`pub use`), fields (`name: ...`) and enum
/// variants (`Name(`, `Name {`, `Name,` at the start of a line); `imported`
/// holds every name any `use` brings in (types of other crates, `Mutex`).
#[derive(Default)]
struct Declared {
    items: std::collections::HashSet<String>,
    imported: std::collections::HashSet<String>,
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Identifiers and single punctuation characters, in order.
fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

impl Declared {
    fn read(&mut self, text: &str) {
        const ITEMS: [&str; 9] = [
            "struct", "enum", "trait", "type", "fn", "const", "static", "mod", "union",
        ];
        let t = tokens(text);
        for (i, tok) in t.iter().enumerate() {
            let next = |k: usize| t.get(i + k).map(String::as_str).unwrap_or("");
            if ITEMS.contains(&tok.as_str()) && is_ident(next(1)) {
                self.items.insert(next(1).to_string());
            } else if tok == "macro_rules" && next(1) == "!" {
                self.items.insert(next(2).to_string());
            } else if tok == "use" {
                let before = |k: usize| i.checked_sub(k).map(|j| t[j].as_str());
                let re_export = before(1) == Some("pub") || before(4) == Some("pub");
                let statement = matches!(before(1), None | Some(";" | "{" | "}" | "]"));
                if !re_export && !statement {
                    continue;
                }
                for name in t[i + 1..].iter().take_while(|n| *n != ";") {
                    if is_ident(name) {
                        self.imported.insert(name.clone());
                        if re_export {
                            self.items.insert(name.clone());
                        }
                    }
                }
            }
        }
        for line in text.lines() {
            self.read_field_or_variant(line);
        }
    }

    fn read_field_or_variant(&mut self, line: &str) {
        let mut line = line.trim_start();
        for vis in ["pub(crate) ", "pub(super) ", "pub "] {
            line = line.strip_prefix(vis).unwrap_or(line);
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = line[name.len()..].trim_start();
        let field = rest.starts_with(':') && !rest.starts_with("::");
        let variant = name.starts_with(|c: char| c.is_ascii_uppercase())
            && (rest.is_empty() || rest.starts_with(['(', '{', ',']));
        if is_ident(&name) && (field || variant) {
            self.items.insert(name);
        }
    }

    fn of_files(files: &[PathBuf]) -> Declared {
        let mut d = Declared::default();
        for f in files {
            d.read(&std::fs::read_to_string(f).expect("read source file"));
        }
        d
    }
}

/// The files of module `a::b` as `refundd` names it: `domain::` and `sim::`
/// are their crates' roots, the core's modules are the core crate's, the rest
/// this package's (`src/a/b.rs` or `src/a/b/mod.rs`; a crate root its `lib.rs`).
fn module_files(path: &[&str]) -> Vec<PathBuf> {
    let (dir, rest) = match path.first() {
        Some(&"domain") => ("crates/domain/src", &path[1..]),
        Some(&"sim") => ("crates/sim/src", &path[1..]),
        Some(m) if CORE_MODULES.contains(m) => ("crates/core/src", path),
        _ => ("src", path),
    };
    if rest.is_empty() {
        return vec![root().join(dir).join("lib.rs")];
    }
    let base = root().join(dir).join(rest.join("/"));
    [base.with_extension("rs"), base.join("mod.rs")]
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

/// The names the source tree holds: declared anywhere under `src/` and
/// `tests/`, module files by their stem, the words of `migrations/`, and the
/// workspace's crates.
struct Tree {
    anywhere: Declared,
    schema_words: std::collections::HashSet<String>,
    crates: std::collections::HashSet<String>,
}

/// The names of the workspace's packages, from the members' manifests.
fn workspace_crates() -> std::collections::HashSet<String> {
    let manifest = |dir: &Path| -> toml::Table {
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        text.parse().expect("Cargo.toml is TOML")
    };
    let top = manifest(&root());
    let members = top["workspace"]["members"].as_array();
    members
        .expect("workspace.members")
        .iter()
        .map(|m| {
            let package = manifest(&root().join(m.as_str().expect("a member's directory")));
            package["package"]["name"]
                .as_str()
                .expect("package.name")
                .to_string()
        })
        .collect()
}

impl Tree {
    fn read() -> Tree {
        let mut files: Vec<PathBuf> = SOURCE_DIRS
            .iter()
            .flat_map(|d| rust_files(&root().join(d)))
            .collect();
        files.extend(rust_files(&root().join("tests")));
        let mut anywhere = Declared::of_files(&files);
        for f in &files {
            if let Some(stem) = f.file_stem().and_then(|s| s.to_str()) {
                anywhere.items.insert(stem.to_string());
            }
        }
        let mut schema_words = std::collections::HashSet::new();
        for entry in std::fs::read_dir(root().join("migrations")).expect("migrations") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("migration");
            schema_words.extend(tokens(&text).into_iter().filter(|w| is_ident(w)));
        }
        Tree {
            anywhere,
            schema_words,
            crates: workspace_crates(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.anywhere.items.contains(name)
    }
}

/// The inline code spans of a Markdown text, fenced blocks left out.
fn code_spans(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            spans.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    spans
}

/// PostgreSQL's own names that ARCHITECTURE.md uses in the words of refundd's
/// code: not refundd's to declare.
const POSTGRES_NAMES: [&str; 1] = ["plan_cache_mode"];

/// Why `span` names nothing in the tree, if it is a name the test holds (see
/// `the_code_map_names_only_what_exists` for which spans count).
fn false_name(span: &str, tree: &Tree) -> Option<String> {
    let name = span
        .strip_suffix("()")
        .or_else(|| span.strip_suffix('!'))
        .unwrap_or(span);
    if span.contains('/') {
        return false_path(span);
    }
    if span.starts_with("refundd-") && !tree.crates.contains(span) {
        return Some("no crate of the workspace".into());
    }
    if name.contains("::") {
        return false_rust_path(name, tree);
    }
    if let Some((outer, inner)) = name.strip_suffix(')').and_then(|n| n.split_once('(')) {
        if !is_type_name(outer) || !is_type_name(inner) {
            return None;
        }
        return [outer, inner]
            .iter()
            .find(|n| !tree.has(n))
            .map(|n| format!("`{n}` is declared nowhere under src/ or tests/"));
    }
    if is_type_name(name) && !tree.has(name) && !tree.anywhere.imported.contains(name) {
        return Some("declared or imported nowhere under src/ or tests/".into());
    }
    let snake = is_ident(name) && name.contains('_') && name == name.to_ascii_lowercase();
    let known = tree.has(name) || tree.schema_words.contains(name);
    (snake && !known && !POSTGRES_NAMES.contains(&name))
        .then(|| "declared nowhere under src/ or tests/ nor named in migrations/".into())
}

/// A type's name: an identifier that starts with an upper-case letter and
/// holds a lower-case one (`TUTORIAL`, `COMMIT` are constants or SQL).
fn is_type_name(name: &str) -> bool {
    is_ident(name)
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().any(|c| c.is_ascii_lowercase())
}

/// A path of the tree (`src/main.rs`, `tests/it/common/`) that is missing.
fn false_path(span: &str) -> Option<String> {
    let path_chars = span
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
    let file_or_dir =
        span.ends_with('/') || span.rsplit('/').next().is_some_and(|f| f.contains('.'));
    let counted = path_chars && file_or_dir && !span.starts_with("config/");
    (counted && !root().join(span).exists()).then(|| "no such file or directory".into())
}

/// `a::b::Item::member`: `a::b` a module of the crate, `Item` declared in
/// its file, `member` anywhere; or `Type::member`, both declared anywhere.
fn false_rust_path(name: &str, tree: &Tree) -> Option<String> {
    let segments: Vec<&str> = name.split("::").collect();
    if segments.iter().any(|s| !is_ident(s)) {
        return None;
    }
    let depth = (1..=segments.len())
        .take_while(|k| !module_files(&segments[..*k]).is_empty())
        .last();
    let Some(depth) = depth else {
        let missing = segments.iter().find(|s| !tree.has(s))?;
        return Some(format!(
            "`{missing}` is no module of the crate and declared nowhere"
        ));
    };
    // A module alone (`engine::steps`) names nothing more.
    let item = segments.get(depth)?;
    let module = segments[..depth].join("::");
    if !Declared::of_files(&module_files(&segments[..depth]))
        .items
        .contains(*item)
    {
        return Some(format!("`{item}` is not declared in module `{module}`"));
    }
    let missing = segments[depth + 1..].iter().find(|s| !tree.has(s))?;
    Some(format!("`{missing}` is declared nowhere"))
}

/// Every name ARCHITECTURE.md gives in a code span exists in the tree. The
/// spans that count (`false_name`): a path with a `/` and a file extension
/// or a final `/`, from the repository's root (not globs, not `config/`, the
/// operator's settings files); a Rust path with `::` (a module of the crate,
/// then an item declared in that module's file, then members declared
/// anywhere; or a type and its members declared anywhere); a type's name
/// (`OrderView`, or `Act(Plan)`), declared or imported under `src/` or
/// `tests/`; a snake_case name with an underscore, or a macro, declared under
/// `src/` or `tests/` (a module by its file) or named in `migrations/`; a
/// crate's name (`refundd-core`), a package of the workspace. Settings
/// (`worker.concurrency`), commands (`refundd run`), SQL and upper-case
/// words, one-word lower-case names (`shop`, `plan`: modules read under
/// their heading) and `POSTGRES_NAMES` are not held.
#[test]
fn the_code_map_names_only_what_exists() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let tree = Tree::read();
    let false_names: Vec<String> = code_spans(&doc)
        .iter()
        .filter_map(|span| false_name(span, &tree).map(|why| format!("`{span}`: {why}")))
        .collect();
    assert!(
        false_names.is_empty(),
        "ARCHITECTURE.md names what the tree does not hold: {false_names:#?}"
    );
}

#[test]
fn the_code_map_check_catches_false_names() {
    let tree = Tree::read();
    for wrong in [
        "src/mian.rs",
        "tests/it/nowhere/",
        "crates/core/src/stor/",
        "refundd-cor",
        "engine::stepz",
        "engine::steps::no_such_step",
        "store::refunds::OWN_CALLZ",
        "ctbc::client::InquiryClient",
        "RefundRequest::no_such_member",
        "OrderVeiw",
        "Act(Plann)",
        "no_such_function",
        "no_such_macro!",
    ] {
        assert!(false_name(wrong, &tree).is_some(), "{wrong} passed");
    }
    for right in [
        "src/main.rs",
        "tests/it/common/",
        "crates/core/src/store/",
        "refundd-core",
        "refundd-sim",
        "engine::steps",
        "sim::ledger::transitions",
        "ctbc::inquiry_only::InquiryClient",
        "engine::pass::Engine::run_pass",
        "RefundRequest::validate",
        "Act(Plan)",
        "Mutex",
        "fenced_update!",
        "refunds_outbox",
        "worker.concurrency",
        "LIMIT cardinality($1)",
        "config/shop-*.toml",
    ] {
        assert_eq!(false_name(right, &tree), None, "{right}");
    }
}

/// Every file under `dir` (or `dir` itself), as text.
fn texts(dir: &str) -> Vec<(String, String)> {
    let root = root();
    let mut out = Vec::new();
    let mut paths = vec![root.join(dir)];
    while let Some(p) = paths.pop() {
        if p.is_dir() {
            for entry in std::fs::read_dir(&p).expect("read directory") {
                paths.push(entry.expect("directory entry").path());
            }
        } else if let Ok(bytes) = std::fs::read(&p) {
            let name = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            out.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// The `REFUNDD__...` names a text holds, placeholders and prefixes left out.
fn refundd_variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices("REFUNDD__") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.ends_with('_') && !name.contains("SECTION") {
            names.push(name);
        }
    }
    names
}

/// A deployment, an example or a page that sets a variable refundd does not
/// read would stop refundd at start-up (or, before, leave a setting unset).
#[test]
fn every_refundd_variable_the_deployments_and_docs_name_is_one_refundd_reads() {
    let places = [
        "deploy",
        "docker-compose.yml",
        "Dockerfile",
        "examples",
        "config",
        "docs",
        "README.md",
        "ARCHITECTURE.md",
        "src/ops",
    ];
    let mut unread = Vec::new();
    for (file, text) in places.iter().flat_map(|p| texts(p)) {
        for name in refundd_variables(&text) {
            let sources = refundd::config::Sources {
                env: [(name.clone(), "1".to_string())].into(),
                ..Default::default()
            };
            if let Err(e) = refundd::config::Settings::load(&sources) {
                if e.names(&name) {
                    unread.push(format!("{file}: {name}"));
                }
            }
        }
    }
    assert!(unread.is_empty(), "not read by refundd: {unread:#?}");
}

/// A row of ARCHITECTURE.md's crate table: the crate, the crates of the
/// workspace its "depends on" cell names, and the crates from elsewhere that
/// cell names, which the crate must not depend on ("no `sqlx`").
#[derive(Debug)]
struct CrateRow {
    name: String,
    depends_on: Vec<String>,
    never: Vec<String>,
}

/// The rows of the table in `doc`'s "## Crates" section, in the table's order.
fn crate_table(doc: &str, workspace: &[String]) -> Vec<CrateRow> {
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim().trim_start_matches('|').trim_end_matches('|');
        line.split('|').map(|c| c.trim().to_string()).collect()
    };
    let mut table = doc
        .lines()
        .skip_while(|l| l.trim() != "## Crates")
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.trim_start().starts_with('|'));
    let header = cells(table.next().expect("a table in the Crates section"));
    let column = |name: &str| {
        let found = header.iter().position(|h| h == name);
        found.unwrap_or_else(|| panic!("no column \"{name}\" in the crate table"))
    };
    let (crate_column, depends_column) = (column("crate"), column("depends on"));
    table
        .skip(1)
        .map(|line| {
            let row = cells(line);
            let spans = |i: usize| row.get(i).map(|c| code_spans(c)).unwrap_or_default();
            let name = spans(crate_column).into_iter().next().unwrap_or_default();
            let (depends_on, never) = spans(depends_column)
                .into_iter()
                .partition(|s| workspace.contains(s));
            CrateRow {
                name,
                depends_on,
                never,
            }
        })
        .collect()
}

/// Dev-dependencies that are the tests' tools, not arrows between parts.
const TEST_TOOLS: [&str; 3] = ["proptest", "criterion", "libc"];

/// The crates whose dev-dependencies are arrows too: their unit tests are
/// their own code, and must not reach up either.
const DEV_ARROWS_OF: [&str; 2] = ["refundd-domain", "refundd-core"];

/// Whether `dependency` (from `cargo metadata`) of `package` is an arrow:
/// a normal or build dependency, or a dev-dependency of `DEV_ARROWS_OF`.
fn is_arrow(package: &str, dependency: &serde_json::Value) -> bool {
    match dependency["kind"].as_str() {
        None | Some("build") => true,
        Some("dev") => {
            let name = dependency["name"].as_str().unwrap_or_default();
            DEV_ARROWS_OF.contains(&package) && !TEST_TOOLS.contains(&name)
        }
        Some(_) => false,
    }
}

/// The workspace's packages and their arrows (package, dependency), as
/// `cargo metadata` reads them from the manifests.
fn workspace_arrows() -> (Vec<String>, Vec<(String, String)>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo metadata failed: {stderr}");
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let name = |v: &serde_json::Value| v["name"].as_str().expect("a name").to_string();
    let mut arrows = Vec::new();
    for package in packages {
        let from = name(package);
        let dependencies = package["dependencies"].as_array().expect("dependencies");
        for dependency in dependencies.iter().filter(|d| is_arrow(&from, d)) {
            arrows.push((from.clone(), name(dependency)));
        }
    }
    (packages.iter().map(name).collect(), arrows)
}

/// Where the manifests and the table disagree: a crate without a row, a row
/// naming a crate that is not above it, an arrow to a crate of the workspace
/// its row does not name, a crate its row names but it does not depend on,
/// an arrow its row rules out.
fn crate_arrow_breaches(
    rows: &[CrateRow],
    workspace: &[String],
    arrows: &[(String, String)],
) -> Vec<String> {
    let mut breaches: Vec<String> = workspace
        .iter()
        .filter(|name| !rows.iter().any(|r| &r.name == *name))
        .map(|name| format!("`{name}` has no row in the table"))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let name = &row.name;
        let above: Vec<&String> = rows[..i].iter().map(|r| &r.name).collect();
        let to: Vec<&String> = arrows
            .iter()
            .filter(|(from, _)| from == name)
            .map(|(_, to)| to)
            .collect();
        for dep in &row.depends_on {
            if !above.contains(&dep) {
                breaches.push(format!("`{name}`'s row names `{dep}`, not a row above it"));
            }
            if !to.contains(&dep) {
                breaches.push(format!(
                    "`{name}` does not depend on `{dep}`, named in its row"
                ));
            }
        }
        for dep in to {
            if workspace.contains(dep) && !row.depends_on.contains(dep) {
                breaches.push(format!("`{name}` depends on `{dep}`, not named in its row"));
            }
            if row.never.contains(dep) {
                breaches.push(format!(
                    "`{name}` depends on `{dep}`, which its row rules out"
                ));
            }
        }
    }
    breaches
}

/// What the domain's row keeps ruling out, so the table cannot drop it: the
/// decision has no SQL, HTTP or async runtime.
const THE_DOMAIN_HAS_NO: [&str; 5] = ["sqlx", "reqwest", "tokio", "axum", "hyper"];

/// The crates depend on one another as ARCHITECTURE.md's crate table says
/// (its "depends on" column, read here, so the table and the check cannot
/// drift), and only on crates of the rows above their own.
#[test]
fn the_crates_depend_only_downwards() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let (workspace, arrows) = workspace_arrows();
    let rows = crate_table(&doc, &workspace);
    let domain = rows.iter().find(|r| r.name == "refundd-domain");
    let rules_out = domain.map(|r| r.never.clone()).unwrap_or_default();
    let dropped: Vec<_> = THE_DOMAIN_HAS_NO
        .iter()
        .filter(|c| !rules_out.iter().any(|n| n == *c))
        .collect();
    assert!(
        dropped.is_empty(),
        "the crate table's `refundd-domain` row no longer rules out {dropped:?}"
    );
    let breaches = crate_arrow_breaches(&rows, &workspace, &arrows);
    assert!(
        breaches.is_empty(),
        "the manifests and ARCHITECTURE.md's crate table disagree: {breaches:#?}"
    );
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_crate_check_catches_arrows_the_table_does_not_draw() {
    let doc = "## Crates\n\n| crate | holds | depends on |\n|---|---|---|\n\
               | `refundd-domain` | `domain` | nothing of refundd's; no `tokio` |\n\
               | `refundd-core` | `store` | `refundd-domain` |\n\
               | `refundd` | `cli` | `refundd-domain`, `refundd-core` |\n\n## Next\n\
               | `refundd-core` | | `refundd` |\n";
    let workspace = strings(&["refundd", "refundd-core", "refundd-domain"]);
    let arrows = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        let drawn = [
            ("refundd-domain", "serde"),
            ("refundd-core", "refundd-domain"),
            ("refundd-core", "tokio"),
            ("refundd", "refundd-domain"),
            ("refundd", "refundd-core"),
        ];
        let all = drawn.iter().chain(pairs);
        all.map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    let rows = crate_table(doc, &workspace);
    assert_eq!(
        crate_arrow_breaches(&rows, &workspace, &arrows(&[])),
        Vec::<String>::new()
    );
    for wrong in [
        ("refundd-core", "refundd"),
        ("refundd-domain", "refundd-core"),
        ("refundd-domain", "tokio"),
    ] {
        let breaches = crate_arrow_breaches(&rows, &workspace, &arrows(&[wrong]));
        assert!(!breaches.is_empty(), "{wrong:?} passed");
    }
    let not_depended: Vec<_> = arrows(&[])
        .into_iter()
        .filter(|(a, b)| (a.as_str(), b.as_str()) != ("refundd", "refundd-core"))
        .collect();
    let breaches = crate_arrow_breaches(&rows, &workspace, &not_depended);
    assert!(!breaches.is_empty(), "a row naming a crate not depended on");
    let upwards = doc.replace(
        "| `refundd-domain` |\n",
        "| `refundd-domain`, `refundd` |\n",
    );
    assert_ne!(upwards, doc);
    let rows_upwards = crate_table(&upwards, &workspace);
    let with_arrow = arrows(&[("refundd-core", "refundd")]);
    let breaches = crate_arrow_breaches(&rows_upwards, &workspace, &with_arrow);
    assert!(!breaches.is_empty(), "a row naming a crate below it");
    let breaches = crate_arrow_breaches(&rows[..2], &workspace, &arrows(&[]));
    assert!(!breaches.is_empty(), "a crate without a row");
}

/// What a module never names of its own crate (by `crate::`, `super::` or
/// `self::`, in a `use` or in code; a path rules out everything under it):
/// the crate's source directory, the module, the paths. ARCHITECTURE.md
/// states each as an invariant.
const MODULE_ARROWS: [(&str, &str, &[&str]); 6] = [
    // The client by its module and by the names `ctbc` re-exports it under.
    (
        "crates/core/src",
        "store",
        &[
            "engine",
            "config",
            "notify",
            "ctbc::client",
            "ctbc::Client",
            "ctbc::InquiryClient",
        ],
    ),
    ("crates/core/src", "ctbc", &["store", "engine", "config"]),
    ("crates/core/src", "config", &["engine"]),
    ("crates/core/src", "engine", &["throwaway_pg"]),
    ("crates/core/src", "notify", &["engine"]),
    ("src", "ops", &["cli"]),
];

/// The module a file under crate directory `dir` holds: `store/refunds.rs`
/// and `store/refunds/mod.rs` are `store::refunds`, `lib.rs` the root.
fn file_module(dir: &str, file: &str) -> Option<Vec<String>> {
    let path = file
        .strip_prefix(dir)?
        .strip_prefix('/')?
        .strip_suffix(".rs")?;
    let mut segments: Vec<String> = path.split('/').map(str::to_string).collect();
    if matches!(
        segments.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segments.pop();
    }
    Some(segments)
}

/// `line` without its visibility (`pub`, `pub(crate)`, `pub(super)`).
fn without_visibility(line: &str) -> &str {
    let line = line.trim_start();
    ["pub(crate) ", "pub(super) ", "pub "]
        .iter()
        .find_map(|v| line.strip_prefix(v))
        .unwrap_or(line)
}

/// Each line's code (a comment line blank) and the module it is in: `module`,
/// or an inline `mod name {` within it, whose lines rustfmt indents.
fn lines_in_modules(module: &[String], text: &str) -> Vec<(Vec<String>, String)> {
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.trim();
        let indent = line.len() - line.trim_start().len();
        if !code.is_empty() {
            while inline.last().is_some_and(|(i, _)| indent <= *i) {
                inline.pop();
            }
        }
        let mut here = module.to_vec();
        here.extend(inline.iter().map(|(_, name)| name.clone()));
        if let Some(name) = without_visibility(code)
            .strip_prefix("mod ")
            .and_then(|m| m.strip_suffix('{'))
        {
            inline.push((indent, name.trim().to_string()));
        }
        let code = if code.starts_with("//") { "" } else { code };
        out.push((here, code.to_string()));
    }
    out
}

/// The paths a `use` tree spells out, braces expanded (`a::{b, c::d}` is
/// `a::b` and `a::c::d`; `a::{self as x}` is `a`), from its tokens.
fn use_tree_paths(t: &[String], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    while let Some(token) = t.get(*at).map(String::as_str) {
        match token {
            ":" => *at += 1,
            "as" => *at += 2,
            "{" => {
                *at += 1;
                while !matches!(t.get(*at).map(String::as_str), Some("}") | None) {
                    let before = *at;
                    use_tree_paths(t, at, &path, out);
                    if *at == before || t.get(*at).map(String::as_str) == Some(",") {
                        *at += 1;
                    }
                }
                *at += 1;
                return;
            }
            "self" if !path.is_empty() => *at += 1,
            word if is_ident(word) || word == "*" => {
                path.push(word.to_string());
                *at += 1;
            }
            _ => break,
        }
    }
    out.push(path);
}

/// The `crate::` and `super::` paths written in a line of code (not a `use`).
fn code_paths(code: &str) -> Vec<Vec<String>> {
    let starts_path = |s: &str, i: usize| {
        let after_ident = s[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        !after_ident && (s[i..].starts_with("crate::") || s[i..].starts_with("super::"))
    };
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| starts_path(rest, i))
    {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let segments = tail[..end].split("::").filter(|s| !s.is_empty());
        paths.push(segments.map(str::to_string).collect());
        rest = &tail[end..];
    }
    paths
}

/// `path` from the crate's root, read in `module`; `None` for another
/// crate's path.
fn from_crate_root(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let (mut base, mut rest) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (module.to_vec(), &path[1..]),
        "super" => (module.to_vec(), path),
        _ => return None,
    };
    while rest.first().map(String::as_str) == Some("super") {
        base.pop()?;
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The paths of its own crate that a file of `module` names, from the crate's
/// root, each with its line.
fn named_paths(module: &[String], text: &str) -> Vec<(usize, Vec<String>)> {
    let lines = lines_in_modules(module, text);
    let mut named = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (here, code) = &lines[i];
        let line = i + 1;
        let paths = if let Some(tree) = without_visibility(code).strip_prefix("use ") {
            let mut statement = tree.to_string();
            while !statement.contains(';') && i + 1 < lines.len() {
                i += 1;
                statement.push(' ');
                statement.push_str(&lines[i].1);
            }
            let mut paths = Vec::new();
            use_tree_paths(&tokens(&statement), &mut 0, &[], &mut paths);
            paths
        } else {
            code_paths(code)
        };
        let from_root = paths.iter().filter_map(|p| from_crate_root(here, p));
        named.extend(from_root.map(|p| (line, p)));
        i += 1;
    }
    named
}

/// Where a module of `files` names what `MODULE_ARROWS` says it never names.
fn module_arrow_breaches(files: &[(String, String)]) -> Vec<String> {
    let mut breaches = Vec::new();
    for (dir, module, never) in MODULE_ARROWS {
        for (file, text) in files {
            let Some(of) = file_module(dir, file) else {
                continue;
            };
            if of.first().map(String::as_str) != Some(module) {
                continue;
            }
            for (line, path) in named_paths(&of, text) {
                let under = |n: &&&str| {
                    let n: Vec<&str> = n.split("::").collect();
                    path.len() >= n.len() && path.iter().zip(&n).all(|(a, b)| a == b)
                };
                if let Some(n) = never.iter().find(under) {
                    let path = path.join("::");
                    breaches.push(format!(
                        "{file}:{line}: `{module}` names `{path}` (never `{n}`)"
                    ));
                }
            }
        }
    }
    breaches
}

/// The arrows between the modules of a crate point as ARCHITECTURE.md's
/// code map says (`MODULE_ARROWS`).
#[test]
fn the_modules_of_a_crate_depend_as_the_map_says() {
    let breaches = module_arrow_breaches(&all_sources());
    assert!(
        breaches.is_empty(),
        "a module names what the code map says it never names: {breaches:#?}"
    );
}

fn files(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let pairs = pairs.iter();
    pairs.map(|(f, t)| (f.to_string(), t.to_string())).collect()
}

#[test]
fn the_module_check_catches_names_against_the_arrows() {
    let right = [
        (
            "crates/core/src/store/intents.rs",
            "use crate::ctbc::Operation;\nuse super::{Store, StoreError};\n",
        ),
        (
            "crates/core/src/engine/pass.rs",
            "use super::clock::Clock;\npub use crate::store::{self, Store};\n",
        ),
        (
            "crates/core/src/notify.rs",
            "// crate::engine::pass, in a comment\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
        ("crates/core/src/throwaway_pg.rs", "use crate::engine::pass::Engine;"),
        ("src/cli.rs", "use crate::ops::exit::CliError;"),
    ];
    assert_eq!(module_arrow_breaches(&files(&right)), Vec::<String>::new());
    for wrong in [
        (
            "crates/core/src/store/refunds.rs",
            "use crate::engine::pass::Engine;",
        ),
        (
            "crates/core/src/store/refunds.rs",
            "use crate::{config::Settings, ctbc::Operation};",
        ),
        (
            "crates/core/src/store/mod.rs",
            "use crate::ctbc::{\n    client::longest_call,\n    Operation,\n};",
        ),
        (
            "crates/core/src/store/mod.rs",
            "    let c: crate::ctbc::Client = make();",
        ),
        (
            "crates/core/src/store/refunds.rs",
            "    super::super::notify::deliver();",
        ),
        ("crates/core/src/ctbc/client.rs", "use crate::store::Store;"),
        (
            "crates/core/src/config/raw.rs",
            "use crate::engine::settings::EngineSettings;",
        ),
        (
            "crates/core/src/engine/pass.rs",
            "use super::super::throwaway_pg::ThrowawayPostgres;",
        ),
        (
            "crates/core/src/engine/plan/tests.rs",
            "use crate::throwaway_pg as pg;",
        ),
        (
            "crates/core/src/notify.rs",
            "mod tests {\n    use super::super::engine::pass;\n}",
        ),
        ("src/ops/demo/mod.rs", "pub(crate) use crate::cli::Cli;"),
    ] {
        assert!(
            !module_arrow_breaches(&files(&[wrong])).is_empty(),
            "{wrong:?} passed"
        );
    }
}

/// The one file that locks a `Mutex` itself: `sync::lock`, which takes a
/// poisoned guard back.
const LOCKS_IN: &str = "crates/core/src/sync.rs";

/// What a `.lock()` may follow that is no `Mutex` of std: the standard
/// streams (an awaited `.lock()`, an async mutex's, passes too).
const LOCKS_OF_NO_MUTEX: [&str; 3] = ["stdout()", "stderr()", "stdin()"];

/// The calls in `files` (outside `LOCKS_IN`) that lock a `Mutex` without
/// `sync::lock`: `.lock()`, `.try_lock()`, `Mutex::lock(`.
fn lock_calls(files: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (file, text) in files.iter().filter(|(file, _)| file != LOCKS_IN) {
        let code: Vec<&str> = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("//") {
                    ""
                } else {
                    l
                }
            })
            .collect();
        let code = code.join("\n");
        for needle in [".lock()", ".try_lock()", "Mutex::lock("] {
            for (at, _) in code.match_indices(needle) {
                let before = code[..at].trim_end();
                let awaited = code[at + needle.len()..].trim_start().starts_with(".await");
                if awaited || LOCKS_OF_NO_MUTEX.iter().any(|s| before.ends_with(s)) {
                    continue;
                }
                let line = code[..at].matches('\n').count() + 1;
                let text = code.lines().nth(line - 1).unwrap_or_default().trim();
                found.push(format!("{file}:{line}: {text}"));
            }
        }
    }
    found
}

/// Every `Mutex` of the workspace's crates, benches and examples is locked
/// through `sync::lock`, the one policy for a poisoned lock. (The integration
/// tests unwrap their own mutexes: a panic is how a test fails.)
#[test]
fn locks_only_through_sync() {
    let mut files = all_sources();
    files.extend(sources("benches"));
    files.extend(sources("examples"));
    let found = lock_calls(&files);
    assert!(
        found.is_empty(),
        "a Mutex locked without `sync::lock` (use `refundd::sync::lock`): {found:#?}"
    );
}

#[test]
fn the_lock_check_catches_a_mutex_locked_by_hand() {
    let right = [
        (
            LOCKS_IN,
            "    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())",
        ),
        (
            "src/ops/health.rs",
            "        *lock(&self.last_beat) = Some(now);",
        ),
        ("src/ops/x.rs", "    let out = std::io::stdout().lock();"),
        ("src/ops/x.rs", "    let g = queue.lock().await;"),
        (
            "src/ops/x.rs",
            "    let g = state\n        .queue\n        .lock()\n        .await;",
        ),
        (
            "src/ops/x.rs",
            "    // never self.last_beat.lock().unwrap()",
        ),
    ];
    assert_eq!(lock_calls(&files(&right)), Vec::<String>::new());
    for wrong in [
        ("src/ops/health.rs", "    let g = self.last_beat.lock().unwrap();"),
        (
            "crates/sim/src/lib.rs",
            "    let g = s\n        .ledger\n        .lock()\n        .unwrap_or_else(|p| p.into_inner());",
        ),
        ("crates/core/src/engine/pass.rs", "    if let Ok(g) = held.try_lock() {"),
        ("crates/core/src/store/group_commit.rs", "    let g = Mutex::lock(&self.waiting);"),
    ] {
        assert!(!lock_calls(&files(&[wrong])).is_empty(), "{wrong:?} passed");
    }
}
