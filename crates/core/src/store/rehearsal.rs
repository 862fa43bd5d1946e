//! `refundd check`'s rehearsal of the shop's write-backs: each statement run
//! for one order the shop really asks to refund, in a transaction that is
//! always rolled back, so an operator learns before the first pass whether a
//! write-back finds the order's row (exactly one row changed), not after
//! money moved. Nothing of it is kept: a rollback undoes the shop's rows and
//! its own triggers' writes alike.

use super::endings::Ending;
use super::writeback::{ShopKeys, ShopWrite};
use super::{Store, StoreError};
use crate::domain::refund_id::RefundId;
use crate::domain::words::RefundMethod;

/// What the rehearsal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rehearsal {
    /// The shop asks for no refund now: nothing to rehearse on.
    NoRequest,
    /// Each statement (its setting's name) and why it would be refused, if it would.
    On {
        order_no: String,
        statements: Vec<(&'static str, Option<String>)>,
    },
}

impl Store {
    /// Runs `shop.on_refunded` (and `shop.on_failed`) for the first order
    /// the shop's requests list, each in a transaction rolled back.
    pub async fn rehearse_write_backs(&self) -> Result<Rehearsal, StoreError> {
        let first = format!(
            "SELECT q.order_no, q.auth_amount, q.refund_id FROM ({}) AS q WHERE q.order_no IS NOT NULL LIMIT 1",
            self.requests_sql(false)
        );
        let row: Option<(String, Option<String>, Option<String>)> =
            sqlx::query_as(&first).fetch_optional(&self.pool).await?;
        let Some((order_no, auth_amount, refund_id)) = row else {
            return Ok(Rehearsal::NoRequest);
        };
        let (refund_id, _) = RefundId::from_shop(refund_id.as_deref());
        let keys = ShopKeys::new(order_no.clone(), refund_id.as_str().to_string());
        let amount = auth_amount
            .and_then(|a| a.split('.').next().and_then(|w| w.parse::<i64>().ok()))
            .unwrap_or(1);
        let mut endings = vec![(
            "shop.on_refunded",
            Ending::Refunded {
                method: RefundMethod::Reversal,
                amount,
                watch_days: None,
            },
        )];
        if self.shop.on_failed.is_some() {
            endings.push((
                "shop.on_failed",
                Ending::Failed {
                    reason: "refundd check: a rehearsal, rolled back".into(),
                    refunded_amount: None,
                },
            ));
        }
        let mut statements = Vec::with_capacity(endings.len());
        for (setting, ending) in endings {
            let mut tx = self.pool.begin().await?;
            let went = self.write_back(&mut tx, &keys, &ending).await?;
            tx.rollback().await?;
            let refused = match went {
                ShopWrite::Done => None,
                ShopWrite::Refused(reason) => Some(reason),
            };
            statements.push((setting, refused));
        }
        Ok(Rehearsal::On {
            order_no,
            statements,
        })
    }
}
