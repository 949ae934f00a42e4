//! Tenant documents: the JSON objects an organization stores in its own
//! collection, and how they are listed.

use std::fmt;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::errors::DocumentError;
use crate::ids::DocumentId;
use crate::values::ValueError;

/// Why a JSON value is not a valid tenant document (or filter).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidDocument {
    /// Where the problem is, as a JSON Pointer (RFC 6901) into the value,
    /// e.g. `/address/$city`; empty for the whole value.
    pub path: String,
    /// What is wrong there (never echoes a value).
    pub reason: &'static str,
}

/// A tenant document's content: a JSON object that MongoDB (or SQLite) can
/// store and give back unchanged.
///
/// Rules, checked at every depth: field names do not start with `$` and
/// contain no `.` or NUL (MongoDB would read them as operators or paths);
/// integers fit in 64 bits (signed), and so does every number (see
/// `check_number`); nesting is at most
/// [`DocumentBody::MAX_DEPTH`] levels. Field order is kept.
///
/// A body read back from a store that keeps the JSON text it was given
/// ([`DocumentBody::from_stored_json`]) keeps that text: it is serialized
/// as it is and parsed only if its fields are asked for, so listing
/// documents does not parse and write every body again.
#[derive(Clone, Debug)]
pub struct DocumentBody(Repr);

#[derive(Clone, Debug)]
enum Repr {
    /// Parsed and checked.
    Fields(Map<String, Value>),
    /// The compact JSON text of a body checked when it was stored, with its
    /// fields once parsed.
    Stored {
        text: Box<RawValue>,
        fields: OnceLock<Map<String, Value>>,
    },
}

impl DocumentBody {
    /// Deepest accepted nesting of objects and arrays (MongoDB allows 100).
    pub const MAX_DEPTH: usize = 100;

    /// Checks `value` against the rules above.
    pub fn parse(value: Value) -> Result<Self, InvalidDocument> {
        match value {
            Value::Object(map) => {
                let mut path = String::new();
                check_object(&map, &mut path, 1)?;
                Ok(Self(Repr::Fields(map)))
            }
            _ => Err(InvalidDocument {
                path: String::new(),
                reason: "a document must be a JSON object",
            }),
        }
    }

    /// A body as a store kept it: `text` is the compact JSON (as
    /// [`serde_json::to_string`] writes it) of a body that was checked
    /// against the rules above when it was stored, so only its syntax and
    /// that it is an object are checked again here.
    ///
    /// # Errors
    /// The text is not JSON, or not a JSON object (a corrupt record).
    pub fn from_stored_json(text: String) -> Result<Self, InvalidDocument> {
        let text = RawValue::from_string(text).map_err(|_| InvalidDocument {
            path: String::new(),
            reason: "a stored document is not valid JSON",
        })?;
        if !text.get().starts_with('{') {
            return Err(InvalidDocument {
                path: String::new(),
                reason: "a document must be a JSON object",
            });
        }
        Ok(Self(Repr::Stored {
            text,
            fields: OnceLock::new(),
        }))
    }

    /// Its size as compact JSON text, in bytes (UTF-8): what
    /// [`crate::OrganizationUsage::bytes`] counts.
    pub fn json_len(&self) -> u64 {
        match &self.0 {
            Repr::Fields(map) => json_len(map),
            Repr::Stored { text, .. } => u64::try_from(text.get().len()).unwrap_or(u64::MAX),
        }
    }

    /// The document's fields.
    pub fn as_map(&self) -> &Map<String, Value> {
        match &self.0 {
            Repr::Fields(map) => map,
            Repr::Stored { text, fields } => fields.get_or_init(|| stored_fields(text)),
        }
    }

    /// The document as a JSON value.
    pub fn into_value(self) -> Value {
        match self.0 {
            Repr::Fields(map) => Value::Object(map),
            Repr::Stored { text, fields } => {
                Value::Object(fields.into_inner().unwrap_or_else(|| stored_fields(&text)))
            }
        }
    }
}

/// The fields of a stored body's text. The text is a JSON object (checked
/// when the body was made), so it parses; an empty map stands in for the
/// impossible failure.
fn stored_fields(text: &RawValue) -> Map<String, Value> {
    serde_json::from_str(text.get()).unwrap_or_default()
}

