//! The per-organization tables of releases before migration
//! `0010_shared_documents`, which hold each organization's documents in a
//! table of its own named by its logical collection, `org_<canonical name>`:
//!
//! ```sql
//! CREATE TABLE "org_<canonical>" (
//!     id         TEXT    NOT NULL PRIMARY KEY, -- UUIDv7, hyphenated
//!     doc        TEXT    NOT NULL,             -- the body, as serialized (JSON)
//!     created_at INTEGER NOT NULL,             -- ms since the epoch
//!     updated_at INTEGER NOT NULL,
//!     revision   INTEGER NOT NULL              -- 1, 2, ...
//! ) STRICT;
//! CREATE INDEX "idx_<organization id>_created_id" ON "org_<canonical>" (created_at, id);
//! ```
//!
//! Only the migrations that converted them remain here, with the layout of
//! the moment they were released (a migration's step is never changed
//! afterwards): [`upgrade_all`] (`0002_document_revisions`), [`rebuild_all`]
//! (`0003_light_tenant_tables`) and [`refuse_any`] (`0010_shared_documents`).
//! Their rows are moved to `tenant_documents` by `layout_upgrade.rs`, which
//! lists them with [`names`].
//!
//! Why they went (issue #16): every create, rename or delete of an
//! organization changed the schema, which every connection then parsed again
//! whole, and every `CREATE`/`DROP` scans `sqlite_schema`: each lifecycle
//! operation cost time in proportion to the number of organizations (2,497
//! creates/s up to 1,000 organizations, 87/s past 10,000), and every
//! connection held about 1 KiB of schema per organization.

use std::collections::HashSet;

use orgsvc_domain::{CollectionName, OrganizationId, StoreError};
use rusqlite::{Connection, OptionalExtension};

/// `CREATE TABLE` of a tenant table named `quoted_name`, in the layout of
/// the module docs.
fn create_table_sql(quoted_name: &str) -> String {
    format!(
        "CREATE TABLE {quoted_name} (
            id         TEXT    NOT NULL PRIMARY KEY,
            doc        TEXT    NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            revision   INTEGER NOT NULL
        ) STRICT;"
    )
}

/// The names of every tenant table (`org_*`) in schema `schema` (`main`, or
/// an attached file's name), read in one scan of its `sqlite_schema`.
pub(crate) fn names(connection: &Connection, schema: &str) -> Result<HashSet<String>, StoreError> {
    connection
        .prepare(&format!(
            "SELECT name FROM {}.sqlite_schema WHERE type = 'table' AND name GLOB 'org_*'",
            quote_identifier(schema)
        ))
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .map_err(|e| StoreError::new("listing the tenant tables", e))
}

/// The step of migration `0010_shared_documents`: fails while a tenant table
/// remains, whose rows only the upgrade at open (`layout_upgrade.rs`) moves.
/// It never fires in practice: a store with tenant tables is upgraded
/// before its connections open.
pub(crate) fn refuse_any(connection: &Connection) -> Result<(), StoreError> {
    let remaining = names(connection, "main")?;
    if remaining.is_empty() {
        return Ok(());
    }
    Err(StoreError::msg(format!(
        "{} tenant table(s) remain (e.g. {}); their documents are moved to tenant_documents \
         when the store is opened, not by this migration",
        remaining.len(),
        remaining.iter().next().map_or("", String::as_str)
    )))
}

/// The name of organization `organization`'s listing index.
fn index_name(organization: OrganizationId) -> String {
    format!("idx_{}_created_id", organization.as_uuid().simple())
}

/// Brings every tenant table to the current layout: adds the `revision`
/// column (1 for existing rows) and the listing index where missing.
/// Idempotent. Run by migration `0002_document_revisions`, inside its
/// transaction: a migration cannot name the tenant tables statically.
///
/// A table recorded in `organizations` but missing from the file (a damaged
/// store) is skipped with a warning.
pub(crate) fn upgrade_all(connection: &Connection) -> Result<(), StoreError> {
    for (organization, name) in recorded_tables(connection)? {
        upgrade(connection, organization, &name)?;
    }
    Ok(())
}

/// Every tenant table recorded in `organizations`, with its organization.
fn recorded_tables(
    connection: &Connection,
) -> Result<Vec<(OrganizationId, CollectionName)>, StoreError> {
    let tables: Vec<(String, String)> = connection
        .prepare("SELECT id, table_name FROM organizations ORDER BY id")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(|e| StoreError::new("listing the tenant tables", e))?;
    tables
        .into_iter()
        .map(|(organization, table)| {
            let organization: OrganizationId = organization.parse().map_err(|e| {
                StoreError::new("corrupt record: invalid stored organization id", e)
            })?;
            let name = CollectionName::parse(&table).map_err(|e| {
                StoreError::new("corrupt record: invalid stored tenant table name", e)
            })?;
            Ok((organization, name))
        })
        .collect()
}

