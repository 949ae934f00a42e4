//! Tenant documents as stored in an organization's collection, and the
//! conversion of their JSON bodies to BSON and back.
//!
//! Shape: `{_id: <UUID string>, organization_id: <UUID string>, body: {...},
//! revision: <int64>, created_at: Date, updated_at: Date}`. The client's
//! fields live under `body`, so a client field named `_id` or `revision` is
//! just data. While a rename copies the collection, a document also carries
//! [`MOVING`] (see `collection_moves.rs`); the copy strips it.
//!
//! Every document carries its organization's id, and every read, write and
//! copy filters on it ([`owned_by`]): whatever collection a process finds
//! under a name (a late write of a process that lost its lease, a leftover
//! of a former owner of the name), it never takes another organization's
//! documents. Documents written before the field existed have none; they
//! are their collection's owner's (only that organization ever wrote to
//! it), and a rename tags them as it copies them.
//!
//! JSON ↔ BSON is exact: integers are Int64 (read back from Int32 or Int64 as
//! the same JSON integer), other numbers Double (`1.0` stays `1.0`), objects
//! keep their field order.

use mongodb::bson::{self, doc, Bson, Document};
use orgsvc_domain::{
    DocumentBody, DocumentId, FieldFilter, FilterValue, PageCursor, StoreError, TenantDocument,
};
use serde_json::{Map, Number, Value};

use crate::errors::store_error;
use crate::records::to_chrono;

/// The top-level field marking a document that a rename has claimed for
/// copying (its value: the epoch of the rename's lease): writers leave such
/// documents alone.
pub(crate) const MOVING: &str = "moving";

/// The top-level field holding the id of the organization a document
/// belongs to.
pub(crate) const ORGANIZATION_ID: &str = "organization_id";

/// The filter matching documents no rename has claimed.
pub(crate) fn not_moving() -> Document {
    doc! { "$exists": false }
}

/// The condition matching the documents of `org_id`: tagged with it, or
/// untagged (written before tags existed, see the module documentation).
/// Spelled as an `$or` of equality and `$exists: false` rather than MongoDB's
/// equivalent `{$in: [org_id, null]}`, which some wire-compatible servers
/// apply to all but some documents in updates.
pub(crate) fn owned_by(org_id: &str) -> Document {
    doc! { "$or": [
        { ORGANIZATION_ID: org_id },
        { ORGANIZATION_ID: { "$exists": false } },
    ] }
}

/// `filter` restricted to the documents of `org_id`: `{$and: [owned by,
/// one element per condition of filter]}`. One condition per element means
/// the same as MongoDB's implicit conjunction within one element; some
/// wire-compatible servers ignore conditions that follow an operator such
/// as `$or` within one element.
pub(crate) fn of_organization(org_id: &str, filter: Document) -> Document {
    let mut conditions = vec![Bson::Document(owned_by(org_id))];
    conditions.extend(
        filter
            .into_iter()
            .map(|(field, condition)| Bson::Document(doc! { field: condition })),
    );
    doc! { "$and": conditions }
}

/// The condition matching the documents a copy of lease epoch `epoch` has
/// not claimed yet: unclaimed ones, and those an earlier epoch claimed
/// (`true`: before claims carried epochs). Spelled without `$ne`, which
/// some wire-compatible servers do not match against missing fields.
pub(crate) fn not_claimed_by(epoch: i64) -> Document {
    doc! { "$or": [
        { MOVING: { "$exists": false } },
        { MOVING: { "$lt": epoch } },
        { MOVING: true },
    ] }
}

/// The stored form of a document of organization `org_id`.
pub(crate) fn to_stored(document: &TenantDocument, org_id: &str) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": document.id.to_string(),
        ORGANIZATION_ID: org_id,
        "body": body_to_bson(document.body.as_map())?,
        "revision": revision_to_bson(document.revision)?,
        "created_at": bson::DateTime::from_millis(document.created_at.timestamp_millis()),
        "updated_at": bson::DateTime::from_millis(document.updated_at.timestamp_millis()),
    })
}

/// The domain view of a stored document.
pub(crate) fn from_stored(stored: &Document) -> Result<TenantDocument, StoreError> {
    let raw_id = stored
        .get_str("_id")
        .map_err(|e| store_error("a tenant document has no string _id", e))?;
    let corrupt = |field: &str, e: bson::document::ValueAccessError| {
        store_error(format!("tenant document {raw_id} has no valid {field}"), e)
    };
    let id: DocumentId = raw_id
        .parse()
        .map_err(|e| store_error(format!("tenant document id {raw_id:?} is not a UUID"), e))?;
    let body = stored
        .get_document("body")
        .map_err(|e| corrupt("body", e))?;
    let body = DocumentBody::parse(Value::Object(bson_to_map(body)?)).map_err(|e| {
        store_error(
            format!("tenant document {raw_id} has a body the API would refuse"),
            e,
        )
    })?;
    Ok(TenantDocument {
        id,
        body,
        revision: stored_revision(stored)?,
        created_at: to_chrono(
            *stored
                .get_datetime("created_at")
                .map_err(|e| corrupt("created_at", e))?,
        )?,
        updated_at: to_chrono(
            *stored
                .get_datetime("updated_at")
                .map_err(|e| corrupt("updated_at", e))?,
        )?,
    })
}

