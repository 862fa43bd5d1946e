//! The shop's other merchants at the bank: one `[ctbc.merchants.NAME]` table
//! each, with its merchant id, its MAC key and IV (secrets, given like the
//! `[ctbc]` table's: `REFUNDD__CTBC__MERCHANTS__NAME__MAC_KEY`, its `_FILE`
//! form, or the systemd credential `merchants.NAME.mac_key`) and optionally
//! an endpoint of its own; every other setting of the bank's (timeouts, the
//! rate limit, `SwRevision`) is the `[ctbc]` table's. The `[ctbc]` table's own
//! merchant stays the default one. Here are the names these tables may hold,
//! how each is checked, and which merchants a set of sources names.

use super::secrets::{ReadFile, SecretSetting};
use super::{Problem, Sources};
use crate::ctbc::types::MerId;
use crate::domain::merchant::MerchantName;
use secrecy::SecretString;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// The settings of a `[ctbc.merchants.NAME]` table.
pub(super) const KEYS: &[&str] = &["base_url", "mer_id", "mac_key", "iv"];

/// The keys of a merchant's table that are secrets.
const SECRET_KEYS: &[&str] = &["mac_key", "iv"];

/// Where the tables are, dotted: `ctbc.merchants.NAME.KEY`.
pub(super) const TABLES: &str = "ctbc.merchants";

/// One merchant of the shop's other than the default, as its table gives it.
/// Each part is checked when the settings are read; a part missing is named
/// by the commands that talk to the bank (`Settings::require_merchants`).
#[derive(Debug, Clone)]
pub struct MerchantSettings {
    pub name: MerchantName,
    /// None: the `[ctbc]` table's `base_url`.
    pub base_url: Option<url::Url>,
    pub mer_id: Option<MerId>,
    /// Shown by Debug as redacted, like the `[ctbc]` table's.
    pub mac_key: Option<SecretString>,
    pub iv: Option<SecretString>,
}

/// A `[ctbc.merchants.NAME]` table as layered, before checking.
#[derive(Deserialize)]
pub(super) struct RawMerchant {
    pub base_url: Option<String>,
    pub mer_id: Option<String>,
    pub mac_key: Option<String>,
    pub iv: Option<String>,
}

impl std::fmt::Debug for RawMerchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMerchant")
            .field("base_url", &self.base_url)
            .field("mer_id", &self.mer_id)
            .field("mac_key", &"[redacted]")
            .field("iv", &"[redacted]")
            .finish()
    }
}

/// `ctbc.merchants.outlet.mac_key` → (`outlet`, `mac_key`), whatever the two
/// are; None for a name outside the merchants' tables.
pub(super) fn split(dotted: &str) -> Option<(&str, &str)> {
    dotted
        .strip_prefix(TABLES)?
        .strip_prefix('.')?
        .split_once('.')
}

/// Whether `dotted` is a setting of a merchant's table whose name keeps the rule.
pub(super) fn is_setting(dotted: &str) -> bool {
    split(dotted)
        .is_some_and(|(name, key)| MerchantName::parse(name).is_ok() && KEYS.contains(&key))
}

/// A merchant's secret setting, by its dotted name (`ctbc.merchants.outlet.iv`).
pub(super) fn secret(dotted: &str) -> Option<SecretSetting> {
    let (name, key) = split(dotted)?;
    let name = MerchantName::parse(name).ok()?;
    SECRET_KEYS.contains(&key).then(|| secret_of(&name, key))
}

/// The secret `key` of the merchant `name`, with its systemd credential's
/// name: the setting's without `ctbc.`, as `mac_key` is `ctbc.mac_key`'s.
fn secret_of(name: &MerchantName, key: &str) -> SecretSetting {
    SecretSetting {
        setting: Cow::Owned(format!("{TABLES}.{name}.{key}")),
        credential: Cow::Owned(format!("merchants.{name}.{key}")),
    }
}

/// The secrets of every merchant the sources name.
pub(super) fn secrets(sources: &Sources, files: &[ReadFile]) -> Vec<SecretSetting> {
    named(sources, files)
        .iter()
        .flat_map(|name| SECRET_KEYS.iter().map(move |key| secret_of(name, key)))
        .collect()
}

