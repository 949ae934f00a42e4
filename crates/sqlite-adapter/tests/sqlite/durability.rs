//! The store's file: WAL mode, and data that outlives the process's handle.

use orgsvc_domain::testing::new_org;
use orgsvc_domain::TenantStore;
use orgsvc_sqlite::SqliteStore;

use crate::support::{connect, migrated_store, name};

#[tokio::test]
async fn open_creates_parent_directories_and_puts_the_file_in_wal_mode() {
    let test = migrated_store().await;

    assert!(test.path.is_file());
    let mode: String = connect(&test.path)
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let renamed = test
        .store
        .rename_organization(created.id, &name("Acme Labs"))
        .await
        .unwrap();
    drop(test.store);

    let reopened = SqliteStore::open(&test.path).await.unwrap();

    assert_eq!(reopened.migrate().await.unwrap(), Vec::<String>::new());
    assert_eq!(
        reopened.organization_by_id(created.id).await.unwrap(),
        Some(renamed)
    );
    let admin = reopened.admin_by_id(created.admin_id).await.unwrap();
    assert_eq!(
        admin.map(|a| a.email.to_string()).as_deref(),
        Some("owner@acme.example")
    );
}

#[tokio::test]
async fn describe_names_the_file() {
    let test = migrated_store().await;

    assert_eq!(
        test.store.describe(),
        format!("sqlite file {}", test.path.display())
    );
}
