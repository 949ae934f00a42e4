//! The [`TenantStore`] contract suite, shared by every adapter.
//!
//! An adapter's test crate expands [`tenant_store_contract_tests!`] with an
//! expression that yields a fresh, empty `Arc<dyn TenantStore>`; each check
//! below becomes one `#[tokio::test]` there. The adapter's test crate needs
//! `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed check should panic

use std::sync::Arc;
use std::time::Duration;

use crate::{
    AdminEmail, AdminUpdate, CreateOrganizationError, DeleteOrganizationError, NewOrganization,
    OrganizationId, OrganizationName, PasswordHash, RenameOrganizationError, TenantStore,
    UpdateAdminError,
};

/// Expands to one `#[tokio::test]` per contract check, each calling `$store`
/// (an expression evaluating to a fresh `Arc<dyn TenantStore>`) for its store.
#[macro_export]
macro_rules! tenant_store_contract_tests {
    ($store:expr) => {
        $crate::tenant_store_contract_tests!(@tests $store;
            create_then_find_by_name_and_id,
            lookup_by_name_ignores_case_and_separators,
            create_rejects_a_taken_canonical_name,
            create_rejects_a_taken_email_and_stores_nothing,
            concurrent_creates_of_one_name_have_one_winner,
            credentials_are_found_by_email,
            rename_changes_name_and_collection_but_not_id,
            rename_to_a_respelling_keeps_the_collection,
            rename_rejects_a_taken_name,
            rename_of_unknown_organization_is_not_found,
            concurrent_renames_to_one_name_have_one_winner,
            delete_removes_organization_and_admin_and_frees_names,
            delete_of_unknown_organization_is_not_found,
            password_change_bumps_token_version,
            email_change_keeps_token_version_and_rejects_taken_email,
            update_of_unknown_admin_is_not_found,
            reconcile_on_a_consistent_store_repairs_nothing,
            ping_answers,
        );
    };
    (@tests $store:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store: ::std::sync::Arc<dyn $crate::TenantStore> = $store;
                $crate::testing::$name(store).await;
            }
        )+
    };
}

/// A store under test.
pub type Store = Arc<dyn TenantStore>;

/// A new organization with this name and admin email (and a dummy hash).
pub fn new_org(name: &str, email: &str) -> NewOrganization {
    NewOrganization::new(
        OrganizationName::parse(name).unwrap(),
        AdminEmail::parse(email).unwrap(),
        hash("initial"),
    )
}

fn hash(tag: &str) -> PasswordHash {
    PasswordHash::from_phc_string(format!("$argon2id$v=19$m=8,t=1,p=1$dGVzdA$dummy-{tag}"))
}

fn name(raw: &str) -> OrganizationName {
    OrganizationName::parse(raw).unwrap()
}

fn email(raw: &str) -> AdminEmail {
    AdminEmail::parse(raw).unwrap()
}

/// Create returns the stored organization, found again by name and by id.
pub async fn create_then_find_by_name_and_id(store: Store) {
    let new = new_org("Acme Corp", "owner@acme.example");
    let (org_id, admin_id) = (new.id, new.admin.id);
    let created = store.create_organization(new).await.unwrap();

    assert_eq!(created.id, org_id);
    assert_eq!(created.admin_id, admin_id);
    assert_eq!(created.name.as_str(), "Acme Corp");
    assert_eq!(created.location.collection.as_str(), "org_acme_corp");
    assert_eq!(created.created_at, created.updated_at);

    let by_name = store
        .organization_by_name(&name("Acme Corp"))
        .await
        .unwrap();
    assert_eq!(by_name.as_ref(), Some(&created));
    let by_id = store.organization_by_id(org_id).await.unwrap();
    assert_eq!(by_id.as_ref(), Some(&created));
    assert!(store
        .organization_by_id(OrganizationId::new())
        .await
        .unwrap()
        .is_none());
    assert!(store
        .organization_by_name(&name("Other"))
        .await
        .unwrap()
        .is_none());
}

/// Names are looked up by their canonical form.
pub async fn lookup_by_name_ignores_case_and_separators(store: Store) {
    let created = store
        .create_organization(new_org("Acme Corp", "owner@acme.example"))
        .await
        .unwrap();
    for spelling in ["acme corp", "ACME-CORP", "acme__corp"] {
        let found = store.organization_by_name(&name(spelling)).await.unwrap();
        assert_eq!(found.map(|o| o.id), Some(created.id), "{spelling}");
    }
}

