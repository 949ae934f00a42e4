//! Log in, refresh, log out, authenticate.

use chrono::Utc;
use orgsvc_app::AppError;
use orgsvc_domain::testing::{Failure, Operation, Times};
use orgsvc_domain::{AdminEmail, AdminUpdate, AuditAction, StateChange, Suspension};

use crate::fixture::{Fixture, MAX_FAILURES, PASSWORD};

#[tokio::test]
async fn a_login_answers_tokens_that_authenticate_the_admin_and_is_audited() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let tokens = f.log_in("OWNER@acme.example").await;
    let admin = f.app.authenticate(&tokens.access_token).await.unwrap();
    assert_eq!(admin.id, org.admin_id);
    assert_eq!(tokens.refresh_expires_in, 3600);
    assert!(f
        .audit_actions(org.id)
        .await
        .contains(&AuditAction::LoginSucceeded));
}

#[tokio::test]
async fn unknown_emails_wrong_and_malformed_passwords_fail_alike() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    for (email, password) in [
        ("nobody@acme.example", PASSWORD),
        ("owner@acme.example", "wrong password!"),
        ("owner@acme.example", "short"),
        ("not an email", PASSWORD),
    ] {
        let refused = f.app.log_in(&f.origin, email, password).await;
        assert!(
            matches!(refused, Err(AppError::InvalidCredentials)),
            "{email} / {password}: {refused:?}"
        );
    }
    // A known email's failure is audited, in the background.
    f.audited_eventually(org.id, AuditAction::LoginFailed).await;
}

#[tokio::test]
async fn failed_logins_lock_the_email_even_for_the_right_password() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    for _ in 0..MAX_FAILURES {
        let refused = f
            .app
            .log_in(&f.origin, "owner@acme.example", "wrong password!")
            .await;
        assert!(matches!(refused, Err(AppError::InvalidCredentials)));
    }
    let lookups = f.store.calls_to(Operation::AdminCredentialsByEmail);
    let locked = f
        .app
        .log_in(&f.origin, "owner@acme.example", PASSWORD)
        .await;
    let Err(AppError::LoginLocked { retry_after }) = locked else {
        panic!("not locked: {locked:?}");
    };
    assert!(retry_after.as_secs() > 0 && retry_after.as_secs() <= 60);
    // The locking attempt is audited (its lookup runs in the background);
    // a locked attempt checks no credentials.
    f.audited_eventually(org.id, AuditAction::LoginLocked).await;
    let again = f
        .app
        .log_in(&f.origin, "owner@acme.example", PASSWORD)
        .await;
    assert!(
        matches!(again, Err(AppError::LoginLocked { .. })),
        "{again:?}"
    );
    assert_eq!(
        f.store.calls_to(Operation::AdminCredentialsByEmail),
        lookups + 1,
        "only the background audit lookup read credentials"
    );
}

#[tokio::test]
async fn a_store_that_does_not_answer_fails_the_login_as_unavailable() {
    let f = Fixture::new();
    f.organization("Acme", "owner@acme.example").await;
    f.store.fail(
        Operation::AdminCredentialsByEmail,
        Times::Once,
        Failure::unavailable("reading credentials"),
    );
    let failed = f
        .app
        .log_in(&f.origin, "owner@acme.example", PASSWORD)
        .await;
    assert!(
        matches!(failed, Err(AppError::StoreUnavailable(_))),
        "{failed:?}"
    );
    // The next attempt, with the store back, goes through.
    f.log_in("owner@acme.example").await;
}

#[tokio::test]
async fn a_token_pair_is_not_answered_when_its_refresh_token_cannot_be_saved() {
    let f = Fixture::new();
    f.organization("Acme", "owner@acme.example").await;
    f.store.fail(
        Operation::SaveRefreshToken,
        Times::Once,
        Failure::store_msg("disk full"),
    );
    let failed = f
        .app
        .log_in(&f.origin, "owner@acme.example", PASSWORD)
        .await;
    assert!(matches!(failed, Err(AppError::Unexpected(_))), "{failed:?}");
}

