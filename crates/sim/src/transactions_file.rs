//! `refundd sim --transactions FILE`: a shop's own transactions, as the shop
//! exports them (a JSON array, or CSV with a header), read into the
//! simulator's `SimTx` before it answers, so that a rehearsal against the
//! shop's own orders takes one command. Every row is checked here, at the
//! boundary; bad rows are refused together, each named by file, line and field.

use std::collections::HashMap;
use std::path::Path;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::ledger::SimTx;
use crate::ctbc::types::{AuthCode, Currency, MerId, OrderNo, TxState, Xid};

/// The columns (CSV) or keys (JSON) of a transaction; `currency` and
/// `mer_id` (the merchant it belongs to) may be left out.
const REQUIRED: [&str; 5] = ["order_no", "xid", "auth_code", "amount", "state"];
const OPTIONAL: [&str; 2] = ["currency", "mer_id"];
const COLUMNS: &str = "order_no, xid, auth_code, amount, state and optionally currency and mer_id";

/// How many problems an error lists before it counts the rest.
const LISTED: usize = 20;

/// One row that cannot be loaded, or a problem of the whole file at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: usize,
    /// The column or key at fault; `None` for the row or the file as a whole.
    pub field: Option<String>,
    pub problem: String,
}

impl RowProblem {
    fn at(line: usize, field: Option<&str>, problem: impl Into<String>) -> Self {
        Self {
            line,
            field: field.map(str::to_string),
            problem: problem.into(),
        }
    }
}

/// Why `--transactions FILE` was refused; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TransactionsFileError {
    #[error("--transactions {path}: cannot read it ({source}); check the path and that refundd may read the file")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("--transactions {path}: line {line} is not UTF-8 text; save the file as UTF-8 (\"CSV UTF-8\" in a spreadsheet)")]
    NotUtf8 { path: String, line: usize },
    #[error("--transactions {path}: {}", listed(.path, .problems))]
    Refused {
        path: String,
        problems: Vec<RowProblem>,
    },
}

/// The problems as `FILE:LINE: FIELD: PROBLEM` lines, as compilers name places.
fn listed(path: &str, problems: &[RowProblem]) -> String {
    let mut text = format!(
        "{}, so nothing was loaded; fix the file and start again (its columns: {COLUMNS}):",
        match problems.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    );
    for p in problems.iter().take(LISTED) {
        let field = p
            .field
            .as_deref()
            .map(|f| format!(" {f}:"))
            .unwrap_or_default();
        text.push_str(&format!("\n  {path}:{}:{field} {}", p.line, p.problem));
    }
    if problems.len() > LISTED {
        text.push_str(&format!("\n  ... and {} more", problems.len() - LISTED));
    }
    text
}

/// Reads the file: every row checked, or every problem named.
pub fn read(path: &Path) -> Result<Vec<SimTx>, TransactionsFileError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TransactionsFileError::Unreadable {
        path: shown.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        TransactionsFileError::NotUtf8 {
            path: shown.clone(),
            line: valid.iter().filter(|b| **b == b'\n').count() + 1,
        }
    })?;
    parse(&text).map_err(|problems| TransactionsFileError::Refused {
        path: shown,
        problems,
    })
}

/// A row as read, before its checks: where it starts and its fields as text.
struct RawRow {
    line: usize,
    fields: Vec<(String, String)>,
}

impl RawRow {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Reads transactions from a JSON array (text starting with `[`) or CSV with
/// a header; every problem of every row is reported, not only the first.
pub fn parse(text: &str) -> Result<Vec<SimTx>, Vec<RowProblem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rows = if text.trim_start().starts_with(['[', '{']) {
        json_rows(text)?
    } else {
        csv_rows(text)?
    };
    if rows.is_empty() {
        return Err(vec![RowProblem::at(1, None, "holds no transactions")]);
    }
    let mut problems = Vec::new();
    let mut txs = Vec::with_capacity(rows.len());
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        match checked_row(row) {
            Ok(tx) => match first_line.get(&tx.order_no) {
                Some(first) => problems.push(RowProblem::at(
                    row.line,
                    Some("order_no"),
                    format!("{:?} is on line {first} already; the bank keeps one transaction per order number", tx.order_no),
                )),
                None => {
                    first_line.insert(tx.order_no.clone(), row.line);
                    txs.push(tx);
                }
            },
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(txs)
    } else {
        Err(problems)
    }
}

