//! Organization lifecycle: each change of an organization, its admins and
//! its documents is one SQLite transaction, so it happens entirely or not at
//! all. None changes the schema: every organization's documents are rows of
//! `tenant_documents` (see `documents.rs`), so a create, rename or delete
//! costs the same with 100,000 organizations as with 10, and never makes a
//! connection parse the schema again.

use chrono::{DateTime, Utc};
use orgsvc_domain::{
    ChangeStateError, CreateOrganizationError, DeleteOrganizationError, NameMatch, NewOrganization,
    Organization, OrganizationId, OrganizationName, OrganizationPage, OrganizationQuery,
    OrganizationState, OrganizationUsage, RenameOrganizationError, StateChange, StateFilter,
    StoreError, TenantLayout, TenantLocation,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::connection::{begin, begin_read, commit};
use crate::constraints::{self, Unique};
use crate::rows::{self, OrganizationRow, ORGANIZATION_COLUMNS};
use crate::{admins, documents, invitations};

/// The SQLite schema holding every organization's documents: `main`, the
/// store's own file.
pub(crate) const DATABASE: &str = "main";

/// Inserts the organization and its admin (its documents need nothing
/// created).
pub(crate) fn create(
    connection: &mut Connection,
    new: &NewOrganization,
) -> Result<Organization, CreateOrganizationError> {
    const WHAT: &str = "creating an organization";
    let transaction = begin(connection, WHAT)?;
    let now = rows::now();
    let collection = new.name.collection_name();
    transaction
        .execute(
            "INSERT INTO organizations (id, display_name, canonical_name, database_name, \
             table_name, admin_id, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                new.id.to_string(),
                new.name.as_str(),
                new.name.canonical(),
                DATABASE,
                collection.as_str(),
                new.owner.id.to_string(),
                rows::millis(now),
            ],
        )
        .map_err(|e| match constraints::violated(&e) {
            Some(Unique::OrganizationName) => CreateOrganizationError::NameTaken,
            _ => StoreError::new("inserting organization", e).into(),
        })?;
    admins::insert(&transaction, new.id, &new.owner, now)?;
    commit(transaction, WHAT)?;
    Ok(Organization {
        id: new.id,
        name: new.name.clone(),
        location: TenantLocation {
            database: DATABASE.to_owned(),
            collection,
            layout: TenantLayout::Shared,
        },
        admin_id: new.owner.id,
        created_at: now,
        updated_at: now,
        state: OrganizationState::Active,
    })
}

/// The organization with this id.
pub(crate) fn by_id(
    connection: &Connection,
    id: OrganizationId,
) -> Result<Option<Organization>, StoreError> {
    find(connection, "id", &id.to_string())
}

/// The organization whose canonical name equals `name`'s.
pub(crate) fn by_name(
    connection: &Connection,
    name: &OrganizationName,
) -> Result<Option<Organization>, StoreError> {
    find(connection, "canonical_name", name.canonical())
}

/// Renames the organization (its documents stay as they are: a rename only
/// changes its row, including its logical collection `org_<canonical
/// name>`); with `expected`, only while its canonical name is that one
/// (`NameChanged` otherwise, checked in the same transaction).
pub(crate) fn rename(
    connection: &mut Connection,
    id: OrganizationId,
    expected: Option<&str>,
    new_name: &OrganizationName,
) -> Result<Organization, RenameOrganizationError> {
    const WHAT: &str = "renaming an organization";
    let transaction = begin(connection, WHAT)?;
    let current = by_id(&transaction, id)?.ok_or(RenameOrganizationError::NotFound)?;
    if expected.is_some_and(|expected| expected != current.name.canonical()) {
        return Err(RenameOrganizationError::NameChanged);
    }
    let now = rows::now();
    let renamed = if current.name.canonical() == new_name.canonical() {
        transaction
            .execute(
                "UPDATE organizations SET display_name = ?2, updated_at = ?3 WHERE id = ?1",
                params![id.to_string(), new_name.as_str(), rows::millis(now)],
            )
            .map_err(|e| StoreError::new("updating organization name", e))?;
        Organization {
            name: new_name.clone(),
            updated_at: now,
            ..current
        }
    } else {
        let collection = new_name.collection_name();
        transaction
            .execute(
                "UPDATE organizations SET display_name = ?2, canonical_name = ?3, \
                 table_name = ?4, updated_at = ?5 WHERE id = ?1",
                params![
                    id.to_string(),
                    new_name.as_str(),
                    new_name.canonical(),
                    collection.as_str(),
                    rows::millis(now),
                ],
            )
            .map_err(|e| match constraints::violated(&e) {
                Some(Unique::OrganizationName) => RenameOrganizationError::NameTaken,
                _ => StoreError::new("updating organization name", e).into(),
            })?;
        Organization {
            name: new_name.clone(),
            location: TenantLocation {
                collection,
                ..current.location
            },
            updated_at: now,
            ..current
        }
    };
    commit(transaction, WHAT)?;
    Ok(renamed)
}

