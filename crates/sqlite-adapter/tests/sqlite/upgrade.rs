//! The upgrade from a table per organization (releases before migration
//! 0010) to one documents table, on a store made by the previous release.
//!
//! `tests/fixtures/store-0009.db` was made by the release before this one
//! (commit 7c33a62) through its HTTP API: organization "Acme" created with
//! three documents, one replaced (revision 2), renamed to "Acme Corp" (its
//! table moved), a second admin and a pending invitation; "Globex Corp" with
//! one document, suspended by an operator (whose key, "fixture", is in the
//! file); "Empty Org" with none; logins left refresh tokens and audit
//! entries. The service was stopped cleanly (the WAL checkpointed into the
//! file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orgsvc_domain::testing::all_documents;
use orgsvc_domain::{DocumentBody, OrganizationId, OrganizationState, TenantLayout, TenantStore};
use orgsvc_sqlite::SqliteStore;
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::json;
use tempfile::TempDir;

use crate::support::{connect, document_rows, legacy_rows, name, table_exists, tenant_tables};

const ACME: &str = "01a22b9a-75e9-7759-a7e0-9951dbe0c3c3";
const GLOBEX: &str = "01a22b9a-77e8-7441-8153-dba56119073e";
const EMPTY: &str = "01a22b9a-79d1-75fd-a21d-e0f763a8f9dc";

/// The fixture's master tables that hold rows (the others are empty in it).
const FILLED_TABLES: &[&str] = &[
    "organizations",
    "admins",
    "invitations",
    "outbox_messages",
    "audit_events",
    "refresh_tokens",
    "operator_keys",
];

/// A copy of the fixture in a new directory: (directory, store path).
fn previous_release_store() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("orgsvc.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-0009.db"),
        &path,
    )
    .unwrap();
    (dir, path)
}

fn kept_file(path: &Path) -> PathBuf {
    path.with_file_name("orgsvc.db.before-0010")
}

fn staging_file(path: &Path) -> PathBuf {
    path.with_file_name("orgsvc.db.upgrading")
}

fn id(raw: &str) -> OrganizationId {
    raw.parse().unwrap()
}

/// Every row of `table`, all columns in the order of `columns`, sorted.
fn table_rows(connection: &Connection, table: &str, columns: &[String]) -> Vec<Vec<SqlValue>> {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows: Vec<Vec<SqlValue>> = connection
        .prepare(&format!("SELECT {list} FROM \"{table}\""))
        .unwrap()
        .query_map([], |row| {
            (0..columns.len())
                .map(|i| row.get::<_, SqlValue>(i))
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    rows
}

fn master_tables(connection: &Connection) -> Vec<(String, Vec<String>)> {
    let tables: Vec<String> = connection
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT GLOB 'org_*' \
             AND name NOT GLOB 'sqlite_*' ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|table| {
            let columns = connection
                .prepare("SELECT name FROM pragma_table_info(?1)")
                .unwrap()
                .query_map([&table], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            (table, columns)
        })
        .collect()
}

#[tokio::test]
async fn a_store_of_the_previous_release_is_upgraded_losing_nothing() {
    let (_dir, path) = previous_release_store();
    let original = std::fs::read(&path).unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), ["0010_shared_documents"]);
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());

    // The previous file is kept, byte for byte.
    assert_eq!(std::fs::read(kept_file(&path)).unwrap(), original);
    assert!(!staging_file(&path).exists());
    let old = connect(&kept_file(&path));
    let new = connect(&path);
    assert_eq!(tenant_tables(&new), Vec::<String>::new());

    // Every row of every master table is there, every column as it was.
    for (table, columns) in master_tables(&old) {
        assert!(table_exists(&new, &table), "{table} is missing");
        let expected = table_rows(&old, &table, &columns);
        if FILLED_TABLES.contains(&table.as_str()) {
            assert!(
                !expected.is_empty(),
                "the fixture should have rows in {table}"
            );
        }
        if table == "_migrations" {
            // The same nine records, and 0010's.
            let (upgrade, earlier): (Vec<_>, Vec<_>) = table_rows(&new, &table, &columns)
                .into_iter()
                .partition(|row| row[0] == SqlValue::Integer(10));
            assert_eq!(earlier, expected, "{table}");
            assert_eq!(upgrade.len(), 1);
            assert_eq!(
                upgrade[0][1],
                SqlValue::Text("0010_shared_documents".into())
            );
            continue;
        }
        assert_eq!(table_rows(&new, &table, &columns), expected, "{table}");
    }

    // Every organization's documents, row for row (id, body text,
    // timestamps, revision).
    let organizations: Vec<(String, String)> = old
        .prepare("SELECT id, table_name FROM organizations")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(organizations.len(), 3);
    let mut moved = 0;
    for (organization, table) in &organizations {
        let before = legacy_rows(&old, table);
        moved += before.len();
        assert_eq!(document_rows(&new, organization), before, "{table}");
    }
    assert_eq!(moved, 4);

    // And the store serves them as the previous release did.
    let shared: Arc<dyn TenantStore> = Arc::new(store.clone());
    let acme = store.organization_by_id(id(ACME)).await.unwrap().unwrap();
    assert_eq!(acme.name.as_str(), "Acme Corp");
    assert_eq!(acme.location.collection.as_str(), "org_acme_corp");
    assert_eq!(acme.location.layout, TenantLayout::Shared);
    let documents = all_documents(&shared, acme.id).await;
    let bodies: Vec<_> = documents
        .iter()
        .map(|d| (d.revision, serde_json::to_string(d.body.as_map()).unwrap()))
        .collect();
    assert_eq!(
        bodies,
        [
            (
                1,
                r#"{"title":"doc 1","n":1,"tags":["a","b"],"nested":{"x":1.5}}"#.to_owned()
            ),
            (
                2,
                r#"{"title":"doc 2, edited","n":2.0,"ok":true,"none":null}"#.to_owned()
            ),
            (
                1,
                r#"{"title":"doc 3","n":3,"tags":["a","b"],"nested":{"x":1.5}}"#.to_owned()
            ),
        ]
    );
    assert_eq!(store.admins_of(acme.id).await.unwrap().len(), 2);
    let globex = store.organization_by_id(id(GLOBEX)).await.unwrap().unwrap();
    assert!(
        matches!(&globex.state, OrganizationState::Suspended(s) if s.reason == "fixture: unpaid invoice"),
        "{:?}",
        globex.state
    );
    let globex_documents = all_documents(&shared, globex.id).await;
    assert_eq!(globex_documents.len(), 1);
    assert_eq!(globex_documents[0].body.as_map()["unicode"], "Zoë 🚀");
    assert!(all_documents(&shared, id(EMPTY)).await.is_empty());

    // It keeps working: writes, a rename, a delete.
    let replaced = store
        .replace_document(
            acme.id,
            documents[1].id,
            DocumentBody::parse(json!({"n": "changed"})).unwrap(),
            Some(2),
        )
        .await
        .unwrap();
    assert_eq!(replaced.revision, 3);
    store
        .rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap();
    assert_eq!(all_documents(&shared, acme.id).await.len(), 3);
    store.delete_organization(globex.id).await.unwrap();
    assert!(document_rows(&new, GLOBEX).is_empty());
    assert_eq!(document_rows(&new, ACME).len(), 3);
}