/// A second organization whose canonical name collides is refused.
pub async fn create_rejects_a_taken_canonical_name(store: Store) {
    store
        .create_organization(new_org("Acme Corp", "a@acme.example"))
        .await
        .unwrap();
    let err = store
        .create_organization(new_org("ACME-corp", "b@acme.example"))
        .await
        .unwrap_err();
    assert!(matches!(err, CreateOrganizationError::NameTaken), "{err:?}");
    assert!(store
        .admin_credentials_by_email(&email("b@acme.example"))
        .await
        .unwrap()
        .is_none());
}

/// A taken email is refused and leaves no organization behind.
pub async fn create_rejects_a_taken_email_and_stores_nothing(store: Store) {
    store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let err = store
        .create_organization(new_org("Globex", "OWNER@acme.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CreateOrganizationError::EmailTaken),
        "{err:?}"
    );
    assert!(store
        .organization_by_name(&name("Globex"))
        .await
        .unwrap()
        .is_none());
    // The name is still free.
    store
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();
}

/// Racing creates of the same name: exactly one succeeds.
pub async fn concurrent_creates_of_one_name_have_one_winner(store: Store) {
    let attempts = (0..4).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_organization(new_org("Race", &format!("admin{i}@race.example")))
                .await
        })
    });
    let mut wins = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => wins += 1,
            Err(CreateOrganizationError::NameTaken) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

/// Credentials are found by (case-insensitive) email, with the stored hash.
pub async fn credentials_are_found_by_email(store: Store) {
    let new = new_org("Acme", "owner@acme.example");
    let expected_hash = new.admin.password_hash.clone();
    let created = store.create_organization(new).await.unwrap();

    let credentials = store
        .admin_credentials_by_email(&email("Owner@ACME.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.admin.id, created.admin_id);
    assert_eq!(credentials.admin.organization_id, created.id);
    assert_eq!(credentials.admin.email.as_str(), "owner@acme.example");
    assert_eq!(credentials.password_hash, expected_hash);
    assert_eq!(credentials.admin.token_version, 0);

    let admin = store.admin_by_id(created.admin_id).await.unwrap().unwrap();
    assert_eq!(admin, credentials.admin);
    assert!(store
        .admin_credentials_by_email(&email("nobody@acme.example"))
        .await
        .unwrap()
        .is_none());
}

/// Rename changes name and collection; the id and creation time stay.
pub async fn rename_changes_name_and_collection_but_not_id(store: Store) {
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let renamed = store
        .rename_organization(created.id, &name("Acme Labs"))
        .await
        .unwrap();

    assert_eq!(renamed.id, created.id);
    assert_eq!(renamed.admin_id, created.admin_id);
    assert_eq!(renamed.name.as_str(), "Acme Labs");
    assert_eq!(renamed.location.collection.as_str(), "org_acme_labs");
    assert_eq!(renamed.location.database, created.location.database);
    assert_eq!(renamed.created_at, created.created_at);
    assert!(renamed.updated_at > created.updated_at);

    assert!(store
        .organization_by_name(&name("Acme"))
        .await
        .unwrap()
        .is_none());
    let found = store
        .organization_by_name(&name("acme labs"))
        .await
        .unwrap();
    assert_eq!(found, Some(renamed.clone()));
    assert_eq!(
        store.organization_by_id(created.id).await.unwrap(),
        Some(renamed)
    );
    // The old name is free again.
    store
        .create_organization(new_org("Acme", "other@acme.example"))
        .await
        .unwrap();
}

/// Changing only case or separators keeps the collection.
pub async fn rename_to_a_respelling_keeps_the_collection(store: Store) {
    let created = store
        .create_organization(new_org("acme corp", "owner@acme.example"))
        .await
        .unwrap();
    let renamed = store
        .rename_organization(created.id, &name("Acme-Corp"))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Acme-Corp");
    assert_eq!(renamed.location, created.location);
}

/// Renaming onto another organization's name is refused and changes nothing.
pub async fn rename_rejects_a_taken_name(store: Store) {
    let acme = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();
    let err = store
        .rename_organization(acme.id, &name("GLOBEX"))
        .await
        .unwrap_err();
    assert!(matches!(err, RenameOrganizationError::NameTaken), "{err:?}");
    assert_eq!(store.organization_by_id(acme.id).await.unwrap(), Some(acme));
}

/// Renaming an unknown organization reports it.
pub async fn rename_of_unknown_organization_is_not_found(store: Store) {
    let err = store
        .rename_organization(OrganizationId::new(), &name("Anything"))
        .await
        .unwrap_err();
    assert!(matches!(err, RenameOrganizationError::NotFound), "{err:?}");
}

/// Two organizations racing to rename to one name: exactly one wins.
pub async fn concurrent_renames_to_one_name_have_one_winner(store: Store) {
    let a = store
        .create_organization(new_org("Alpha", "a@alpha.example"))
        .await
        .unwrap();
    let b = store
        .create_organization(new_org("Beta", "b@beta.example"))
        .await
        .unwrap();
    let rename = |id| {
        let store = store.clone();
        tokio::spawn(async move { store.rename_organization(id, &name("Gamma")).await })
    };
    let (ra, rb) = (rename(a.id), rename(b.id));
    let results = [ra.await.unwrap(), rb.await.unwrap()];
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(RenameOrganizationError::NameTaken))));
    let gamma = store
        .organization_by_name(&name("Gamma"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gamma.id, winners[0].id);
    // The loser kept its name.
    let loser = if gamma.id == a.id { b } else { a };
    assert_eq!(
        store.organization_by_id(loser.id).await.unwrap(),
        Some(loser)
    );
}

