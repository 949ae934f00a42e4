//! Crash safety: each lifecycle operation stopped right after each of its
//! steps, then reconciled; the invariants must hold and no document be lost.

use std::time::Duration;

use orgsvc_domain::{
    CreateOrganizationError, DeleteOrganizationError, ReconcileReport, RenameOrganizationError,
    TenantStore,
};
use orgsvc_mongo::Step;

use crate::support::{email, name, new_org, TestStore};

const ROLLED_BACK: ReconcileReport = ReconcileReport {
    completed: 0,
    rolled_back: 1,
};
const COMPLETED: ReconcileReport = ReconcileReport {
    completed: 1,
    rolled_back: 0,
};

async fn create_interrupted_after(step: Step) {
    let t = TestStore::new().await;
    t.fail_after(step);
    let err = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap_err();
    assert!(matches!(err, CreateOrganizationError::Store(_)), "{err:?}");
    assert!(t
        .organization_by_name(&name("Acme"))
        .await
        .unwrap()
        .is_none());
    assert!(t
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .is_none());

    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), ROLLED_BACK);
    t.assert_consistent().await;
    assert!(t.raw("organizations").await.is_empty());
    assert!(t.raw("admins").await.is_empty());
    assert!(t.tenant_collections().await.is_empty());
    // The name and the email are free again.
    t.create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stopped_after_recording_is_rolled_back() {
    create_interrupted_after(Step::CreateRecorded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stopped_after_claiming_the_name_is_rolled_back() {
    create_interrupted_after(Step::CreateNameClaimed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stopped_after_inserting_the_admin_is_rolled_back() {
    create_interrupted_after(Step::CreateAdminInserted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stopped_after_creating_the_collection_is_rolled_back() {
    create_interrupted_after(Step::CreateCollectionCreated).await;
}

/// Renames Acme (holding `docs` documents) to Acme Labs, stopped after
/// `step`; reconcile must finish the rename with every document.
async fn rename_interrupted_after(step: Step, docs: i32) {
    let t = TestStore::new().await;
    t.force_copy_fallback(); // the copy steps exist only on this path
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.seed("org_acme", 0..docs).await;
    let seeded = t.documents("org_acme").await;

    t.fail_after(step);
    let err = t
        .rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap_err();
    assert!(matches!(err, RenameOrganizationError::Store(_)), "{err:?}");
    assert!(t.organization_by_id(acme.id).await.unwrap().is_some());
    assert!(t.admin_by_id(acme.admin_id).await.unwrap().is_some());
    let busy = t.delete_organization(acme.id).await.unwrap_err();
    assert!(matches!(busy, DeleteOrganizationError::Busy), "{busy:?}");

    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), COMPLETED);
    t.assert_consistent().await;
    let renamed = t.organization_by_id(acme.id).await.unwrap().unwrap();
    assert_eq!(renamed.name.as_str(), "Acme Labs");
    assert_eq!(renamed.location.collection.as_str(), "org_acme_labs");
    assert_eq!(
        t.documents("org_acme_labs").await,
        TestStore::tagged(&seeded, acme.id)
    );
    assert!(t.has_index_on("org_acme_labs", "value").await);
    assert_eq!(t.tenant_collections().await.len(), 1);
    // The old name is free again.
    t.create_organization(new_org("Acme", "other@acme.example"))
        .await
        .unwrap();
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_after_recording_is_completed() {
    rename_interrupted_after(Step::RenameRecorded, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_after_claiming_the_new_name_is_completed() {
    rename_interrupted_after(Step::RenameNameClaimed, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_after_one_copied_batch_resumes_the_copy() {
    rename_interrupted_after(Step::RenameCopyBatch, 2_500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_after_copying_before_dropping_the_source_is_completed() {
    rename_interrupted_after(Step::RenameCollectionCopied, 2_500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_after_moving_the_collection_is_completed() {
    rename_interrupted_after(Step::RenameCollectionMoved, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_after_switching_the_record_is_completed() {
    rename_interrupted_after(Step::RenameRecordUpdated, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_after_sweeping_stragglers_is_completed() {
    rename_interrupted_after(Step::RenameStragglersSwept, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_after_releasing_the_old_name_is_completed() {
    rename_interrupted_after(Step::RenameOldNameReleased, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_rename_keeps_its_new_name_reserved() {
    let t = TestStore::new().await;
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let globex = t
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();
    t.fail_after(Step::RenameNameClaimed);
    t.rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap_err();

    let create = t
        .create_organization(new_org("acme-labs", "x@labs.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(create, CreateOrganizationError::NameTaken),
        "{create:?}"
    );
    let rename = t
        .rename_organization(globex.id, &name("ACME LABS"))
        .await
        .unwrap_err();
    assert!(
        matches!(rename, RenameOrganizationError::NameTaken),
        "{rename:?}"
    );
    let create_old = t
        .create_organization(new_org("Acme", "y@acme.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(create_old, CreateOrganizationError::NameTaken),
        "{create_old:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_stopped_before_claiming_is_abandoned_when_its_new_name_was_taken_meanwhile() {
    let t = TestStore::new().await;
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.seed("org_acme", 0..25).await;
    t.fail_after(Step::RenameRecorded);
    t.rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap_err();
    t.create_organization(new_org("Acme Labs", "owner@labs.example"))
        .await
        .unwrap();

    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), ROLLED_BACK);
    t.assert_consistent().await;
    assert_eq!(t.organization_by_id(acme.id).await.unwrap(), Some(acme));
    assert_eq!(t.documents("org_acme").await.len(), 25);
    assert!(t.documents("org_acme_labs").await.is_empty());
}

async fn delete_interrupted_after(step: Step) {
    let t = TestStore::new().await;
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.seed("org_acme", 0..25).await;

    t.fail_after(step);
    let err = t.delete_organization(acme.id).await.unwrap_err();
    assert!(matches!(err, DeleteOrganizationError::Store(_)), "{err:?}");
    assert!(t.organization_by_id(acme.id).await.unwrap().is_none());
    assert!(t.admin_by_id(acme.admin_id).await.unwrap().is_none());

    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), COMPLETED);
    t.assert_consistent().await;
    assert!(t.raw("organizations").await.is_empty());
    assert!(t.raw("admins").await.is_empty());
    assert!(t.tenant_collections().await.is_empty());
    t.create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    assert!(t.documents("org_acme").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stopped_after_recording_is_completed() {
    delete_interrupted_after(Step::DeleteRecorded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stopped_after_removing_the_admins_is_completed() {
    delete_interrupted_after(Step::DeleteAdminsRemoved).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stopped_after_dropping_the_collection_is_completed() {
    delete_interrupted_after(Step::DeleteCollectionDropped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stopped_after_releasing_the_name_is_completed() {
    delete_interrupted_after(Step::DeleteNameReleased).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_leaves_operations_younger_than_stale_after_alone() {
    let t = TestStore::new().await;
    t.fail_after(Step::CreateAdminInserted);
    t.create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap_err();

    let report = t.reconcile(Duration::from_secs(3_600)).await.unwrap();
    assert!(report.is_empty(), "{report:?}");
    let records = t.raw("organizations").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].get_str("state").unwrap(), "provisioning");

    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), ROLLED_BACK);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcilers_in_two_processes_finish_an_interrupted_deletion_once() {
    let t = TestStore::new().await;
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.fail_after(Step::DeleteAdminsRemoved);
    t.delete_organization(acme.id).await.unwrap_err();

    let (first, second) = (t.store.clone(), t.second_process().await);
    let a = tokio::spawn(async move { first.reconcile(Duration::ZERO).await });
    let b = tokio::spawn(async move { second.reconcile(Duration::ZERO).await });
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert_eq!(a.completed + b.completed, 1, "{a:?} {b:?}");
    t.assert_consistent().await;
    assert!(t.raw("organizations").await.is_empty());
}
