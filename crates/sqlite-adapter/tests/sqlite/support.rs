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

/// What keeps `table` from having the light tenant-table layout.
pub fn light_layout_issues(connection: &Connection, table: &str) -> Vec<String> {
    let sql: String = connection
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get(0),
        )
        .unwrap();
    let mut issues = Vec::new();
    for heavy in ["CHECK", "DEFAULT", "WITHOUT ROWID"] {
        if sql.to_uppercase().contains(heavy) {
            issues.push(format!("{heavy} in {sql}"));
        }
    }
    if !sql.trim_end().ends_with("STRICT") {
        issues.push(format!("not STRICT: {sql}"));
    }
    let columns: Vec<(String, String, bool, i64)> = connection
        .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap()
        .query_map([table], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected = [
        ("id", "TEXT", true, 1),
        ("doc", "TEXT", true, 0),
        ("created_at", "INTEGER", true, 0),
        ("updated_at", "INTEGER", true, 0),
        ("revision", "INTEGER", true, 0),
    ]
    .map(|(name, kind, not_null, pk)| (name.to_owned(), kind.to_owned(), not_null, pk));
    if columns != expected {
        issues.push(format!("columns {columns:?}"));
    }
    issues
}
