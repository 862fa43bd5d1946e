//! The names settings are read by, and nothing else. A name refundd does not
//! know is a mistake, never a choice: `schedule.blackouts` for
//! `schedule.blackout` would drop the window that keeps refunds out of the
//! bank's capture batch, and nothing would say so. Every key of a settings
//! file and every `REFUNDD__` variable is checked against these names before
//! the sources are layered; each unknown one is refused with the nearest known
//! name, when one is near enough to be the one meant. Only names are shown:
//! an unknown name's value may be a secret. The merchants' tables
//! (`ctbc.merchants.NAME.KEY`) are named by the operator; their names and
//! keys are `config::merchants`'s.

use super::merchants;
use super::raw::DEFAULTS;
use super::secrets::{secret_named, SECRETS};
use super::Problem;
use std::collections::HashMap;

/// The settings with no built-in value: unset unless given.
const WITHOUT_DEFAULT: &[&str] = &[
    "database.url",
    "shop.requests",
    "shop.on_refunded",
    "shop.on_failed",
    "shop.on_cancelled",
    "ctbc.base_url",
    "ctbc.mer_id",
    "ctbc.mac_key",
    "ctbc.iv",
    "notify.webhook_url",
    "notify.webhook_secret",
];

/// What every variable that sets a setting starts with.
const PREFIX: &str = "REFUNDD__";

/// How alike (Jaro-Winkler, 0 to 1) an unknown name must be to a known one
/// for the known one to be offered as the name meant.
pub(super) const NEAR_ENOUGH: f64 = 0.85;

/// What a name in another section than the one written loses in the ranking.
const OTHER_SECTION: f64 = 0.03;

/// Every setting, dotted (`section.key`), but the merchants' tables'.
pub(super) fn settings() -> impl Iterator<Item = &'static str> {
    DEFAULTS
        .iter()
        .map(|(k, _)| *k)
        .chain(WITHOUT_DEFAULT.iter().copied())
}

pub(super) fn is_setting(dotted: &str) -> bool {
    settings().any(|s| s == dotted) || merchants::is_setting(dotted)
}

fn is_secret(dotted: &str) -> bool {
    secret_named(dotted).is_some()
}

/// The sections, in the order of their first setting.
fn sections() -> Vec<&'static str> {
    let mut sections = Vec::new();
    for (section, _) in settings().map(split) {
        if !sections.contains(&section) {
            sections.push(section);
        }
    }
    sections
}

/// (`worker`, `concurrency`); a name with no section has an empty one.
fn split(dotted: &str) -> (&str, &str) {
    dotted.split_once('.').unwrap_or(("", dotted))
}

/// `worker.concurrency` → `REFUNDD__WORKER__CONCURRENCY`.
pub(super) fn variable(dotted: &str) -> String {
    format!("{PREFIX}{}", dotted.replace('.', "__").to_ascii_uppercase())
}

/// The variable that sets `setting` (or names the file of a secret, for
/// `ctbc.mac_key_file`); none for a name that is no setting.
pub(super) fn variable_of(setting: &str) -> Option<String> {
    let secret_file = setting.strip_suffix("_file").is_some_and(is_secret);
    (is_setting(setting) || secret_file).then(|| variable(setting))
}

/// What the `config` crate makes of a variable's name after the prefix:
/// `WORKER__CONCURRENCY` → `worker.concurrency`.
fn dotted(rest: &str) -> String {
    rest.to_lowercase().replace("__", ".")
}

/// Whether `name` is a variable that names the file of a secret.
fn is_file_variable(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| dotted(rest).strip_suffix("_file").map(str::to_string))
        .and_then(|setting| secret_named(&setting))
        .is_some_and(|s| s.file_var() == name)
}

/// Whether refundd reads the variable `name` as a setting (the `config`
/// crate reads the name in any case); a secret's file variable is not one.
pub(super) fn is_setting_variable(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|rest| is_setting(&dotted(rest)))
}

