//! The per-organization tables holding each tenant's JSON documents.
//!
//! Each table is named by [`orgsvc_domain::OrganizationName::collection_name`]
//! and has the layout below; the store creates, renames and drops them inside
//! the transactions that change the organization, so they cannot disagree
//! with the `organizations` table.

use orgsvc_domain::{CollectionName, StoreError};
use rusqlite::Connection;

/// Creates the (empty) table `name`.
///
/// Layout: `id` is the document's id, `doc` its JSON body, the timestamps are
/// milliseconds since the Unix epoch like everywhere in the store.
pub(crate) fn create(connection: &Connection, name: &CollectionName) -> Result<(), StoreError> {
    let sql = format!(
        "CREATE TABLE {} (
            id         TEXT    NOT NULL PRIMARY KEY,
            doc        TEXT    NOT NULL CHECK (json_valid(doc)),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) STRICT",
        quoted(name)
    );
    connection
        .execute_batch(&sql)
        .map_err(|e| StoreError::new(format!("creating tenant table {name}"), e))
}

/// Renames table `from` to `to`, with every row and index.
pub(crate) fn rename(
    connection: &Connection,
    from: &CollectionName,
    to: &CollectionName,
) -> Result<(), StoreError> {
    let sql = format!("ALTER TABLE {} RENAME TO {}", quoted(from), quoted(to));
    connection
        .execute_batch(&sql)
        .map_err(|e| StoreError::new(format!("renaming tenant table {from} to {to}"), e))
}

/// Drops table `name` with all its rows; a table already gone is not an
/// error, so a damaged store can still delete the organization.
pub(crate) fn drop_if_exists(
    connection: &Connection,
    name: &CollectionName,
) -> Result<(), StoreError> {
    let sql = format!("DROP TABLE IF EXISTS {}", quoted(name));
    connection
        .execute_batch(&sql)
        .map_err(|e| StoreError::new(format!("dropping tenant table {name}"), e))
}

/// `name` as a quoted SQL identifier. Names built from organization names are
/// always `[a-z0-9_]`; quoting keeps any stored name from being read as SQL.
fn quoted(name: &CollectionName) -> String {
    format!("\"{}\"", name.as_str().replace('"', "\"\""))
}