/// The merchants the settings files' tables and the `REFUNDD__` variables
/// name (the names that keep the rule; the others are refused by `known`).
fn named(sources: &Sources, files: &[ReadFile]) -> BTreeSet<MerchantName> {
    let in_files = files.iter().flat_map(|f| {
        let tables = f.table.get("ctbc").and_then(|c| c.get("merchants"));
        let tables = tables.and_then(toml::Value::as_table);
        tables.into_iter().flat_map(|t| t.keys().cloned())
    });
    let prefix = format!("{}__", super::known::variable(TABLES));
    let in_env = sources.env.keys().filter_map(|k| {
        let rest = k.strip_prefix(&prefix)?;
        rest.split_once("__").map(|(name, _)| name.to_lowercase())
    });
    in_files
        .chain(in_env)
        .filter_map(|n| MerchantName::parse(&n).ok())
        .collect()
}

/// Every name inside `[ctbc.merchants]` of a settings file that is not one
/// refundd reads, with its fix: a table name that breaks the rule, a key
/// that is no merchant's setting, a secret's file named in the file.
pub(super) fn unknown_in_file(value: &toml::Value, file: &str) -> Vec<Problem> {
    let Some(tables) = value.as_table() else {
        return vec![Problem::new(
            TABLES,
            format!("in {file} is a table of merchants, not a setting"),
            "write each merchant as a table of its own: [ctbc.merchants.NAME] with mer_id, mac_key, iv and, if it has one, base_url",
        )];
    };
    let mut problems = Vec::new();
    for (name, table) in tables {
        let at = format!("{TABLES}.{name}");
        let name = match MerchantName::parse(name) {
            Ok(name) => name,
            Err(e) => {
                problems.push(Problem::new(
                    &format!("[{at}]"),
                    format!("in {file}: {e}"),
                    "rename the table, e.g. [ctbc.merchants.outlet]",
                ));
                continue;
            }
        };
        let Some(table) = table.as_table() else {
            problems.push(Problem::new(
                &at,
                format!("in {file} is a merchant, not a setting"),
                format!("write [{at}] on a line of its own and mer_id, mac_key, iv below it"),
            ));
            continue;
        };
        problems.extend(
            table
                .keys()
                .filter(|key| !KEYS.contains(&key.as_str()))
                .map(|key| unknown_key(&name, key, file)),
        );
    }
    problems
}

/// A key of a merchant's table that is none of its settings.
fn unknown_key(name: &MerchantName, key: &str, file: &str) -> Problem {
    let dotted = format!("{TABLES}.{name}.{key}");
    let problem = format!("in {file} is not a setting refundd knows: its value would be ignored");
    let secret_file = key
        .strip_suffix("_file")
        .filter(|k| SECRET_KEYS.contains(k));
    let fix = if let Some(secret) = secret_file.map(|k| secret_of(name, k)) {
        format!(
            "remove the line: a secret's file is named by the variable {} or is the systemd credential {}, never in a settings file",
            secret.file_var(),
            secret.credential
        )
    } else if let Some(meant) = nearest(key, KEYS.iter().copied()) {
        format!("did you mean `{TABLES}.{name}.{meant}`? Write it as {meant} under [{TABLES}.{name}], or remove the line")
    } else {
        format!(
            "correct the name or remove the line; the settings of a merchant's table are {}",
            KEYS.join(", ")
        )
    };
    Problem::new(&dotted, problem, fix)
}

/// The key most like `key`, if alike enough to be the one meant.
fn nearest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (super::known::likeness(key, c), c))
        .filter(|(score, _)| *score >= super::known::NEAR_ENOUGH)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// What is wrong with the variable `variable`, which names `dotted` in the
