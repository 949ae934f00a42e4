//! Sessions: refresh-token rotation, reuse detection, logout, revocation of
//! access and refresh tokens, and the maintenance purge.

use std::str::FromStr;
use std::time::Duration;

use actix_web::test::TestRequest;
use chrono::{DateTime, TimeDelta, Utc};
use orgsvc_auth::{hash_refresh_token, PasswordHasher};
use orgsvc_domain::{
    AdminEmail, AdminId, AdminRole, AuditAction, AuditEvent, AuditEventId, AuditQuery, NewAdmin,
    OrganizationId, Password, RefreshToken, RefreshTokenUse, SessionFamilyId,
};
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestResponse, PASSWORD};

store_suite!(
    login_answers_a_refresh_token_with_its_lifetime,
    refresh_rotates_the_refresh_token_and_issues_a_working_access_token,
    a_reused_refresh_token_revokes_its_whole_session_only,
    logout_revokes_the_session_and_is_idempotent,
    logout_with_a_used_refresh_token_is_no_replay,
    a_password_change_revokes_earlier_access_and_refresh_tokens,
    deleting_the_organization_revokes_access_and_refresh_tokens,
    removing_an_admin_revokes_its_access_and_refresh_tokens,
    maintenance_purges_expired_sessions_and_old_audit_entries,
);

store_independent_suite!(refresh_and_logout_validate_their_body,);

/// Tokens of one login or refresh answer.
struct Tokens {
    access: String,
    refresh: String,
}