/// Delete removes the organization and its admin and frees name and email.
pub async fn delete_removes_organization_and_admin_and_frees_names(store: Store) {
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store.delete_organization(created.id).await.unwrap();

    assert!(store
        .organization_by_id(created.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .organization_by_name(&name("Acme"))
        .await
        .unwrap()
        .is_none());
    assert!(store.admin_by_id(created.admin_id).await.unwrap().is_none());
    assert!(store
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .is_none());
    store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let err = store.delete_organization(created.id).await.unwrap_err();
    assert!(matches!(err, DeleteOrganizationError::NotFound), "{err:?}");
}

/// Deleting an unknown organization reports it.
pub async fn delete_of_unknown_organization_is_not_found(store: Store) {
    let err = store
        .delete_organization(OrganizationId::new())
        .await
        .unwrap_err();
    assert!(matches!(err, DeleteOrganizationError::NotFound), "{err:?}");
}

/// A new password hash replaces the old one and bumps the token version.
pub async fn password_change_bumps_token_version(store: Store) {
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let update = AdminUpdate {
        email: None,
        password_hash: Some(hash("changed")),
    };
    let admin = store.update_admin(created.admin_id, update).await.unwrap();
    assert_eq!(admin.token_version, 1);
    let credentials = store
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.password_hash, hash("changed"));
    assert_eq!(credentials.admin, admin);
}

/// An email change keeps the token version; a taken email is refused.
pub async fn email_change_keeps_token_version_and_rejects_taken_email(store: Store) {
    let acme = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();

    let moved = AdminUpdate {
        email: Some(email("boss@acme.example")),
        password_hash: None,
    };
    let admin = store.update_admin(acme.admin_id, moved).await.unwrap();
    assert_eq!(admin.email.as_str(), "boss@acme.example");
    assert_eq!(admin.token_version, 0);
    assert!(store
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .is_none());

    let clash = AdminUpdate {
        email: Some(email("owner@globex.example")),
        password_hash: Some(hash("never-applied")),
    };
    let err = store.update_admin(acme.admin_id, clash).await.unwrap_err();
    assert!(matches!(err, UpdateAdminError::EmailTaken), "{err:?}");
    let unchanged = store.admin_by_id(acme.admin_id).await.unwrap().unwrap();
    assert_eq!(unchanged, admin);
}

/// Updating an unknown admin reports it.
pub async fn update_of_unknown_admin_is_not_found(store: Store) {
    let update = AdminUpdate {
        email: Some(email("x@y.example")),
        password_hash: None,
    };
    let err = store
        .update_admin(crate::AdminId::new(), update)
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateAdminError::NotFound), "{err:?}");
}

/// A store whose operations all completed has nothing to repair.
pub async fn reconcile_on_a_consistent_store_repairs_nothing(store: Store) {
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store
        .rename_organization(created.id, &name("Acme Two"))
        .await
        .unwrap();
    let report = store.reconcile(Duration::ZERO).await.unwrap();
    assert!(report.is_empty(), "{report:?}");
    assert!(store
        .organization_by_id(created.id)
        .await
        .unwrap()
        .is_some());
}

/// The readiness check succeeds against a working store.
pub async fn ping_answers(store: Store) {
    store.ping().await.unwrap();
}
