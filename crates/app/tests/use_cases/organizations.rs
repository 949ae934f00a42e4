//! Create, get, update (rename and credentials), delete.

use orgsvc_app::organizations::UpdateOrganization;
use orgsvc_app::{AppError, Owner};
use orgsvc_domain::testing::{Failure, Operation, Times};
use orgsvc_domain::{AdminEmail, AuditAction, OrganizationName, Password};

use crate::fixture::{Fixture, PASSWORD};

fn name(text: &str) -> OrganizationName {
    OrganizationName::parse(text).unwrap()
}

#[tokio::test]
async fn the_creator_is_the_first_owner_and_the_creation_is_audited() {
    let f = Fixture::new();
    let org = f.organization("Acme Corp", "owner@acme.example").await;
    let owner = f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap();
    Owner::try_from(owner).unwrap();
    assert_eq!(org.location.collection.as_str(), "org_acme_corp");
    assert_eq!(
        f.audit_actions(org.id).await,
        [AuditAction::OrganizationCreated]
    );
    let found = f.app.organization(&name("acme-corp")).await.unwrap();
    assert_eq!(found.id, org.id);
    let missing = f.app.organization(&name("Nobody")).await;
    assert!(matches!(missing, Err(AppError::OrganizationNotFound)));
}

#[tokio::test]
async fn a_failure_between_the_rename_and_the_credential_change_leaves_the_rename_done() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let owner = f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap();
    f.store.fail(
        Operation::UpdateAdmin,
        Times::Once,
        Failure::store_msg("lost the connection"),
    );
    let command = || UpdateOrganization {
        name: name("Acme Labs"),
        email: Some(AdminEmail::parse("new@acme.example").unwrap()),
        password: None,
    };
    let failed = f
        .app
        .update_organization(&f.origin, &owner, command())
        .await;
    assert!(matches!(failed, Err(AppError::Unexpected(_))), "{failed:?}");
    // The rename happened and is audited; the email did not change.
    let renamed = f.inner().organization_by_id(org.id).await.unwrap().unwrap();
    assert_eq!(renamed.name.as_str(), "Acme Labs");
    let actions = f.audit_actions(org.id).await;
    assert!(actions.contains(&AuditAction::OrganizationRenamed));
    assert!(!actions.contains(&AuditAction::AdminCredentialsChanged));
    let unchanged = f.inner().admin_by_id(owner.id).await.unwrap().unwrap();
    assert_eq!(unchanged.email.as_str(), "owner@acme.example");

    // Repeating the request only changes the credentials now.
    let renames_before = f.store.calls_to(Operation::RenameOrganizationFrom);
    let done = f
        .app
        .update_organization(&f.origin, &owner, command())
        .await
        .unwrap();
    assert_eq!(done.name.as_str(), "Acme Labs");
    assert_eq!(
        f.store.calls_to(Operation::RenameOrganizationFrom),
        renames_before
    );
    let changed = f.inner().admin_by_id(owner.id).await.unwrap().unwrap();
    assert_eq!(changed.email.as_str(), "new@acme.example");
}

#[tokio::test]
async fn a_rename_overtaken_by_another_is_refused_and_changes_nothing_more() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let owner = f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap();
    let id = org.id;
    // Another instance renames the organization right before ours does.
    f.store.before(
        Operation::RenameOrganizationFrom,
        Times::Once,
        move |store| async move {
            store
                .rename_organization(id, &OrganizationName::parse("Acme Other").unwrap())
                .await
                .unwrap();
        },
    );
    let refused = f
        .app
        .update_organization(
            &f.origin,
            &owner,
            UpdateOrganization {
                name: name("Acme Labs"),
                email: None,
                password: Some(Password::parse("another long passphrase").unwrap()),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(AppError::OperationInProgress)),
        "{refused:?}"
    );
    let current = f.inner().organization_by_id(id).await.unwrap().unwrap();
    assert_eq!(current.name.as_str(), "Acme Other");
    // The password did not change either: the old one still logs in.
    f.app
        .log_in(&f.origin, "owner@acme.example", PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_admin_may_change_its_credentials_but_not_rename() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let owner =
        Owner::try_from(f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap()).unwrap();
    let admin = f
        .app
        .add_admin(
            &f.origin,
            &owner,
            orgsvc_app::admins::AddAdmin {
                email: AdminEmail::parse("ops@acme.example").unwrap(),
                role: orgsvc_domain::AdminRole::Admin,
                password: Password::parse(PASSWORD).unwrap(),
            },
        )
        .await
        .unwrap();
    let refused = f
        .app
        .update_organization(
            &f.origin,
            &admin,
            UpdateOrganization {
                name: name("ACME"),
                email: None,
                password: None,
            },
        )
        .await;
    assert!(
        matches!(refused, Err(AppError::OwnerRequired)),
        "{refused:?}"
    );
    assert_eq!(f.store.calls_to(Operation::RenameOrganizationFrom), 0);
    // The current name, spelled as it is: only the credentials change.
    f.app
        .update_organization(
            &f.origin,
            &admin,
            UpdateOrganization {
                name: name("Acme"),
                email: Some(AdminEmail::parse("ops2@acme.example").unwrap()),
                password: None,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_taken_email_is_refused_before_anything_changes() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    f.organization("Other", "owner@other.example").await;
    let owner = f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap();
    let refused = f
        .app
        .update_organization(
            &f.origin,
            &owner,
            UpdateOrganization {
                name: name("Acme Labs"),
                email: Some(AdminEmail::parse("owner@other.example").unwrap()),
                password: None,
            },
        )
        .await;
    assert!(matches!(refused, Err(AppError::EmailTaken)), "{refused:?}");
    assert_eq!(f.store.calls_to(Operation::RenameOrganizationFrom), 0);
    let current = f.inner().organization_by_id(org.id).await.unwrap().unwrap();
    assert_eq!(current.name.as_str(), "Acme");
}

#[tokio::test]
async fn an_owner_deletes_only_its_own_organization() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let other = f.organization("Other", "owner@other.example").await;
    let owner =
        Owner::try_from(f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap()).unwrap();
    let refused = f
        .app
        .delete_organization(&f.origin, &owner, &name("Other"))
        .await;
    assert!(matches!(refused, Err(AppError::Forbidden)), "{refused:?}");
    let refused = f
        .app
        .delete_organization(&f.origin, &owner, &name("Nobody"))
        .await;
    assert!(matches!(refused, Err(AppError::Forbidden)), "{refused:?}");
    assert_eq!(f.store.calls_to(Operation::DeleteOrganization), 0);
    assert!(f
        .inner()
        .organization_by_id(other.id)
        .await
        .unwrap()
        .is_some());

    let deleted = f
        .app
        .delete_organization(&f.origin, &owner, &name("ACME"))
        .await
        .unwrap();
    assert_eq!(deleted.id, org.id);
    assert!(f
        .inner()
        .organization_by_id(org.id)
        .await
        .unwrap()
        .is_none());
    assert!(f
        .audit_actions(org.id)
        .await
        .contains(&AuditAction::OrganizationDeleted));
}

#[tokio::test]
async fn a_busy_name_at_creation_is_answered_busy() {
    let f = Fixture::new();
    f.store
        .fail(Operation::CreateOrganization, Times::Once, Failure::Busy);
    let refused = f
        .app
        .create_organization(
            &f.origin,
            orgsvc_app::organizations::CreateOrganization {
                name: name("Acme"),
                email: AdminEmail::parse("owner@acme.example").unwrap(),
                password: Password::parse(PASSWORD).unwrap(),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(AppError::OrganizationBusy)),
        "{refused:?}"
    );
}
