//! The suites that exercise whole passes (`engine`, `money_rules`, `reconcile`, `several_refunds`, `shop`,
//! `shop_database`)
//! once more with `database.schema` set to a name of the operator's choice:
//! every statement refundd runs, the batch writes and the shop's write-backs
//! included, must name that schema and never the default one, which does not
//! exist in these databases.

// Each file is compiled a second time here on purpose, with this `SCHEMA`.
#![allow(clippy::duplicate_mod)]

const SCHEMA: &str = "shop_refundd";

#[path = "engine.rs"]
mod engine;
#[path = "money_rules.rs"]
mod money_rules;
#[path = "reconcile.rs"]
mod reconcile;
#[path = "several_refunds.rs"]
mod several_refunds;
#[path = "shop.rs"]
mod shop;
#[path = "shop_database.rs"]
mod shop_database;
