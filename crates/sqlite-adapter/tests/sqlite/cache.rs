//! The lookup cache stays coherent with every write, and the lock it relies
//! on keeps a second store off the file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use orgsvc_domain::testing::new_org;
use orgsvc_domain::{AdminEmail, AdminUpdate, PasswordHash, TenantStore};
use orgsvc_sqlite::SqliteStore;

use crate::support::{migrated_store, name};

#[tokio::test]
async fn a_rename_is_seen_by_every_lookup_made_after_it() {
    let test = migrated_store().await;
    let store = &test.store;
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    // Cached: found by both keys, the new name known to be free.
    assert_eq!(
        store.organization_by_name(&name("acme")).await.unwrap(),
        Some(created.clone())
    );
    assert!(store
        .organization_by_name(&name("Acme Labs"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.organization_by_id(created.id).await.unwrap(),
        Some(created.clone())
    );

    let renamed = store
        .rename_organization(created.id, &name("Acme Labs"))
        .await
        .unwrap();

    assert!(store
        .organization_by_name(&name("acme"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .organization_by_name(&name("acme-labs"))
            .await
            .unwrap(),
        Some(renamed.clone())
    );
    assert_eq!(
        store.organization_by_id(created.id).await.unwrap(),
        Some(renamed)
    );
}

#[tokio::test]
async fn a_created_organization_is_found_under_a_name_looked_up_before() {
    let test = migrated_store().await;
    let store = &test.store;
    assert!(store
        .organization_by_name(&name("Acme"))
        .await
        .unwrap()
        .is_none());

    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();

    assert_eq!(
        store.organization_by_name(&name("Acme")).await.unwrap(),
        Some(created)
    );
}

#[tokio::test]
async fn a_deleted_organization_and_its_admin_are_gone_for_lookups() {
    let test = migrated_store().await;
    let store = &test.store;
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    assert!(store
        .organization_by_id(created.id)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .organization_by_name(&name("Acme"))
        .await
        .unwrap()
        .is_some());
    assert!(store.admin_by_id(created.admin_id).await.unwrap().is_some());

    store.delete_organization(created.id).await.unwrap();

    assert_eq!(store.organization_by_id(created.id).await.unwrap(), None);
    assert_eq!(
        store.organization_by_name(&name("Acme")).await.unwrap(),
        None
    );
    // Deleted by the foreign key's cascade, which the cache sees too.
    assert_eq!(store.admin_by_id(created.admin_id).await.unwrap(), None);
}

#[tokio::test]
async fn an_admin_update_is_seen_by_the_next_lookup() {
    let test = migrated_store().await;
    let store = &test.store;
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let before = store.admin_by_id(created.admin_id).await.unwrap().unwrap();

    let updated = store
        .update_admin(
            created.admin_id,
            AdminUpdate {
                email: Some(AdminEmail::parse("new@acme.example").unwrap()),
                password_hash: Some(PasswordHash::from_phc_string(
                    "$argon2id$v=19$m=8,t=1,p=1$dGVzdA$changed".to_owned(),
                )),
            },
        )
        .await
        .unwrap();

    let after = store.admin_by_id(created.admin_id).await.unwrap().unwrap();
    assert_eq!(after, updated);
    assert_eq!(after.token_version, before.token_version + 1);
    assert_eq!(after.email.as_str(), "new@acme.example");
}

#[tokio::test]
async fn document_writes_leave_lookups_correct() {
    let test = migrated_store().await;
    let store = &test.store;
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    assert!(store
        .organization_by_id(created.id)
        .await
        .unwrap()
        .is_some());
    let body = orgsvc_domain::DocumentBody::parse(serde_json::json!({"n": 1})).unwrap();
    store.insert_document(created.id, body).await.unwrap();

    assert_eq!(
        store.organization_by_id(created.id).await.unwrap(),
        Some(created)
    );
}

/// Lookups of both names run without pause while the organization is
/// renamed back and forth: once a rename has returned, a lookup must see
/// it, even though reads that began before it keep finishing after it
/// (their answers must not be cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lookups_racing_renames_never_leave_a_stale_answer_behind() {
    let test = migrated_store().await;
    let store = test.store.clone();
    let created = store
        .create_organization(new_org("Alpha", "owner@alpha.example"))
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..6)
        .map(|k| {
            let store = store.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let names = [name("alpha"), name("beta")];
                while !stop.load(Ordering::Relaxed) {
                    let lookup = &names[k % 2];
                    store.organization_by_name(lookup).await.unwrap();
                    store.organization_by_id(created.id).await.unwrap();
                    // A hit never waits: let the other tasks run.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    for round in 0..200 {
        let (from, to) = if round % 2 == 0 {
            ("alpha", "beta")
        } else {
            ("beta", "alpha")
        };
        let renamed = store
            .rename_organization(created.id, &name(to))
            .await
            .unwrap();
        assert_eq!(
            store.organization_by_name(&name(from)).await.unwrap(),
            None,
            "round {round}: {from} still found after the rename to {to}"
        );
        assert_eq!(
            store.organization_by_name(&name(to)).await.unwrap(),
            Some(renamed.clone()),
            "round {round}"
        );
        assert_eq!(
            store.organization_by_id(created.id).await.unwrap(),
            Some(renamed),
            "round {round}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_is_dropped() {
    let test = migrated_store().await;

    let err = SqliteStore::open(&test.path).await.unwrap_err();

    let message = err.to_string();
    assert!(
        message.contains("in use by another orgsvc process"),
        "{message}"
    );
    assert!(
        message.contains(&test.path.display().to_string()),
        "{message}"
    );
    let clone = test.store.clone();
    drop(test.store);
    assert!(
        SqliteStore::open(&test.path).await.is_err(),
        "a clone still holds the store"
    );
    drop(clone);
    let reopened = SqliteStore::open(&test.path).await.unwrap();
    reopened.ping().await.unwrap();
}
