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
//! copy filters on it: whatever collection a process finds under a name (a
//! late write of a process that lost its lease, a leftover of a former
//! owner of the name), it never takes another organization's documents.
//! Documents written before the field existed have none; they are their
//! collection's owner's (only that organization ever wrote to it), and a
//! rename tags them as it copies them.
//!
//! # The shared layout, and the one place that scopes
//!
//! An organization in the shared layout (issue #16) keeps its documents in
//! `tenant_documents` beside every other such organization's, in the same
//! shape plus [`SHARED_ORDER_ID`]. [`TenantScope`] is the only way the
//! adapter reaches tenant documents: built from the organization's record
//! (its id, layout and logical collection), it names the collection and
//! makes every filter, insert and copy of that organization's: in the
//! shared collection ownership is strictly `organization_id == id` (an
//! untagged document is nobody's there), in a collection of its own it also
//! admits the untagged documents written before tags existed. The filter
//! helpers below are private to this module, so no query can skip it.
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
use crate::records::{to_chrono, OrgDoc, StoredLayout};

/// The top-level field marking a document that a rename has claimed for
/// copying (its value: the epoch of the rename's lease): writers leave such
/// documents alone.
pub(crate) const MOVING: &str = "moving";

/// The top-level field holding the id of the organization a document
/// belongs to.
pub(crate) const ORGANIZATION_ID: &str = "organization_id";

/// The top-level field of documents in the shared collection holding a
/// copy of their `_id`: the listing orders by `(created_at, id)` there, so
/// that the listing index `{organization_id: 1, created_at: 1, id: 1}`
/// (migration 0011) needs no `_id` inside a compound key, which some
/// wire-compatible servers cannot maintain (the audit log does the same).
/// Copies out of the shared collection drop it.
pub(crate) const SHARED_ORDER_ID: &str = "id";

/// One organization's documents: the collection that holds them and the
/// condition every query on them carries (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TenantScope {
    org_id: String,
    layout: StoredLayout,
    collection: String,
}

impl TenantScope {
    /// The scope of the organization as its record places it now.
    pub(crate) fn of(record: &OrgDoc) -> Self {
        Self::new(&record.id, record.layout, &record.collection)
    }

    /// The scope of organization `org_id` in `layout`, whose logical
    /// collection is `logical` (`org_<canonical name>`).
    pub(crate) fn new(org_id: &str, layout: StoredLayout, logical: &str) -> Self {
        let collection = match layout {
            StoredLayout::Collection => logical,
            StoredLayout::Shared => orgsvc_domain::SHARED_DOCUMENTS_COLLECTION,
        };
        Self {
            org_id: org_id.to_owned(),
            layout,
            collection: collection.to_owned(),
        }
    }

    /// The collection holding the documents.
    pub(crate) fn collection(&self) -> &str {
        &self.collection
    }

    /// The layout.
    pub(crate) fn layout(&self) -> StoredLayout {
        self.layout
    }

    /// The organization's id.
    pub(crate) fn org_id(&self) -> &str {
        &self.org_id
    }

    /// `filter` restricted to the organization's documents.
    pub(crate) fn filter(&self, filter: Document) -> Document {
        let mut conditions = vec![Bson::Document(self.owned())];
        conditions.extend(
            filter
                .into_iter()
                .map(|(field, condition)| Bson::Document(doc! { field: condition })),
        );
        doc! { "$and": conditions }
    }

    /// Every document of the organization.
    pub(crate) fn all(&self) -> Document {
        self.filter(Document::new())
    }

    /// The stored form of one of the organization's documents.
    pub(crate) fn stored(&self, document: &TenantDocument) -> Result<Document, StoreError> {
        Ok(self.adopt(to_stored(document, &self.org_id)?))
    }

    /// A stored document copied into this scope: the claim of a move
    /// stripped, tagged with the organization, [`SHARED_ORDER_ID`] set in the
    /// shared collection and dropped elsewhere.
    pub(crate) fn adopt(&self, mut document: Document) -> Document {
        document.remove(MOVING);
        document.insert(ORGANIZATION_ID, self.org_id.as_str());
        match self.layout {
            StoredLayout::Shared => {
                if let Some(id) = document.get("_id").cloned() {
                    document.insert(SHARED_ORDER_ID, id);
                }
            }
            StoredLayout::Collection => {
                document.remove(SHARED_ORDER_ID);
            }
        }
        document
    }

    /// The listing filter: the organization's documents, every field filter
    /// on `body.<field>`, with MongoDB's equality (numbers compare
    /// numerically, `null` matches null or missing; arrays match when an
    /// element is equal, as MongoDB does), and the documents after the
    /// cursor in [`TenantScope::listing_sort`] order.
    pub(crate) fn listing_filter(
        &self,
        filters: &[FieldFilter],
        after: Option<&PageCursor>,
    ) -> Result<Document, StoreError> {
        listing_filter(self.owned(), self.order_field(), filters, after)
    }

