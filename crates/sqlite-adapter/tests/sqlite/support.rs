//! Fresh stores in temporary directories, and direct access to their file.

use std::path::PathBuf;
use std::sync::Arc;

use orgsvc_domain::{OrganizationName, TenantStore};
use orgsvc_sqlite::SqliteStore;
use rusqlite::Connection;
use tempfile::TempDir;

/// A migrated store whose directory lives as long as it does.
pub struct TestStore {
    pub store: SqliteStore,
    pub path: PathBuf,
    pub dir: TempDir,
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
    TestStore { store, path, dir }
}

/// A fresh store for the contract suite, which only gets the trait object:
/// the directory is left in the target dir's tmp folder instead of being
/// deleted under the store.
pub async fn fresh_store() -> Arc<dyn TenantStore> {
    let TestStore { store, dir, .. } = migrated_store().await;
    let _kept = dir.keep();
    Arc::new(store)
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
