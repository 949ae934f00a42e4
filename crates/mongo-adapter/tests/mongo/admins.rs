//! Admin additions, removals and role changes stopped or held after each of
//! their steps: what readers see meanwhile, what reconcile makes of it, and
//! interleavings the contract suite can only hope to hit.

use std::time::Duration;

use mongodb::bson::Document;
use orgsvc_domain::{
    AddAdminError, AdminId, AdminRole, AdminUpdate, ChangeAdminError, NewAdmin, Organization,
    PasswordHash, ReconcileReport, TenantStore,
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

fn new_admin(address: &str, role: AdminRole) -> NewAdmin {
    NewAdmin::new(
        email(address),
        role,
        PasswordHash::from_phc_string(format!("$argon2id$v=19$m=8,t=1,p=1$dGVzdA$dummy-{address}")),
    )
}

/// Acme, created by owner@acme.example, with a second owner added.
async fn two_owners(t: &TestStore) -> (Organization, AdminId) {
    let org = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let second = t
        .add_admin(org.id, new_admin("second@acme.example", AdminRole::Owner))
        .await
        .unwrap();
    (org, second.id)
}

async fn org_record(t: &TestStore) -> Document {
    let mut records = t.raw("organizations").await;
    assert_eq!(records.len(), 1);
    records.remove(0)
}

async fn owners(t: &TestStore, org: &Organization) -> Vec<AdminId> {
    t.admins_of(org.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|admin| admin.role == AdminRole::Owner)
        .map(|admin| admin.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_stopped_after_its_commit_is_visible_at_once_and_completed_by_reconcile() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    t.fail_after(Step::AdminChangeRecorded);
    let err = t.remove_admin(org.id, org.admin_id).await.unwrap_err();
    assert!(matches!(err, ChangeAdminError::Store(_)), "{err:?}");

    // Committed: every read shows the removal, though the record is still
    // there.
    assert_eq!(t.raw("admins").await.len(), 2);
    assert!(org_record(&t).await.contains_key("admin_change"));
    assert!(t.admin_by_id(org.admin_id).await.unwrap().is_none());
    assert!(t
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .is_none());
    let listed: Vec<_> = t
        .admins_of(org.id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, [second]);
    let primary = t
        .organization_by_id(org.id)
        .await
        .unwrap()
        .unwrap()
        .admin_id;
    assert_eq!(primary, second);
    let update = AdminUpdate {
        email: Some(email("moved@acme.example")),
        password_hash: None,
    };
    assert!(t.update_admin(org.admin_id, update).await.is_err());

    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), COMPLETED);
    t.assert_consistent().await;
    assert_eq!(t.raw("admins").await.len(), 1);
    // The email is free again.
    t.add_admin(org.id, new_admin("owner@acme.example", AdminRole::Admin))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demotion_stopped_after_its_commit_is_visible_at_once_and_completed_by_reconcile() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    t.fail_after(Step::AdminChangeRecorded);
    t.set_admin_role(org.id, org.admin_id, AdminRole::Admin)
        .await
        .unwrap_err();

    let creator = t.admin_by_id(org.admin_id).await.unwrap().unwrap();
    assert_eq!(creator.role, AdminRole::Admin);
    assert_eq!(owners(&t, &org).await, [second]);
    let primary = t
        .organization_by_id(org.id)
        .await
        .unwrap()
        .unwrap()
        .admin_id;
    assert_eq!(primary, second);
    // A credential change meanwhile keeps the committed role.
    let update = AdminUpdate {
        email: Some(email("boss@acme.example")),
        password_hash: None,
    };
    let updated = t.update_admin(org.admin_id, update).await.unwrap();
    assert_eq!(updated.role, AdminRole::Admin);

    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), COMPLETED);
    t.assert_consistent().await;
    let creator = t.admin_by_id(org.admin_id).await.unwrap().unwrap();
    assert_eq!(creator.role, AdminRole::Admin);
    assert_eq!(creator.email.as_str(), "boss@acme.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_stopped_after_applying_it_has_happened_and_reconcile_clears_it() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    t.fail_after(Step::AdminChangeApplied);
    // Past its commit point a change answers success.
    t.remove_admin(org.id, second).await.unwrap();
    assert_eq!(t.raw("admins").await.len(), 1);
    assert!(org_record(&t).await.contains_key("admin_change"));
    assert_eq!(owners(&t, &org).await, [org.admin_id]);

    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), COMPLETED);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_change_finishes_a_pending_one_before_deciding() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    t.fail_after(Step::AdminChangeRecorded);
    t.remove_admin(org.id, org.admin_id).await.unwrap_err();

    let err = t.remove_admin(org.id, second).await.unwrap_err();
    assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");
    assert!(t.reconcile(Duration::ZERO).await.unwrap().is_empty());
    t.assert_consistent().await;
    assert_eq!(owners(&t, &org).await, [second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_leaves_a_young_admin_change_alone() {
    let t = TestStore::new().await;
    let (org, _) = two_owners(&t).await;
    t.fail_after(Step::AdminChangeRecorded);
    t.remove_admin(org.id, org.admin_id).await.unwrap_err();

    let report = t.reconcile(Duration::from_secs(3_600)).await.unwrap();
    assert!(report.is_empty(), "{report:?}");
    assert!(org_record(&t).await.contains_key("admin_change"));
    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), COMPLETED);
    t.assert_consistent().await;
}