    /// The listing order: `(created_at, id)`.
    pub(crate) fn listing_sort(&self) -> Document {
        doc! { "created_at": 1, self.order_field(): 1 }
    }

    /// The condition matching the organization's documents: tagged with its
    /// id, or in a collection of its own also untagged.
    fn owned(&self) -> Document {
        match self.layout {
            StoredLayout::Collection => owned_by(&self.org_id),
            StoredLayout::Shared => doc! { ORGANIZATION_ID: self.org_id.as_str() },
        }
    }

    /// The field holding the document id in the listing order.
    fn order_field(&self) -> &'static str {
        match self.layout {
            StoredLayout::Collection => "_id",
            StoredLayout::Shared => SHARED_ORDER_ID,
        }
    }
}

/// The filter matching documents no rename has claimed.
pub(crate) fn not_moving() -> Document {
    doc! { "$exists": false }
}

/// The condition matching the documents of `org_id` in a collection of its
/// own: tagged with it, or untagged (written before tags existed, see the
/// module documentation). Spelled as an `$or` of equality and `$exists:
/// false` rather than MongoDB's equivalent `{$in: [org_id, null]}`, which
/// some wire-compatible servers apply to all but some documents in updates.
fn owned_by(org_id: &str) -> Document {
    doc! { "$or": [
        { ORGANIZATION_ID: org_id },
        { ORGANIZATION_ID: { "$exists": false } },
    ] }
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

/// The stored form of a document of organization `org_id` (without what
/// [`TenantScope::adopt`] adds).
fn to_stored(document: &TenantDocument, org_id: &str) -> Result<Document, StoreError> {
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

/// The listing filter (see [`TenantScope::listing_filter`]): `{$and:
/// [owned, one element per condition]}`. One condition per element means
/// the same as MongoDB's implicit conjunction within one element; some
/// wire-compatible servers ignore conditions that follow an operator such
/// as `$or` within one element.
fn listing_filter(
    owned: Document,
    order_field: &str,
    filters: &[FieldFilter],
    after: Option<&PageCursor>,
) -> Result<Document, StoreError> {
    let mut conditions: Vec<Bson> = Vec::with_capacity(filters.len() + 2);
    conditions.push(Bson::Document(owned));
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
                { "created_at": created_at, order_field: { "$gt": cursor.id.to_string() } },
            ]
        }));
    }
    Ok(doc! { "$and": conditions })
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
            own(ORG).filter(filter),
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
        let filter = own(ORG).listing_filter(&filters, Some(&cursor)).unwrap();
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
            own(ORG).listing_filter(&[], None).unwrap(),
            doc! { "$and": [owned_by(ORG)] }
        );
        assert_eq!(own(ORG).listing_sort(), doc! { "created_at": 1, "_id": 1 });
    }

    fn own(org: &str) -> TenantScope {
        TenantScope::new(org, StoredLayout::Collection, "org_acme")
    }

    fn shared(org: &str) -> TenantScope {
        TenantScope::new(org, StoredLayout::Shared, "org_acme")
    }

    #[test]
    fn the_shared_scope_admits_only_documents_tagged_with_the_organization() {
        let scope = shared(ORG);
        assert_eq!(scope.collection(), "tenant_documents");
        assert_eq!(own(ORG).collection(), "org_acme");
        assert_eq!(
            scope.filter(doc! { "_id": "d1" }),
            doc! { "$and": [{ "organization_id": ORG }, { "_id": "d1" }] }
        );
        assert_eq!(scope.all(), doc! { "$and": [{ "organization_id": ORG }] });
        let cursor = PageCursor {
            created_at: Utc.timestamp_millis_opt(1_000).unwrap(),
            id: DocumentId::new(),
        };
        let at = bson::DateTime::from_millis(1_000);
        assert_eq!(
            scope.listing_filter(&[], Some(&cursor)).unwrap(),
            doc! { "$and": [
                { "organization_id": ORG },
                { "$or": [
                    { "created_at": { "$gt": at } },
                    { "created_at": at, "id": { "$gt": cursor.id.to_string() } },
                ] },
            ] }
        );
        assert_eq!(scope.listing_sort(), doc! { "created_at": 1, "id": 1 });
    }

    #[test]
    fn documents_adopted_into_a_scope_carry_its_tag_and_order_id_only_where_shared() {
        let original = document(json!({"n": 1}));
        let stored = shared(ORG).stored(&original).unwrap();
        assert_eq!(stored.get_str("organization_id").unwrap(), ORG);
        assert_eq!(stored.get_str("id").unwrap(), original.id.to_string());
        assert_eq!(from_stored(&stored).unwrap(), original);

        let mut claimed = stored.clone();
        claimed.insert(MOVING, 2_i64);
        let other = "0190b0c4-0000-7000-8000-000000000002";
        let back = own(other).adopt(claimed);
        assert!(!back.contains_key(MOVING) && !back.contains_key("id"));
        assert_eq!(back.get_str("organization_id").unwrap(), other);
        assert_eq!(back, own(other).stored(&original).unwrap());
    }
}
