//! Secrets read from files, so they need not sit in the environment of a
//! running refundd: `REFUNDD__SECTION__KEY_FILE` (the habit of Docker secrets)
//! and systemd credentials (`LoadCredential=`, found by name in
//! `$CREDENTIALS_DIRECTORY`). A secret given two ways is refused, as is a file
//! that group or others can read. A secret's content never appears in a message.
//! Each merchant of a `[ctbc.merchants.NAME]` table has a MAC key and an IV
//! of its own, given the same ways (`config::merchants`).

use super::{Problem, SettingsError, Sources};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// A secret setting and the names it can be given by.
#[derive(Debug, Clone)]
pub(super) struct SecretSetting {
    /// Dotted setting, e.g. `ctbc.mac_key`.
    pub setting: Cow<'static, str>,
    /// The systemd credential's name (`LoadCredential=NAME:PATH`).
    pub credential: Cow<'static, str>,
}

/// Every secret refundd reads whatever the merchants, with its credential name.
pub(super) const SECRETS: &[SecretSetting] = &[
    SecretSetting {
        setting: Cow::Borrowed("database.url"),
        credential: Cow::Borrowed("database_url"),
    },
    SecretSetting {
        setting: Cow::Borrowed("ctbc.mac_key"),
        credential: Cow::Borrowed("mac_key"),
    },
    SecretSetting {
        setting: Cow::Borrowed("ctbc.iv"),
        credential: Cow::Borrowed("iv"),
    },
    SecretSetting {
        setting: Cow::Borrowed("notify.webhook_secret"),
        credential: Cow::Borrowed("webhook_secret"),
    },
];

/// The secret setting `dotted`: one of `SECRETS`, or a merchant's key or IV.
pub(super) fn secret_named(dotted: &str) -> Option<SecretSetting> {
    SECRETS
        .iter()
        .find(|s| s.setting == dotted)
        .cloned()
        .or_else(|| super::merchants::secret(dotted))
}

impl SecretSetting {
    /// `REFUNDD__CTBC__MAC_KEY`.
    fn value_var(&self) -> String {
        super::known::variable(&self.setting)
    }

    /// `REFUNDD__CTBC__MAC_KEY_FILE`.
    pub(super) fn file_var(&self) -> String {
        format!("{}_FILE", self.value_var())
    }

    /// Its value in a settings file's `table`, if the file sets it.
    fn in_table<'t>(&self, table: &'t toml::Table) -> Option<&'t toml::Value> {
        let mut parts = self.setting.split('.');
        let first = table.get(parts.next()?)?;
        parts.try_fold(first, |value, part| value.get(part))
    }

    /// How a settings file holding it says so: `mac_key`, or `mac_key of
    /// [ctbc.merchants.outlet]`.
    fn as_written(&self) -> String {
        match self.setting.rsplit_once('.') {
            Some((table, key)) if table.contains('.') => format!("{key} of [{table}]"),
            Some((_, key)) => key.to_string(),
            None => self.setting.to_string(),
        }
    }
}

/// How to give the secret `setting` when it is not set, the file first:
/// "set REFUNDD__CTBC__MAC_KEY_FILE to a file holding it (mode 0600), or load
/// it as the systemd credential mac_key, or set REFUNDD__CTBC__MAC_KEY itself".
pub(super) fn ways_to_give(setting: &str) -> String {
    match secret_named(setting) {
        Some(secret) => format!(
            "set {} to a file holding it (mode 0600), or load it as the systemd credential {}, or set {} itself",
            secret.file_var(),
            secret.credential,
            secret.value_var()
        ),
        None => format!("set {setting}"),
    }
}

/// A settings file already read as TOML, with the path it was read from.
pub(super) struct ReadFile {
    pub path: PathBuf,
    pub table: toml::Table,
}

/// Where one secret file was named.
struct FileWay {
    /// What named it, for messages: the variable or the credential.
    named_by: String,
    /// The setting a problem with the file is reported under.
    setting: String,
    path: PathBuf,
}

