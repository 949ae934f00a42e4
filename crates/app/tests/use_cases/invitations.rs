//! Owners invite; invitees accept with the emailed token and a password.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use orgsvc_app::invitations::Invite;
use orgsvc_app::maintenance::Maintenance;
use orgsvc_app::{AppError, Owner};
use orgsvc_domain::{
    AdminEmail, AdminRole, AuditAction, Invitation, InvitationQuery, InvitationStatus,
    LoginThrottle, Password, StateChange, Suspension,
};

use crate::fixture::{Fixture, PASSWORD};

async fn owner_of(f: &Fixture, name: &str, email: &str) -> Owner {
    let org = f.organization(name, email).await;
    Owner::try_from(f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap()).unwrap()
}

fn invite_of(email: &str, expires_in: Option<Duration>) -> Invite {
    Invite {
        email: AdminEmail::parse(email).unwrap(),
        role: AdminRole::Admin,
        expires_in,
    }
}

/// The token in the newest email queued for `to` (claimed, so each email
/// is read once).
async fn emailed_token(f: &Fixture, to: &str) -> String {
    let now = Utc::now();
    let messages = f
        .inner()
        .claim_due_messages(now, now + TimeDelta::hours(1), 100)
        .await
        .unwrap();
    let message = messages
        .iter()
        .rev()
        .find(|m| m.to.as_str() == to)
        .expect("an email to the invitee");
    let (_, rest) = message.text_body.split_once("token=").expect("a link");
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn password() -> Password {
    Password::parse(PASSWORD).unwrap()
}

#[tokio::test]
async fn an_invitee_accepts_once_and_is_signed_in() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    let invitation: Invitation = f
        .app
        .invite(&f.origin, &owner, invite_of("new@acme.example", None))
        .await
        .unwrap();
    assert_eq!(
        invitation.expires_at - invitation.created_at,
        TimeDelta::days(7)
    );
    let token = emailed_token(&f, "new@acme.example").await;
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64");

    let accepted = f
        .app
        .accept_invitation(&f.origin, &token, password())
        .await
        .unwrap();
    assert_eq!(accepted.admin.email.as_str(), "new@acme.example");
    assert_eq!(accepted.admin.role, AdminRole::Admin);
    let me = f
        .app
        .authenticate(&accepted.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(me.id, accepted.admin.id);
    f.log_in("new@acme.example").await;

    let again = f.app.accept_invitation(&f.origin, &token, password()).await;
    assert!(matches!(again, Err(AppError::InvitationUnusable)));
    let unknown = f
        .app
        .accept_invitation(&f.origin, "not-a-token", password())
        .await;
    assert!(matches!(unknown, Err(AppError::InvitationUnusable)));
    let organization = owner.admin().organization_id;
    let actions = f.audit_actions(organization).await;
    assert!(actions.contains(&AuditAction::InvitationCreated));
    assert!(actions.contains(&AuditAction::InvitationAccepted));
}

#[tokio::test]
async fn lifetimes_beyond_thirty_days_or_zero_and_taken_emails_are_refused() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    owner_of(&f, "Other", "owner@other.example").await;
    for ttl in [Duration::ZERO, Duration::from_secs(30 * 86_400 + 1)] {
        let refused = f
            .app
            .invite(&f.origin, &owner, invite_of("new@acme.example", Some(ttl)))
            .await;
        assert!(matches!(refused, Err(AppError::InvalidInvitationTtl)));
    }
    let taken = f
        .app
        .invite(&f.origin, &owner, invite_of("owner@other.example", None))
        .await;
    assert!(matches!(taken, Err(AppError::EmailTaken)));
    let page = f
        .app
        .invitations(&owner, InvitationQuery::default())
        .await
        .unwrap();
    assert!(page.invitations.is_empty());
}

