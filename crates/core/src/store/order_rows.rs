//! A row of `refundd.refunds` as the decision reads it: the one place a row
//! becomes a `domain::record::OrderRecord` (its words parsed, its calls read
//! from the story's JSON), so no type of the domain carries SQL.

use crate::domain::record::{OrderRecord, OtherRefundsRecord, OwnCallRecord};
use crate::domain::words::{parse_word, Word};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, Row};

/// A record read from a claim, a plan's reading or a check.
pub(crate) struct ReadOrder(pub(crate) OrderRecord);

impl<'r> FromRow<'r, PgRow> for ReadOrder {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        let own_calls: Json<Vec<OwnCallRecord>> = r.try_get("own_calls")?;
        let others: Option<Json<OtherRefundsRecord>> = r.try_get("others")?;
        Ok(ReadOrder(OrderRecord {
            id: r.try_get("id")?,
            order_no: r.try_get("order_no")?,
            refund_id: r.try_get("refund_id")?,
            merchant: r.try_get("merchant")?,
            xid: r.try_get("xid")?,
            auth_code: r.try_get("auth_code")?,
            auth_amount: r.try_get("auth_amount")?,
            currency: r.try_get("currency")?,
            status: word(r, "status")?,
            refund_amount: r.try_get("refund_amount")?,
            bad_input: r.try_get("bad_input")?,
            claimed_amount: r.try_get("claimed_amount")?,
            attempts: r.try_get("attempts")?,
            step: maybe_word(r, "step")?,
            unknown_operation: maybe_word(r, "unknown_operation")?,
            unknown_since: r.try_get("unknown_since")?,
            refund_method: maybe_word(r, "refund_method")?,
            refunded_amount: r.try_get("refunded_amount")?,
            watch_until: r.try_get("watch_until")?,
            lease_token: r.try_get("lease_token")?,
            lidm: r.try_get("lidm")?,
            unknown_age_ms: r.try_get("unknown_age_ms")?,
            own_calls: own_calls.0,
            others: others.map(|o| o.0),
        }))
    }
}

/// A column of words, read as its word.
pub(crate) fn word<W: Word>(r: &PgRow, column: &str) -> Result<W, sqlx::Error> {
    let text: String = r.try_get(column)?;
    parse_word(&text).map_err(|e| decode_error(column, e))
}

/// A nullable column of words, read as its word or none.
pub(crate) fn maybe_word<W: Word>(r: &PgRow, column: &str) -> Result<Option<W>, sqlx::Error> {
    let text: Option<String> = r.try_get(column)?;
    text.map(|t| parse_word(&t).map_err(|e| decode_error(column, e)))
        .transpose()
}

fn decode_error(column: &str, why: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: why.into(),
    }
}