#[tokio::test]
async fn a_refresh_rotates_and_a_reused_token_revokes_the_whole_session() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let first = f.log_in("owner@acme.example").await;
    let second = f
        .app
        .refresh(&f.origin, &first.refresh_token)
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    f.app.authenticate(&second.access_token).await.unwrap();

    let reused = f.app.refresh(&f.origin, &first.refresh_token).await;
    assert!(
        matches!(reused, Err(AppError::RefreshTokenReused)),
        "{reused:?}"
    );
    // The session is gone: the newest token of the family no longer works.
    let revoked = f.app.refresh(&f.origin, &second.refresh_token).await;
    assert!(
        matches!(
            revoked,
            Err(AppError::RefreshTokenReused | AppError::InvalidRefreshToken)
        ),
        "{revoked:?}"
    );
    assert!(f
        .audit_actions(org.id)
        .await
        .contains(&AuditAction::RefreshTokenReuseDetected));
}

#[tokio::test]
async fn a_password_change_refuses_earlier_refresh_and_access_tokens() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let tokens = f.log_in("owner@acme.example").await;
    let email = AdminEmail::parse("owner@acme.example").unwrap();
    let credentials = f.inner().admin_credentials_by_email(&email).await;
    let hash = credentials.unwrap().unwrap().password_hash;
    f.inner()
        .update_admin(
            org.admin_id,
            AdminUpdate {
                email: None,
                password_hash: Some(hash),
            },
        )
        .await
        .unwrap();
    let refused = f.app.refresh(&f.origin, &tokens.refresh_token).await;
    assert!(
        matches!(refused, Err(AppError::InvalidRefreshToken)),
        "{refused:?}"
    );
    let refused = f.app.authenticate(&tokens.access_token).await;
    assert!(
        matches!(refused, Err(AppError::InvalidToken)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_logout_ends_the_session_and_unknown_tokens_log_out_quietly() {
    let f = Fixture::new();
    f.organization("Acme", "owner@acme.example").await;
    let tokens = f.log_in("owner@acme.example").await;
    f.app.log_out(&tokens.refresh_token).await.unwrap();
    f.app.log_out(&tokens.refresh_token).await.unwrap();
    f.app.log_out("never issued").await.unwrap();
    let refused = f.app.refresh(&f.origin, &tokens.refresh_token).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn forged_and_removed_admins_tokens_are_refused() {
    let f = Fixture::new();
    f.organization("Acme", "owner@acme.example").await;
    let refused = f.app.authenticate("not.a.jwt").await;
    assert!(
        matches!(refused, Err(AppError::InvalidToken)),
        "{refused:?}"
    );
    let tokens = f.log_in("owner@acme.example").await;
    let admin = f.app.authenticate(&tokens.access_token).await.unwrap();
    f.inner()
        .delete_organization(admin.organization_id)
        .await
        .unwrap();
    let refused = f.app.authenticate(&tokens.access_token).await;
    assert!(
        matches!(refused, Err(AppError::InvalidToken)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_token_of_a_session_that_had_ended_is_refused_without_a_reuse_alarm() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let store = f.inner();
    let state = |change: StateChange| {
        let store = store.clone();
        async move {
            store
                .change_organization_state(org.id, &change)
                .await
                .unwrap()
        }
    };

    // A refresh refused for a suspension ends its session...
    let suspended = f.log_in("owner@acme.example").await;
    let suspension = Suspension::new("unpaid", Utc::now()).unwrap();
    state(StateChange::Suspend(suspension)).await;
    let refused = f.app.refresh(&f.origin, &suspended.refresh_token).await;
    assert!(
        matches!(refused, Err(AppError::OrganizationSuspended)),
        "{refused:?}"
    );
    state(StateChange::Resume).await;
    // ...so the same token afterwards is merely invalid: not a theft.
    let after = f.app.refresh(&f.origin, &suspended.refresh_token).await;
    assert!(
        matches!(after, Err(AppError::InvalidRefreshToken)),
        "{after:?}"
    );

    // Likewise a token used by a logout.
    let logged_out = f.log_in("owner@acme.example").await;
    f.app.log_out(&logged_out.refresh_token).await.unwrap();
    let replayed = f.app.refresh(&f.origin, &logged_out.refresh_token).await;
    assert!(
        matches!(replayed, Err(AppError::InvalidRefreshToken)),
        "{replayed:?}"
    );

    assert!(!f
        .audit_actions(org.id)
        .await
        .contains(&AuditAction::RefreshTokenReuseDetected));
}
