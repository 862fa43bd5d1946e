//! An order number the bank holds more than once, as when a declined card is
//! retried under the same LID-M: the inquiry answer says `QueryCode` "2",
//! shows the latest authorisation at its top level, and lists every record
//! of the order number in `Data`, as XML (root `HyPOS`, one child element per
//! record, each field a child of that). The records are read here as strictly
//! as the top-level fields, within bounds a hostile answer cannot stretch;
//! written here for the simulator; and the record of the order's own
//! authorisation is picked here, by its XID (`Inquiry::for_xid`).

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;
use serde_json::{Map, Value};

use super::answer::{answer_amount, code_field, kept_text, optional};
use super::answer::{AnswerProblem, Inquiry, MAX_SHOWN_CHARS};
use super::bank_text::sanitise;
use super::fields::text_field;
use super::types::{AuthCode, MaskedPan, Money, OrderNo, TxState, Xid};

/// `QueryCode` of an inquiry answer that found several records.
pub const QUERY_CODE_SEVERAL_RECORDS: &str = "2";

/// The root element of `Data`.
pub const DATA_ROOT: &str = "HyPOS";

/// The element the simulator writes for one record. The bank's own name is
/// not documented, so any child element of the root is read as a record.
const RECORD_ELEMENT: &str = "Record";

/// The longest `Data` read, in bytes; a longer one is refused before it is
/// parsed. A record with every field the bank documents is well under 1 KiB,
/// so this holds `MAX_RECORDS` records with room to spare.
pub const MAX_DATA_BYTES: usize = 64 * 1024;

/// The most records of one order number read. The real case is a declined
/// card retried a few times; an answer listing more is refused rather than
/// held, and the order is left for a later attempt (then a person).
pub const MAX_RECORDS: usize = 32;

/// The fields that carry a record's amount, together: ISO 4217 numeric
/// currency, minor units, exponent (the top level's `AuthAmt` is one string).
const AMOUNT_FIELDS: [&str; 3] = ["Currency", "AuthAmt", "Exponent"];

/// One record of an order number the bank holds more than once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InquiryRecord {
    /// `LID-M`: the order number asked about (`Inquiry::check_order`).
    pub order_no: Option<OrderNo>,
    pub state: TxState,
    pub xid: Option<Xid>,
    pub auth_code: Option<AuthCode>,
    /// `Currency`, `AuthAmt` and `Exponent`.
    pub auth_amount: Option<Money>,
    pub pan: Option<MaskedPan>,
    pub eci: Option<String>,
    pub retr_ref: Option<String>,
    pub batch_id: Option<String>,
    pub batch_seq: Option<String>,
}

impl InquiryRecord {
    /// Reads one record's fields as the top-level ones are read: a present
    /// but malformed code, XID, auth code or amount makes the answer unusable.
    fn from_fields(fields: &Map<String, Value>) -> Result<Self, AnswerProblem> {
        let state = code_field(fields, "CurrentState")?
            .map(|code| TxState::from_code(&code))
            .ok_or_else(|| AnswerProblem("it has no CurrentState".into()))?;
        Ok(Self {
            order_no: optional(fields, "LID-M", OrderNo::parse)?,
            state,
            xid: optional(fields, "XID", Xid::parse)?,
            auth_code: optional(fields, "AuthCode", AuthCode::parse)?,
            auth_amount: record_amount(fields)?,
            pan: kept_text(fields, "PAN").map(|pan| MaskedPan::from_bank(&pan)),
            eci: kept_text(fields, "ECI"),
            retr_ref: kept_text(fields, "RetrRef"),
            batch_id: kept_text(fields, "BatchID"),
            batch_seq: kept_text(fields, "BatchSeq"),
        })
    }

