//! The settings files are checked as TOML before they are layered, because the
//! TOML parser's own message quotes the offending line, and that line may hold
//! a key (`mac_key = QWERTY...` without quotes). A broken file is named by its
//! path, line, column and the kind of error, never by its text.

use super::{Problem, SettingsError};
use std::path::Path;

/// Which file: the option that names it, for the problem's heading.
#[derive(Clone, Copy)]
pub(super) enum Role {
    /// `config/default.toml`, read when present.
    Default,
    /// The file given with `--config`.
    Given,
}

impl Role {
    fn setting(self) -> &'static str {
        match self {
            Role::Default => super::DEFAULT_FILE,
            Role::Given => "--config",
        }
    }
}

/// Refuses a file that cannot be read or is not TOML; a missing default file is
/// fine (None). The table read is returned so the secrets can tell what it sets.
pub(super) fn check_toml(path: &Path, role: Role) -> Result<Option<toml::Table>, SettingsError> {
    let shown = path.display().to_string();
    if matches!(role, Role::Default) && !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        SettingsError::one(Problem::new(
            role.setting(),
            format!("names {shown:?}, which cannot be read ({})", e.kind()),
            "pass the path of a readable TOML settings file",
        ))
    })?;
    match toml::from_str::<toml::Table>(&text) {
        Ok(table) => Ok(Some(table)),
        Err(e) => Err(SettingsError::one(Problem::new(
            role.setting(),
            format!(
                "names {shown:?}, which is not valid TOML: {} (the line is not shown: it may hold a secret)",
                describe(&text, &e)
            ),
            "correct the TOML there; text values need quotes, e.g. mer_id = \"1234567\"",
        ))),
    }
}

/// "invalid string at line 2, column 11": the parser's kind of error (its
/// first line, which names what was expected, never the file's text) and where.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let kind = e.message().lines().next().unwrap_or("syntax error").trim();
    match e.span().and_then(|span| text.get(..span.start)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("{kind} at line {line}, column {column}")
        }
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        describe(text, &e)
    }

    #[test]
    fn place_and_kind_without_the_text() {
        assert_eq!(
            error_of("[ctbc]\nmac_key = QWERTYUIOPASDFGHJKLZXCVB\n"),
            "invalid string at line 2, column 11"
        );
        let d = error_of("a = 1\na = 2\n");
        assert!(d.contains("line 2"), "{d}");
        let d = error_of("[ctbc\n");
        assert!(d.contains("line 1"), "{d}");
    }
}
