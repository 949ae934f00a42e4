//! Schema migrations: applied once, in order, guarded by checksums.

use mongodb::bson::{doc, Document};
use orgsvc_mongo::MigrationError;

use crate::support::TestStore;

const ALL: [&str; 2] = ["0001_collections_and_indexes", "0002_validators"];

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