    /// The record's fields as the bank writes them, the absent ones left out.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let amount = self.auth_amount.map(|m| {
            let parts = [m.currency_code().into(), m.amount(), m.exponent().into()];
            parts.map(|part| part.to_string())
        });
        let [currency, amount, exponent] = match amount {
            Some(parts) => parts.map(Some),
            None => [None, None, None],
        };
        let fields = [
            ("LID-M", self.order_no.as_ref().map(|v| v.to_string())),
            ("XID", self.xid.as_ref().map(|v| v.to_string())),
            ("PAN", self.pan.as_ref().map(|v| v.as_str().to_string())),
            ("ECI", self.eci.clone()),
            (AMOUNT_FIELDS[0], currency),
            (AMOUNT_FIELDS[1], amount),
            (AMOUNT_FIELDS[2], exponent),
            ("AuthCode", self.auth_code.as_ref().map(|v| v.to_string())),
            ("RetrRef", self.retr_ref.clone()),
            ("CurrentState", Some(self.state.code().to_string())),
            ("BatchID", self.batch_id.clone()),
            ("BatchSeq", self.batch_seq.clone()),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

impl Inquiry {
    /// The answer as it concerns the authorisation `xid`: with several
    /// records, the view of the one carrying that XID (its state, amount and
    /// codes in place of the latest authorisation's). With one record, or
    /// when no record carries it, the answer as it is: a top-level XID other
    /// than the order's then still says the transaction may not be this
    /// order's.
    pub fn for_xid(&self, xid: &Xid) -> Inquiry {
        let Some(record) = self.records.iter().find(|r| r.xid.as_ref() == Some(xid)) else {
            return self.clone();
        };
        // The top level's date and time are the latest authorisation's.
        let latest = self.xid.as_ref() == Some(xid);
        Inquiry {
            state: record.state.clone(),
            xid: record.xid.clone(),
            auth_code: record.auth_code.clone(),
            auth_amount: record.auth_amount,
            pan: record.pan.clone(),
            txn_date: self.txn_date.clone().filter(|_| latest),
            txn_time: self.txn_time.clone().filter(|_| latest),
            eci: record.eci.clone(),
            err_code: self.err_code.clone(),
            records: self.records.clone(),
        }
    }

    /// Checks that every record is of the order number asked about: the MAC
    /// covers only the answer's end, so what it carries is compared.
    pub fn check_order(&self, order_no: &OrderNo) -> Result<(), AnswerProblem> {
        match self
            .records
            .iter()
            .filter_map(|r| r.order_no.as_ref())
            .find(|theirs| *theirs != order_no)
        {
            Some(theirs) => Err(AnswerProblem(format!(
                "a record of the answer's Data is of the order number {theirs}, not the {order_no} asked about: it may answer another call"
            ))),
            None => Ok(()),
        }
    }

    /// The records in a few words for a person: each XID and its state,
    /// oldest first as the bank lists them.
    pub fn records_in_words(&self) -> String {
        let each: Vec<String> = self
            .records
            .iter()
            .map(|r| match &r.xid {
                Some(xid) => format!("XID {xid} in state {}", r.state.code()),
                None => format!("one without XID in state {}", r.state.code()),
            })
            .collect();
        format!(
            "the bank holds {} records of this order number: {}",
            each.len(),
            each.join(", ")
        )
    }
}

/// Reads the records of an answer with `QueryCode` "2" from its `Data`.
pub(super) fn records_of(json: &Map<String, Value>) -> Result<Vec<InquiryRecord>, AnswerProblem> {
    let data = text_field(json, "Data").ok_or_else(|| {
        AnswerProblem("QueryCode 2 says the bank holds several records, but Data is missing".into())
    })?;
    if data.len() > MAX_DATA_BYTES {
        return Err(AnswerProblem(format!(
            "Data is {} bytes long, more than the {MAX_DATA_BYTES} read",
            data.len()
        )));
    }
    let each = parse_data(data).map_err(|why| {
        let shown: String = why.chars().take(4 * MAX_SHOWN_CHARS).collect();
        AnswerProblem(sanitise(&format!("Data is not readable: {shown}")))
    })?;
    if each.is_empty() {
        return Err(AnswerProblem("Data holds no record".into()));
    }
    let records = each
        .iter()
        .enumerate()
        .map(|(i, fields)| {
            InquiryRecord::from_fields(fields)
                .map_err(|p| AnswerProblem(format!("record {} of Data: {}", i + 1, p.0)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    distinct_xids(&records)?;
    Ok(records)
}

/// Two records carrying one XID would leave the order's record ambiguous.
fn distinct_xids(records: &[InquiryRecord]) -> Result<(), AnswerProblem> {
    for (i, record) in records.iter().enumerate() {
        let Some(xid) = &record.xid else { continue };
        if records[..i].iter().any(|r| r.xid.as_ref() == Some(xid)) {
            return Err(AnswerProblem(format!(
                "two records of Data carry the XID {xid}"
            )));
        }
    }
    Ok(())
}

/// A record's amount: all three of `AMOUNT_FIELDS`, or none.
fn record_amount(fields: &Map<String, Value>) -> Result<Option<Money>, AnswerProblem> {
    match AMOUNT_FIELDS.map(|key| text_field(fields, key)) {
        [None, None, None] => Ok(None),
        [Some(currency), Some(amount), Some(exponent)] => {
            // Each part is one run of digits, or the amount has too many parts.
            answer_amount(&format!("{currency} {amount} {exponent}"))
                .map(Some)
                .map_err(|e| {
                    AnswerProblem(sanitise(&format!(
                        "Currency, AuthAmt and Exponent are malformed: {}",
                        e.problem
                    )))
                })
        }
        _ => Err(AnswerProblem(
            "its amount is given in part: Currency, AuthAmt and Exponent go together".into(),
        )),
    }
}

/// `Data` for these records as the bank writes it (the simulator's side),
/// every text escaped by the XML crate.
pub fn data_xml(records: &[InquiryRecord]) -> String {
    let mut xml = format!("<{DATA_ROOT}>");
    for record in records {
        xml.push_str(&format!("<{RECORD_ELEMENT}>"));
        for (name, value) in record.fields() {
            xml.push_str(&format!("<{name}>{}</{name}>", escape(value.as_str())));
        }
        xml.push_str(&format!("</{RECORD_ELEMENT}>"));
    }
    xml.push_str(&format!("</{DATA_ROOT}>"));
    xml
}

/// One record's fields, by element name, as text.
type Fields = Map<String, Value>;

/// Where the reader stands in `Data`.
enum Place {
    BeforeRoot,
    InRoot,
    InRecord(Fields),
    /// In the field named, with its text so far.
    InField(Fields, String, String),
    AfterRoot,
}

/// `Data`'s records, each as a flat object of its fields' text, read by the
/// XML crate: the root, records below it and fields below those, nothing
/// deeper, no DOCTYPE, no entity but XML's own. What is held grows with the
/// input only, which `MAX_DATA_BYTES` bounds, and with at most `MAX_RECORDS`
/// records.
fn parse_data(xml: &str) -> Result<Vec<Fields>, String> {
    let mut reader = Reader::from_str(xml);
    let mut records = Vec::new();
    let mut place = Place::BeforeRoot;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Eof => {
                return match place {
                    Place::AfterRoot => Ok(records),
                    _ => Err(format!("it ends before its {DATA_ROOT} element is closed")),
                }
            }
            event => place = step(place, event, &mut records)?,
        }
    }
}

/// Where one event of `Data` leads.
fn step(place: Place, event: Event<'_>, records: &mut Vec<Fields>) -> Result<Place, String> {
    match (place, event) {
        (place, Event::Comment(_) | Event::PI(_)) => Ok(place),
        (Place::BeforeRoot, Event::Decl(_)) => Ok(Place::BeforeRoot),
        (Place::InField(fields, name, mut text), Event::Text(t)) => {
            text.push_str(&t.xml10_content());
            Ok(Place::InField(fields, name, text))
        }
        (Place::InField(fields, name, mut text), Event::CData(t)) => {
            text.push_str(&t.xml10_content());
            Ok(Place::InField(fields, name, text))
        }
        (Place::InField(fields, name, mut text), Event::GeneralRef(r)) => {
            text.push_str(&resolved(&r)?);
            Ok(Place::InField(fields, name, text))
        }
        (Place::InField(mut fields, name, text), Event::End(_)) => {
            put(&mut fields, name, text)?;
            Ok(Place::InRecord(fields))
        }
        // Layout between elements.
        (place, Event::Text(t)) if t.trim().is_empty() => Ok(place),
        (Place::BeforeRoot, Event::Start(e)) if e.name().as_ref() == DATA_ROOT => Ok(Place::InRoot),
        (Place::BeforeRoot, Event::Empty(e)) if e.name().as_ref() == DATA_ROOT => {
            Ok(Place::AfterRoot)
        }
        (Place::InRoot, Event::Start(_)) => {
            room_for_a_record(records)?;
            Ok(Place::InRecord(Fields::new()))
        }
        (Place::InRoot, Event::Empty(_)) => {
            room_for_a_record(records)?;
            records.push(Fields::new());
            Ok(Place::InRoot)
        }
        (Place::InRoot, Event::End(_)) => Ok(Place::AfterRoot),
        (Place::InRecord(fields), Event::Start(e)) => {
            let name = e.name().as_ref().to_string();
            Ok(Place::InField(fields, name, String::new()))
        }
        (Place::InRecord(mut fields), Event::Empty(e)) => {
            put(&mut fields, e.name().as_ref().to_string(), String::new())?;
            Ok(Place::InRecord(fields))
        }
        (Place::InRecord(fields), Event::End(_)) => {
            records.push(fields);
            Ok(Place::InRoot)
        }
        (place, event) => Err(unexpected(&place, &event)),
    }
}

fn room_for_a_record(records: &[Fields]) -> Result<(), String> {
    match records.len() < MAX_RECORDS {
        true => Ok(()),
        false => Err(format!("it lists more than {MAX_RECORDS} records")),
    }
}

/// A field's text, once: a field given twice makes the record ambiguous.
fn put(fields: &mut Fields, name: String, text: String) -> Result<(), String> {
    if fields.contains_key(&name) {
        return Err(format!("a record has the field {name} twice"));
    }
    fields.insert(name, Value::String(text));
    Ok(())
}

/// A character reference, or one of XML's five entities; no other entity
/// exists in `Data`.
fn resolved(reference: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    resolve_predefined_entity(reference)
        .map(str::to_string)
        .ok_or_else(|| format!("the entity &{}; is not XML's own", &**reference))
}

fn unexpected(place: &Place, event: &Event<'_>) -> String {
    let what = match event {
        Event::Start(e) | Event::Empty(e) => format!("the element <{}>", e.name().as_ref()),
        Event::End(e) => format!("the end tag </{}>", e.name().as_ref()),
        Event::DocType(_) => "a DOCTYPE".to_string(),
        Event::Decl(_) => "an XML declaration".to_string(),
        _ => "text".to_string(),
    };
    let place = match place {
        Place::BeforeRoot => format!("where its {DATA_ROOT} root element belongs"),
        Place::InRoot => "between records".to_string(),
        Place::InRecord(_) => "between a record's fields".to_string(),
        Place::InField(..) => "inside a field".to_string(),
        Place::AfterRoot => format!("after its {DATA_ROOT} root element"),
    };
    format!("{what} {place}")
}

#[cfg(test)]
mod tests;
