//! Every organization's documents live in `tenant_documents`, keyed by its
//! id: creating, renaming and deleting organizations never changes the
//! schema, and touches no other organization's rows.

use orgsvc_domain::testing::new_org;
use orgsvc_domain::{
    CreateOrganizationError, DocumentBody, OrganizationId, TenantLayout, TenantStore,
};
use serde_json::json;

use crate::support::{
    connect, document_rows, migrated_store, name, schema_version, tenant_tables, TestStore,
};

async fn insert_documents(test: &TestStore, organization: OrganizationId, count: usize) {
    for n in 0..count {
        test.store
            .insert_document(
                organization,
                DocumentBody::parse(json!({"n": n, "tags": ["a", "b"]})).unwrap(),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn lifecycle_operations_never_change_the_schema() {
    let test = migrated_store().await;
    let connection = connect(&test.path);
    let before = schema_version(&connection);

    let acme = test
        .store
        .create_organization(new_org("Acme Corp", "owner@acme.example"))
        .await
        .unwrap();
    insert_documents(&test, acme.id, 3).await;
    test.store
        .rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap();
    test.store.delete_organization(acme.id).await.unwrap();

    // No connection has to parse the schema again after any of them.
    assert_eq!(schema_version(&connection), before);
    assert_eq!(tenant_tables(&connection), Vec::<String>::new());
}

#[tokio::test]
async fn an_organization_is_stored_in_the_shared_layout_under_its_logical_collection() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("Acme Corp", "owner@acme.example"))
        .await
        .unwrap();

    assert_eq!(created.location.collection.as_str(), "org_acme_corp");
    assert_eq!(created.location.layout, TenantLayout::Shared);
    assert_eq!(created.location.database, "main");
    assert_eq!(created.location.physical_collection(), "tenant_documents");
    let found = test.store.organization_by_id(created.id).await.unwrap();
    assert_eq!(found, Some(created));
}

#[tokio::test]
async fn rename_leaves_every_row_in_place_and_changes_the_logical_collection() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    insert_documents(&test, created.id, 3).await;
    let connection = connect(&test.path);
    let rowids = |connection: &rusqlite::Connection| -> Vec<i64> {
        connection
            .prepare("SELECT rowid FROM tenant_documents ORDER BY rowid")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let stored = document_rows(&connection, created.id);
    let before = rowids(&connection);

    let renamed = test
        .store
        .rename_organization(created.id, &name("Acme Labs"))
        .await
        .unwrap();

    assert_eq!(renamed.location.collection.as_str(), "org_acme_labs");
    assert_eq!(document_rows(&connection, created.id), stored);
    assert_eq!(rowids(&connection), before, "no row was rewritten");
}

#[tokio::test]
async fn create_refused_for_a_taken_email_leaves_nothing() {
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

    let organizations: i64 = connect(&test.path)
        .query_row("SELECT count(*) FROM organizations", [], |row| row.get(0))
        .unwrap();
    assert_eq!(organizations, 1);
}

#[tokio::test]
async fn delete_removes_the_organizations_rows_and_admins_and_no_one_elses() {
    let test = migrated_store().await;
    let acme = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let globex = test
        .store
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();
    insert_documents(&test, acme.id, 3).await;
    insert_documents(&test, globex.id, 2).await;
    let connection = connect(&test.path);
    let globex_rows = document_rows(&connection, globex.id);

    test.store.delete_organization(acme.id).await.unwrap();

    assert!(document_rows(&connection, acme.id).is_empty());
    assert_eq!(document_rows(&connection, globex.id), globex_rows);
    let admins: Vec<String> = connection
        .prepare("SELECT organization_id FROM admins")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(admins, [globex.id.to_string()]);
}
