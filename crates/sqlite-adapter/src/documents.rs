//! Tenant documents: the rows of `tenant_documents` carrying the
//! organization's id (migration `0010_shared_documents`).
//!
//! Isolation: every statement on `tenant_documents` names the organization
//! by the `organization_id = ?1` this module's [`SCOPE`] puts first, so a
//! document id is only ever looked up among that organization's rows (an
//! id of another organization's document is `NotFound`), and the primary key
//! `(organization_id, id)` and the listing index `(organization_id,
//! created_at, id)` are both searched by it. Every operation also checks, in
//! the same transaction, that the organization exists
//! (`OrganizationNotFound` otherwise).
//!
//! Why [`DocumentError::Busy`] never happens here: a rename changes only
//! the organization's row (no document moves) and a delete removes the
//! organization and its rows in one transaction on the writer connection,
//! which runs every document write too. Reads run on reader connections
//! inside one read transaction, so the existence check and the rows they
//! read belong to the same snapshot of the file. Nothing can be lost or
//! refused.
//!
//! Bodies are stored as the JSON text `serde_json` produces for them (with
//! `preserve_order`): field order and number formatting come back exactly.

use orgsvc_domain::{
    check_revision, DocumentBody, DocumentError, DocumentId, DocumentPage, DocumentQuery,
    FieldFilter, FilterValue, OrganizationId, PageCursor, StoreError, TenantDocument,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::connection::{begin, begin_read, commit};
use crate::rows::{self, DocumentRow, DOCUMENT_COLUMNS};

/// The condition every statement on `tenant_documents` starts with, the
/// organization's id bound as `?1`: the one place tenants are kept apart.
const SCOPE: &str = "organization_id = ?1";

/// Stores a new document with a fresh id, revision 1 and
/// `created_at == updated_at`.
pub(crate) fn insert(
    connection: &mut Connection,
    organization: OrganizationId,
    body: DocumentBody,
) -> Result<TenantDocument, DocumentError> {
    const WHAT: &str = "inserting a document";
    let doc = serialize(&body)?;
    let transaction = begin(connection, WHAT)?;
    require_organization(&transaction, organization)?;
    // Assigned under the writer lock, so ids and timestamps grow in the
    // order documents are inserted.
    let id = DocumentId::new();
    let now = rows::now();
    transaction
        .prepare_cached(
            "INSERT INTO tenant_documents (organization_id, id, doc, revision, created_at, \
             updated_at) VALUES (?1, ?2, ?3, 1, ?4, ?4)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                organization.to_string(),
                id.to_string(),
                doc,
                rows::millis(now)
            ])
        })
        .map_err(|e| StoreError::new(WHAT, e))?;
    commit(transaction, WHAT)?;
    Ok(TenantDocument {
        id,
        body,
        revision: 1,
        created_at: now,
        updated_at: now,
    })
}

/// The organization's document with this id.
pub(crate) fn find(
    connection: &Connection,
    organization: OrganizationId,
    id: DocumentId,
) -> Result<TenantDocument, DocumentError> {
    const WHAT: &str = "reading a document";
    let transaction = begin_read(connection, WHAT)?;
    require_organization(&transaction, organization)?;
    let row = transaction
        .prepare_cached(&format!(
            "SELECT {DOCUMENT_COLUMNS} FROM tenant_documents WHERE {SCOPE} AND id = ?2"
        ))
        .and_then(|mut statement| {
            statement
                .query_row(
                    [organization.to_string(), id.to_string()],
                    DocumentRow::read,
                )
                .optional()
        })
        .map_err(|e| StoreError::new(WHAT, e))?
        .ok_or(DocumentError::NotFound)?;
    // Ending a read transaction cannot lose anything; dropping rolls it back.
    drop(transaction);
    Ok(row.into_document()?)
}

/// One page of the organization's documents meeting every filter, in
/// `(created_at, id)` order (the listing index), after the cursor.
pub(crate) fn list(
    connection: &Connection,
    organization: OrganizationId,
    query: &DocumentQuery,
) -> Result<DocumentPage, DocumentError> {
    const WHAT: &str = "listing documents";
    let transaction = begin_read(connection, WHAT)?;
    require_organization(&transaction, organization)?;
    let limit = query.limit.get();
    let (sql, parameters) = listing_sql(organization, query, limit)?;
    let found: Vec<DocumentRow> = transaction
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_map(params_from_iter(parameters), DocumentRow::read)?
                .collect()
        })
        .map_err(|e| StoreError::new(WHAT, e))?;
    drop(transaction);
    let more = found.len() > limit;
    let documents = found
        .into_iter()
        .take(limit)
        .map(DocumentRow::into_document)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        documents.last().map(PageCursor::after)
    } else {
        None
    };
    Ok(DocumentPage { documents, next })
}

