//! The bank client's settings, required only by the commands that talk to the
//! bank: each missing one is named with its fix, like every other setting.

use super::secrets::ways_to_give;
use super::{Problem, Settings, SettingsError};
use crate::ctbc::envelope::Envelope;
use crate::ctbc::{Client, ClientConfig};
use crate::outbound::LOOPBACK_FIX;
use secrecy::ExposeSecret;

impl Settings {
    /// Builds the client for `run` and `once`; fails naming every missing or
    /// unusable `ctbc.*` setting.
    pub fn require_client(&self) -> Result<Client, SettingsError> {
        let c = &self.ctbc;
        let mut problems = Vec::new();
        if c.base_url.is_none() {
            problems.push(Problem::new(
                "ctbc.base_url",
                "is not set",
                "set it to the POS API base URL the bank gave you, e.g. https://testepos.ctbcbank.com/MicroPos",
            ));
        }
        if c.mer_id.is_none() {
            problems.push(Problem::new(
                "ctbc.mer_id",
                "is not set",
                "set it to the merchant id (digits) the bank issued",
            ));
        }
        if c.mac_key.is_none() {
            problems.push(Problem::new(
                "ctbc.mac_key",
                "is not set",
                format!(
                    "it is the 24-character MAC key the bank issued: {}",
                    ways_to_give("ctbc.mac_key")
                ),
            ));
        }
        if c.iv.is_none() {
            problems.push(Problem::new(
                "ctbc.iv",
                "is not set",
                format!(
                    "it is the 8-character IV the bank issued: {}",
                    ways_to_give("ctbc.iv")
                ),
            ));
        }
        let (Some(base_url), Some(mer_id), Some(key), Some(iv)) =
            (&c.base_url, &c.mer_id, &c.mac_key, &c.iv)
        else {
            return Err(SettingsError { problems });
        };
        let envelope = Envelope::new(
            key.expose_secret().as_bytes(),
            iv.expose_secret().as_bytes(),
        )
        .map_err(|e| {
            SettingsError::one(Problem::new(
                "ctbc.mac_key",
                format!("cannot be used: {e}"),
                "check the key and IV the bank issued",
            ))
        })?;
        let config = ClientConfig {
            base_url: base_url.clone(),
            mer_id: mer_id.clone(),
            envelope,
            connect_timeout: c.connect_timeout,
            timeout: c.timeout,
            allow_insecure_http: c.allow_insecure_http,
            max_requests_per_sec: c.max_requests_per_sec,
            unknown_order_codes: c.unknown_order_codes.clone(),
            sw_revision: c.sw_revision.clone(),
        };
        Client::new(config).map_err(|e| {
            SettingsError::one(Problem::new(
                "ctbc.base_url",
                format!("cannot be used: {e}"),
                format!("use https://, or plain http:// only to a simulator at {LOOPBACK_FIX}, or set ctbc.allow_insecure_http = true only on a network you trust"),
            ))
        })
    }
}
