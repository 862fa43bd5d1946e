//! The three example shops operators copy from (`config/shop-*.toml`,
//! `docs/connect-your-shop.md`) and tests run refundd against: each shop's
//! schema and the three statements that connect refundd to it, and orders
//! seeded as the shop's own code writes them. The SQL itself is the store's;
//! this file names the examples and says which orders to seed.

use crate::store::shop_examples::{self as sql, AskedBack, SeedOrder};
use crate::store::StoreError;
use sqlx::PgPool;
use std::collections::BTreeSet;

/// A shop's schema and the settings that connect refundd to it.
#[derive(Debug)]
pub struct ShopExample {
    /// Short name, also the settings file's: `config/shop-<name>.toml`.
    pub name: &'static str,
    /// Creates the shop's own schema, as the shop did long before refundd.
    pub schema_sql: &'static str,
    /// `shop.requests`
    pub requests: &'static str,
    /// `shop.on_refunded`
    pub on_refunded: &'static str,
    /// `shop.on_failed`
    pub on_failed: &'static str,
    /// `shop.on_cancelled`, where the shop has a place for a cancelled refund.
    pub on_cancelled: Option<&'static str>,
    shape: Shape,
}

/// Which shop's code writes the seeded orders.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Tutorial,
    Codes,
    Returns,
}

/// Chinese statuses; XID and authorised amount in a payment-result table.
pub static TUTORIAL: ShopExample = ShopExample {
    name: "tutorial",
    schema_sql: sql::TUTORIAL_SCHEMA,
    requests: sql::TUTORIAL_REQUESTS,
    on_refunded: sql::TUTORIAL_ON_REFUNDED,
    on_failed: sql::TUTORIAL_ON_FAILED,
    on_cancelled: None,
    shape: Shape::Tutorial,
};

/// Integer status codes, amounts in numeric(12,2), statements using a subset
/// of their parameters.
pub static CODES: ShopExample = ShopExample {
    name: "codes",
    schema_sql: sql::CODES_SCHEMA,
    requests: sql::CODES_REQUESTS,
    on_refunded: sql::CODES_ON_REFUNDED,
    on_failed: sql::CODES_ON_FAILED,
    on_cancelled: None,
    shape: Shape::Codes,
};

/// Several refunds of one order: a table of returns, each refunded on its
/// own, found by its number (`refund_id`, `$4`).
pub static RETURNS: ShopExample = ShopExample {
    name: "returns",
    schema_sql: sql::RETURNS_SCHEMA,
    requests: sql::RETURNS_REQUESTS,
    on_refunded: sql::RETURNS_ON_REFUNDED,
    on_failed: sql::RETURNS_ON_FAILED,
    on_cancelled: Some(sql::RETURNS_ON_CANCELLED),
    shape: Shape::Returns,
};

/// Every example shop.
pub static EXAMPLES: [&ShopExample; 3] = [&TUTORIAL, &CODES, &RETURNS];

impl ShopExample {
    /// Creates the shop's schema (`shop` or `shop2`) in an empty database.
    pub async fn create(&self, pool: &PgPool) -> Result<(), StoreError> {
        sql::create_schema(pool, self.schema_sql).await
    }

    /// Writes `n` paid orders as the shop's code would, and asks some back
    /// (see [`sample_orders`]); returns them, for the bank's side of a test.
    pub async fn seed(&self, pool: &PgPool, n: usize) -> Result<Vec<SeedOrder>, StoreError> {
        let orders = sample_orders(self.order_prefix(), n);
        self.seed_orders(pool, &orders).await?;
        Ok(orders)
    }

    /// Writes these orders as the shop's code would (paid, then asked back as
    /// each says).
    pub async fn seed_orders(&self, pool: &PgPool, orders: &[SeedOrder]) -> Result<(), StoreError> {
        match self.shape {
            Shape::Tutorial => sql::seed_tutorial(pool, orders).await,
            Shape::Codes => sql::seed_codes(pool, orders).await,
            Shape::Returns => sql::seed_returns(pool, orders).await,
        }
    }

    fn order_prefix(&self) -> &'static str {
        match self.shape {
            Shape::Tutorial => "T",
            Shape::Codes => "S",
            Shape::Returns => "N",
        }
    }
}

/// `n` orders numbered `<prefix>000001`...: of every five, three are asked
/// back whole, one in part (half, rounded down) and one stays paid. Amounts
/// from NT$100 to NT$4999; XID `X<order_no>`. The same `n` gives the same orders.
pub fn sample_orders(prefix: &str, n: usize) -> Vec<SeedOrder> {
    (1..=n)
        .zip(1i64..)
        .map(|(i, k)| {
            let order_no = format!("{prefix}{i:06}");
            let amount = 100 + (k * 733) % 4900;
            let refund = match i % 5 {
                0 => AskedBack::NotAsked,
                2 => AskedBack::Part(amount / 2),
                _ => AskedBack::Whole,
            };
            SeedOrder {
                xid: format!("X{order_no}"),
                auth_code: format!("{:06}", (k * 7919) % 1_000_000),
                order_no,
                amount,
                refund,
            }
        })
        .collect()
}