/// The known name most like `name`, if alike enough to be the one meant.
/// Keys are compared without their section, so a setting written in the
/// wrong section is found; one in the same section wins a near tie.
fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let (section, key) = split(name);
    candidates
        .filter_map(|candidate| {
            let (s, k) = split(candidate);
            let score = likeness(key, k);
            let rank = if s == section {
                score
            } else {
                score - OTHER_SECTION
            };
            (score >= NEAR_ENOUGH).then_some((rank, candidate))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Jaro-Winkler, which favours a shared beginning (`timeout` and
/// `timeout_secs`); one edit apart (`vi` and `iv`) is alike enough too.
pub(super) fn likeness(a: &str, b: &str) -> f64 {
    let score = strsim::jaro_winkler(a, b);
    if strsim::damerau_levenshtein(a, b) <= 1 {
        score.max(NEAR_ENOUGH)
    } else {
        score
    }
}

/// Every key of a settings file that refundd does not read, with its fix.
pub(super) fn in_file(table: &toml::Table, file: &str) -> Vec<Problem> {
    let sections = sections();
    let mut problems = Vec::new();
    for (name, value) in table {
        let known_section = sections.contains(&name.as_str());
        match value.as_table() {
            Some(inner) if known_section => {
                for (key, value) in inner {
                    let dotted = format!("{name}.{key}");
                    if dotted == merchants::TABLES {
                        problems.extend(merchants::unknown_in_file(value, file));
                    } else if !is_setting(&dotted) {
                        problems.push(unknown_key(&dotted, file));
                    }
                }
            }
            Some(_) => problems.push(unknown_section(name, file, &sections)),
            None if known_section => problems.push(Problem::new(
                name,
                format!("in {file} is a section, not a setting"),
                format!("write [{name}] on a line of its own and its settings below it"),
            )),
            None => problems.push(unknown_key(name, file)),
        }
    }
    problems
}

/// A key of a settings file that names no setting.
fn unknown_key(dotted: &str, file: &str) -> Problem {
    let problem = format!("in {file} is not a setting refundd knows: its value would be ignored");
    let (section, _) = split(dotted);
    let secret_file = dotted.strip_suffix("_file").and_then(secret_named);
    let fix = if let Some(secret) = secret_file {
        format!(
            "remove the line: a secret's file is named by the variable {} or is the systemd credential {}, never in a settings file",
            secret.file_var(),
            secret.credential
        )
    } else if let Some(meant) = nearest(dotted, settings()) {
        let (s, k) = split(meant);
        format!("did you mean `{meant}`? Write it as {k} under [{s}], or remove the line")
    } else if section.is_empty() {
        format!(
            "correct the name or remove the line; settings sit in the sections [{}]",
            sections().join("], [")
        )
    } else {
        let keys: Vec<&str> = settings()
            .map(split)
            .filter(|(s, _)| *s == section)
            .map(|(_, k)| k)
            .collect();
        let tables = if section == "ctbc" {
            " (and the merchants' tables, [ctbc.merchants.NAME])"
        } else {
            ""
        };
        format!(
            "correct the name or remove the line; the settings of [{section}] are {}{tables}",
            keys.join(", ")
        )
    };
    Problem::new(dotted, problem, fix)
}

/// A table of a settings file that is no section.
fn unknown_section(name: &str, file: &str, sections: &[&'static str]) -> Problem {
    let meant = sections
        .iter()
        .map(|s| (likeness(name, s), *s))
        .filter(|(score, _)| *score >= NEAR_ENOUGH)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let list = format!("[{}]", sections.join("], ["));
    let fix = match meant {
        Some((_, s)) => format!("did you mean [{s}]? The sections are {list}"),
        None => format!("correct the name or remove the section; the sections are {list}"),
    };
    Problem::new(
        &format!("[{name}]"),
        format!(
            "in {file} is not a section refundd knows: every setting under it would be ignored"
        ),
        fix,
    )
}

/// Every variable that looks meant for refundd but that refundd would not
/// read, with its fix; sorted by name.
pub(super) fn in_env(env: &HashMap<String, String>) -> Vec<Problem> {
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
    names.sort_unstable();
    names.into_iter().filter_map(variable_problem).collect()
}

/// What is wrong with the variable `name`, if it is meant for refundd.
fn variable_problem(name: &str) -> Option<Problem> {
    if let Some(rest) = name.strip_prefix(PREFIX) {
        if is_setting_variable(name) || is_file_variable(name) {
            return None;
        }
        let setting = dotted(rest);
        if setting == merchants::TABLES || setting.starts_with(&format!("{}.", merchants::TABLES)) {
            return Some(merchants::unread_variable(name, &setting));
        }
        return Some(not_read(name, rest));
    }
    // `REFUNDD_SIM_...` and the compose file's `REFUNDD_CRON` are not refundd's
    // settings; one underscore too few before a setting's name is a mistake.
    let rest = name.strip_prefix("REFUNDD_")?;
    let names = variable_names();
    let meant =
        nearest(&dotted(rest), names.iter().map(String::as_str)).filter(|_| rest.contains("__"))?;
    Some(Problem::new(
        name,
        "starts with REFUNDD_ and one underscore: refundd reads only REFUNDD__ (two underscores) variables, so its value would be ignored",
        format!("did you mean {}? Rename the variable", shown(meant)),
    ))
}

/// What a variable can name, dotted: the settings, and the files of secrets
/// (`ctbc.mac_key_file`).
fn variable_names() -> Vec<String> {
    settings()
        .map(str::to_string)
        .chain(SECRETS.iter().map(|s| format!("{}_file", s.setting)))
        .collect()
}

/// `REFUNDD__WORKER__CONCURRENCY (`worker.concurrency`)`, or a secret's file variable.
fn shown(dotted: &str) -> String {
    match dotted.strip_suffix("_file") {
        Some(secret) if is_secret(secret) => {
            format!("{} (a file holding `{secret}`)", variable(dotted))
        }
        _ => format!("{} (`{dotted}`)", variable(dotted)),
    }
}

/// A `REFUNDD__` variable that names no setting.
fn not_read(name: &str, rest: &str) -> Problem {
    let setting = dotted(rest);
    // A secret's file variable in other capitals is found as the nearest name.
    let plain = setting.strip_suffix("_file");
    if let Some(plain) = plain.filter(|s| is_setting(s) && !is_secret(s)) {
        let files: Vec<String> = SECRETS.iter().map(|s| s.file_var()).collect();
        return Problem::new(
            name,
            format!(
                "names a file, but only the secrets are read from files ({})",
                files.join(", ")
            ),
            format!("set {} to the value itself", variable(plain)),
        );
    }
    let names = variable_names();
    let fix = match nearest(&setting, names.iter().map(String::as_str)) {
        Some(meant) => format!(
            "did you mean {}? Rename the variable, or unset it",
            shown(meant)
        ),
        None => "unset it, or name a setting of the README's table as REFUNDD__<SECTION>__<KEY>"
            .to_string(),
    };
    Problem::new(
        name,
        "is not a variable refundd reads: it names no setting, so its value would be ignored",
        fix,
    )
}