/// The elements of a JSON array, each with the line it starts on.
fn json_rows(text: &str) -> Result<Vec<RawRow>, Vec<RowProblem>> {
    if text.trim_start().starts_with('{') {
        return Err(vec![RowProblem::at(
            1,
            None,
            "a JSON file holds an array of transactions: [{\"order_no\": ...}, ...]",
        )]);
    }
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
        vec![RowProblem::at(
            e.line(),
            None,
            format!("not valid JSON: {e}"),
        )]
    })?;
    let mut rows = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for item in items {
        match json_row(line_of(text, item.get()), item.get()) {
            Ok(row) => rows.push(row),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// One element of the array: an object whose values are text or numbers.
fn json_row(line: usize, json: &str) -> Result<RawRow, Vec<RowProblem>> {
    let object: Map<String, Value> = serde_json::from_str(json).map_err(|_| {
        vec![RowProblem::at(
            line,
            None,
            "each transaction is an object: {\"order_no\": ..., \"xid\": ..., ...}",
        )]
    })?;
    let mut fields = Vec::with_capacity(object.len());
    let mut problems = Vec::new();
    for (key, value) in object {
        match value {
            Value::String(s) => fields.push((key, s.trim().to_string())),
            Value::Number(n) => fields.push((key, n.to_string())),
            other => problems.push(RowProblem::at(
                line,
                Some(&key),
                format!("{other} is neither text nor a number"),
            )),
        }
    }
    if problems.is_empty() {
        Ok(RawRow { line, fields })
    } else {
        Err(problems)
    }
}

/// The line of `text` on which `part`, a slice of it, starts.
fn line_of(text: &str, part: &str) -> usize {
    let offset = (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// The records of a CSV text under its header, each with its line.
fn csv_rows(text: &str) -> Result<Vec<RawRow>, Vec<RowProblem>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| vec![csv_problem(e)])?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    header_problems(&header)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| vec![csv_problem(e)])?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let values = record.iter().map(str::to_string);
        rows.push(RawRow {
            line,
            fields: header.iter().cloned().zip(values).collect(),
        });
    }
    Ok(rows)
}