/// The positional parameters (`$1`, `$2`...) a statement uses, outside its
/// string literals, quoted identifiers, dollar-quoted bodies and comments.
pub fn parameters(statement: &str) -> BTreeSet<u32> {
    scan(statement)
        .into_iter()
        .filter_map(|t| match t {
            Token::Param(n) => Some(n),
            Token::Word(_) => None,
        })
        .collect()
}

/// The unquoted words of a statement, lower-cased (identifiers and keywords,
/// as PostgreSQL folds them), outside literals and comments.
pub fn words(statement: &str) -> BTreeSet<String> {
    scan(statement)
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            Token::Param(_) => None,
        })
        .collect()
}

enum Token {
    Word(String),
    Param(u32),
}

/// Just enough of PostgreSQL's lexer to tell code from text and comments.
fn scan(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let is_word_start = |c: char| c.is_alphabetic() || c == '_';
    let is_word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0usize;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            '\'' => {
                // E'...' allows backslash escapes; the 'E' was read as a word.
                let escapes = matches!(tokens.last(), Some(Token::Word(w)) if w == "e")
                    && i > 0
                    && matches!(chars[i - 1], 'e' | 'E');
                i = skip_quoted(&chars, i, '\'', escapes);
            }
            '"' => i = skip_quoted(&chars, i, '"', false),
            '$' => {
                let digits: String = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if !digits.is_empty() {
                    if let Ok(n) = digits.parse() {
                        tokens.push(Token::Param(n));
                    }
                    i += 1 + digits.len();
                } else if let Some(end) = dollar_tag(&chars, i) {
                    let tag = &chars[i..end];
                    i = end;
                    while i < chars.len() && !chars[i..].starts_with(tag) {
                        i += 1;
                    }
                    i = (i + tag.len()).min(chars.len());
                } else {
                    i += 1;
                }
            }
            c if is_word_start(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(Token::Word(word.to_lowercase()));
            }
            c if c.is_ascii_digit() => {
                // A number, possibly with letters glued on (1e5): not a word.
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    tokens
}

/// The index just past a quoted run that starts at `start`; a doubled quote
/// stands for itself.
fn skip_quoted(chars: &[char], start: usize, quote: char, escapes: bool) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        if escapes && chars[i] == '\\' {
            i += 2;
        } else if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    chars.len()
}

