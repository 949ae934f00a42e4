//! Versioned migrations: applied once, refused when tampered with.

use std::sync::Arc;

use orgsvc_domain::testing::{all_documents, new_org};
use orgsvc_domain::{
    AdminEmail, AdminId, AdminRole, ChangeAdminError, DocumentBody, DocumentId, NewAdmin,
    OrganizationId, PasswordHash, TenantStore,
};
use orgsvc_sqlite::{MigrationError, SqliteStore};
use serde_json::{json, Value};

use crate::support::{
    connect, document_rows, legacy_rows, migrated_store, name, table_exists, tenant_tables, Row,
};

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
            "0003_light_tenant_tables",
            "0004_admin_security",
            "0005_signing_keys",
            "0006_outbox_and_account_tokens",
            "0007_invitations",
            "0008_organization_state",
            "0009_operator_keys",
            "0010_shared_documents",
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
            (3, "0003_light_tenant_tables"),
            (4, "0004_admin_security"),
            (5, "0005_signing_keys"),
            (6, "0006_outbox_and_account_tokens"),
            (7, "0007_invitations"),
            (8, "0008_organization_state"),
            (9, "0009_operator_keys"),
            (10, "0010_shared_documents"),
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

/// The hex SHA-256 of a migration file, as `_migrations` records it.
fn checksum(sql: &str) -> String {
    use sha2::{Digest, Sha256};

    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A file as `0002_document_revisions` left it (and `0004_admin_security`
/// too, with `with_0004`: that migration was released before this one):
/// tenant tables in that release's layout (CHECK constraints, a DEFAULT),
/// holding documents.
/// Organization "Acme" has documents (several with the same `created_at`,
/// revisions above 1, updated later than created), "Empty" none, and
/// "Lost"'s table is missing from the file (a damaged store).
fn release_0002_file(path: &std::path::Path, with_0004: bool) -> [OrganizationId; 3] {
    let initial = include_str!("../../../../migrations/sqlite/0001_initial.sql");
    let revisions = include_str!("../../../../migrations/sqlite/0002_document_revisions.sql");
    let organizations = [
        OrganizationId::new(),
        OrganizationId::new(),
        OrganizationId::new(),
    ];
    let connection = connect(path);
    connection
        .execute_batch("PRAGMA journal_mode = WAL")
        .unwrap();
    let mut sql = format!(
        "BEGIN;
         CREATE TABLE _migrations (
             version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL,
             checksum TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT;
         {initial}
         INSERT INTO _migrations VALUES (1, '0001_initial', '{}', 0);
         INSERT INTO _migrations VALUES (2, '0002_document_revisions', '{}', 0);",
        checksum(initial),
        checksum(revisions),
    );
    for (organization, org_name) in organizations.iter().zip(["Acme", "Empty", "Lost"]) {
        let canonical = org_name.to_lowercase();
        let admin = AdminId::new();
        sql.push_str(&format!(
            "INSERT INTO organizations (id, display_name, canonical_name, database_name,
                 table_name, admin_id, created_at, updated_at)
                 VALUES ('{organization}', '{org_name}', '{canonical}', 'main', 'org_{canonical}',
                         '{admin}', 1700000000000, 1700000000000);
             INSERT INTO admins (id, organization_id, email, password_hash, created_at, updated_at)
                 VALUES ('{admin}', '{organization}', 'owner@{canonical}.example',
                         '$argon2id$v=19$m=8,t=1,p=1$dGVzdA$dummy', 1700000000000, 1700000000000);"
        ));
        if org_name != "Lost" {
            sql.push_str(&format!(
                "CREATE TABLE org_{canonical} (
                     id         TEXT    NOT NULL PRIMARY KEY,
                     doc        TEXT    NOT NULL CHECK (json_valid(doc)),
                     created_at INTEGER NOT NULL,
                     updated_at INTEGER NOT NULL,
                     revision   INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1)
                 ) STRICT;
                 CREATE INDEX \"idx_{}_created_id\" ON org_{canonical} (created_at, id);",
                organization.as_uuid().simple()
            ));
        }
    }
    if with_0004 {
        let security = include_str!("../../../../migrations/sqlite/0004_admin_security.sql");
        sql.push_str(security);
        sql.push_str(&format!(
            "INSERT INTO _migrations VALUES (4, '0004_admin_security', '{}', 0);",
            checksum(security)
        ));
    }
    sql.push_str("COMMIT;");
    connection.execute_batch(&sql).unwrap();
    let mut insert = connection
        .prepare(
            "INSERT INTO org_acme (id, doc, created_at, updated_at, revision) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .unwrap();
    for n in 0..40_i64 {
        insert
            .execute(rusqlite::params![
                DocumentId::new().to_string(),
                format!(r#"{{"n":{n},"text":"Zoë \"{n}\"","nested":{{"a":[1,2.5,null]}}}}"#),
                1_700_000_000_000 + n / 4, // four documents per millisecond
                1_700_000_500_000 + n,
                1 + n % 3,
            ])
            .unwrap();
    }
    organizations
}

#[tokio::test]
async fn migrating_a_0002_file_converts_its_tenant_tables_keeping_every_document() {
    converts_keeping_every_document(
        false,
        &[
            "0003_light_tenant_tables",
            "0004_admin_security",
            "0005_signing_keys",
            "0006_outbox_and_account_tokens",
            "0007_invitations",
            "0008_organization_state",
            "0009_operator_keys",
            "0010_shared_documents",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_file_migrated_up_to_0004_gets_0003_after_it() {
    converts_keeping_every_document(
        true,
        &[
            "0003_light_tenant_tables",
            "0005_signing_keys",
            "0006_outbox_and_account_tokens",
            "0007_invitations",
            "0008_organization_state",
            "0009_operator_keys",
            "0010_shared_documents",
        ],
    )
    .await;
}

async fn converts_keeping_every_document(with_0004: bool, applied: &[&str]) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("orgsvc.db");
    let [acme, empty, lost] = release_0002_file(&path, with_0004);
    let before = legacy_rows(&connect(&path), "org_acme");
    assert_eq!(before.len(), 40);

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), applied);
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());

    // Every document moved to the one documents table, as it was.
    let connection = connect(&path);
    assert_eq!(tenant_tables(&connection), Vec::<String>::new());
    assert!(!table_exists(&connection, "_rebuilt_tenant_table"));
    assert_eq!(document_rows(&connection, acme), before);
    assert!(document_rows(&connection, empty).is_empty());

    // The store reads them as before: same ids, bodies, timestamps,
    // revisions, in the same order, page after page.
    let shared: Arc<dyn TenantStore> = Arc::new(store.clone());
    let documents = all_documents(&shared, acme).await;
    let read: Vec<Row> = documents
        .iter()
        .map(|d| {
            (
                d.id.to_string(),
                serde_json::to_string(d.body.as_map()).unwrap(),
                d.created_at.timestamp_millis(),
                d.updated_at.timestamp_millis(),
                i64::try_from(d.revision).unwrap(),
            )
        })
        .collect();
    assert_eq!(read, before);
    assert!(all_documents(&shared, empty).await.is_empty());
    assert!(store.organization_by_id(lost).await.unwrap().is_some());

    // And writes them as before.
    let replaced = store
        .replace_document(
            acme,
            documents[1].id,
            DocumentBody::parse(json!({"n": "changed"})).unwrap(),
            Some(documents[1].revision),
        )
        .await
        .unwrap();
    assert_eq!(replaced.revision, documents[1].revision + 1);
    store
        .insert_document(empty, DocumentBody::parse(json!({"first": true})).unwrap())
        .await
        .unwrap();
    store
        .rename_organization(acme, &name("Acme Labs"))
        .await
        .unwrap();
    assert_eq!(all_documents(&shared, acme).await.len(), 40);
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
        [
            "0002_document_revisions",
            "0003_light_tenant_tables",
            "0004_admin_security",
            "0005_signing_keys",
            "0006_outbox_and_account_tokens",
            "0007_invitations",
            "0008_organization_state",
            "0009_operator_keys",
            "0010_shared_documents",
        ]
    );
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());

    let connection = connect(&path);
    assert_eq!(tenant_tables(&connection), Vec::<String>::new());
    assert_eq!(document_rows(&connection, organization).len(), 30);
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
