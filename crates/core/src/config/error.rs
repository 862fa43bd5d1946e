//! A bad or missing setting stops start-up; this says which one, what is wrong
//! with it and how to fix it, all at once so an operator fixes them in one go.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted name, e.g. `ctbc.mac_key`.
    pub setting: String,
    /// What is wrong; includes the bad value unless the setting is a secret.
    pub problem: String,
    pub fix: String,
}

impl Problem {
    pub fn new(setting: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            setting: setting.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "setting `{}` {}; fix: {}",
            self.setting, self.problem, self.fix
        )?;
        match env_name(&self.setting) {
            Some(var) => write!(f, " (environment variable {var})"),
            None => Ok(()),
        }
    }
}

/// The environment variable that sets a setting (or names a secret's file);
/// none for what is not a setting of refundd's (`--config`, a settings file's
/// path, a misspelt name).
pub(super) fn env_name(setting: &str) -> Option<String> {
    super::known::variable_of(setting)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    pub problems: Vec<Problem>,
}

impl SettingsError {
    pub fn one(problem: Problem) -> Self {
        Self {
            problems: vec![problem],
        }
    }

    /// These problems, after `first`: found earlier, reported together.
    pub(super) fn after(mut self, first: &[Problem]) -> Self {
        self.problems.splice(0..0, first.iter().cloned());
        self
    }

    /// Whether a given setting is among the problems.
    pub fn names(&self, setting: &str) -> bool {
        self.problems.iter().any(|p| p.setting == setting)
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}