#[tokio::test]
async fn an_upgrade_interrupted_before_the_swap_starts_over() {
    let (_dir, path) = previous_release_store();
    let original = std::fs::read(&path).unwrap();
    // A crash mid-build leaves a partial new file; a crash after keeping
    // the old one, a link to it.
    std::fs::write(staging_file(&path), b"half a database").unwrap();
    std::fs::hard_link(&path, kept_file(&path)).unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();

    assert!(!staging_file(&path).exists());
    assert_eq!(std::fs::read(kept_file(&path)).unwrap(), original);
    let shared: Arc<dyn TenantStore> = Arc::new(store.clone());
    assert_eq!(all_documents(&shared, id(ACME)).await.len(), 3);
}

#[tokio::test]
async fn an_upgraded_store_is_not_upgraded_again() {
    let (_dir, path) = previous_release_store();
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    drop(store);
    std::fs::remove_file(kept_file(&path)).unwrap();

    let store = SqliteStore::open(&path).await.unwrap();

    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());
    assert!(!kept_file(&path).exists());
    let shared: Arc<dyn TenantStore> = Arc::new(store.clone());
    assert_eq!(all_documents(&shared, id(ACME)).await.len(), 3);
}

#[tokio::test]
async fn a_table_orgsvc_does_not_know_stops_the_upgrade_and_changes_nothing() {
    let (_dir, path) = previous_release_store();
    connect(&path)
        .execute_batch("CREATE TABLE other_tool (x INTEGER); INSERT INTO other_tool VALUES (1);")
        .unwrap();
    let before = std::fs::read(&path).unwrap();

    let err = SqliteStore::open(&path).await.unwrap_err();

    assert!(format!("{err:#}").contains("other_tool"), "{err:#}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!staging_file(&path).exists());
    assert!(!kept_file(&path).exists());
    assert_eq!(tenant_tables(&connect(&path)).len(), 3);
}

#[tokio::test]
async fn a_view_or_trigger_orgsvc_does_not_know_stops_the_upgrade_too() {
    for (name, statement) in [
        (
            "acme_view",
            "CREATE VIEW acme_view AS SELECT * FROM organizations",
        ),
        (
            "audit_copy",
            "CREATE TRIGGER audit_copy AFTER INSERT ON organizations BEGIN SELECT 1; END",
        ),
    ] {
        let (_dir, path) = previous_release_store();
        connect(&path).execute_batch(statement).unwrap();
        let before = std::fs::read(&path).unwrap();

        let err = SqliteStore::open(&path).await.unwrap_err();

        assert!(format!("{err:#}").contains(name), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(!staging_file(&path).exists());
        assert!(!kept_file(&path).exists());
    }
}

#[tokio::test]
async fn a_table_no_organization_names_stays_in_the_kept_file_only() {
    let (_dir, path) = previous_release_store();
    connect(&path)
        .execute_batch(
            "CREATE TABLE org_orphan (id TEXT NOT NULL PRIMARY KEY, doc TEXT NOT NULL, \
             created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, \
             revision INTEGER NOT NULL) STRICT; \
             INSERT INTO org_orphan VALUES ('x', '{}', 1, 1, 1);",
        )
        .unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();

    assert!(!table_exists(&connect(&path), "org_orphan"));
    assert!(table_exists(&connect(&kept_file(&path)), "org_orphan"));
    let shared: Arc<dyn TenantStore> = Arc::new(store.clone());
    assert_eq!(all_documents(&shared, id(GLOBEX)).await.len(), 1);
}

#[tokio::test]
async fn a_file_already_where_the_old_store_is_kept_stops_the_upgrade_and_stays() {
    let (_dir, path) = previous_release_store();
    let before = std::fs::read(&path).unwrap();
    std::fs::write(kept_file(&path), b"precious").unwrap();

    let err = SqliteStore::open(&path).await.unwrap_err();

    let message = format!("{err:#}");
    assert!(message.contains("before-0010"), "{message}");
    assert!(message.contains("move"), "{message}");
    assert_eq!(std::fs::read(kept_file(&path)).unwrap(), b"precious");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!staging_file(&path).exists());
    assert_eq!(tenant_tables(&connect(&path)).len(), 3);
}
