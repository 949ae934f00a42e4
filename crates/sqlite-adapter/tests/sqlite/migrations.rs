//! Versioned migrations: applied once, refused when tampered with.

use std::sync::Arc;

use orgsvc_domain::testing::{all_documents, new_org};
use orgsvc_domain::{
    AdminEmail, AdminId, AdminRole, ChangeAdminError, DocumentBody, DocumentId, NewAdmin,
    OrganizationId, PasswordHash, TenantStore,
};
use orgsvc_sqlite::{MigrationError, SqliteStore};
use serde_json::{json, Value};

use crate::support::{connect, listing_index, migrated_store, name, table_exists};

#[tokio::test]
async fn migrate_applies_every_migration_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = SqliteStore::open(&dir.path().join("orgsvc.db"))
        .await
        .unwrap();

    assert_eq!(
        store.migrate().await.unwrap(),
        [
            "0001_initial",
            "0002_document_revisions",
            "0004_admin_security"
        ]
    );
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());

    let connection = connect(&dir.path().join("orgsvc.db"));
    assert!(table_exists(&connection, "organizations"));
    assert!(table_exists(&connection, "admins"));
    let recorded: Vec<(i64, String, String)> = connection
        .prepare("SELECT version, name, checksum FROM _migrations ORDER BY version")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let names: Vec<_> = recorded
        .iter()
        .map(|(version, name, _)| (*version, name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (1, "0001_initial"),
            (2, "0002_document_revisions"),
            (4, "0004_admin_security")
        ]
    );
    for (_, name, checksum) in &recorded {
        assert_eq!(checksum.len(), 64, "{name}: SHA-256 as hex: {checksum}");
    }
}

#[tokio::test]
async fn migrate_refuses_a_migration_changed_after_it_was_applied() {
    let test = migrated_store().await;
    connect(&test.path)
        .execute(
            "UPDATE _migrations SET checksum = 'edited' WHERE name = '0001_initial'",
            [],
        )
        .unwrap();

    let err = test.store.migrate().await.unwrap_err();

    assert!(
        matches!(&err, MigrationError::ChecksumMismatch { name, .. } if name == "0001_initial"),
        "{err:?}"
    );
    assert!(err.to_string().contains("0001_initial"), "{err}");
}

#[tokio::test]
async fn migrate_refuses_a_database_migrated_by_a_newer_build() {
    let test = migrated_store().await;
    connect(&test.path)
        .execute(
            "INSERT INTO _migrations (version, name, checksum, applied_at) \
             VALUES (999, '0999_future', 'x', 0)",
            [],
        )
        .unwrap();

    let err = test.store.migrate().await.unwrap_err();

    assert!(
        matches!(&err, MigrationError::UnknownVersion { version: 999, name } if name == "0999_future"),
        "{err:?}"
    );
}