/// Equal when the fields are (in order, as [`Map`] compares).
impl PartialEq for DocumentBody {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Stored { text: a, .. }, Repr::Stored { text: b, .. }) if a.get() == b.get() => {
                true
            }
            _ => self.as_map() == other.as_map(),
        }
    }
}

/// The JSON object: a stored body's text as it is, byte for byte.
impl Serialize for DocumentBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Fields(map) => map.serialize(serializer),
            Repr::Stored { text, .. } => text.serialize(serializer),
        }
    }
}

/// Whether `name` may be used as a document field name.
pub fn check_field_name(name: &str) -> Result<(), &'static str> {
    if name.starts_with('$') {
        Err("field names must not start with '$'")
    } else if name.contains('.') {
        Err("field names must not contain '.'")
    } else if name.contains('\0') {
        Err("field names must not contain NUL")
    } else {
        Ok(())
    }
}

fn check_object(
    map: &Map<String, Value>,
    path: &mut String,
    depth: usize,
) -> Result<(), InvalidDocument> {
    for (name, value) in map {
        let len = path.len();
        push_pointer_segment(path, name);
        if let Err(reason) = check_field_name(name) {
            return Err(InvalidDocument {
                path: path.clone(),
                reason,
            });
        }
        check_value(value, path, depth)?;
        path.truncate(len);
    }
    Ok(())
}

fn check_value(value: &Value, path: &mut String, depth: usize) -> Result<(), InvalidDocument> {
    match value {
        Value::Object(map) => {
            check_depth(path, depth + 1)?;
            check_object(map, path, depth + 1)
        }
        Value::Array(items) => {
            check_depth(path, depth + 1)?;
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&index.to_string());
                check_value(item, path, depth + 1)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Number(number) => check_number(number).map_err(|reason| InvalidDocument {
            path: path.clone(),
            reason,
        }),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

fn check_depth(path: &str, depth: usize) -> Result<(), InvalidDocument> {
    if depth > DocumentBody::MAX_DEPTH {
        return Err(InvalidDocument {
            path: path.to_owned(),
            reason: "documents may nest objects and arrays at most 100 levels deep",
        });
    }
    Ok(())
}

/// Numbers lie in the signed 64-bit range, -2^63 to 2^63-1. JSON does not
/// tell integers from other numbers (`1e19` is the integer 10^19, and every
/// number beyond 2^53 has no fractional part), so the bound applies to the
/// value whatever its spelling: an integer literal that does not fit is
/// refused rather than rounded to the nearest double. A double equal to
/// -2^63 is refused too: integer literals just below -2^63 round to it.
fn check_number(number: &Number) -> Result<(), &'static str> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    let fits = number.is_i64()
        || (!number.is_u64()
            && number
                .as_f64()
                .is_some_and(|value| -TWO_POW_63 < value && value < TWO_POW_63));
    if fits {
        Ok(())
    } else {
        Err("numbers must be between -2^63 and 2^63-1 (integers fit in 64 bits, signed)")
    }
}

/// Appends `/name` to a JSON Pointer, escaping `~` and `/` (RFC 6901).
fn push_pointer_segment(path: &mut String, name: &str) {
    path.push('/');
    for c in name.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// A stored tenant document.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantDocument {
    /// Assigned by the store; time-ordered.
    pub id: DocumentId,
    /// The content, as given.
    pub body: DocumentBody,
    /// 1 at insertion, incremented by every replacement (the HTTP `ETag`).
    pub revision: u64,
    /// Insertion time (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// Last replacement (millisecond precision).
    pub updated_at: DateTime<Utc>,
}

/// The size of a JSON object as compact JSON text, in bytes (UTF-8): the
/// rule [`DocumentBody::json_len`] and the stores' usage counts share.
pub fn json_len(body: &Map<String, Value>) -> u64 {
    serde_json::to_vec(body).map_or(0, |text| u64::try_from(text.len()).unwrap_or(u64::MAX))
}

/// The optimistic-concurrency rule of conditional writes (`If-Match`
/// carries a revision): a write expecting `expected` may go ahead on a
/// document at revision `current` only when nothing is expected or the two
/// are equal.
///
/// # Errors
/// [`DocumentError::RevisionMismatch`] with the current revision otherwise.
pub fn check_revision(expected: Option<u64>, current: u64) -> Result<(), DocumentError> {
    match expected {
        Some(expected) if expected != current => Err(DocumentError::RevisionMismatch { current }),
        _ => Ok(()),
    }
}

/// A value a top-level field must equal in a listing filter.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterValue {
    /// Equal string.
    String(String),
    /// Numerically equal number (`1` equals `1.0`, as in MongoDB).
    Number(Number),
    /// Equal boolean.
    Bool(bool),
    /// The field is `null` or missing (as in MongoDB).
    Null,
}

