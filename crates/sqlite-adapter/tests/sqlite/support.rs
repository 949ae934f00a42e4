//! Fresh stores in temporary directories, and direct access to their file.

use std::path::PathBuf;
use std::sync::Arc;

use orgsvc_domain::testing::ContractFixture;
use orgsvc_domain::{OrganizationName, TenantStore};
use orgsvc_sqlite::SqliteStore;
use rusqlite::Connection;
use tempfile::TempDir;

/// A migrated store whose directory lives as long as it does.
pub struct TestStore {
    pub store: SqliteStore,
    pub path: PathBuf,
    /// Deleted (with the file) when the test store is dropped.
    pub _dir: TempDir,
}

/// A new store in a new temporary directory, migrated.
pub async fn migrated_store() -> TestStore {
    let dir = tempfile::Builder::new()
        .prefix("orgsvc-sqlite-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().join("data").join("orgsvc.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    TestStore {
        store,
        path,
        _dir: dir,
    }
}

/// The contract suite's fixture: the check gets the store, the fixture keeps
/// the directory and deletes it when the test ends (fields drop in order:
/// the store's connections close before the directory goes).
impl ContractFixture for TestStore {
    fn store(&self) -> Arc<dyn TenantStore> {
        Arc::new(self.store.clone())
    }
}

/// A separate connection to the store's file, as another process would have.
pub fn connect(path: &std::path::Path) -> Connection {
    let connection = Connection::open(path).unwrap();
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    connection
}

/// Whether the file has a table with this name.
pub fn table_exists(connection: &Connection, table: &str) -> bool {
    connection
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get::<_, i64>(0),
        )
        .unwrap()
        == 1
}

pub fn name(raw: &str) -> OrganizationName {
    OrganizationName::parse(raw).unwrap()
}

/// One stored document row: id, body, created_at, updated_at, revision.
pub type Row = (String, String, i64, i64, i64);

/// Every stored document row of `organization` in listing order, read from
/// `tenant_documents` directly.
pub fn document_rows(connection: &Connection, organization: impl std::fmt::Display) -> Vec<Row> {
    connection
        .prepare(
            "SELECT id, doc, created_at, updated_at, revision FROM tenant_documents \
             WHERE organization_id = ?1 ORDER BY created_at, id",
        )
        .unwrap()
        .query_map([organization.to_string()], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every row of `table`, a table per organization of the layout before
/// migration 0010, in listing order.
pub fn legacy_rows(connection: &Connection, table: &str) -> Vec<Row> {
    connection
        .prepare(&format!(
            r#"SELECT id, doc, created_at, updated_at, revision FROM "{table}" ORDER BY created_at, id"#
        ))
        .unwrap()
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The names of the file's tables per organization (`org_*`), which no
/// store of this release has.
pub fn tenant_tables(connection: &Connection) -> Vec<String> {
    connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'org_*' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The file's schema version, which every schema change increments.
pub fn schema_version(connection: &Connection) -> i64 {
    connection
        .query_row("PRAGMA schema_version", [], |row| row.get(0))
        .unwrap()
}
