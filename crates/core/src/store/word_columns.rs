//! The words of refundd's record (`domain::words`) as PostgreSQL `text`
//! columns: written as their text (`Word::as_str`), read back through
//! `TryFrom<String>` (`#[sqlx(try_from = "String")]`) or, where the column may
//! be NULL, through `MaybeText`; a value the code does not know is an error
//! where it is read.

use crate::domain::words::{parse_word, Word};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::{Decode, Postgres, Type};

/// A nullable `text` column holding a word, before it is read as one.
pub(crate) struct MaybeText(Option<String>);

impl Type<Postgres> for MaybeText {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for MaybeText {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        use sqlx::ValueRef;
        if value.is_null() {
            return Ok(MaybeText(None));
        }
        Ok(MaybeText(Some(<String as Decode<'r, Postgres>>::decode(
            value,
        )?)))
    }
}

impl<W: Word> TryFrom<MaybeText> for Option<W> {
    type Error = String;
    fn try_from(text: MaybeText) -> Result<Self, String> {
        text.0.map(|t| parse_word(&t)).transpose()
    }
}

/// The text of an optional word, as bound to a nullable column.
pub(crate) fn text_of<W: Word>(word: Option<W>) -> Option<&'static str> {
    word.map(Word::as_str)
}
