//! Organization lifecycle: each change of an organization, its admin and its
//! tenant table is one SQLite transaction, so it happens entirely or not at
//! all (SQLite DDL is transactional).

use orgsvc_domain::{
    CollectionName, CreateOrganizationError, DeleteOrganizationError, NewOrganization,
    Organization, OrganizationId, OrganizationName, RenameOrganizationError, StoreError,
    TenantLocation,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::connection::{begin, commit};
use crate::constraints::{self, Unique};
use crate::rows::{self, OrganizationRow, ORGANIZATION_COLUMNS};
use crate::{admins, invitations, tenant_tables};

/// The SQLite schema holding every tenant table: `main`, the store's own file.
pub(crate) const DATABASE: &str = "main";

/// Inserts the organization and its admin and creates its tenant table.
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
    tenant_tables::create(&transaction, new.id, &collection)?;
    commit(transaction, WHAT)?;
    Ok(Organization {
        id: new.id,
        name: new.name.clone(),
        location: TenantLocation {
            database: DATABASE.to_owned(),
            collection,
        },
        admin_id: new.owner.id,
        created_at: now,
        updated_at: now,
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

/// Renames the organization and, when the canonical name changes, its tenant
/// table with all its rows; with `expected`, only while its canonical name is
/// that one (`NameChanged` otherwise, checked in the same transaction).
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
        tenant_tables::rename(&transaction, &current.location.collection, &collection)?;
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

/// Deletes the organization, its admins (by cascade) and its tenant table.
pub(crate) fn delete(
    connection: &mut Connection,
    id: OrganizationId,
) -> Result<(), DeleteOrganizationError> {
    const WHAT: &str = "deleting an organization";
    let transaction = begin(connection, WHAT)?;
    // Its invitations would go by the foreign key's cascade; their unsent
    // messages would not.
    invitations::delete_where(&transaction, "organization_id = ?1", &id.to_string())?;
    let table: String = transaction
        .query_row(
            "DELETE FROM organizations WHERE id = ?1 RETURNING table_name",
            [id.to_string()],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| StoreError::new("deleting organization", e))?
        .ok_or(DeleteOrganizationError::NotFound)?;
    let collection = CollectionName::parse(&table)
        .map_err(|e| StoreError::new("corrupt record: invalid stored tenant table name", e))?;
    tenant_tables::drop_if_exists(&transaction, &collection)?;
    commit(transaction, WHAT)?;
    Ok(())
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
