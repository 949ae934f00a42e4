//! The orphan sweep: tenant collections nobody holds are dropped by
//! reconciliation; collections of organizations, and names reserved by a
//! sweep, are respected.

use std::time::Duration;

use mongodb::bson::{doc, Document};
use orgsvc_domain::{CreateOrganizationError, TenantStore};

use crate::support::{name, new_org, TestStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_drops_collections_that_no_organization_holds() {
    let t = TestStore::new().await;
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.seed_documents("org_acme", acme.id, 3).await;
    // What a write that raced a rename leaves: the old name's collection,
    // recreated after the rename released the name, empty or not.
    t.db.create_collection("org_old_name").await.unwrap();
    t.seed_documents("org_straggler", acme.id, 1).await;

    t.reconcile(Duration::ZERO).await.unwrap();

    assert_eq!(
        t.tenant_collections().await.into_iter().collect::<Vec<_>>(),
        ["org_acme"]
    );
    assert_eq!(t.ids_of("org_acme", acme.id).await.len(), 3);
    assert!(
        t.raw("organization_names")
            .await
            .iter()
            .all(|c| !c.contains_key("reserved_ms")),
        "a reservation outlived its sweep"
    );
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_leaves_the_collection_of_a_name_claimed_meanwhile() {
    let t = TestStore::new().await;
    // An organization being created holds its name before its collection
    // exists: a claim without a record yet is still a claim.
    t.db.collection::<Document>("organization_names")
        .insert_one(doc! { "_id": "acme", "organization_id": "some-organization" })
        .await
        .unwrap();
    t.db.create_collection("org_acme").await.unwrap();

    t.reconcile(Duration::ZERO).await.unwrap();

    assert!(t.tenant_collections().await.contains("org_acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_meeting_a_live_reservation_answers_busy_and_changes_nothing() {
    let t = TestStore::new().await;
    let now = chrono::Utc::now().timestamp_millis();
    t.db.collection::<Document>("organization_names")
        .insert_one(doc! { "_id": "acme", "organization_id": "sweep:test", "reserved_ms": now })
        .await
        .unwrap();

    let err = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap_err();

    assert!(matches!(err, CreateOrganizationError::Busy), "{err:?}");
    assert!(t.raw("organizations").await.is_empty());
    assert!(t.raw("admins").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_sweep_died_is_taken_over() {
    let t = TestStore::new()
        .await
        .with_lease_timeout(Duration::from_millis(100));
    let long_ago = chrono::Utc::now().timestamp_millis() - 60_000;
    t.db.collection::<Document>("organization_names")
        .insert_one(
            doc! { "_id": "acme", "organization_id": "sweep:dead", "reserved_ms": long_ago },
        )
        .await
        .unwrap();

    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();

    let found = t.organization_by_name(&name("Acme")).await.unwrap();
    assert_eq!(found.map(|o| o.id), Some(acme.id));
    t.assert_consistent().await;
}
