//! The bank clients' settings, required only by the commands that talk to the
//! bank: one client per merchant, the `[ctbc]` table's own and each
//! `[ctbc.merchants.NAME]`'s; each missing or unusable part is named with its
//! full setting and its fix, like every other setting.

use super::merchants::MerchantSettings;
use super::secrets::ways_to_give;
use super::{Problem, Settings, SettingsError};
use crate::ctbc::envelope::Envelope;
use crate::ctbc::merchants::MerchantSetupError;
use crate::ctbc::{Client, ClientConfig, Merchants, OtherMerchant};
use crate::domain::merchant::{settings_table, MerchantName};
use crate::outbound::LOOPBACK_FIX;
use secrecy::{ExposeSecret, SecretString};

impl Settings {
    /// The default merchant's client (the `[ctbc]` table's), for the callers
    /// that speak for it alone; every merchant's settings are checked, as
    /// `require_merchants` checks them.
    pub fn require_client(&self) -> Result<Client, SettingsError> {
        self.require_merchants()
            .map(|merchants| merchants.default_client().clone())
    }

    /// Every merchant's client, for `run`, `once`, `plan` and `check`; fails
    /// naming every missing or unusable `ctbc.*` setting of any merchant.
    pub fn require_merchants(&self) -> Result<Merchants, SettingsError> {
        let mut problems = Vec::new();
        let default = self.default_merchant(&mut problems);
        let has_base_url = self.ctbc.base_url.is_some();
        let others: Vec<OtherMerchant> = self
            .ctbc
            .merchants
            .iter()
            .filter_map(|m| other_merchant(m, has_base_url, &mut problems))
            .collect();
        let Some(default) = default.filter(|_| problems.is_empty()) else {
            return Err(SettingsError { problems });
        };
        Merchants::new(default, others).map_err(unusable_base_url)
    }

    /// The default merchant's client settings, or its problems.
    fn default_merchant(&self, problems: &mut Vec<Problem>) -> Option<ClientConfig> {
        let c = &self.ctbc;
        if c.base_url.is_none() {
            problems.push(Problem::new(
                "ctbc.base_url",
                "is not set",
                "set it to the POS API base URL the bank gave you, e.g. https://testepos.ctbcbank.com/MicroPos",
            ));
        }
        let keys = merchant_keys(None, c.mer_id.as_ref(), (&c.mac_key, &c.iv), problems);
        let (Some(base_url), Some((mer_id, envelope))) = (&c.base_url, keys) else {
            return None;
        };
        Some(ClientConfig {
            base_url: base_url.clone(),
            merchant: None,
            mer_id,
            envelope,
            connect_timeout: c.connect_timeout,
            timeout: c.timeout,
            allow_insecure_http: c.allow_insecure_http,
            max_requests_per_sec: c.max_requests_per_sec,
            unknown_order_codes: c.unknown_order_codes.clone(),
            sw_revision: c.sw_revision.clone(),
        })
    }
}

/// A `[ctbc.merchants.NAME]` merchant as its client needs it, or its problems.
fn other_merchant(
    m: &MerchantSettings,
    has_base_url: bool,
    problems: &mut Vec<Problem>,
) -> Option<OtherMerchant> {
    if m.base_url.is_none() && !has_base_url {
        problems.push(Problem::new(
            &format!("{}.base_url", settings_table(Some(&m.name))),
            "is not set, and neither is ctbc.base_url",
            "set ctbc.base_url to the POS API base URL the bank gave you (every merchant uses it unless its table gives one of its own)",
        ));
    }
    let (mer_id, envelope) = merchant_keys(
        Some(&m.name),
        m.mer_id.as_ref(),
        (&m.mac_key, &m.iv),
        problems,
    )?;
    Some(OtherMerchant {
        name: m.name.clone(),
        mer_id,
        envelope,
        base_url: m.base_url.clone(),
    })
}

/// A merchant's id and envelope, or what is missing named under its table
/// (`ctbc.mer_id`, `ctbc.merchants.outlet.mac_key`).
fn merchant_keys(
    merchant: Option<&MerchantName>,
    mer_id: Option<&crate::ctbc::MerId>,
    (key, iv): (&Option<SecretString>, &Option<SecretString>),
    problems: &mut Vec<Problem>,
) -> Option<(crate::ctbc::MerId, Envelope)> {
    let table = settings_table(merchant);
    let whose = match merchant {
        None => String::new(),
        Some(name) => format!(" for merchant {name}"),
    };
    let mut missing = |key: &str, what: &str, ways: bool| {
        let setting = format!("{table}.{key}");
        let fix = if ways {
            format!("it is {what}{whose}: {}", ways_to_give(&setting))
        } else {
            format!("set it to {what}{whose}")
        };
        problems.push(Problem::new(&setting, "is not set", fix));
    };
    if mer_id.is_none() {
        missing("mer_id", "the merchant id (digits) the bank issued", false);
    }
    if key.is_none() {
        missing("mac_key", "the 24-character MAC key the bank issued", true);
    }
    if iv.is_none() {
        missing("iv", "the 8-character IV the bank issued", true);
    }
    let (Some(mer_id), Some(key), Some(iv)) = (mer_id, key, iv) else {
        return None;
    };
    match Envelope::new(
        key.expose_secret().as_bytes(),
        iv.expose_secret().as_bytes(),
    ) {
        Ok(envelope) => Some((mer_id.clone(), envelope)),
        Err(e) => {
            problems.push(Problem::new(
                &format!("{table}.mac_key"),
                format!("cannot be used: {e}"),
                format!("check the key and IV the bank issued{whose}"),
            ));
            None
        }
    }
}

/// A merchant's endpoint the client refuses (plain http to a host that is
/// not loopback, no host), named by the setting that gives it.
fn unusable_base_url(e: MerchantSetupError) -> SettingsError {
    let setting = format!("{}.base_url", settings_table(e.merchant.as_ref()));
    SettingsError::one(Problem::new(
        &setting,
        format!("cannot be used: {}", e.source),
        format!("use https://, or plain http:// only to a simulator at {LOOPBACK_FIX}, or set ctbc.allow_insecure_http = true only on a network you trust"),
    ))
}