#[tokio::test]
async fn revoked_and_replaced_tokens_are_unusable() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    let first = f
        .app
        .invite(&f.origin, &owner, invite_of("a@acme.example", None))
        .await
        .unwrap();
    let old = emailed_token(&f, "a@acme.example").await;
    f.app
        .resend_invitation(&f.origin, &owner, first.id)
        .await
        .unwrap();
    let new = emailed_token(&f, "a@acme.example").await;
    assert_ne!(old, new);
    let refused = f.app.accept_invitation(&f.origin, &old, password()).await;
    assert!(matches!(refused, Err(AppError::InvitationUnusable)));

    let revoked = f
        .app
        .revoke_invitation(&f.origin, &owner, first.id)
        .await
        .unwrap();
    assert_eq!(revoked.status_at(Utc::now()), InvitationStatus::Revoked);
    let refused = f.app.accept_invitation(&f.origin, &new, password()).await;
    assert!(matches!(refused, Err(AppError::InvitationUnusable)));
    let again = f.app.resend_invitation(&f.origin, &owner, first.id).await;
    assert!(matches!(
        again,
        Err(AppError::InvitationNotPending(InvitationStatus::Revoked))
    ));
    let other = owner_of(&f, "Other", "owner@other.example").await;
    let foreign = f.app.revoke_invitation(&f.origin, &other, first.id).await;
    assert!(matches!(foreign, Err(AppError::InvitationNotFound)));
    let actions = f.audit_actions(owner.admin().organization_id).await;
    assert!(actions.contains(&AuditAction::InvitationRevoked));
    let resent = actions
        .iter()
        .filter(|action| **action == AuditAction::InvitationResent)
        .count();
    assert_eq!(resent, 1, "the resend is audited; the refused one is not");
}

#[tokio::test]
async fn maintenance_purges_invitations_a_month_after_they_expired() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    let day = Duration::from_secs(86_400);
    f.app
        .invite(&f.origin, &owner, invite_of("a@acme.example", Some(day)))
        .await
        .unwrap();
    let throttle = LoginThrottle {
        max_failures: 5,
        base_lock: Duration::from_secs(60),
        max_lock: Duration::from_secs(3600),
    };
    let maintenance = Maintenance::new(day, &throttle, 90 * day);
    let listed = |f: &Fixture| {
        let app = f.app.clone();
        let owner = owner.clone();
        async move {
            app.invitations(&owner, InvitationQuery::default())
                .await
                .unwrap()
                .invitations
                .len()
        }
    };
    let store = f.inner();
    maintenance
        .run_once(store.as_ref(), Utc::now() + TimeDelta::days(30))
        .await;
    assert_eq!(listed(&f).await, 1, "still listed as expired");
    maintenance
        .run_once(store.as_ref(), Utc::now() + TimeDelta::days(32))
        .await;
    assert_eq!(listed(&f).await, 0, "purged");
}

#[tokio::test]
async fn accepting_while_suspended_creates_the_admin_and_says_so() {
    let f = Fixture::new();
    let owner = owner_of(&f, "Acme", "owner@acme.example").await;
    let organization = owner.admin().organization_id;
    f.app
        .invite(&f.origin, &owner, invite_of("new@acme.example", None))
        .await
        .unwrap();
    let token = emailed_token(&f, "new@acme.example").await;
    let suspension = Suspension::new("unpaid", Utc::now()).unwrap();
    let state = |change| {
        let store = f.inner();
        async move {
            store
                .change_organization_state(organization, &change)
                .await
                .unwrap()
        }
    };
    state(StateChange::Suspend(suspension)).await;

    let accepted = f.app.accept_invitation(&f.origin, &token, password()).await;
    assert!(
        matches!(accepted, Err(AppError::AcceptedWhileSuspended)),
        "{accepted:?}"
    );
    // Not "nothing changed": the admin exists and the token is used up.
    let again = f.app.accept_invitation(&f.origin, &token, password()).await;
    assert!(matches!(again, Err(AppError::InvitationUnusable)));
    let refused = f.app.log_in(&f.origin, "new@acme.example", PASSWORD).await;
    assert!(matches!(refused, Err(AppError::OrganizationSuspended)));

    state(StateChange::Resume).await;
    f.log_in("new@acme.example").await;
}
