//! Password reset and email verification: the failure paths.

use std::time::Duration;

use chrono::TimeDelta;
use orgsvc_app::organizations::UpdateOrganization;
use orgsvc_app::AppError;
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::testing::{Failure, Operation, Times};
use orgsvc_domain::{AdminEmail, AuditAction, OutboxMessage, Password};

use crate::fixture::Fixture;

const EMAIL: &str = "owner@acme.example";

fn email(raw: &str) -> AdminEmail {
    AdminEmail::parse(raw).unwrap()
}

fn password(raw: &str) -> Password {
    Password::parse(raw).unwrap()
}

/// The messages stored so far, claimed.
async fn outbox(f: &Fixture) -> Vec<OutboxMessage> {
    let now = now_millis() + TimeDelta::seconds(1);
    f.inner()
        .claim_due_messages(now, now + TimeDelta::hours(1), 100)
        .await
        .unwrap()
}

/// The reset email's token, once the background request stored it.
async fn reset_token(f: &Fixture) -> String {
    for _ in 0..250 {
        if let Some(message) = outbox(f).await.into_iter().next() {
            let (_, rest) = message.text_body.split_once("token=").unwrap();
            return rest.split_whitespace().next().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no reset email was stored");
}

#[tokio::test]
async fn a_store_failure_after_the_token_is_used_costs_a_new_request_not_the_password() {
    let f = Fixture::new();
    f.organization("Acme", EMAIL).await;
    f.app.request_password_reset(&f.origin, email(EMAIL));
    let token = reset_token(&f).await;
    f.store.fail(
        Operation::UpdateAdmin,
        Times::Once,
        Failure::unavailable("primary stepped down"),
    );
    let failed = f
        .app
        .confirm_password_reset(&f.origin, &token, &password("a new passphrase"))
        .await;
    assert!(
        matches!(failed, Err(AppError::StoreUnavailable(_))),
        "{failed:?}"
    );
    // The old password still works; the link is spent (single use is the
    // store's decision, taken first).
    f.log_in(EMAIL).await;
    let again = f
        .app
        .confirm_password_reset(&f.origin, &token, &password("a new passphrase"))
        .await;
    assert!(
        matches!(again, Err(AppError::AccountTokenUnusable)),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_failure_to_store_the_reset_email_is_logged_not_answered() {
    let f = Fixture::new();
    let org = f.organization("Acme", EMAIL).await;
    f.store.fail(
        Operation::IssueAccountToken,
        Times::Once,
        Failure::unavailable("primary stepped down"),
    );
    // The request itself cannot fail: its answer must not depend on the email.
    f.app.request_password_reset(&f.origin, email(EMAIL));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(outbox(&f).await.is_empty());
    assert!(!f
        .audit_actions(org.id)
        .await
        .contains(&AuditAction::PasswordResetRequested));
    // The next request works.
    f.app.request_password_reset(&f.origin, email(EMAIL));
    reset_token(&f).await;
    f.audited_eventually(org.id, AuditAction::PasswordResetRequested)
        .await;
}

#[tokio::test]
async fn the_email_change_stands_when_its_notice_cannot_be_stored() {
    let f = Fixture::new();
    let org = f.organization("Acme", EMAIL).await;
    let owner = f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap();
    f.store.fail(
        Operation::EnqueueMessage,
        Times::Once,
        Failure::unavailable("primary stepped down"),
    );
    f.app
        .update_organization(
            &f.origin,
            &owner,
            UpdateOrganization {
                name: org.name.clone(),
                email: Some(email("moved@acme.example")),
                password: None,
            },
        )
        .await
        .unwrap();
    let moved = f.inner().admin_by_id(owner.id).await.unwrap().unwrap();
    assert_eq!(moved.email.as_str(), "moved@acme.example");
    assert!(!moved.email_verified);
    assert!(outbox(&f).await.is_empty());
}

#[tokio::test]
async fn a_verification_link_sent_before_an_email_change_verifies_nothing() {
    let f = Fixture::new();
    let org = f.organization("Acme", EMAIL).await;
    let owner = f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap();
    f.app.request_email_verification(&owner).await.unwrap();
    let message = outbox(&f).await.remove(0);
    let (_, rest) = message.text_body.split_once("token=").unwrap();
    let token = rest.split_whitespace().next().unwrap().to_owned();
    f.app
        .update_organization(
            &f.origin,
            &owner,
            UpdateOrganization {
                name: org.name.clone(),
                email: Some(email("moved@acme.example")),
                password: None,
            },
        )
        .await
        .unwrap();
    let result = f.app.confirm_email_verification(&f.origin, &token).await;
    assert!(
        matches!(result, Err(AppError::AccountTokenUnusable)),
        "{result:?}"
    );
    let moved = f.inner().admin_by_id(owner.id).await.unwrap().unwrap();
    assert!(!moved.email_verified);
}