/// A stored document's revision (Int64, or Int32 from servers that narrow
/// small integers).
pub(crate) fn stored_revision(stored: &Document) -> Result<u64, StoreError> {
    let revision = match stored.get("revision") {
        Some(Bson::Int64(r)) => u64::try_from(*r).ok(),
        Some(Bson::Int32(r)) => u64::try_from(*r).ok(),
        _ => None,
    };
    revision.filter(|r| *r >= 1).ok_or_else(|| {
        StoreError::msg(format!(
            "tenant document {:?} has no valid revision",
            stored.get("_id")
        ))
    })
}

/// A revision as stored (Int64).
pub(crate) fn revision_to_bson(revision: u64) -> Result<Bson, StoreError> {
    i64::try_from(revision)
        .map(Bson::Int64)
        .map_err(|e| store_error("a document revision exceeds 64 bits", e))
}

/// The listing filter: the documents of `org_id`, every field filter on
/// `body.<field>`, with MongoDB's equality (numbers compare numerically,
/// `null` matches null or missing; arrays match when an element is equal,
/// as MongoDB does), and the documents after the cursor in
/// `(created_at, _id)` order.
pub(crate) fn listing_filter(
    org_id: &str,
    filters: &[FieldFilter],
    after: Option<&PageCursor>,
) -> Result<Document, StoreError> {
    let mut conditions: Vec<Bson> = Vec::with_capacity(filters.len() + 2);
    conditions.push(Bson::Document(owned_by(org_id)));
    for filter in filters {
        let value = match &filter.value {
            FilterValue::String(s) => Bson::String(s.clone()),
            FilterValue::Number(n) => number_to_bson(n)?,
            FilterValue::Bool(b) => Bson::Boolean(*b),
            // `{f: {$in: [null]}}` is MongoDB's `{f: null}` (null or
            // missing); some wire-compatible servers only honour that form
            // inside `$and`.
            FilterValue::Null => Bson::Document(doc! { "$in": [Bson::Null] }),
        };
        conditions.push(Bson::Document(
            doc! { format!("body.{}", filter.field): value },
        ));
    }
    if let Some(cursor) = after {
        let created_at = bson::DateTime::from_millis(cursor.created_at.timestamp_millis());
        conditions.push(Bson::Document(doc! {
            "$or": [
                { "created_at": { "$gt": created_at } },
                { "created_at": created_at, "_id": { "$gt": cursor.id.to_string() } },
            ]
        }));
    }
    Ok(doc! { "$and": conditions })
}

/// The listing order.
pub(crate) fn listing_sort() -> Document {
    doc! { "created_at": 1, "_id": 1 }
}

fn body_to_bson(map: &Map<String, Value>) -> Result<Document, StoreError> {
    let mut document = Document::new();
    for (name, value) in map {
        document.insert(name.clone(), json_to_bson(value)?);
    }
    Ok(document)
}

fn json_to_bson(value: &Value) -> Result<Bson, StoreError> {
    Ok(match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => number_to_bson(n)?,
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(
            items
                .iter()
                .map(json_to_bson)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Value::Object(map) => Bson::Document(body_to_bson(map)?),
    })
}

fn number_to_bson(n: &Number) -> Result<Bson, StoreError> {
    if let Some(i) = n.as_i64() {
        Ok(Bson::Int64(i))
    } else if n.is_f64() {
        n.as_f64()
            .map(Bson::Double)
            .ok_or_else(|| StoreError::msg("a JSON number has no double value"))
    } else {
        // DocumentBody and DocumentQuery refuse integers beyond i64.
        Err(StoreError::msg("a JSON integer does not fit in 64 bits"))
    }
}

fn bson_to_map(document: &Document) -> Result<Map<String, Value>, StoreError> {
    let mut map = Map::with_capacity(document.len());
    for (name, value) in document {
        map.insert(name.clone(), bson_to_json(value)?);
    }
    Ok(map)
}

