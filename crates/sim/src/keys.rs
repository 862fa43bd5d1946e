//! The simulated bank's MAC keys and IVs (one pair per merchant) come from
//! the environment or from a file only its owner can read, never from the
//! command line: every user of the machine can read a process's arguments in
//! `ps`.

use super::SimSecret;
use std::path::Path;

/// The places one secret may come from, in the words an operator uses.
pub(super) struct SecretSource<'a> {
    /// The option naming a file, e.g. `--mac-key-file`.
    pub option: &'a str,
    pub file: Option<&'a Path>,
    /// The variable holding the value itself, e.g. `REFUNDD_SIM_MAC_KEY`.
    pub var: &'a str,
    pub value: Option<String>,
    /// Used when neither is given: the protocol document's test value. A
    /// further merchant has none: its secrets must be given.
    pub default: Option<&'static str>,
    /// Required length in ASCII characters.
    pub len: usize,
}

impl SecretSource<'_> {
    /// The secret, or a message naming where the bad one came from (never its value).
    pub(super) fn resolve(self) -> Result<SimSecret, String> {
        let value = self.value.filter(|v| !v.is_empty());
        let (origin, secret) = match (self.file, value) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{}: {} is set too; give the secret one way only",
                    self.option, self.var
                ))
            }
            (Some(path), None) => (
                self.option,
                read_secret_file(path).map_err(|e| format!("{}: {e}", self.option))?,
            ),
            (None, Some(v)) => (self.var, SimSecret::from(v.as_str())),
            (None, None) => {
                return self.default.map(SimSecret::from).ok_or_else(|| {
                    format!(
                    "{}: set {} or name a file holding it (a secret is never an option's value)",
                    self.option, self.var
                )
                })
            }
        };
        if secret.len() != self.len || !secret.is_ascii() {
            return Err(format!(
                "{origin}: must be {} ASCII characters, it has {} bytes (value hidden)",
                self.len,
                secret.len()
            ));
        }
        Ok(secret)
    }
}

/// Reads a secret file, without its trailing newline; refuses one that group
/// or others may read.
fn read_secret_file(path: &Path) -> Result<SimSecret, String> {
    let shown = path.display();
    refuse_shared(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    Ok(SimSecret::from(text.trim_end_matches(['\n', '\r'])))
}

#[cfg(unix)]
fn refuse_shared(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o044 != 0 {
        return Err(format!(
            "{shown} is readable by group or others (mode {mode:03o}); \
             make it readable by its owner only: chmod 600 {shown}"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_shared(_path: &Path) -> Result<(), String> {
    Ok(())
}