/// Whether table `name` is in the file; a table recorded in `organizations`
/// but missing (a damaged store) is logged, and skipped by the callers.
fn exists(connection: &Connection, name: &CollectionName, doing: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = connection
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| StoreError::new(format!("{doing} tenant table {name}: looking it up"), e))?;
    if found.is_none() {
        tracing::warn!(table = %name, "tenant table missing; not {doing}");
    }
    Ok(found.is_some())
}

fn upgrade(
    connection: &Connection,
    organization: OrganizationId,
    name: &CollectionName,
) -> Result<(), StoreError> {
    let context = |what: &str| format!("upgrading tenant table {name}: {what}");
    if !exists(connection, name, "upgraded")? {
        return Ok(());
    }
    let has_revision: bool = connection
        .query_row(
            "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = 'revision'",
            [name.as_str()],
            |row| row.get(0),
        )
        .map_err(|e| StoreError::new(context("reading its columns"), e))?;
    if !has_revision {
        // A constant default: SQLite does not rewrite the rows.
        let sql = format!(
            "ALTER TABLE {} ADD COLUMN revision INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1)",
            quoted(name)
        );
        connection
            .execute_batch(&sql)
            .map_err(|e| StoreError::new(context("adding the revision column"), e))?;
    }
    connection
        .execute_batch(&create_index_sql(organization, name, true))
        .map_err(|e| StoreError::new(context("creating the listing index"), e))
}

/// Converts every tenant table to the layout of the module docs:
/// its rows are copied aside into a temporary table, it is dropped with its
/// indexes, created again under the same name in the new layout, gets its
/// rows back (id, body, timestamps and revision as they were; rows from
/// before `0002_document_revisions` get their revision written out) and its
/// listing index under the same name. In the caller's transaction. Run by
/// migration `0003_light_tenant_tables`; like [`upgrade_all`], it skips a
/// table missing from the file.
///
/// Cost: each `CREATE` and `DROP` scans the whole `sqlite_schema`, so the
/// time grows with the square of the number of organizations (measured on
/// two cores: 1,000 organizations 1.2 s, 2,000 6.6 s, 4,000 18 s), plus the
/// copy of every document. `ALTER TABLE ... RENAME` is avoided: it reparses
/// the whole schema each time (1,000 organizations took 35 s with it).
pub(crate) fn rebuild_all(connection: &Connection) -> Result<(), StoreError> {
    for (organization, name) in recorded_tables(connection)? {
        rebuild(connection, organization, &name)?;
    }
    Ok(())
}

/// The temporary table holding a table's rows while it is created again.
const REBUILT: &str = "temp.\"_rebuilt_tenant_table\"";

fn rebuild(
    connection: &Connection,
    organization: OrganizationId,
    name: &CollectionName,
) -> Result<(), StoreError> {
    if !exists(connection, name, "converted")? {
        return Ok(());
    }
    let table = quoted(name);
    let sql = format!(
        "CREATE TABLE {REBUILT} AS
            SELECT id, doc, created_at, updated_at, revision FROM {table};
        DROP TABLE {table};
        {create}
        INSERT INTO {table} (id, doc, created_at, updated_at, revision)
            SELECT id, doc, created_at, updated_at, revision FROM {REBUILT};
        DROP TABLE {REBUILT};
        {index}",
        create = create_table_sql(&table),
        index = create_index_sql(organization, name, false),
    );
    connection
        .execute_batch(&sql)
        .map_err(|e| StoreError::new(format!("converting tenant table {name}"), e))
}

fn create_index_sql(organization: OrganizationId, table: &CollectionName, upgrade: bool) -> String {
    format!(
        "CREATE INDEX {if_not_exists}{index} ON {table} (created_at, id);",
        if_not_exists = if upgrade { "IF NOT EXISTS " } else { "" },
        index = quote_identifier(&index_name(organization)),
        table = quoted(table),
    )
}

/// `name` as a quoted SQL identifier. Names built from organization names are
/// always `[a-z0-9_]`; quoting keeps any stored name from being read as SQL.
fn quoted(name: &CollectionName) -> String {
    quote_identifier(name.as_str())
}

/// `name` as a quoted SQL identifier (`"` doubled).
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
