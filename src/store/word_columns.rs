//! The words of refundd's record (`domain::words`) as PostgreSQL `text`
//! columns and arrays: read and written as the same text the tables have
//! always held, a value the code does not know an error where it is read.

use crate::domain::bank::Operation;
use crate::domain::words::{parse_word, Word};
use crate::domain::words::{CallOutcome, EventKind, PassOutcome, RefundMethod};
use crate::domain::words::{RefundStatus, SettlementState, StepReached};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// A word as a `text` column (and array element).
macro_rules! text_column {
    ($name:ty) => {
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
        }

        impl<'q> Encode<'q, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'q, Postgres>>::encode_by_ref(&Word::as_str(*self), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Postgres>>::decode(value)?;
                parse_word(text).map_err(Into::into)
            }
        }
    };
}

text_column!(RefundStatus);
text_column!(StepReached);
text_column!(RefundMethod);
text_column!(EventKind);
text_column!(CallOutcome);
text_column!(SettlementState);
text_column!(PassOutcome);
text_column!(Operation);