/// A file as the previous release left it: only `0001_initial` applied and
/// a tenant table without `revision` or listing index, holding documents.
fn previous_release_file(path: &std::path::Path, organization: OrganizationId) {
    use sha2::{Digest, Sha256};

    let initial = include_str!("../../../../migrations/sqlite/0001_initial.sql");
    let checksum: String = Sha256::digest(initial.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let connection = connect(path);
    connection
        .execute_batch("PRAGMA journal_mode = WAL")
        .unwrap();
    connection
        .execute_batch(&format!(
            "BEGIN;
             CREATE TABLE _migrations (
                 version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL,
                 checksum TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT;
             {initial}
             INSERT INTO _migrations VALUES (1, '0001_initial', '{checksum}', 0);
             INSERT INTO organizations (id, display_name, canonical_name, database_name,
                 table_name, admin_id, created_at, updated_at)
                 VALUES ('{organization}', 'Acme', 'acme', 'main', 'org_acme',
                         '{admin}', 1700000000000, 1700000000000);
             INSERT INTO admins (id, organization_id, email, password_hash, created_at, updated_at)
                 VALUES ('{admin}', '{organization}', 'owner@acme.example',
                         '$argon2id$v=19$m=8,t=1,p=1$dGVzdA$dummy', 1700000000000, 1700000000000);
             CREATE TABLE org_acme (
                 id         TEXT    NOT NULL PRIMARY KEY,
                 doc        TEXT    NOT NULL CHECK (json_valid(doc)),
                 created_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL
             ) STRICT;
             COMMIT;",
            admin = AdminId::new(),
        ))
        .unwrap();
    let mut insert = connection
        .prepare("INSERT INTO org_acme (id, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)")
        .unwrap();
    for n in 0..30_i64 {
        insert
            .execute(rusqlite::params![
                DocumentId::new().to_string(),
                format!(r#"{{"n":{n}}}"#),
                1_700_000_000_000 + n
            ])
            .unwrap();
    }
}

#[tokio::test]
async fn migrating_a_previous_release_file_upgrades_its_tenant_tables() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("orgsvc.db");
    let organization = OrganizationId::new();
    previous_release_file(&path, organization);

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        ["0002_document_revisions", "0004_admin_security"]
    );
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());

    let connection = connect(&path);
    let (index, _) = listing_index(&connection, "org_acme").unwrap();
    assert_eq!(
        index,
        format!("idx_{}_created_id", organization.as_uuid().simple())
    );
    let shared: Arc<dyn TenantStore> = Arc::new(store.clone());
    let documents = all_documents(&shared, organization).await;
    assert_eq!(documents.len(), 30);
    assert!(documents.iter().all(|d| d.revision == 1));
    let numbers: Vec<_> = documents
        .iter()
        .map(|d| d.body.as_map()["n"].clone())
        .collect();
    assert_eq!(numbers, (0..30).map(Value::from).collect::<Vec<_>>());

    let replaced = store
        .replace_document(
            organization,
            documents[0].id,
            DocumentBody::parse(json!({"n": "changed"})).unwrap(),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(replaced.revision, 2);
    store
        .rename_organization(organization, &name("Acme Labs"))
        .await
        .unwrap();
    assert_eq!(
        listing_index(&connection, "org_acme_labs").map(|(name, _)| name),
        Some(index)
    );
    assert_eq!(all_documents(&shared, organization).await.len(), 30);
}

/// 0004 gives every existing admin (its organization's creator) the owner
/// role and keeps it, its credentials and its organization's primary admin.
#[tokio::test]
async fn migrating_a_previous_release_file_makes_its_admins_owners() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("orgsvc.db");
    let organization = OrganizationId::new();
    previous_release_file(&path, organization);

    let store = SqliteStore::open(&path).await.unwrap();
    let applied = store.migrate().await.unwrap();
    assert!(applied.iter().any(|name| name == "0004_admin_security"));

    let email = AdminEmail::parse("owner@acme.example").unwrap();
    let credentials = store
        .admin_credentials_by_email(&email)
        .await
        .unwrap()
        .unwrap();
    let admin = credentials.admin;
    assert_eq!(admin.role, AdminRole::Owner);
    assert_eq!(admin.organization_id, organization);
    assert_eq!(admin.token_version, 0);
    assert_eq!(admin.created_at.timestamp_millis(), 1_700_000_000_000);
    assert_eq!(
        credentials.password_hash.as_phc_str(),
        "$argon2id$v=19$m=8,t=1,p=1$dGVzdA$dummy"
    );
    assert_eq!(
        store.admins_of(organization).await.unwrap(),
        std::slice::from_ref(&admin)
    );
    let found = store
        .organization_by_id(organization)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.admin_id, admin.id);

    // The migrated owner counts as one: it is the last owner.
    let err = store
        .remove_admin(organization, admin.id)
        .await
        .unwrap_err();
    assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");
    let added = store
        .add_admin(
            organization,
            NewAdmin::new(
                AdminEmail::parse("ops@acme.example").unwrap(),
                AdminRole::Admin,
                PasswordHash::from_phc_string("$argon2id$v=19$m=8,t=1,p=1$dGVzdA$ops".to_owned()),
            ),
        )
        .await
        .unwrap();
    assert_eq!(store.admins_of(organization).await.unwrap(), [admin, added]);
}

#[tokio::test]
async fn the_role_column_refuses_anything_but_owner_and_admin() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let connection = connect(&test.path);

    let err = connection
        .execute(
            "UPDATE admins SET role = 'root' WHERE id = ?1",
            [created.admin_id.to_string()],
        )
        .unwrap_err();

    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    let admin = test.store.admin_by_id(created.admin_id).await.unwrap();
    assert_eq!(admin.map(|a| a.role), Some(AdminRole::Owner));
}