/// One equality condition of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldFilter {
    /// A top-level field name (same rules as document field names).
    pub field: String,
    /// The value it must equal.
    pub value: FilterValue,
}

/// How many documents a listing returns at most: 1 to 100, default 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize(u8);

impl PageSize {
    /// The largest page.
    pub const MAX: u8 = 100;

    /// Parses a requested page size.
    pub fn parse(requested: u64) -> Result<Self, ValueError> {
        u8::try_from(requested)
            .ok()
            .filter(|size| (1..=Self::MAX).contains(size))
            .map(Self)
            .ok_or(ValueError::Format("must be between 1 and 100"))
    }

    /// The size.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl Default for PageSize {
    fn default() -> Self {
        Self(20)
    }
}

/// Where a listing continues: just after the document with this creation
/// time and id. Listings are ordered by `(created_at, id)`, which is stable:
/// neither changes after insertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCursor {
    /// Creation time of the last document of the previous page.
    pub created_at: DateTime<Utc>,
    /// Id of the last document of the previous page.
    pub id: DocumentId,
}

impl PageCursor {
    /// The cursor after `document`.
    pub fn after(document: &TenantDocument) -> Self {
        Self {
            created_at: document.created_at,
            id: document.id,
        }
    }

    /// Parses a cursor produced by [`PageCursor::encode`] (opaque to clients).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const INVALID: ValueError = ValueError::Format("is not a cursor returned by this API");
        let (millis, id) = raw.split_once('_').ok_or(INVALID)?;
        let millis: i64 = millis.parse().map_err(|_| INVALID)?;
        let created_at = Utc.timestamp_millis_opt(millis).single().ok_or(INVALID)?;
        let id = id.parse().map_err(|_| INVALID)?;
        Ok(Self { created_at, id })
    }

    /// The cursor as an opaque string.
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.timestamp_millis(),
            self.id.as_uuid().simple()
        )
    }
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// A listing request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DocumentQuery {
    /// Page size.
    pub limit: PageSize,
    /// Continue after this cursor; `None` starts at the beginning.
    pub after: Option<PageCursor>,
    /// Conditions every listed document meets (all of them).
    pub filters: Vec<FieldFilter>,
}

impl DocumentQuery {
    /// Most filters in one listing.
    pub const MAX_FILTERS: usize = 10;