/// Deletes the organization, its documents and (by cascade) its admins.
pub(crate) fn delete(
    connection: &mut Connection,
    id: OrganizationId,
) -> Result<(), DeleteOrganizationError> {
    const WHAT: &str = "deleting an organization";
    let transaction = begin(connection, WHAT)?;
    // Its invitations would go by the foreign key's cascade; their unsent
    // messages would not.
    invitations::delete_where(&transaction, "organization_id = ?1", &id.to_string())?;
    // Explicitly rather than by the foreign key's cascade, which would
    // check every admin and invitation row first.
    documents::delete_all(&transaction, id)?;
    let deleted = transaction
        .execute("DELETE FROM organizations WHERE id = ?1", [id.to_string()])
        .map_err(|e| StoreError::new("deleting organization", e))?;
    if deleted == 0 {
        return Err(DeleteOrganizationError::NotFound);
    }
    commit(transaction, WHAT)?;
    Ok(())
}

/// One page of the listing (see [`OrganizationQuery`]): a walk of the
/// canonical-name index in order, from the cursor (and, for a prefix search,
/// within the range `[fragment, fragment~)`), cut at `limit + 1` rows.
pub(crate) fn list(
    connection: &Connection,
    query: &OrganizationQuery,
) -> Result<OrganizationPage, StoreError> {
    let (sql, parameters) = list_statement(query);
    let found = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_map(params_from_iter(parameters), OrganizationRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| StoreError::new("listing organizations", e))?
        .into_iter()
        .map(OrganizationRow::into_organization)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(query.page(found))
}

/// The listing's statement and its parameters.
fn list_statement(query: &OrganizationQuery) -> (String, Vec<SqlValue>) {
    let mut conditions = Vec::new();
    let mut parameters = Vec::new();
    let mut bind = |condition: &str, value: SqlValue| {
        parameters.push(value);
        conditions.push(condition.replace('?', &format!("?{}", parameters.len())));
    };
    if let Some(after) = &query.after {
        bind(
            "canonical_name > ?",
            SqlValue::Text(after.as_str().to_owned()),
        );
    }
    if let Some(search) = &query.search {
        let fragment = search.fragment.as_str().to_owned();
        match search.mode {
            NameMatch::Prefix => {
                bind("canonical_name >= ?", SqlValue::Text(fragment));
                bind(
                    "canonical_name < ?",
                    SqlValue::Text(search.fragment.prefix_upper_bound()),
                );
            }
            NameMatch::Substring => bind("instr(canonical_name, ?) > 0", SqlValue::Text(fragment)),
        }
    }
    if let Some(after) = query.created_after {
        bind("created_at > ?", SqlValue::Integer(rows::millis(after)));
    }
    if let Some(before) = query.created_before {
        bind(
            "created_at < ?",
            SqlValue::Integer(rows::millis_ceil(before)),
        );
    }
    match query.state {
        Some(StateFilter::Active) => conditions.push("suspended_at IS NULL".to_owned()),
        Some(StateFilter::Suspended) => conditions.push("suspended_at IS NOT NULL".to_owned()),
        None => {}
    }
    let fetch = i64::try_from(query.limit.get().saturating_add(1)).unwrap_or(i64::MAX);
    parameters.push(SqlValue::Integer(fetch));
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {ORGANIZATION_COLUMNS} FROM organizations {filter}\
         ORDER BY canonical_name LIMIT ?{}",
        parameters.len()
    );
    (sql, parameters)
}