/// The index just past a dollar-quote opening tag (`$$`, `$body$`) at `start`.
fn dollar_tag(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while let Some(&c) = chars.get(i) {
        if c == '$' {
            return Some(i + 1);
        }
        if !(c.is_alphanumeric() || c == '_') {
            return None;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED_COLUMNS: [&str; 5] = [
        "order_no",
        "xid",
        "auth_code",
        "auth_amount",
        "refund_amount",
    ];

    fn params(range: std::ops::RangeInclusive<u32>) -> BTreeSet<u32> {
        range.collect()
    }

    #[test]
    fn every_statement_is_there() {
        for ex in EXAMPLES {
            for (what, s) in [
                ("schema_sql", ex.schema_sql),
                ("requests", ex.requests),
                ("on_refunded", ex.on_refunded),
                ("on_failed", ex.on_failed),
            ] {
                assert!(!s.trim().is_empty(), "{} {what} is empty", ex.name);
                assert!(
                    !s.contains(';') || what == "schema_sql",
                    "{} {what}",
                    ex.name
                );
            }
            // Statements are copied into TOML and wrapped in other SQL as written.
            for s in [ex.requests, ex.on_refunded, ex.on_failed] {
                assert_eq!(s, s.trim(), "{}: no surrounding white space", ex.name);
            }
        }
    }

    #[test]
    fn requests_name_every_column_refundd_reads() {
        for ex in EXAMPLES {
            let w = words(ex.requests);
            for column in REQUIRED_COLUMNS {
                assert!(w.contains(column), "{} requests lacks {column}", ex.name);
            }
            assert!(parameters(ex.requests).is_empty(), "{}", ex.name);
        }
    }

    #[test]
    fn write_backs_use_only_their_parameters() {
        let failed_params = BTreeSet::from([1, 2, 4]);
        for ex in EXAMPLES {
            let refunded = parameters(ex.on_refunded);
            assert!(
                refunded.is_subset(&params(1..=4)),
                "{}: {refunded:?}",
                ex.name
            );
            assert!(refunded.contains(&1), "{}: which order?", ex.name);
            let failed = parameters(ex.on_failed);
            assert!(failed.is_subset(&failed_params), "{}: {failed:?}", ex.name);
            assert!(failed.contains(&1), "{}: which order?", ex.name);
            // A shop listing several refunds of an order tells them apart.
            let several = words(ex.requests).contains("refund_id");
            assert_eq!(several, refunded.contains(&4), "{}", ex.name);
            assert_eq!(several, failed.contains(&4), "{}", ex.name);
        }
        // The examples show both: all parameters, and a subset.
        assert_eq!(parameters(TUTORIAL.on_refunded), params(1..=3));
        assert_eq!(parameters(TUTORIAL.on_failed), params(1..=2));
        assert_eq!(parameters(CODES.on_refunded), params(1..=2));
        assert_eq!(parameters(CODES.on_failed), params(1..=1));
        assert_eq!(parameters(RETURNS.on_refunded), params(1..=4));
    }

    #[test]
    fn each_shop_its_own_schema_never_public() {
        assert!(TUTORIAL.schema_sql.contains("CREATE SCHEMA shop;"));
        assert!(CODES.schema_sql.contains("CREATE SCHEMA shop2;"));
        assert!(RETURNS.schema_sql.contains("CREATE SCHEMA shop3;"));
        for ex in EXAMPLES {
            assert!(!words(ex.schema_sql).contains("public"), "{}", ex.name);
        }
        let names: BTreeSet<_> = EXAMPLES.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), EXAMPLES.len());
    }

    #[test]
    fn parameters_outside_text_and_comments_only() {
        assert_eq!(
            parameters("UPDATE t SET a = $2 WHERE b = $1"),
            params(1..=2)
        );
        assert_eq!(parameters("SELECT $10, $3"), BTreeSet::from([3, 10]));
        assert!(parameters("SELECT '$1', \"$2\", E'\\'$3', 'it''s $4'").is_empty());
        assert!(parameters("SELECT 1 -- $1\n /* $2 /* $3 */ $4 */").is_empty());
        assert!(parameters("SELECT $$ $1 $$, $body$ $2 $body$").is_empty());
        assert!(parameters("SELECT a$1 FROM t").is_empty());
        assert_eq!(parameters("SELECT $1 -- $2\n, $3"), BTreeSet::from([1, 3]));
        assert_eq!(words("SELECT x AS Order_No -- y\n"), {
            ["select", "x", "as", "order_no"]
                .map(String::from)
                .into_iter()
                .collect()
        });
    }

    #[test]
    fn sample_orders_are_valid_lid_m_and_varied() {
        let orders = sample_orders("T", 10);
        assert_eq!(orders.len(), 10);
        assert_eq!(orders[0].order_no, "T000001");
        assert_eq!(orders[0].xid, "XT000001");
        for o in &orders {
            assert!(o.order_no.len() <= 19);
            assert!((100..5000).contains(&o.amount), "{o:?}");
            assert_eq!(o.auth_code.len(), 6);
            if let AskedBack::Part(p) = o.refund {
                assert!(p > 0 && p < o.amount, "{o:?}");
            }
        }
        let count = |f: fn(&AskedBack) -> bool| orders.iter().filter(|o| f(&o.refund)).count();
        assert_eq!(count(|r| *r == AskedBack::NotAsked), 2);
        assert_eq!(count(|r| matches!(r, AskedBack::Part(_))), 2);
        assert_eq!(count(|r| *r == AskedBack::Whole), 6);
        assert_eq!(sample_orders("T", 10), orders, "deterministic");
    }

    #[test]
    fn the_guide_shows_the_statements_as_they_are() {
        let guide = include_str!("../../docs/connect-your-shop.md");
        for ex in EXAMPLES {
            let cancelled = ex.on_cancelled.map(|s| ("ON_CANCELLED", s));
            let statements = [
                ("REQUESTS", ex.requests),
                ("ON_REFUNDED", ex.on_refunded),
                ("ON_FAILED", ex.on_failed),
            ];
            for (env, statement) in statements.into_iter().chain(cancelled) {
                assert!(guide.contains(statement), "{} shop.{env}", ex.name);
                // The environment form: one line, in shell single quotes.
                let one_line = statement.split_whitespace().collect::<Vec<_>>().join(" ");
                let line = format!(
                    "export REFUNDD__SHOP__{env}='{}'",
                    one_line.replace('\'', "'\\''")
                );
                assert!(guide.contains(&line), "{line}");
            }
        }
    }

    #[test]
    fn settings_files_say_what_the_examples_say() {
        let files = [
            (&TUTORIAL, include_str!("../../config/shop-tutorial.toml")),
            (&CODES, include_str!("../../config/shop-codes.toml")),
            (&RETURNS, include_str!("../../config/shop-returns.toml")),
        ];
        for (ex, text) in files {
            let table: toml::Table = toml::from_str(text).unwrap();
            let shop = table["shop"].as_table().unwrap();
            let cancelled = ex.on_cancelled.map(|s| ("on_cancelled", s));
            let want_len = 3 + usize::from(cancelled.is_some());
            assert_eq!(shop.len(), want_len, "{}: only the statements", ex.name);
            let statements = [
                ("requests", ex.requests),
                ("on_refunded", ex.on_refunded),
                ("on_failed", ex.on_failed),
            ];
            for (key, want) in statements.into_iter().chain(cancelled) {
                let got = shop[key].as_str().unwrap();
                assert_eq!(got.trim(), want, "config/shop-{}.toml shop.{key}", ex.name);
            }
        }
    }
}