impl Tokens {
    fn of(body: &Value) -> Self {
        Self {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }
}

/// Creates an organization; answers its id and its admin's id.
async fn create(app: &TestApp, name: &str, email: &str) -> (OrganizationId, AdminId) {
    let created = app.create_org(name, email).await.expect(201, None);
    (
        OrganizationId::from_str(created["id"].as_str().unwrap()).unwrap(),
        AdminId::from_str(created["admin_id"].as_str().unwrap()).unwrap(),
    )
}

async fn login(app: &TestApp, email: &str) -> Tokens {
    Tokens::of(&app.login(email, PASSWORD).await.expect(200, None))
}

/// A protected call: `GET /org/data` with `access_token`.
async fn list_data(app: &TestApp, access_token: &str) -> TestResponse {
    app.send(
        TestRequest::get()
            .uri("/org/data")
            .insert_header(("Authorization", format!("Bearer {access_token}"))),
    )
    .await
}

async fn audit_events(app: &TestApp, organization: OrganizationId) -> Vec<AuditEvent> {
    app.store
        .audit_events(organization, AuditQuery::default())
        .await
        .unwrap()
        .events
}

async fn login_answers_a_refresh_token_with_its_lifetime(app: TestApp) {
    create(&app, "Acme", "admin@acme.example").await;
    let response = app.login("admin@acme.example", PASSWORD).await;
    let body = response.expect(200, None);
    let refresh_token = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_token.len(), 43, "{body}");
    assert!(refresh_token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let again = login(&app, "admin@acme.example").await;
    assert_ne!(again.refresh, refresh_token);
}

async fn refresh_rotates_the_refresh_token_and_issues_a_working_access_token(app: TestApp) {
    create(&app, "Acme", "admin@acme.example").await;
    let first = login(&app, "admin@acme.example").await;

    let response = app.refresh(&first.refresh).await;
    let body = response.expect(200, None);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    let second = Tokens::of(&body);
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    list_data(&app, &second.access).await.expect(200, None);
    list_data(&app, &first.access).await.expect(200, None);

    let third = Tokens::of(&app.refresh(&second.refresh).await.expect(200, None));
    assert_ne!(third.refresh, second.refresh);
    list_data(&app, &third.access).await.expect(200, None);
}

async fn a_reused_refresh_token_revokes_its_whole_session_only(app: TestApp) {
    let (org, admin) = create(&app, "Acme", "admin@acme.example").await;
    let stolen = login(&app, "admin@acme.example").await;
    let other_session = login(&app, "admin@acme.example").await;
    let rotated = Tokens::of(&app.refresh(&stolen.refresh).await.expect(200, None));

    app.refresh(&stolen.refresh)
        .await
        .expect(401, Some("invalid_refresh_token"));
    // The rotated token of the same session is revoked with it...
    app.refresh(&rotated.refresh)
        .await
        .expect(401, Some("invalid_refresh_token"));
    // ...but not another session of the same admin.
    app.refresh(&other_session.refresh).await.expect(200, None);

    let reuse: Vec<_> = audit_events(&app, org)
        .await
        .into_iter()
        .filter(|event| event.action == AuditAction::RefreshTokenReuseDetected)
        .collect();
    assert_eq!(reuse.len(), 1, "{reuse:?}");
    assert_eq!(reuse[0].actor, None);
    assert_eq!(reuse[0].target, admin.to_string());
    assert!(reuse[0].request_id.is_some());
}

async fn logout_revokes_the_session_and_is_idempotent(app: TestApp) {
    create(&app, "Acme", "admin@acme.example").await;
    let session = login(&app, "admin@acme.example").await;
    let other_session = login(&app, "admin@acme.example").await;
    let rotated = Tokens::of(&app.refresh(&session.refresh).await.expect(200, None));

    let response = app.logout(&rotated.refresh).await;
    response.expect(204, None);
    assert!(response.body.is_empty());
    app.refresh(&rotated.refresh)
        .await
        .expect(401, Some("invalid_refresh_token"));
    app.logout(&rotated.refresh).await.expect(204, None);
    app.logout("never-issued").await.expect(204, None);
    app.refresh(&other_session.refresh).await.expect(200, None);
}

async fn logout_with_a_used_refresh_token_is_no_replay(app: TestApp) {
    let (org, _) = create(&app, "Acme", "admin@acme.example").await;
    let session = login(&app, "admin@acme.example").await;
    let rotated = Tokens::of(&app.refresh(&session.refresh).await.expect(200, None));

    app.logout(&session.refresh).await.expect(204, None);
    app.refresh(&rotated.refresh)
        .await
        .expect(401, Some("invalid_refresh_token"));
    let events = audit_events(&app, org).await;
    assert!(
        events
            .iter()
            .all(|event| event.action != AuditAction::RefreshTokenReuseDetected),
        "{events:?}"
    );
}

async fn refresh_and_logout_validate_their_body(app: TestApp) {
    for path in ["/admin/refresh", "/admin/logout"] {
        for body in [
            json!({}),
            json!({"refresh_token": 42}),
            json!({"token": "x"}),
        ] {
            let problem = app
                .send(TestRequest::post().uri(path).set_json(body))
                .await
                .expect(422, Some("validation_failed"));
            assert_eq!(problem["errors"][0]["field"], "refresh_token", "{path}");
        }
        app.send(
            TestRequest::post()
                .uri(path)
                .insert_header(("content-type", "application/json"))
                .set_payload("{\"refresh_token\":"),
        )
        .await
        .expect(400, Some("malformed_json"));
    }
    for garbage in ["", "x", &"A".repeat(43)] {
        app.refresh(garbage)
            .await
            .expect(401, Some("invalid_refresh_token"));
    }
}

async fn a_password_change_revokes_earlier_access_and_refresh_tokens(app: TestApp) {
    create(&app, "Acme", "admin@acme.example").await;
    let before = login(&app, "admin@acme.example").await;
    let rotated = Tokens::of(&app.refresh(&before.refresh).await.expect(200, None));
    let changer = login(&app, "admin@acme.example").await;

    app.update_org(
        &changer.access,
        json!({"organization_name": "Acme", "password": "a brand new password"}),
    )
    .await
    .expect(200, None);

    for access in [&before.access, &rotated.access, &changer.access] {
        list_data(&app, access)
            .await
            .expect(401, Some("invalid_token"));
    }
    for refresh in [&rotated.refresh, &changer.refresh] {
        app.refresh(refresh)
            .await
            .expect(401, Some("invalid_refresh_token"));
    }
    let fresh = Tokens::of(
        &app.login("admin@acme.example", "a brand new password")
            .await
            .expect(200, None),
    );
    list_data(&app, &fresh.access).await.expect(200, None);
    app.refresh(&fresh.refresh).await.expect(200, None);
}

async fn deleting_the_organization_revokes_access_and_refresh_tokens(app: TestApp) {
    create(&app, "Acme", "admin@acme.example").await;
    let deleter = login(&app, "admin@acme.example").await;
    let other = login(&app, "admin@acme.example").await;

    app.delete_org(&deleter.access, "Acme")
        .await
        .expect(200, None);

    for access in [&deleter.access, &other.access] {
        list_data(&app, access)
            .await
            .expect(401, Some("invalid_token"));
    }
    for refresh in [&deleter.refresh, &other.refresh] {
        app.refresh(refresh)
            .await
            .expect(401, Some("invalid_refresh_token"));
    }
    // A new organization with the same name and email does not revive them.
    create(&app, "Acme", "admin@acme.example").await;
    list_data(&app, &other.access)
        .await
        .expect(401, Some("invalid_token"));
    app.refresh(&other.refresh)
        .await
        .expect(401, Some("invalid_refresh_token"));
}

async fn removing_an_admin_revokes_its_access_and_refresh_tokens(app: TestApp) {
    let (org, owner) = create(&app, "Acme", "owner@acme.example").await;
    let hasher = PasswordHasher::new(app.settings.auth.argon2, 1).unwrap();
    let hash = hasher.hash(&Password::parse(PASSWORD).unwrap()).await;
    let email = AdminEmail::parse("second@acme.example").unwrap();
    let second = NewAdmin::new(email, AdminRole::Owner, hash.unwrap());
    app.store.add_admin(org, second).await.unwrap();
    let removed = login(&app, "owner@acme.example").await;
    let staying = login(&app, "second@acme.example").await;

    app.store.remove_admin(org, owner).await.unwrap();

    list_data(&app, &removed.access)
        .await
        .expect(401, Some("invalid_token"));
    app.refresh(&removed.refresh)
        .await
        .expect(401, Some("invalid_refresh_token"));
    list_data(&app, &staying.access).await.expect(200, None);
    let rotated = Tokens::of(&app.refresh(&staying.refresh).await.expect(200, None));
    list_data(&app, &rotated.access).await.expect(200, None);
}

fn millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap()
}