    /// Parses a filter object like `{"status": "active", "age": 30}` into
    /// equality conditions on top-level fields (scalar values only).
    pub fn parse_filters(value: Value) -> Result<Vec<FieldFilter>, InvalidDocument> {
        let Value::Object(map) = value else {
            return Err(InvalidDocument {
                path: String::new(),
                reason: "the filter must be a JSON object of field names and values",
            });
        };
        if map.len() > Self::MAX_FILTERS {
            return Err(InvalidDocument {
                path: String::new(),
                reason: "at most 10 fields can be filtered on",
            });
        }
        map.into_iter()
            .map(|(field, value)| {
                let mut path = String::new();
                push_pointer_segment(&mut path, &field);
                let invalid = |reason| InvalidDocument {
                    path: path.clone(),
                    reason,
                };
                if field.is_empty() {
                    return Err(invalid("filter field names must not be empty"));
                }
                check_field_name(&field).map_err(invalid)?;
                let value = match value {
                    Value::String(s) => FilterValue::String(s),
                    Value::Number(n) => {
                        check_number(&n).map_err(invalid)?;
                        FilterValue::Number(n)
                    }
                    Value::Bool(b) => FilterValue::Bool(b),
                    Value::Null => FilterValue::Null,
                    Value::Array(_) | Value::Object(_) => {
                        return Err(invalid(
                            "filter values must be strings, numbers, booleans or null",
                        ))
                    }
                };
                Ok(FieldFilter { field, value })
            })
            .collect()
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentPage {
    /// The documents, in `(created_at, id)` order.
    pub documents: Vec<TenantDocument>,
    /// Where the next page starts; `None` when this is the last page.
    pub next: Option<PageCursor>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_conditional_write_goes_ahead_only_on_the_expected_revision() {
        assert!(check_revision(None, 7).is_ok());
        assert!(check_revision(Some(7), 7).is_ok());
        assert!(matches!(
            check_revision(Some(6), 7),
            Err(DocumentError::RevisionMismatch { current: 7 })
        ));
    }

    #[test]
    fn nested_documents_with_any_json_values_are_accepted_unchanged() {
        let value = json!({
            "name": "Zoë 🚀",
            "count": -9_223_372_036_854_775_808_i64,
            "ratio": 0.1,
            "nested": {"list": [1, "two", null, true, {"deep": []}]},
            "_id": "client ids are just data here"
        });
        let body = DocumentBody::parse(value.clone()).unwrap();
        assert_eq!(body.into_value(), value);
    }

    #[test]
    fn field_names_mongodb_would_misread_are_refused_with_their_path() {
        let cases = [
            (json!({"$set": 1}), "/$set"),
            (json!({"a.b": 1}), "/a.b"),
            (json!({"ok": {"in\u{0}side": 1}}), "/ok/in\u{0}side"),
            (json!({"list": [{"fine": 1}, {"$bad": 2}]}), "/list/1/$bad"),
            (json!({"a/b": {"$x": 1}}), "/a~1b/$x"),
        ];
        for (value, path) in cases {
            let err = DocumentBody::parse(value).unwrap_err();
            assert_eq!(err.path, path);
        }
    }

    #[test]
    fn non_objects_and_oversized_integers_and_deep_nesting_are_refused() {
        assert_eq!(DocumentBody::parse(json!([1])).unwrap_err().path, "");
        let err = DocumentBody::parse(json!({"big": u64::MAX})).unwrap_err();
        assert_eq!(err.path, "/big");
        // Beyond the 64-bit range whatever the spelling (integer literals
        // too large even for u64 are parsed as doubles).
        for text in [
            "9223372036854775808",
            "-9223372036854775809",
            "9611607837184739013531009024",
            "1e19",
            "-4.73122352910183e+131",
            "9.3e18",
            "-9.223372036854775808e18",
        ] {
            let value: Value = serde_json::from_str(&format!(r#"{{"a": [{text}]}}"#)).unwrap();
            assert_eq!(
                DocumentBody::parse(value).unwrap_err().path,
                "/a/0",
                "{text}"
            );
        }
        for text in [
            "9223372036854775807",
            "-9223372036854775808",
            "9.2e18",
            "-9.2e18",
            "0.5",
            "1e-300",
        ] {
            let value: Value = serde_json::from_str(&format!(r#"{{"a": {text}}}"#)).unwrap();
            assert!(DocumentBody::parse(value).is_ok(), "{text}");
        }
        let mut deep = json!(1);
        for _ in 0..DocumentBody::MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(DocumentBody::parse(json!({ "ok": deep.clone() })).is_err());
        let mut shallow = json!(1);
        for _ in 0..DocumentBody::MAX_DEPTH - 1 {
            shallow = json!([shallow]);
        }
        assert!(DocumentBody::parse(json!({ "ok": shallow })).is_ok());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = PageCursor {
            created_at: Utc.timestamp_millis_opt(1_735_689_600_123).unwrap(),
            id: DocumentId::new(),
        };
        assert_eq!(PageCursor::parse(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "abc", "123", "x_y", "1_notauuid"] {
            assert!(PageCursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn page_size_is_1_to_100() {
        assert!(PageSize::parse(0).is_err());
        assert!(PageSize::parse(101).is_err());
        assert_eq!(PageSize::parse(100).unwrap().get(), 100);
        assert_eq!(PageSize::default().get(), 20);
    }

    #[test]
    fn filters_take_scalar_values_on_valid_field_names() {
        let filters = DocumentQuery::parse_filters(
            json!({"status": "active", "age": 30, "vip": true, "gone": null}),
        )
        .unwrap();
        assert_eq!(filters.len(), 4);
        assert_eq!(filters[1].value, FilterValue::Number(30.into()));
        assert!(DocumentQuery::parse_filters(json!({"tags": ["a"]})).is_err());
        assert_eq!(
            DocumentQuery::parse_filters(json!({"$where": 1}))
                .unwrap_err()
                .path,
            "/$where"
        );
        assert!(DocumentQuery::parse_filters(json!("status")).is_err());
        assert!(DocumentQuery::parse_filters(json!({"": 1})).is_err());
    }
}
