//! The bank's JSON as the POS API writes it: flat objects whose every value is
//! a string, keys in the order sent. Read and written here for the messages
//! (`call_body`, `answer`) and the wire envelope alike.

use serde_json::{Map, Value};

/// The JSON text of a flat object, keys in their insertion order.
pub fn json_text(json: &Map<String, Value>) -> String {
    Value::Object(json.clone()).to_string()
}

/// A string field of an answer, trimmed; `None` when absent, empty or not a
/// string (the bank sends every field as a string).
pub fn text_field<'a>(json: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    match json.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim()),
        _ => None,
    }
}

/// A flat JSON object of strings from `(key, value)` pairs, in that order.
pub fn string_object<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), Value::String(v.into())))
        .collect()
}
