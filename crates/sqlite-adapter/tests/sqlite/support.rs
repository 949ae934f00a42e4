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

/// The name and root page of `table`'s index on `(created_at, id)`, if any.
pub fn listing_index(connection: &Connection, table: &str) -> Option<(String, i64)> {
    let mut found: Vec<(String, i64)> = connection
        .prepare(
            "SELECT s.name, s.rootpage FROM sqlite_schema AS s \
             WHERE s.type = 'index' AND s.tbl_name = ?1 \
             AND (SELECT group_concat(name, ',') FROM \
                  (SELECT name FROM pragma_index_info(s.name) ORDER BY seqno)) = 'created_at,id'",
        )
        .unwrap()
        .query_map([table], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        found.len() <= 1,
        "several listing indexes on {table}: {found:?}"
    );
    found.pop()
}
