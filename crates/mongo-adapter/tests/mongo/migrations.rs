//! Schema migrations: applied once, in order, guarded by checksums.

use mongodb::bson::{doc, Bson, Document};
use orgsvc_domain::{AdminRole, ChangeAdminError, NewAdmin, PasswordHash, TenantStore};
use orgsvc_mongo::MigrationError;
use sha2::{Digest, Sha256};

use crate::support::{email, new_org, TestStore};

const ALL: [&str; 11] = [
    "0001_collections_and_indexes",
    "0002_validators",
    "0003_admin_security",
    "0004_rate_limits",
    "0005_lifecycle_leases",
    "0006_signing_keys",
    "0007_outbox",
    "0008_invitations",
    "0009_organization_state",
    "0010_operator_keys",
    "0011_shared_tenancy",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_every_migration_once() {
    let t = TestStore::unmigrated().await;
    assert_eq!(t.migrate().await.unwrap(), ALL);
    assert!(t.migrate().await.unwrap().is_empty());

    let records = t.raw("_migrations").await;
    assert_eq!(records.len(), ALL.len());
    for record in records {
        assert_eq!(record.get_str("checksum").unwrap().len(), 64, "{record:?}");
        assert!(record.get_datetime("applied_at").is_ok(), "{record:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_create_the_unique_email_index() {
    let t = TestStore::new().await;
    let admins = t.db.collection::<Document>("admins");
    admins
        .insert_one(doc! { "_id": "a", "email": "x@y.example" })
        .await
        .unwrap();
    assert!(admins
        .insert_one(doc! { "_id": "b", "email": "x@y.example" })
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_refuses_a_migration_edited_after_being_applied() {
    let t = TestStore::new().await;
    t.db.collection::<Document>("_migrations")
        .update_one(
            doc! { "_id": ALL[0] },
            doc! { "$set": { "checksum": "0".repeat(64) } },
        )
        .await
        .unwrap();
    let err = t.migrate().await.unwrap_err();
    assert!(
        matches!(err, MigrationError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "migration 0001_collections_and_indexes was edited after being applied (checksum mismatch)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_migrating_at_once_apply_each_migration_once() {
    let t = TestStore::unmigrated().await;
    let (first, second) = (t.store.clone(), t.second_process().await);
    let a = tokio::spawn(async move { first.migrate().await });
    let b = tokio::spawn(async move { second.migrate().await });
    let mut applied = a.await.unwrap().unwrap();
    applied.extend(b.await.unwrap().unwrap());
    applied.sort();
    assert_eq!(applied, ALL);
}

/// The commands of a migration file, as the store runs them.
fn commands_of(migration: &str) -> Vec<Document> {
    let path = format!(
        "{}/../../migrations/mongodb/{migration}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|command| match Bson::try_from(command.clone()).unwrap() {
            Bson::Document(command) => command,
            other => panic!("not a command: {other:?}"),
        })
        .collect()
}

/// Brings a new database to the schema of the version before roles: runs
/// and records migrations 0001 and 0002 as that version did.
async fn migrate_as_before_roles(t: &TestStore) {
    for migration in &ALL[..2] {
        for command in commands_of(migration) {
            t.db.run_command(command).await.unwrap();
        }
        let path = format!(
            "{}/../../migrations/mongodb/{migration}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let checksum: String = Sha256::digest(std::fs::read(path).unwrap())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        t.db.collection::<Document>("_migrations")
            .insert_one(doc! {
                "_id": *migration,
                "checksum": checksum,
                "applied_at": mongodb::bson::DateTime::now(),
            })
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_written_before_roles_existed_are_owners_after_migrating() {
    let t = TestStore::unmigrated().await;
    migrate_as_before_roles(&t).await;
    let mut orgs = Vec::new();
    for (org, address) in [
        ("Acme", "owner@acme.example"),
        ("Globex", "owner@globex.example"),
    ] {
        orgs.push(t.create_organization(new_org(org, address)).await.unwrap());
    }
    // As the earlier version stored them: no role.
    t.db.collection::<Document>("admins")
        .update_many(
            doc! {},
            doc! { "$unset": { "role": "", "role_revision": "" } },
        )
        .await
        .unwrap();
    assert!(t
        .raw("admins")
        .await
        .iter()
        .all(|a| !a.contains_key("role")));

    assert_eq!(t.migrate().await.unwrap(), ALL[2..]);
    for admin in t.raw("admins").await {
        assert_eq!(admin.get_str("role").unwrap(), "owner", "{admin:?}");
    }
    t.assert_consistent().await;
    let acme = &orgs[0];
    let creator = t.admin_by_id(acme.admin_id).await.unwrap().unwrap();
    assert_eq!(creator.role, AdminRole::Owner);
    let err = t
        .set_admin_role(acme.id, acme.admin_id, AdminRole::Admin)
        .await
        .unwrap_err();
    assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");

    // Roles work on the migrated records like on new ones.
    let hash = PasswordHash::from_phc_string("$argon2id$v=19$x".into());
    let second = t
        .add_admin(
            acme.id,
            NewAdmin::new(email("second@acme.example"), AdminRole::Owner, hash),
        )
        .await
        .unwrap();
    let demoted = t
        .set_admin_role(acme.id, acme.admin_id, AdminRole::Admin)
        .await
        .unwrap();
    assert_eq!(demoted.role, AdminRole::Admin);
    let acme_now = t.organization_by_id(acme.id).await.unwrap().unwrap();
    assert_eq!(acme_now.admin_id, second.id);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0003_creates_the_session_and_audit_indexes() {
    let t = TestStore::new().await;
    assert!(t.has_index_on("refresh_tokens", "family").await);
    assert!(t.has_index_on("refresh_tokens", "expires_at").await);
    assert!(t.has_index_on("login_throttles", "last_attempt_at").await);
    let audit = t.db.collection::<Document>("audit_events");
    let event =
        doc! { "organization_id": "o", "id": "e1", "action": "login.failed", "target": "x" };
    audit.insert_one(event.clone()).await.unwrap();
    assert!(
        audit.insert_one(event).await.is_err(),
        "one entry per id and organization"
    );
}