/// Replaces the document's body, increments its revision and sets
/// `updated_at`, unless the stored revision is not `expected_revision`.
pub(crate) fn replace(
    connection: &mut Connection,
    organization: OrganizationId,
    id: DocumentId,
    body: DocumentBody,
    expected_revision: Option<u64>,
) -> Result<TenantDocument, DocumentError> {
    const WHAT: &str = "replacing a document";
    let doc = serialize(&body)?;
    let transaction = begin(connection, WHAT)?;
    require_organization(&transaction, organization)?;
    let current = current_state(&transaction, organization, id)?;
    current.check(expected_revision)?;
    let revision = current
        .revision
        .checked_add(1)
        .ok_or_else(|| StoreError::msg("document revision overflow"))?;
    let stored_revision =
        i64::try_from(revision).map_err(|e| StoreError::new("document revision overflow", e))?;
    // Never before the previous update, even if the clock stepped back.
    let updated_at = rows::now().max(current.updated_at);
    transaction
        .prepare_cached(&format!(
            "UPDATE tenant_documents SET doc = ?3, revision = ?4, updated_at = ?5 \
             WHERE {SCOPE} AND id = ?2"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                organization.to_string(),
                id.to_string(),
                doc,
                stored_revision,
                rows::millis(updated_at)
            ])
        })
        .map_err(|e| StoreError::new(WHAT, e))?;
    commit(transaction, WHAT)?;
    Ok(TenantDocument {
        id,
        body,
        revision,
        created_at: current.created_at,
        updated_at,
    })
}

/// Deletes the document, unless the stored revision is not
/// `expected_revision`.
pub(crate) fn delete(
    connection: &mut Connection,
    organization: OrganizationId,
    id: DocumentId,
    expected_revision: Option<u64>,
) -> Result<(), DocumentError> {
    const WHAT: &str = "deleting a document";
    let transaction = begin(connection, WHAT)?;
    require_organization(&transaction, organization)?;
    current_state(&transaction, organization, id)?.check(expected_revision)?;
    transaction
        .prepare_cached(&format!(
            "DELETE FROM tenant_documents WHERE {SCOPE} AND id = ?2"
        ))
        .and_then(|mut statement| statement.execute([organization.to_string(), id.to_string()]))
        .map_err(|e| StoreError::new(WHAT, e))?;
    commit(transaction, WHAT)?;
    Ok(())
}

/// Deletes every document of the organization (in the caller's
/// transaction, which deletes the organization); returns how many.
pub(crate) fn delete_all(
    connection: &Connection,
    organization: OrganizationId,
) -> Result<usize, StoreError> {
    connection
        .prepare_cached(&format!("DELETE FROM tenant_documents WHERE {SCOPE}"))
        .and_then(|mut statement| statement.execute([organization.to_string()]))
        .map_err(|e| StoreError::new("deleting an organization's documents", e))
}