fn bson_to_json(value: &Bson) -> Result<Value, StoreError> {
    Ok(match value {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(i) => Value::Number((*i).into()),
        Bson::Int64(i) => Value::Number((*i).into()),
        Bson::Double(d) => Value::Number(
            Number::from_f64(*d)
                .ok_or_else(|| StoreError::msg("a tenant document holds a non-finite number"))?,
        ),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(items) => Value::Array(
            items
                .iter()
                .map(bson_to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Bson::Document(d) => Value::Object(bson_to_map(d)?),
        other => {
            return Err(StoreError::msg(format!(
                "a tenant document holds a BSON {:?}, which has no JSON form here",
                other.element_type()
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;

    const ORG: &str = "0190b0c4-0000-7000-8000-000000000001";

    fn document(value: Value) -> TenantDocument {
        let at = Utc.timestamp_millis_opt(1_735_689_600_123).unwrap();
        TenantDocument {
            id: DocumentId::new(),
            body: DocumentBody::parse(value).unwrap(),
            revision: 1,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn bodies_round_trip_with_number_kinds_and_field_order() {
        let value = json!({
            "zeta": 1,
            "alpha": i64::MIN,
            "max": i64::MAX,
            "float_one": 1.0,
            "negative_zero": -0.0,
            "ratio": 0.1,
            "tiny": 1.5e-300,
            "nested": {"list": [1, "two", null, true, {"deep": [[]]}], "empty": {}},
            "_id": "data",
            "revision": "data too"
        });
        let original = document(value.clone());
        let stored = to_stored(&original, ORG).unwrap();
        assert_eq!(stored.get_str("organization_id").unwrap(), ORG);
        let body = stored.get_document("body").unwrap();
        assert_eq!(body.get("zeta"), Some(&Bson::Int64(1)));
        assert_eq!(body.get("float_one"), Some(&Bson::Double(1.0)));
        let keys: Vec<_> = body.keys().cloned().collect();
        assert_eq!(keys[..3], ["zeta", "alpha", "max"]);

        let back = from_stored(&stored).unwrap();
        assert_eq!(back, original);
        assert_eq!(
            serde_json::to_string(&back.body.into_value()).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }

    #[test]
    fn narrowed_integers_read_back_as_the_same_json_integers() {
        let mut stored = to_stored(&document(json!({"n": 5})), ORG).unwrap();
        stored.insert("revision", Bson::Int32(3));
        stored.insert("body", doc! { "n": Bson::Int32(5) });
        let back = from_stored(&stored).unwrap();
        assert_eq!(back.revision, 3);
        assert_eq!(back.body.into_value(), json!({"n": 5}));
    }

    #[test]
    fn corrupt_documents_are_store_errors() {
        let good = to_stored(&document(json!({})), ORG).unwrap();
        for (field, value) in [
            ("_id", Bson::Int32(1)),
            ("revision", Bson::Int64(0)),
            ("created_at", Bson::String("2025".into())),
            (
                "body",
                Bson::Document(doc! { "when": bson::DateTime::now() }),
            ),
            ("body", Bson::Document(doc! { "x": f64::NAN })),
        ] {
            let mut bad = good.clone();
            bad.insert(field, value);
            assert!(from_stored(&bad).is_err(), "{field}");
        }
    }

    #[test]
    fn organization_filters_put_each_condition_in_its_own_element() {
        let mut filter = not_claimed_by(3);
        filter.insert("_id", "d1");
        assert_eq!(
            of_organization(ORG, filter),
            doc! { "$and": [
                owned_by(ORG),
                { "$or": [
                    { MOVING: { "$exists": false } },
                    { MOVING: { "$lt": 3_i64 } },
                    { MOVING: true },
                ] },
                { "_id": "d1" },
            ] }
        );
    }

    #[test]
    fn listing_filter_nests_fields_under_body_and_continues_after_the_cursor() {
        let filters = orgsvc_domain::DocumentQuery::parse_filters(
            json!({"status": "a", "age": 30, "ratio": 0.5, "vip": true, "gone": null}),
        )
        .unwrap();
        let cursor = PageCursor {
            created_at: Utc.timestamp_millis_opt(1_000).unwrap(),
            id: DocumentId::new(),
        };
        let filter = listing_filter(ORG, &filters, Some(&cursor)).unwrap();
        let at = bson::DateTime::from_millis(1_000);
        assert_eq!(
            filter,
            doc! { "$and": [
                { "$or": [
                    { "organization_id": ORG },
                    { "organization_id": { "$exists": false } },
                ] },
                { "body.status": "a" },
                { "body.age": 30_i64 },
                { "body.ratio": 0.5 },
                { "body.vip": true },
                { "body.gone": { "$in": [Bson::Null] } },
                { "$or": [
                    { "created_at": { "$gt": at } },
                    { "created_at": at, "_id": { "$gt": cursor.id.to_string() } },
                ] },
            ] }
        );
        assert_eq!(
            listing_filter(ORG, &[], None).unwrap(),
            doc! { "$and": [owned_by(ORG)] }
        );
    }
}