async fn maintenance_purges_expired_sessions_and_old_audit_entries(app: TestApp) {
    let now = millis(Utc::now());
    let hash = hash_refresh_token("an expiring token");
    let token = RefreshToken {
        hash: hash.clone(),
        family: SessionFamilyId::new(),
        admin_id: AdminId::new(),
        organization_id: OrganizationId::new(),
        token_version: 0,
        issued_at: now,
        expires_at: now + TimeDelta::minutes(1),
    };
    app.store.save_refresh_token(token.clone()).await.unwrap();
    let used = app.store.use_refresh_token(&hash, now).await.unwrap();
    assert_eq!(used, RefreshTokenUse::Fresh(token));

    let deleted_long_ago = OrganizationId::new();
    for (action, days_ago) in [
        (AuditAction::OrganizationCreated, 120),
        (AuditAction::OrganizationDeleted, 91),
    ] {
        let event = AuditEvent {
            id: AuditEventId::new(),
            organization_id: deleted_long_ago,
            actor: None,
            operator: None,
            action,
            target: "Gone".into(),
            at: now - TimeDelta::days(days_ago),
            request_id: None,
            client_ip: None,
        };
        app.store.record(event).await.unwrap();
    }
    let (live, _) = create(&app, "Acme", "admin@acme.example").await;
    login(&app, "admin@acme.example").await;

    let maintenance = app.settings.maintenance();
    assert_eq!(
        maintenance.audit_retention,
        Duration::from_secs(90 * 86_400)
    );
    maintenance
        .run_once(app.store.as_ref(), now + TimeDelta::minutes(2))
        .await;

    // Purged: a used token is no longer even reported as reused.
    let after = app.store.use_refresh_token(&hash, now).await.unwrap();
    assert_eq!(after, RefreshTokenUse::Invalid);
    assert!(audit_events(&app, deleted_long_ago).await.is_empty());
    let kept = audit_events(&app, live).await;
    assert!(
        kept.iter()
            .any(|event| event.action == AuditAction::LoginSucceeded),
        "{kept:?}"
    );
}