/// How many documents the organization has and their bodies' total size in
/// bytes (serde_json's compact text, as stored), in the caller's
/// transaction.
pub(crate) fn usage(
    connection: &Connection,
    organization: OrganizationId,
) -> Result<(u64, u64), StoreError> {
    let (documents, bytes): (i64, i64) = connection
        .prepare_cached(&format!(
            "SELECT count(*), coalesce(sum(length(CAST(doc AS BLOB))), 0) \
             FROM tenant_documents WHERE {SCOPE}"
        ))
        .and_then(|mut statement| {
            statement.query_row([organization.to_string()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
        })
        .map_err(|e| StoreError::new("counting an organization's documents", e))?;
    Ok((
        u64::try_from(documents).unwrap_or(0),
        u64::try_from(bytes).unwrap_or(0),
    ))
}

/// `OrganizationNotFound` unless the organization exists, read in the
/// caller's transaction.
fn require_organization(
    connection: &Connection,
    organization: OrganizationId,
) -> Result<(), DocumentError> {
    connection
        .prepare_cached("SELECT 1 FROM organizations WHERE id = ?1")
        .and_then(|mut statement| statement.exists([organization.to_string()]))
        .map_err(|e| StoreError::new("checking that the organization exists", e))?
        .then_some(())
        .ok_or(DocumentError::OrganizationNotFound)
}

/// What a conditional write needs to know about the stored document.
struct CurrentState {
    revision: u64,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl CurrentState {
    /// The domain's [`check_revision`] on the stored revision.
    fn check(&self, expected: Option<u64>) -> Result<(), DocumentError> {
        check_revision(expected, self.revision)
    }
}

fn current_state(
    connection: &Connection,
    organization: OrganizationId,
    id: DocumentId,
) -> Result<CurrentState, DocumentError> {
    let (revision, created_at, updated_at): (i64, i64, i64) = connection
        .prepare_cached(&format!(
            "SELECT revision, created_at, updated_at FROM tenant_documents \
             WHERE {SCOPE} AND id = ?2"
        ))
        .and_then(|mut statement| {
            statement
                .query_row([organization.to_string(), id.to_string()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
        })
        .map_err(|e| StoreError::new("reading a document's revision", e))?
        .ok_or(DocumentError::NotFound)?;
    Ok(CurrentState {
        revision: rows::revision(revision)?,
        created_at: rows::timestamp(created_at)?,
        updated_at: rows::timestamp(updated_at)?,
    })
}

/// The body as stored: `serde_json`'s text, in the body's field order.
fn serialize(body: &DocumentBody) -> Result<String, StoreError> {
    serde_json::to_string(body.as_map())
        .map_err(|e| StoreError::new("serializing a document body", e))
}

/// The listing statement and its parameters: at most `limit + 1` rows (the
/// extra one tells whether a next page exists) of the organization, in the
/// listing index's order.
fn listing_sql(
    organization: OrganizationId,
    query: &DocumentQuery,
    limit: usize,
) -> Result<(String, Vec<SqlValue>), StoreError> {
    let mut parameters = Parameters::default();
    // ?1, as SCOPE expects.
    parameters.bind(SqlValue::Text(organization.to_string()));
    let mut conditions = vec![SCOPE.to_owned()];
    if let Some(after) = &query.after {
        let created_at = parameters.bind(SqlValue::Integer(rows::millis(after.created_at)));
        let id = parameters.bind(SqlValue::Text(after.id.to_string()));
        conditions.push(format!("(created_at, id) > ({created_at}, {id})"));
    }
    for filter in &query.filters {
        conditions.push(filter_sql(filter, &mut parameters)?);
    }
    let mut sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM tenant_documents WHERE {}",
        conditions.join(" AND ")
    );
    let fetch = i64::try_from(limit.saturating_add(1))
        .map_err(|e| StoreError::new("page size out of range", e))?;
    let fetch = parameters.bind(SqlValue::Integer(fetch));
    sql.push_str(&format!(" ORDER BY created_at, id LIMIT {fetch}"));
    Ok((sql, parameters.values))
}

/// The condition for one equality filter, with MongoDB's semantics for a
/// top-level field:
/// - a string equals only an equal string;
/// - a number equals any numerically equal number (`30` = `30.0`), never a
///   string (`"30"`) or a boolean;
/// - a boolean equals only the same boolean (`json_type`, since
///   `json_extract` gives SQLite's 1/0 for `true`/`false`);
/// - `null` matches a JSON `null` or a missing field.
///
/// Arrays and objects never match (no MongoDB-style "array contains").
///
/// The field is addressed by a bound JSON path `$."<name>"`, the name
/// written as a JSON string literal, so any field name (quotes, spaces,
/// backslashes, unicode) selects exactly that member and never reaches the
/// SQL text.
fn filter_sql(filter: &FieldFilter, parameters: &mut Parameters) -> Result<String, StoreError> {
    let path = parameters.bind(SqlValue::Text(json_path(&filter.field)));
    let sql = match &filter.value {
        FilterValue::String(value) => {
            let value = parameters.bind(SqlValue::Text(value.clone()));
            format!("(json_type(doc, {path}) = 'text' AND json_extract(doc, {path}) = {value})")
        }
        FilterValue::Number(number) => {
            let value = if let Some(integer) = number.as_i64() {
                SqlValue::Integer(integer)
            } else if let Some(real) = number.as_f64() {
                SqlValue::Real(real)
            } else {
                return Err(StoreError::msg(format!(
                    "filter number {number} cannot be compared in SQLite"
                )));
            };
            let value = parameters.bind(value);
            format!(
                "(json_type(doc, {path}) IN ('integer', 'real') \
                 AND json_extract(doc, {path}) = {value})"
            )
        }
        FilterValue::Bool(true) => format!("json_type(doc, {path}) = 'true'"),
        FilterValue::Bool(false) => format!("json_type(doc, {path}) = 'false'"),
        FilterValue::Null => format!("coalesce(json_type(doc, {path}), 'null') = 'null'"),
    };
    Ok(sql)
}

/// The SQLite JSON path of top-level member `field`: `$."field"`, with the
/// name escaped as a JSON string (`"` as `\"`, `\` as `\\`, control
/// characters as `\uXXXX`), which SQLite decodes when matching labels.
fn json_path(field: &str) -> String {
    format!("$.{}", serde_json::Value::String(field.to_owned()))
}

/// Positional parameters of a statement being built.
#[derive(Default)]
struct Parameters {
    values: Vec<SqlValue>,
}

impl Parameters {
    /// Adds `value`; returns its placeholder (`?N`).
    fn bind(&mut self, value: SqlValue) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_quote_and_escape_the_field_name() {
        assert_eq!(json_path("name"), r#"$."name""#);
        assert_eq!(json_path(r#"na"me x"#), r#"$."na\"me x""#);
        assert_eq!(json_path(r"back\slash"), r#"$."back\\slash""#);
        assert_eq!(json_path("Zoë 🚀"), "$.\"Zoë 🚀\"");
    }

    #[test]
    fn listing_sql_binds_every_value_and_orders_by_the_index() {
        let query = DocumentQuery {
            filters: DocumentQuery::parse_filters(serde_json::json!({
                "s'); DROP TABLE x; --": "v",
                "n": 1.5,
                "b": false,
                "z": null
            }))
            .unwrap(),
            after: Some(PageCursor {
                created_at: rows::now(),
                id: DocumentId::new(),
            }),
            ..DocumentQuery::default()
        };
        let organization = OrganizationId::new();
        let (sql, values) = listing_sql(organization, &query, 20).unwrap();
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(sql.starts_with("SELECT id, doc, revision, created_at, updated_at FROM tenant_documents WHERE organization_id = ?1 AND (created_at, id) > (?2, ?3) AND "), "{sql}");
        assert!(sql.ends_with(" ORDER BY created_at, id LIMIT ?10"), "{sql}");
        assert_eq!(values.len(), 10);
        assert_eq!(values[0], SqlValue::Text(organization.to_string()));
        assert_eq!(values[9], SqlValue::Integer(21));
        assert_eq!(values[6], SqlValue::Real(1.5));
    }

    /// How SQLite runs the listing of `query` on a freshly migrated store.
    fn query_plan(query: &DocumentQuery) -> (String, Vec<String>) {
        let mut connection = Connection::open_in_memory().unwrap();
        crate::migrations::apply(&mut connection, crate::migrations::MIGRATIONS).unwrap();
        let (sql, values) = listing_sql(OrganizationId::new(), query, 20).unwrap();
        let plan = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params_from_iter(values), |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        ("tenant_documents_listing".to_owned(), plan)
    }

    #[test]
    fn listing_walks_the_index_in_order_with_and_without_cursor_and_filters() {
        let after = Some(PageCursor {
            created_at: rows::now(),
            id: DocumentId::new(),
        });
        let filters =
            DocumentQuery::parse_filters(serde_json::json!({"status": "active"})).unwrap();
        let queries = [
            DocumentQuery::default(),
            DocumentQuery {
                after: after.clone(),
                ..DocumentQuery::default()
            },
            DocumentQuery {
                after,
                filters,
                ..DocumentQuery::default()
            },
        ];
        for query in &queries {
            let (index, plan) = query_plan(query);
            assert!(plan.iter().any(|step| step.contains(&index)), "{plan:?}");
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "sorts instead of walking the index: {plan:?}"
            );
        }
        // Only the organization's rows are read: the index is searched by
        // its id (and, with a cursor, from the cursor), never scanned.
        for query in &queries {
            let (_, plan) = query_plan(query);
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "{plan:?}"
            );
        }
        let (_, plan) = query_plan(&queries[1]);
        assert!(
            plan.iter().any(|step| step.starts_with("SEARCH")
                && step.contains("organization_id=? AND (created_at,id)>(?,?)")),
            "{plan:?}"
        );
    }
}