/// Two owners removing (or demoting) each other, the first held after
/// deciding, before its compare-and-swap: the second commits first, so the
/// first must decide again and find itself the last owner.
async fn change_losing_its_swap_decides_again(demote: bool) {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    let mut held = t.pause_after(Step::AdminChangeDecided);
    let first = {
        let store = t.store.clone();
        tokio::spawn(async move {
            if demote {
                store
                    .set_admin_role(org.id, org.admin_id, AdminRole::Admin)
                    .await
                    .map(drop)
            } else {
                store.remove_admin(org.id, org.admin_id).await
            }
        })
    };
    held.reached().await;
    t.remove_admin(org.id, second).await.unwrap();
    held.resume();
    let err = first.await.unwrap().unwrap_err();
    assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");
    assert_eq!(owners(&t, &org).await, [org.admin_id]);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_losing_its_swap_decides_again() {
    change_losing_its_swap_decides_again(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_losing_its_swap_decides_again() {
    change_losing_its_swap_decides_again(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_held_after_its_commit_is_seen_by_a_racing_one() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    let mut held = t.pause_after(Step::AdminChangeRecorded);
    let first = {
        let store = t.store.clone();
        tokio::spawn(async move { store.remove_admin(org.id, org.admin_id).await })
    };
    held.reached().await;
    let err = t
        .set_admin_role(org.id, second, AdminRole::Admin)
        .await
        .unwrap_err();
    assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");
    held.resume();
    first.await.unwrap().unwrap();
    assert_eq!(owners(&t, &org).await, [second]);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_addition_stopped_before_confirmation_is_rolled_back() {
    let t = TestStore::new().await;
    let org = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.fail_after(Step::AdminAddInserted);
    let err = t
        .add_admin(org.id, new_admin("ops@acme.example", AdminRole::Owner))
        .await
        .unwrap_err();
    assert!(matches!(err, AddAdminError::Store(_)), "{err:?}");

    assert_eq!(t.admins_of(org.id).await.unwrap().len(), 1);
    assert!(t
        .admin_credentials_by_email(&email("ops@acme.example"))
        .await
        .unwrap()
        .is_none());
    // An unconfirmed admin is no owner.
    let err = t.remove_admin(org.id, org.admin_id).await.unwrap_err();
    assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");

    assert!(t
        .reconcile(Duration::from_secs(3_600))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(t.reconcile(Duration::ZERO).await.unwrap(), ROLLED_BACK);
    t.assert_consistent().await;
    assert_eq!(t.raw("admins").await.len(), 1);
    t.add_admin(org.id, new_admin("ops@acme.example", AdminRole::Owner))
        .await
        .unwrap();
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_addition_racing_a_deletion_leaves_no_admin_behind() {
    let t = TestStore::new().await;
    let org = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let mut held = t.pause_after(Step::AdminAddInserted);
    let add = {
        let store = t.store.clone();
        tokio::spawn(async move {
            store
                .add_admin(org.id, new_admin("ops@acme.example", AdminRole::Admin))
                .await
        })
    };
    held.reached().await;
    t.delete_organization(org.id).await.unwrap();
    held.resume();
    let err = add.await.unwrap().unwrap_err();
    assert!(
        matches!(err, AddAdminError::OrganizationNotFound),
        "{err:?}"
    );
    assert!(t.raw("admins").await.is_empty());
    assert!(t.raw("organizations").await.is_empty());
    // Both emails are free.
    let again = t
        .create_organization(new_org("Acme", "ops@acme.example"))
        .await
        .unwrap();
    t.add_admin(again.id, new_admin("owner@acme.example", AdminRole::Admin))
        .await
        .unwrap();
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_during_a_rename_do_not_disturb_it() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    let mut held = t.pause_after(Step::RenameNameClaimed);
    let rename = {
        let store = t.store.clone();
        tokio::spawn(async move { store.rename_organization(org.id, &name("Acme Labs")).await })
    };
    held.reached().await;
    t.remove_admin(org.id, org.admin_id).await.unwrap();
    held.resume();

    let renamed = rename.await.unwrap().unwrap();
    assert_eq!(renamed.name.as_str(), "Acme Labs");
    assert_eq!(renamed.admin_id, second);
    assert!(t.reconcile(Duration::ZERO).await.unwrap().is_empty());
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_between_commit_and_clearing_carries_the_change_along() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    let mut held = t.pause_after(Step::AdminChangeRecorded);
    let remove = {
        let store = t.store.clone();
        tokio::spawn(async move { store.remove_admin(org.id, org.admin_id).await })
    };
    held.reached().await;
    let renamed = t
        .rename_organization(org.id, &name("Acme Labs"))
        .await
        .unwrap();
    assert_eq!(renamed.admin_id, second);
    held.resume();
    remove.await.unwrap().unwrap();

    assert!(t.reconcile(Duration::ZERO).await.unwrap().is_empty());
    t.assert_consistent().await;
    assert_eq!(owners(&t, &org).await, [second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_organization_with_a_pending_admin_change_leaves_nothing() {
    let t = TestStore::new().await;
    let (org, _) = two_owners(&t).await;
    t.fail_after(Step::AdminChangeRecorded);
    t.remove_admin(org.id, org.admin_id).await.unwrap_err();
    t.delete_organization(org.id).await.unwrap();
    assert!(t.reconcile(Duration::ZERO).await.unwrap().is_empty());
    assert!(t.raw("organizations").await.is_empty());
    assert!(t.raw("admins").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_application_of_an_older_role_change_never_undoes_a_newer_one() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    // The demotion commits, then is held before applying itself.
    let mut held = t.pause_after(Step::AdminChangeRecorded);
    let demote = {
        let store = t.store.clone();
        tokio::spawn(async move { store.set_admin_role(org.id, second, AdminRole::Admin).await })
    };
    held.reached().await;
    // The promotion finishes the demotion first, then commits and applies
    // itself.
    let promoted = t
        .set_admin_role(org.id, second, AdminRole::Owner)
        .await
        .unwrap();
    assert_eq!(promoted.role, AdminRole::Owner);
    // Now the demotion applies itself, late.
    held.resume();
    let demoted = demote.await.unwrap().unwrap();
    assert_eq!(demoted.role, AdminRole::Admin, "what it committed");

    let admin = t.admin_by_id(second).await.unwrap().unwrap();
    assert_eq!(admin.role, AdminRole::Owner);
    let raw = t.raw("admins").await;
    let record = raw
        .iter()
        .find(|a| a.get_str("_id") == Ok(&second.to_string()))
        .unwrap();
    assert_eq!(record.get_str("role").unwrap(), "owner");
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_insert_racing_an_admin_change_is_kept() {
    let t = TestStore::new().await;
    let (org, second) = two_owners(&t).await;
    let mut held = t.pause_after(Step::DocumentWritten);
    let insert = {
        let store = t.store.clone();
        tokio::spawn(async move {
            let body = orgsvc_domain::DocumentBody::parse(serde_json::json!({"n": 1})).unwrap();
            store.insert_document(org.id, body).await
        })
    };
    held.reached().await;
    // Moves the organization record's revision under the insert.
    t.remove_admin(org.id, second).await.unwrap();
    held.resume();
    let inserted = insert.await.unwrap().unwrap();
    assert_eq!(
        t.find_document(org.id, inserted.id).await.unwrap(),
        inserted
    );
    t.assert_consistent().await;
}
