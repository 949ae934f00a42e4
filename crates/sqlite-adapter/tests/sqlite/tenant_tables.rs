//! Each organization's table follows it through create, rename and delete.

use orgsvc_domain::testing::new_org;
use orgsvc_domain::{CreateOrganizationError, TenantStore};
use rusqlite::Connection;

use crate::support::{connect, light_layout_issues, migrated_store, name, table_exists};

type Documents = Vec<(String, String, i64, i64)>;

fn insert_documents(connection: &Connection, table: &str) -> Documents {
    let documents: Documents = (1..=3)
        .map(|i| {
            (
                format!("doc-{i}"),
                format!(r#"{{"n":{i},"tags":["a","b"]}}"#),
                1_700_000_000_000 + i,
                1_700_000_000_500 + i,
            )
        })
        .collect();
    for (id, doc, created_at, updated_at) in &documents {
        connection
            .execute(
                &format!(
                    r#"INSERT INTO "{table}" (id, doc, created_at, updated_at, revision) VALUES (?1, ?2, ?3, ?4, 1)"#
                ),
                rusqlite::params![id, doc, created_at, updated_at],
            )
            .unwrap();
    }
    documents
}

fn documents(connection: &Connection, table: &str) -> Documents {
    connection
        .prepare(&format!(
            r#"SELECT id, doc, created_at, updated_at FROM "{table}" ORDER BY id"#
        ))
        .unwrap()
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn create_makes_an_empty_table_named_after_the_canonical_name() {
    let test = migrated_store().await;
    test.store
        .create_organization(new_org("Acme Corp", "owner@acme.example"))
        .await
        .unwrap();

    let connection = connect(&test.path);
    assert!(table_exists(&connection, "org_acme_corp"));
    assert!(documents(&connection, "org_acme_corp").is_empty());
}

#[tokio::test]
async fn create_refused_for_a_taken_email_leaves_no_table() {
    let test = migrated_store().await;
    test.store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let err = test
        .store
        .create_organization(new_org("Globex", "owner@acme.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CreateOrganizationError::EmailTaken),
        "{err:?}"
    );

    assert!(!table_exists(&connect(&test.path), "org_globex"));
}

#[tokio::test]
async fn rename_moves_every_row_to_the_new_table() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let connection = connect(&test.path);
    let stored = insert_documents(&connection, "org_acme");

    let renamed = test
        .store
        .rename_organization(created.id, &name("Acme Labs"))
        .await
        .unwrap();

    assert_eq!(renamed.location.collection.as_str(), "org_acme_labs");
    assert_eq!(documents(&connection, "org_acme_labs"), stored);
    assert!(!table_exists(&connection, "org_acme"));
}

#[tokio::test]
async fn rename_to_a_respelling_leaves_the_rows_in_place() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("acme corp", "owner@acme.example"))
        .await
        .unwrap();
    let connection = connect(&test.path);
    let stored = insert_documents(&connection, "org_acme_corp");

    test.store
        .rename_organization(created.id, &name("ACME-Corp"))
        .await
        .unwrap();

    assert_eq!(documents(&connection, "org_acme_corp"), stored);
}

#[tokio::test]
async fn rename_refused_for_a_taken_name_leaves_both_tables_untouched() {
    let test = migrated_store().await;
    let acme = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    test.store
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();
    let connection = connect(&test.path);
    let acme_documents = insert_documents(&connection, "org_acme");

    assert!(test
        .store
        .rename_organization(acme.id, &name("Globex"))
        .await
        .is_err());

    assert_eq!(documents(&connection, "org_acme"), acme_documents);
    assert!(documents(&connection, "org_globex").is_empty());
}

#[tokio::test]
async fn delete_drops_the_table_and_its_rows() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let connection = connect(&test.path);
    insert_documents(&connection, "org_acme");

    test.store.delete_organization(created.id).await.unwrap();

    assert!(!table_exists(&connection, "org_acme"));
    let admins: i64 = connection
        .query_row("SELECT count(*) FROM admins", [], |row| row.get(0))
        .unwrap();
    assert_eq!(admins, 0);
}

/// The parsed schema of every table stays in every connection's memory:
/// tenant tables carry no CHECK constraint and no DEFAULT (see
/// `tenant_tables.rs`), just the primary key and the listing index.
#[tokio::test]
async fn tenant_tables_have_the_light_layout() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let connection = connect(&test.path);

    assert_eq!(
        light_layout_issues(&connection, "org_acme"),
        Vec::<String>::new()
    );
    let indexes: Vec<String> = connection
        .prepare("SELECT name FROM pragma_index_list('org_acme') ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        [
            format!("idx_{}_created_id", created.id.as_uuid().simple()),
            "sqlite_autoindex_org_acme_1".to_owned()
        ]
    );
}