/// Suspends or resumes the organization: its state columns only, in one
/// transaction with the read of the current state, so a rename (which
/// leaves them alone) is never lost and a deleted row is never written.
pub(crate) fn change_state(
    connection: &mut Connection,
    id: OrganizationId,
    change: &StateChange,
) -> Result<Organization, ChangeStateError> {
    const WHAT: &str = "changing an organization's state";
    let transaction = begin(connection, WHAT)?;
    let current = by_id(&transaction, id)?.ok_or(ChangeStateError::NotFound)?;
    let Some(next) = change.apply(&current.state) else {
        return Ok(current);
    };
    let suspension = next.suspension();
    transaction
        .execute(
            "UPDATE organizations SET suspended_at = ?2, suspended_reason = ?3 WHERE id = ?1",
            params![
                id.to_string(),
                suspension.map(|s| rows::millis(s.at)),
                suspension.map(|s| s.reason.as_str()),
            ],
        )
        .map_err(|e| StoreError::new("updating organization state", e))?;
    commit(transaction, WHAT)?;
    Ok(Organization {
        state: next,
        ..current
    })
}

/// The organization's usage figures, read in one transaction.
pub(crate) fn usage(
    connection: &Connection,
    id: OrganizationId,
    now: DateTime<Utc>,
) -> Result<Option<OrganizationUsage>, StoreError> {
    const WHAT: &str = "counting an organization's usage";
    let transaction = begin_read(connection, WHAT)?;
    let Some(organization) = by_id(&transaction, id)? else {
        return Ok(None);
    };
    let count = |sql: &str, parameters: &[&dyn rusqlite::ToSql]| -> Result<u64, StoreError> {
        transaction
            .query_row(sql, parameters, |row| row.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| StoreError::new(WHAT, e))
    };
    let key = id.to_string();
    let admins = count(
        "SELECT count(*) FROM admins WHERE organization_id = ?1",
        &[&key],
    )?;
    let pending_invitations = count(
        "SELECT count(*) FROM invitations WHERE organization_id = ?1 \
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?2",
        &[&key, &rows::millis(now)],
    )?;
    let (documents, bytes) = documents::usage(&transaction, organization.id)?;
    Ok(Some(OrganizationUsage {
        admins,
        pending_invitations,
        documents,
        bytes,
    }))
}

fn find(
    connection: &Connection,
    key_column: &'static str,
    key: &str,
) -> Result<Option<Organization>, StoreError> {
    let sql = format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE {key_column} = ?1");
    connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([key], OrganizationRow::read).optional())
        .map_err(|e| StoreError::new(format!("reading organization by {key_column}"), e))?
        .map(OrganizationRow::into_organization)
        .transpose()
}

#[cfg(test)]
mod tests {
    use orgsvc_domain::{NameFragment, NameSearch, OrganizationCursor, PageSize};

    use super::*;
    use crate::migrations::{self, MIGRATIONS};

    #[test]
    fn a_prefix_search_reads_a_range_of_the_canonical_name_index_without_sorting() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrations::apply(&mut connection, MIGRATIONS).unwrap();
        for after in [None, Some(OrganizationCursor::parse("acme_b").unwrap())] {
            let query = OrganizationQuery {
                search: Some(NameSearch {
                    fragment: NameFragment::parse("Acme").unwrap(),
                    mode: NameMatch::Prefix,
                }),
                state: Some(StateFilter::Active),
                limit: PageSize::parse(20).unwrap(),
                after,
                ..OrganizationQuery::default()
            };
            let (sql, parameters) = list_statement(&query);
            let steps: Vec<String> = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params_from_iter(parameters), |row| row.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                steps
                    .iter()
                    .any(|s| s.starts_with("SEARCH organizations USING INDEX")
                        && s.contains("canonical_name>? AND canonical_name<?")),
                "{steps:?}"
            );
            assert!(
                !steps.iter().any(|s| s.contains("TEMP B-TREE")),
                "{steps:?}"
            );
        }
    }
}