/// The secrets given as files, read and checked: (setting, value) pairs that
/// override every other layer. Every problem is reported at once.
pub(super) fn read_secret_files(
    sources: &Sources,
    files: &[ReadFile],
) -> Result<Vec<(String, String)>, SettingsError> {
    let mut values = Vec::new();
    let mut problems = Vec::new();
    let set = |name: &str| sources.env.get(name).filter(|v| !v.is_empty());
    let credentials = set("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let merchants = super::merchants::secrets(sources, files);
    for secret in SECRETS.iter().chain(&merchants) {
        // Ways the value itself is given.
        let mut ways: Vec<String> = Vec::new();
        let value_var = secret.value_var();
        if set(&value_var).is_some() {
            ways.push(format!("the environment variable {value_var}"));
        } else if secret.setting == "database.url" && set("DATABASE_URL").is_some() {
            ways.push("the environment variable DATABASE_URL".into());
        }
        for f in files {
            let in_file = secret
                .in_table(&f.table)
                .is_some_and(|v| v.as_str().is_none_or(|s| !s.is_empty()));
            if in_file {
                ways.push(format!("{} in {}", secret.as_written(), f.path.display()));
            }
        }
        // Ways a file holding it is named.
        let mut file_ways: Vec<FileWay> = Vec::new();
        let file_var = secret.file_var();
        if let Some(path) = set(&file_var) {
            file_ways.push(FileWay {
                named_by: format!("the environment variable {file_var} ({path})"),
                setting: format!("{}_file", secret.setting),
                path: PathBuf::from(path),
            });
        }
        if let Some(dir) = &credentials {
            let path = dir.join(secret.credential.as_ref());
            if path.symlink_metadata().is_ok() {
                file_ways.push(FileWay {
                    named_by: format!(
                        "the systemd credential {} ({})",
                        secret.credential,
                        path.display()
                    ),
                    setting: format!("credential {}", secret.credential),
                    path,
                });
            }
        }
        if file_ways.is_empty() {
            continue;
        }
        ways.extend(file_ways.iter().map(|w| w.named_by.clone()));
        if ways.len() > 1 {
            problems.push(Problem::new(
                &secret.setting,
                format!("is given {} ways: {}", ways.len(), ways.join(" and ")),
                "give each secret one way only: remove all but one of them",
            ));
            continue;
        }
        let way = &file_ways[0];
        match read_secret(&way.path) {
            Ok(value) => values.push((secret.setting.to_string(), value)),
            Err((problem, fix)) => problems.push(Problem::new(&way.setting, problem, fix)),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(SettingsError { problems })
    }
}

/// The file's text without its trailing newlines; or what is wrong and the fix.
/// Nothing returned on failure holds the file's content.
fn read_secret(path: &Path) -> Result<String, (String, String)> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| {
        (
            format!("names {shown:?}, which cannot be read ({})", e.kind()),
            "name a file that exists and that refundd's user can read".to_string(),
        )
    })?;
    if !meta.is_file() {
        return Err((
            format!("names {shown:?}, which is not a file"),
            "name the file that holds the secret".to_string(),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            return Err((
                format!("names {shown:?}, which group or others can read (mode {mode:04o})"),
                format!("chmod 600 {shown:?}, owned by the user refundd runs as"),
            ));
        }
    }
    let bytes = std::fs::read(path).map_err(|e| {
        (
            format!("names {shown:?}, which cannot be read ({})", e.kind()),
            "make the file readable by the user refundd runs as (chmod 600, chown)".to_string(),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        (
            format!("names {shown:?}, which is not UTF-8 text (content not shown)"),
            "write the secret as plain text, on one line".to_string(),
        )
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err((
            format!("names {shown:?}, which is empty"),
            "write the secret into the file".to_string(),
        ));
    }
    Ok(value.to_string())
}
