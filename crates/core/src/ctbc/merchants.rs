//! The shop's merchants at the bank, each with its own client: the `[ctbc]`
//! table's own merchant (the default) and each `[ctbc.merchants.NAME]`. Each
//! call goes out with its merchant's id and is sealed with its merchant's
//! keys; the merchants at one endpoint share its connection pool and its rate
//! limit (`Client::beside`), since the bank caps calls per endpoint, not per
//! merchant.

use super::client::{Client, ClientConfig, ClientSetupError};
use super::envelope::Envelope;
use super::types::MerId;
use crate::domain::merchant::MerchantName;
use std::collections::BTreeMap;
use url::Url;

/// A merchant of a `[ctbc.merchants.NAME]` table, as the client needs it:
/// its id, its keys, and its endpoint when it is not the default's.
#[derive(Debug, Clone)]
pub struct OtherMerchant {
    pub name: MerchantName,
    pub mer_id: MerId,
    pub envelope: Envelope,
    /// `None`: the default merchant's endpoint.
    pub base_url: Option<Url>,
}

/// The client of every merchant of the shop's.
#[derive(Debug, Clone)]
pub struct Merchants {
    default: Client,
    named: BTreeMap<MerchantName, Client>,
}

/// Why a merchant's client cannot be built: which merchant, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", crate::domain::merchant::settings_table(merchant.as_ref()))]
pub struct MerchantSetupError {
    /// `None`: the default merchant.
    pub merchant: Option<MerchantName>,
    #[source]
    pub source: ClientSetupError,
}

impl Merchants {
    /// The default merchant's client from `default`, and every other
    /// merchant's beside the first client built for its endpoint (the
    /// default's settings otherwise: timeouts, rate limit, `SwRevision`).
    pub fn new(
        default: ClientConfig,
        others: Vec<OtherMerchant>,
    ) -> Result<Merchants, MerchantSetupError> {
        let default_client = Client::new(default.clone()).map_err(|source| MerchantSetupError {
            merchant: None,
            source,
        })?;
        let mut at_endpoint: Vec<Client> = vec![default_client.clone()];
        let mut named = BTreeMap::new();
        for other in others {
            let base_url = other.base_url.unwrap_or_else(|| default.base_url.clone());
            let client = match at_endpoint.iter().find(|c| *c.base_url() == base_url) {
                Some(first) => first.beside(Some(other.name.clone()), other.mer_id, other.envelope),
                None => {
                    let config = ClientConfig {
                        base_url,
                        merchant: Some(other.name.clone()),
                        mer_id: other.mer_id,
                        envelope: other.envelope,
                        ..default.clone()
                    };
                    let client = Client::new(config).map_err(|source| MerchantSetupError {
                        merchant: Some(other.name.clone()),
                        source,
                    })?;
                    at_endpoint.push(client.clone());
                    client
                }
            };
            named.insert(other.name, client);
        }
        Ok(Merchants {
            default: default_client,
            named,
        })
    }

    /// The `[ctbc]` table's own merchant's client.
    pub fn default_client(&self) -> &Client {
        &self.default
    }

    /// The client of an order's merchant (`None`: the default merchant's);
    /// `None` for a name no settings table gives.
    pub fn for_merchant(&self, merchant: Option<&MerchantName>) -> Option<&Client> {
        match merchant {
            None => Some(&self.default),
            Some(name) => self.named.get(name),
        }
    }

    /// Every merchant's client, the default's first, then by name.
    pub fn iter(&self) -> impl Iterator<Item = (Option<&MerchantName>, &Client)> {
        std::iter::once((None, &self.default)).chain(self.named.iter().map(|(n, c)| (Some(n), c)))
    }
}

/// One client alone: the default merchant, and no other.
impl From<Client> for Merchants {
    fn from(client: Client) -> Merchants {
        Merchants {
            default: client,
            named: BTreeMap::new(),
        }
    }
}
