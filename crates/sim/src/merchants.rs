//! The merchants the simulated bank serves, each with its own MERID, MAC key
//! and IV, as the bank issues them to each merchant. A call is opened with the
//! keys of the MERID it names and answered under them, so one merchant's calls
//! and answers mean nothing under another's keys. The first merchant is the
//! one a transaction belongs to when it names none.

use crate::ctbc::envelope::Envelope;
use crate::ctbc::types::MerId;

use super::{SimError, SimSecret};

/// A merchant of the simulator: its MERID and keys. Debug leaves out the keys.
#[derive(Clone, Debug)]
pub struct SimMerchant {
    pub mer_id: MerId,
    pub mac_key: SimSecret,
    pub iv: SimSecret,
}

/// One merchant as the server uses it: its MERID and its envelope.
pub(crate) struct Merchant {
    pub(crate) mer_id: String,
    pub(crate) envelope: Envelope,
}

/// Every merchant the simulator serves: the first, and the others.
pub(crate) struct Merchants {
    first: Merchant,
    others: Vec<Merchant>,
}

impl Merchant {
    fn new(m: &SimMerchant) -> Result<Self, SimError> {
        let mer_id = m.mer_id.as_str().to_string();
        let envelope = Envelope::new(m.mac_key.as_bytes(), m.iv.as_bytes()).map_err(|source| {
            SimError::Keys {
                mer_id: mer_id.clone(),
                source,
            }
        })?;
        Ok(Self { mer_id, envelope })
    }
}

impl Merchants {
    /// Checks each merchant's keys and that no MERID is served twice.
    pub(crate) fn new(first: &SimMerchant, others: &[SimMerchant]) -> Result<Self, SimError> {
        let mut merchants = Self {
            first: Merchant::new(first)?,
            others: Vec::with_capacity(others.len()),
        };
        for m in others {
            if merchants.named(m.mer_id.as_str()).is_some() {
                return Err(SimError::MerchantTwice(m.mer_id.to_string()));
            }
            merchants.others.push(Merchant::new(m)?);
        }
        Ok(merchants)
    }

    fn all(&self) -> impl Iterator<Item = &Merchant> {
        std::iter::once(&self.first).chain(&self.others)
    }

    /// The merchant with this MERID, if the simulator serves it.
    pub(crate) fn named(&self, mer_id: &str) -> Option<&Merchant> {
        self.all().find(|m| m.mer_id == mer_id)
    }

    /// The merchant an answer is sealed for: the one the call named, or,
    /// when it named none the simulator serves, the first.
    pub(crate) fn answering(&self, mer_id: Option<&str>) -> &Merchant {
        mer_id.and_then(|m| self.named(m)).unwrap_or(&self.first)
    }

    /// Every MERID, the first first.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.all().map(|m| m.mer_id.clone()).collect()
    }
}