/// Columns missing from the header, unknown, or named twice.
fn header_problems(header: &[String]) -> Result<(), Vec<RowProblem>> {
    let mut problems: Vec<RowProblem> = REQUIRED
        .iter()
        .filter(|c| !header.iter().any(|h| h == *c))
        .map(|c| RowProblem::at(1, Some(c), "is missing from the header"))
        .collect();
    for (i, h) in header.iter().enumerate() {
        if !REQUIRED.contains(&h.as_str()) && !OPTIONAL.contains(&h.as_str()) {
            problems.push(RowProblem::at(
                1,
                Some(h),
                "is not a column of a transaction",
            ));
        } else if header[..i].contains(h) {
            problems.push(RowProblem::at(1, Some(h), "is in the header twice"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn csv_problem(e: csv::Error) -> RowProblem {
    let line = e.position().map_or(1, |p| p.line() as usize);
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => RowProblem::at(
            line,
            None,
            format!("has {len} fields where the header has {expected_len}"),
        ),
        _ => RowProblem::at(line, None, format!("not readable as CSV: {e}")),
    }
}

/// One row checked into the simulator's transaction, or all of its problems.
fn checked_row(row: &RawRow) -> Result<SimTx, Vec<RowProblem>> {
    let mut problems: Vec<RowProblem> = row
        .fields
        .iter()
        .filter(|(k, _)| !REQUIRED.contains(&k.as_str()) && !OPTIONAL.contains(&k.as_str()))
        .map(|(k, _)| RowProblem::at(row.line, Some(k), "is not a field of a transaction"))
        .collect();
    let p = &mut problems;
    let order_no = field(row, "order_no", p, |v| {
        OrderNo::parse(v).map_err(|e| e.problem)
    });
    let xid = field(row, "xid", p, |v| Xid::parse(v).map_err(|e| e.problem));
    let auth_code = field(row, "auth_code", p, |v| {
        AuthCode::parse(v).map_err(|e| e.problem)
    });
    let amount = field(row, "amount", p, whole_amount);
    let state = field(row, "state", p, known_state);
    let currency = match row.get("currency") {
        None => Some(Currency::TWD),
        Some(_) => field(row, "currency", p, |v| {
            Currency::parse(v).map_err(|e| e.problem)
        }),
    };
    // Left out: the simulator's first merchant (whether it serves a named
    // one is checked as the books load).
    let mer_id = match row.get("mer_id") {
        None => Some(None),
        Some(_) => field(row, "mer_id", p, |v| {
            MerId::parse(v).map(Some).map_err(|e| e.problem)
        }),
    };
    match (order_no, xid, auth_code, amount, state, currency, mer_id) {
        (Some(o), Some(x), Some(a), Some(amount), Some(state), Some(c), Some(m))
            if problems.is_empty() =>
        {
            let mut tx = transaction(&o, &x, &a, amount, state, c);
            tx.mer_id = m.map(|m| m.to_string());
            Ok(tx)
        }
        _ => Err(problems),
    }
}

/// The field checked by `check`; a problem recorded when it is missing or bad.
fn field<T>(
    row: &RawRow,
    name: &str,
    problems: &mut Vec<RowProblem>,
    check: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    let checked = match row.get(name) {
        None => Err("is missing or empty".to_string()),
        Some(v) => check(v),
    };
    checked
        .map_err(|problem| problems.push(RowProblem::at(row.line, Some(name), problem)))
        .ok()
}

fn whole_amount(v: &str) -> Result<i64, String> {
    match v.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{v:?} is not a whole number of NT$ above 0: write the amount authorised in whole dollars, e.g. 1500 for NT$1,500"
        )),
    }
}

fn known_state(v: &str) -> Result<TxState, String> {
    match TxState::from_code(v) {
        TxState::Unknown(_) => {
            let known = TxState::all_known();
            let codes: Vec<&str> = known.iter().map(TxState::code).collect();
            Err(format!(
                "{v:?} is not a CurrentState code of the protocol; use one of {}",
                codes.join(", ")
            ))
        }
        state => Ok(state),
    }
}

/// The transaction as the bank would show it: money of a cancelled
/// authorisation (0) or a refund (20, 21, 22) counts as already back whole.
fn transaction(
    order_no: &OrderNo,
    xid: &Xid,
    auth_code: &AuthCode,
    amount: i64,
    state: TxState,
    currency: Currency,
) -> SimTx {
    let back = match state {
        TxState::AuthCancelled => (0, amount),
        TxState::RefundSettling | TxState::RefundBatchRunning | TxState::RefundSettled => {
            (amount, amount)
        }
        _ => (0, 0),
    };
    let mut tx = SimTx::new(
        order_no.as_str(),
        xid.as_str(),
        auth_code.as_str(),
        amount,
        state,
    );
    tx.currency = currency.code;
    (tx.refunded_amount, tx.returned_amount) = back;
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctbc::types::TxState;

    fn problems(text: &str) -> Vec<RowProblem> {
        parse(text).unwrap_err()
    }

    fn at(line: usize, field: &str) -> impl Fn(&RowProblem) -> bool + '_ {
        move |p| p.line == line && p.field.as_deref() == Some(field)
    }

    #[test]
    fn csv_with_a_header_reads_into_transactions() {
        let text = "order_no,xid,auth_code,amount,state\n\
                    A20261127001,X001,AB1234,1500,10\n\
                    A20261127002, X002 ,CD5678,990,12\n";
        let txs = parse(text).unwrap();
        assert_eq!(
            txs,
            [
                SimTx::new(
                    "A20261127001",
                    "X001",
                    "AB1234",
                    1500,
                    TxState::CapturedNotSettled
                ),
                SimTx::new("A20261127002", "X002", "CD5678", 990, TxState::Settled),
            ]
        );
    }

    #[test]
    fn csv_columns_in_any_order_with_a_currency_a_bom_and_crlf() {
        let text = "\u{feff}state,amount,currency,auth_code,xid,order_no\r\n1,300,901,A1,X1,O1\r\n";
        assert_eq!(
            parse(text).unwrap(),
            [SimTx::new("O1", "X1", "A1", 300, TxState::Authorised)]
        );
    }

    #[test]
    fn json_takes_numbers_or_text() {
        let text = r#"[
            {"order_no": "O1", "xid": "X1", "auth_code": "A1", "amount": 1500, "state": 1},
            {"order_no": "O2", "xid": "X2", "auth_code": "A2", "amount": "800", "state": "-1", "currency": 901}
        ]"#;
        assert_eq!(
            parse(text).unwrap(),
            [
                SimTx::new("O1", "X1", "A1", 1500, TxState::Authorised),
                SimTx::new("O2", "X2", "A2", 800, TxState::AuthFailed),
            ]
        );
    }

    #[test]
    fn a_merchant_may_be_named() {
        let text = "order_no,xid,auth_code,amount,state,mer_id\nO1,X1,A1,300,12,7654321\nO2,X2,A2,400,12,\n";
        let txs = parse(text).unwrap();
        let merchants: Vec<Option<&str>> = txs.iter().map(|t| t.mer_id.as_deref()).collect();
        assert_eq!(merchants, [Some("7654321"), None]);
        let p = problems("order_no,xid,auth_code,amount,state,mer_id\nO1,X1,A1,300,12,76a\n");
        assert!(p.iter().any(at(2, "mer_id")), "{p:?}");
    }

    #[test]
    fn money_already_back_is_loaded_as_back() {
        let text = "order_no,xid,auth_code,amount,state\nC,X,A,500,0\nR,X,A,700,22\nF,X,A,900,23\n";
        let txs = parse(text).unwrap();
        let back = |tx: &SimTx| (tx.refunded_amount, tx.returned_amount);
        assert_eq!(back(&txs[0]), (0, 500), "cancelled whole");
        assert_eq!(back(&txs[1]), (700, 700), "refunded whole");
        assert_eq!(
            back(&txs[2]),
            (0, 0),
            "a refund that failed gave nothing back"
        );
    }

    #[test]
    fn a_bad_csv_row_is_named_by_line_and_field() {
        let text = "order_no,xid,auth_code,amount,state\n\
                    O1,X1,A1,1500,10\n\
                    O2,X2,A2,15.5,10\n\
                    O-3,X3,A3,100,7\n";
        let p = problems(text);
        assert_eq!(p.len(), 3, "{p:?}");
        let amount = p.iter().find(|p| at(3, "amount")(p)).unwrap();
        assert!(
            amount.problem.contains("15.5") && amount.problem.contains("whole"),
            "{amount:?}"
        );
        assert!(p.iter().any(at(4, "order_no")), "{p:?}");
        let state = p.iter().find(|p| at(4, "state")(p)).unwrap();
        assert!(state.problem.contains("CurrentState"), "{state:?}");
    }

    #[test]
    fn a_bad_json_row_is_named_by_its_line() {
        let text = "[\n  {\"order_no\": \"O1\", \"xid\": \"X1\", \"auth_code\": \"A1\", \"amount\": 1, \"state\": 1},\n  {\"order_no\": \"O2\", \"xid\": \"X2\",\n   \"auth_code\": \"A2\", \"amount\": -5, \"state\": 1}\n]";
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(at(3, "amount")(&p[0]), "{p:?}");
    }

    #[test]
    fn missing_and_unknown_columns_are_named() {
        let p = problems("order_no,xid,amount,state,colour\nO1,X1,1,1,red\n");
        assert!(p.iter().any(at(1, "auth_code")), "{p:?}");
        assert!(p.iter().any(at(1, "colour")), "{p:?}");
        let p = problems(r#"[{"order_no": "O1", "xid": "X1", "amount": 1, "state": 1}]"#);
        assert!(p.iter().any(at(1, "auth_code")), "{p:?}");
    }

    #[test]
    fn one_order_twice_is_refused() {
        let p = problems("order_no,xid,auth_code,amount,state\nO1,X1,A1,1,1\nO1,X2,A2,2,1\n");
        assert!(
            p.iter()
                .any(|p| at(3, "order_no")(p) && p.problem.contains("line 2")),
            "{p:?}"
        );
    }

    #[test]
    fn the_file_is_named_with_each_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.csv");
        std::fs::write(
            &path,
            "order_no,xid,auth_code,amount,state\nO1,X1,A1,1500.5,10\n",
        )
        .unwrap();
        let e = read(&path).unwrap_err().to_string();
        let place = format!("{}:2: amount: ", path.display());
        assert!(
            e.starts_with("--transactions ") && e.contains(&place),
            "{e}"
        );
        // A spreadsheet's Big5 export: named by the line it starts failing on.
        std::fs::write(
            &path,
            b"order_no,xid,auth_code,amount,state\nO1,X1,A1,1,1,\xa5\xd3\n",
        )
        .unwrap();
        let e = read(&path).unwrap_err();
        assert!(
            matches!(e, TransactionsFileError::NotUtf8 { line: 2, .. }),
            "{e}"
        );
        let e = read(&dir.path().join("missing.csv")).unwrap_err();
        assert!(e.to_string().contains("missing.csv"), "{e}");
    }

    #[test]
    fn broken_files_are_named_by_line() {
        let p = problems("[\n{\"order_no\": \"O1\",\n}\n]");
        assert_eq!((p[0].line, p[0].field.as_deref()), (3, None), "{p:?}");
        let p = problems("{\"order_no\": \"O1\"}");
        assert!(p[0].problem.contains("array"), "{p:?}");
        let p = problems("order_no,xid,auth_code,amount,state\nO1,X1,A1,1\n");
        assert_eq!(p[0].line, 2, "{p:?}");
        assert!(!problems("order_no,xid,auth_code,amount,state\n").is_empty());
        assert!(!problems("[]").is_empty());
    }
}