/// merchants' tables but no setting refundd reads there.
pub(super) fn unread_variable(variable: &str, dotted: &str) -> Problem {
    let not_read = "is not a variable refundd reads: it names no setting of a merchant, so its value would be ignored";
    let Some((name, key)) = split(dotted) else {
        return Problem::new(
            variable,
            not_read,
            "name a merchant and one of its settings: REFUNDD__CTBC__MERCHANTS__<NAME>__<KEY>, e.g. REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID",
        );
    };
    let name = match MerchantName::parse(name) {
        Ok(name) => name,
        Err(e) => {
            return Problem::new(
                variable,
                format!("names a merchant the settings cannot: {e}"),
                "rename the merchant in every variable and table that names it, e.g. REFUNDD__CTBC__MERCHANTS__OUTLET__MER_ID",
            )
        }
    };
    let var = |key: &str| super::known::variable(&format!("{TABLES}.{name}.{key}"));
    if let Some((more, key)) = key.rsplit_once('.') {
        // `BRAND__B__MER_ID`: a double underscore inside the name.
        let joined = format!("{name}_{}", more.replace('.', "_"));
        let meant = MerchantName::parse(&joined)
            .ok()
            .filter(|_| KEYS.contains(&key));
        let example = match meant {
            Some(meant) => format!(
                "did you mean {}? Rename the variable",
                super::known::variable(&format!("{TABLES}.{meant}.{key}"))
            ),
            None => "rename the variable as REFUNDD__CTBC__MERCHANTS__<NAME>__<KEY>".to_string(),
        };
        return Problem::new(
            variable,
            "names more parts than a merchant's setting has: a merchant's name takes single underscores only, so its value would be ignored",
            example,
        );
    }
    if let Some(plain) = key.strip_suffix("_file").filter(|k| KEYS.contains(k)) {
        return Problem::new(
            variable,
            "names a file, but only a merchant's mac_key and iv are read from files",
            format!("set {} to the value itself", var(plain)),
        );
    }
    let files: Vec<String> = SECRET_KEYS.iter().map(|k| format!("{k}_file")).collect();
    let candidates = KEYS.iter().copied().chain(files.iter().map(String::as_str));
    let fix = match nearest(key, candidates) {
        Some(meant) => format!(
            "did you mean {}? Rename the variable, or unset it",
            var(meant)
        ),
        None => format!(
            "unset it, or name one of a merchant's settings ({})",
            KEYS.join(", ")
        ),
    };
    Problem::new(variable, not_read, fix)
}

/// Every `[ctbc.merchants.NAME]` table checked: each part that is given
/// must be usable, and no two merchants (the default among them) may share a
/// merchant id, since the bank would take one's calls for the other's.
pub(super) fn checked(
    p: &mut impl FnMut(&str, String, &str),
    raw: BTreeMap<String, RawMerchant>,
    default_mer_id: Option<&MerId>,
) -> Vec<MerchantSettings> {
    let mut merchants = Vec::new();
    for (name, m) in raw {
        // A name that breaks the rule was refused with the other names (`known`).
        let Ok(name) = MerchantName::parse(&name) else {
            continue;
        };
        let at = |key: &str| format!("{TABLES}.{name}.{key}");
        merchants.push(MerchantSettings {
            base_url: super::raw::base_url(p, &at("base_url"), m.base_url.as_deref()),
            mer_id: super::raw::mer_id(p, &at("mer_id"), m.mer_id.as_deref()),
            mac_key: super::raw::secret(
                p,
                &at("mac_key"),
                m.mac_key,
                crate::ctbc::envelope::MAC_KEY_LEN,
                &format!("the 24-character MAC key the bank issued for merchant {name}"),
            ),
            iv: super::raw::secret(
                p,
                &at("iv"),
                m.iv,
                crate::ctbc::envelope::IV_LEN,
                &format!("the 8-character IV the bank issued for merchant {name}"),
            ),
            name,
        });
    }
    one_merchant_per_id(p, &merchants, default_mer_id);
    merchants
}

/// Two merchants with one merchant id are refused, the later one named.
fn one_merchant_per_id(
    p: &mut impl FnMut(&str, String, &str),
    merchants: &[MerchantSettings],
    default_mer_id: Option<&MerId>,
) {
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    if let Some(id) = default_mer_id {
        seen.insert(id.as_str(), "ctbc.mer_id".to_string());
    }
    for m in merchants {
        let Some(id) = &m.mer_id else { continue };
        let setting = format!("{TABLES}.{}.mer_id", m.name);
        match seen.get(id.as_str()) {
            Some(first) => p(
                &setting,
                format!("is {id}, the same merchant id as {first}: one merchant's calls would go out as the other's"),
                "give each merchant the merchant id the bank issued for it, or remove the table that repeats one",
            ),
            None => {
                seen.insert(id.as_str(), setting);
            }
        }
    }
}
