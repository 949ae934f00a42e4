//! The fault-injecting decorator does what tests built on it rely on:
//! faults apply to the chosen operation the chosen number of times, with the
//! chosen error; hooks run before the call; calls are recorded. Also what
//! the in-memory store adds to the port (its collection names).

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed check should panic

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orgsvc_domain::testing::{new_org, Failure, FaultyStore, InMemoryStore, Operation, Times};
use orgsvc_domain::{
    DocumentBody, DocumentError, OrganizationName, ReconcileReport, RenameOrganizationError,
    StoreError, TenantStore,
};
use serde_json::json;

fn name(raw: &str) -> OrganizationName {
    OrganizationName::parse(raw).unwrap()
}

#[tokio::test]
async fn a_fault_applies_to_its_operation_as_many_times_as_asked() {
    let store = FaultyStore::in_memory();
    let org = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store.fail(Operation::Ping, Times::N(2), Failure::unavailable("down"));
    store.fail(
        Operation::OrganizationById,
        Times::Once,
        Failure::store_msg("boom"),
    );

    for _ in 0..2 {
        let err = store.ping().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
    }
    store.ping().await.unwrap();
    let err = store.organization_by_id(org.id).await.unwrap_err();
    assert_eq!(err.to_string(), "boom");
    assert!(!err.is_unavailable());
    assert_eq!(store.organization_by_id(org.id).await.unwrap(), Some(org));
    // Other operations were never affected.
    assert!(store.organization_by_name(&name("Acme")).await.is_ok());
}

#[tokio::test]
async fn a_fault_answers_a_domain_error_and_the_inner_store_is_left_alone() {
    let store = FaultyStore::in_memory();
    let org = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store.fail(
        Operation::RenameOrganizationFrom,
        Times::Always,
        Failure::NameChanged,
    );
    store.fail(
        Operation::InsertDocument,
        Times::Once,
        Failure::RevisionMismatch { current: 4 },
    );
    for _ in 0..3 {
        let err = store
            .rename_organization_from(org.id, &name("Acme"), &name("Beta"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RenameOrganizationError::NameChanged),
            "{err:?}"
        );
    }
    assert_eq!(
        store.inner().organization_by_id(org.id).await.unwrap(),
        Some(org.clone())
    );
    let body = DocumentBody::parse(json!({})).unwrap();
    let err = store
        .insert_document(org.id, body.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DocumentError::RevisionMismatch { current: 4 }),
        "{err:?}"
    );
    store.insert_document(org.id, body).await.unwrap();

    store.heal(Operation::RenameOrganizationFrom);
    store
        .rename_organization_from(org.id, &name("Acme"), &name("Beta"))
        .await
        .unwrap();
}

#[test]
#[should_panic(expected = "ping cannot fail with NameChanged")]
fn a_failure_the_operation_cannot_have_is_refused() {
    FaultyStore::in_memory().fail(Operation::Ping, Times::Once, Failure::NameChanged);
}

#[test]
fn operations_are_named_after_the_trait_methods() {
    assert_eq!(
        Operation::parse("update_admin"),
        Some(Operation::UpdateAdmin)
    );
    assert_eq!(Operation::parse("nope"), None);
    for &operation in Operation::ALL {
        assert_eq!(Operation::parse(operation.as_str()), Some(operation));
    }
    assert!(!Operation::BeginDrain.can_fail_with(&Failure::store_msg("x")));
    assert!(Operation::DeleteOrganization.can_fail_with(&Failure::Busy));
    assert!(!Operation::DeleteOrganization.can_fail_with(&Failure::NameTaken));
}

#[tokio::test]
async fn a_hook_runs_before_the_call_and_sees_the_inner_store() {
    let store = FaultyStore::in_memory();
    let org = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    // Another rename lands right before ours: ours then finds the name changed.
    let id = org.id;
    store.before(
        Operation::RenameOrganizationFrom,
        Times::Once,
        move |inner| async move {
            inner.rename_organization(id, &name("Other")).await.unwrap();
        },
    );
    let err = store
        .rename_organization_from(org.id, &name("Acme"), &name("Beta"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RenameOrganizationError::NameChanged),
        "{err:?}"
    );
    // Once only; the hook's own call went to the inner store, unrecorded.
    store
        .rename_organization_from(org.id, &name("Other"), &name("Beta"))
        .await
        .unwrap();
    assert_eq!(store.calls_to(Operation::RenameOrganizationFrom), 2);
    assert_eq!(store.calls_to(Operation::RenameOrganization), 0);
}

#[tokio::test]
async fn a_broken_store_fails_everything_and_records_calls_and_drains() {
    let store = Arc::new(FaultyStore::in_memory());
    store.fail_every(Times::Always, Failure::store(|| StoreError::msg("broken")));
    store.heal(Operation::Reconcile);
    store.reconcile_reports(ReconcileReport {
        completed: 2,
        rolled_back: 1,
    });
    assert!(store.ping().await.is_err());
    assert!(store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .is_err());
    let report = store.reconcile(Duration::ZERO).await.unwrap();
    assert_eq!((report.completed, report.rolled_back), (2, 1));
    let deadline = Instant::now();
    store.begin_drain(deadline);
    assert_eq!(store.drains(), [deadline]);
    assert_eq!(
        store.calls(),
        [
            Operation::Ping,
            Operation::CreateOrganization,
            Operation::Reconcile,
            Operation::BeginDrain
        ]
    );
}

#[tokio::test]
async fn a_hook_that_never_ends_makes_the_call_hang() {
    let store = Arc::new(FaultyStore::in_memory());
    let started = Arc::new(AtomicUsize::new(0));
    let counted = started.clone();
    store.before(Operation::Reconcile, Times::Always, move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        std::future::pending()
    });
    let hung =
        tokio::time::timeout(Duration::from_millis(50), store.reconcile(Duration::ZERO)).await;
    assert!(hung.is_err(), "{hung:?}");
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(store.calls_to(Operation::Reconcile), 1);
}

#[tokio::test]
async fn a_rename_moves_the_collection_and_a_deletion_drops_it() {
    let store = InMemoryStore::new();
    let org = store
        .create_organization(new_org("Acme Corp", "owner@acme.example"))
        .await
        .unwrap();
    let collection = org.location.collection.clone();
    assert_eq!(store.collection_names(), [collection]);
    let renamed = store
        .rename_organization(org.id, &name("Globex"))
        .await
        .unwrap();
    assert_eq!(renamed.location.collection.as_str(), "org_globex");
    assert_eq!(store.collection_names(), [renamed.location.collection]);
    store.delete_organization(org.id).await.unwrap();
    assert!(store.collection_names().is_empty());
}

#[tokio::test]
async fn an_id_in_use_is_a_store_error_not_a_taken_name_and_changes_nothing() {
    let store = InMemoryStore::new();
    let first = new_org("Acme", "owner@acme.example");
    let org = store.create_organization(first.clone()).await.unwrap();
    let mut again = new_org("Globex", "owner@globex.example");
    again.id = first.id;
    let err = store.create_organization(again).await.unwrap_err();
    assert!(
        matches!(err, orgsvc_domain::CreateOrganizationError::Store(_)),
        "{err:?}"
    );
    assert!(store
        .organization_by_name(&name("Globex"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.organization_by_id(org.id).await.unwrap(), Some(org));
}
