//! Owners manage admins: add, list, get, change the role of, remove.

use orgsvc_app::admins::AddAdmin;
use orgsvc_app::{AppError, Owner};
use orgsvc_domain::testing::Operation;
use orgsvc_domain::{Admin, AdminEmail, AdminId, AdminRole, AuditAction, Password};

use crate::fixture::{Fixture, PASSWORD};

async fn owner_of(f: &Fixture, name: &str, email: &str) -> Owner {
    let org = f.organization(name, email).await;
    Owner::try_from(f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap()).unwrap()
}

async fn add(f: &Fixture, owner: &Owner, email: &str, role: AdminRole) -> Admin {
    f.app
        .add_admin(
            &f.origin,
            owner,
            AddAdmin {
                email: AdminEmail::parse(email).unwrap(),
                role,
                password: Password::parse(PASSWORD).unwrap(),
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn only_owners_are_owners() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    let admin = add(&f, &owner, "ops@acme.example", AdminRole::Admin).await;
    assert!(matches!(
        Owner::try_from(admin),
        Err(AppError::OwnerRequired)
    ));
}

#[tokio::test]
async fn an_added_admin_can_log_in_and_the_addition_is_audited() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    let admin = add(&f, &owner, "ops@acme.example", AdminRole::Admin).await;
    let tokens = f.log_in("ops@acme.example").await;
    assert_eq!(
        f.app.authenticate(&tokens.access_token).await.unwrap().id,
        admin.id
    );
    let admins = f.app.admins(&owner).await.unwrap();
    assert_eq!(admins.len(), 2);
    let actions = f.audit_actions(owner.admin().organization_id).await;
    assert!(actions.contains(&AuditAction::AdminAdded));
    let taken = f
        .app
        .add_admin(
            &f.origin,
            &owner,
            AddAdmin {
                email: AdminEmail::parse("OPS@acme.example").unwrap(),
                role: AdminRole::Admin,
                password: Password::parse(PASSWORD).unwrap(),
            },
        )
        .await;
    assert!(matches!(taken, Err(AppError::EmailTaken)), "{taken:?}");
}

#[tokio::test]
async fn another_organizations_admin_is_not_found() {
    let f = Fixture::new();
    let acme = owner_of(&f, "Acme", "owner@acme.example").await;
    let other = owner_of(&f, "Other", "owner@other.example").await;
    let theirs = add(&f, &other, "ops@other.example", AdminRole::Admin).await;
    for found in [
        f.app.admin(&acme, theirs.id).await.map(|_| ()),
        f.app.admin(&acme, AdminId::new()).await.map(|_| ()),
        f.app.remove_admin(&f.origin, &acme, theirs.id).await,
        f.app
            .change_admin_role(&f.origin, &acme, theirs.id, AdminRole::Owner)
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(found, Err(AppError::AdminNotFound)), "{found:?}");
    }
    assert!(f.inner().admin_by_id(theirs.id).await.unwrap().is_some());
}

#[tokio::test]
async fn setting_the_role_an_admin_has_writes_and_records_nothing() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    let admin = add(&f, &owner, "ops@acme.example", AdminRole::Admin).await;
    let same = f
        .app
        .change_admin_role(&f.origin, &owner, admin.id, AdminRole::Admin)
        .await
        .unwrap();
    assert_eq!(same.role, AdminRole::Admin);
    assert_eq!(f.store.calls_to(Operation::SetAdminRole), 0);
    let actions = f.audit_actions(owner.admin().organization_id).await;
    assert!(!actions.contains(&AuditAction::AdminRoleChanged));
}

#[tokio::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    let me = owner.admin().id;
    let demoted = f
        .app
        .change_admin_role(&f.origin, &owner, me, AdminRole::Admin)
        .await;
    assert!(matches!(demoted, Err(AppError::LastOwner)), "{demoted:?}");
    let removed = f.app.remove_admin(&f.origin, &owner, me).await;
    assert!(matches!(removed, Err(AppError::LastOwner)), "{removed:?}");
    // With a second owner, the first may step down.
    let second = add(&f, &owner, "second@acme.example", AdminRole::Owner).await;
    f.app.remove_admin(&f.origin, &owner, me).await.unwrap();
    let left = f
        .inner()
        .organization_by_id(second.organization_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        left.admin_id, second.id,
        "the remaining owner becomes primary"
    );
}
