//! Password reset and email verification over HTTP: the links' tokens are
//! read from the emails the use cases store in the outbox (delivery itself
//! is the sender's business), then posted back as a front end would.

use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use chrono::TimeDelta;
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{AuditQuery, OutboxMessage, PageSize};
use serde_json::{json, Value};

use crate::admins::{bearer, OTHER_PASSWORD};
use crate::helpers::{Backend, TestApp, TestResponse, PASSWORD};

store_suite!(
    a_reset_link_sets_a_new_password_once_and_revokes_every_earlier_token,
    a_reset_request_answers_the_same_for_unknown_emails_and_sends_nothing,
    a_reset_lifts_the_login_lock_and_verifies_the_email,
    a_reset_token_dies_when_the_email_changes,
    a_verification_link_verifies_the_email_once,
    an_email_change_unverifies_the_new_address_and_tells_the_old_one,
);

store_independent_suite!(
    link_emails_to_one_address_are_rate_limited,
    tokens_and_fields_are_validated,
);

/// With `auth.require_verified_email` (an app of its own per test).
mod verification_required {
    backend_suite!(unverified_admins_may_only_verify_when_verification_is_required,);

    async fn unverified_admins_may_only_verify_when_verification_is_required(
        backend: super::Backend,
    ) {
        super::unverified_admins_may_only_verify_when_verification_is_required(backend).await;
    }
}

const EMAIL: &str = "founder@acme.example";

impl TestApp {
    /// The outbox messages to `to`, waiting up to 5 seconds for `at_least`
    /// of them (the reset email is stored in the background), or half a
    /// second when none is expected; claimed, so each is seen once.
    pub async fn emails_to(&self, to: &str, at_least: usize) -> Vec<OutboxMessage> {
        if at_least == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = Vec::new();
        loop {
            let now = now_millis() + TimeDelta::seconds(1);
            let claimed = self
                .store
                .claim_due_messages(now, now + TimeDelta::hours(1), 100)
                .await
                .unwrap();
            found.extend(claimed.into_iter().filter(|m| m.to.as_str() == to));
            if found.len() >= at_least || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The token of the one email with a link to `to` (`?token=` of its
    /// plain-text body), with the message.
    pub async fn link_token(&self, to: &str) -> (String, OutboxMessage) {
        let mut emails = self.emails_to(to, 1).await;
        assert_eq!(emails.len(), 1, "expected one email to {to}: {emails:?}");
        let message = emails.remove(0);
        (token_in(&message.text_body), message)
    }

    async fn post_json(&self, uri: &str, body: Value) -> TestResponse {
        self.send(TestRequest::post().uri(uri).set_json(body)).await
    }

    async fn request_reset(&self, email: &str) -> TestResponse {
        self.post_json("/admin/password-reset", json!({"email": email}))
            .await
    }

    async fn confirm_reset(&self, token: &str, password: &str) -> TestResponse {
        self.post_json(
            "/admin/password-reset/confirm",
            json!({"token": token, "password": password}),
        )
        .await
    }

    async fn admins_json(&self, token: &str) -> Vec<Value> {
        let body = self
            .send(bearer(TestRequest::get().uri("/org/admins"), token))
            .await
            .expect(200, None);
        body["admins"].as_array().unwrap().clone()
    }

    async fn actions(&self) -> Vec<String> {
        let organization = self
            .store
            .admin_credentials_by_email(&orgsvc_domain::AdminEmail::parse(EMAIL).unwrap())
            .await
            .unwrap()
            .unwrap()
            .admin
            .organization_id;
        let query = AuditQuery {
            limit: PageSize::parse(100).unwrap(),
            before: None,
        };
        let page = self.store.audit_events(organization, query).await.unwrap();
        page.events
            .iter()
            .map(|e| e.action.as_str().to_owned())
            .collect()
    }
}

/// The token in the first `token=` of a link in `body`.
fn token_in(body: &str) -> String {
    let start = body.find("token=").expect("no token= in the email") + "token=".len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn a_reset_link_sets_a_new_password_once_and_revokes_every_earlier_token(app: TestApp) {
    app.create_org("Acme", EMAIL).await.expect(201, None);
    let session = app.login(EMAIL, PASSWORD).await.expect(200, None);
    let old_access = session["access_token"].as_str().unwrap();
    let old_refresh = session["refresh_token"].as_str().unwrap();

    let response = app.request_reset(EMAIL).await;
    response.expect(202, None);
    assert!(response.body.is_empty());
    let (token, message) = app.link_token(EMAIL).await;
    assert_eq!(message.subject, "Reset your password");
    assert_eq!(token.len(), 43, "256 bits, base64url: {token}");
    assert!(message.text_body.contains(&format!(
        "http://localhost:3000/reset-password?token={token}"
    )));
    assert!(message.html_body.contains(&token));

    app.confirm_reset(&token, OTHER_PASSWORD)
        .await
        .expect(204, None);

    // Every earlier credential is dead, the new password works.
    app.send(bearer(TestRequest::get().uri("/org/admins"), old_access))
        .await
        .expect(401, Some("invalid_token"));
    app.refresh(old_refresh)
        .await
        .expect(401, Some("invalid_refresh_token"));
    app.login(EMAIL, PASSWORD)
        .await
        .expect(401, Some("invalid_credentials"));
    app.token(EMAIL, OTHER_PASSWORD).await;

    // Single use: the same link again, with any password, is refused.
    let again = app.confirm_reset(&token, "yet another passphrase").await;
    let problem = again.expect(410, Some("account_token_unusable"));
    app.token(EMAIL, OTHER_PASSWORD).await;
    // An unknown token gets the very same answer.
    let unknown = app
        .confirm_reset(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            OTHER_PASSWORD,
        )
        .await;
    assert_eq!(unknown.expect(410, None), problem);

    let actions = app.actions().await;
    for action in ["password_reset.requested", "password_reset.completed"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

async fn a_reset_request_answers_the_same_for_unknown_emails_and_sends_nothing(app: TestApp) {
    app.create_org("Acme", EMAIL).await.expect(201, None);
    let known = app.request_reset(EMAIL).await;
    let unknown = app.request_reset("nobody@acme.example").await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body);
    assert_eq!(known.status.as_u16(), 202);
    assert_eq!(app.emails_to(EMAIL, 1).await.len(), 1);
    assert!(app.emails_to("nobody@acme.example", 0).await.is_empty());
}

async fn a_reset_lifts_the_login_lock_and_verifies_the_email(app: TestApp) {
    let token = app.create_and_login("Acme", EMAIL).await;
    assert_eq!(app.admins_json(&token).await[0]["email_verified"], false);
    // Five failures (security.login_max_failures) lock the email.
    let mut locked = false;
    for _ in 0..10 {
        let response = app.login(EMAIL, "wrong password!").await;
        if response.status.as_u16() == 429 {
            locked = true;
            break;
        }
    }
    assert!(locked, "failed logins never locked the email");
    app.login(EMAIL, PASSWORD)
        .await
        .expect(429, Some("login_locked"));

    app.request_reset(EMAIL).await.expect(202, None);
    let (reset, _) = app.link_token(EMAIL).await;
    app.confirm_reset(&reset, OTHER_PASSWORD)
        .await
        .expect(204, None);
    let token = app.token(EMAIL, OTHER_PASSWORD).await;
    assert_eq!(app.admins_json(&token).await[0]["email_verified"], true);
}

async fn a_reset_token_dies_when_the_email_changes(app: TestApp) {
    let token = app.create_and_login("Acme", EMAIL).await;
    app.request_reset(EMAIL).await.expect(202, None);
    let (reset, _) = app.link_token(EMAIL).await;
    app.update_org(
        &token,
        json!({"organization_name": "Acme", "email": "new@acme.example"}),
    )
    .await
    .expect(200, None);
    app.confirm_reset(&reset, OTHER_PASSWORD)
        .await
        .expect(410, Some("account_token_unusable"));
    app.token("new@acme.example", PASSWORD).await;
}

async fn a_verification_link_verifies_the_email_once(app: TestApp) {
    let token = app.create_and_login("Acme", EMAIL).await;
    let response = app
        .send(bearer(
            TestRequest::post().uri("/admin/email-verification"),
            &token,
        ))
        .await;
    let body = response.expect(202, None);
    assert_eq!(
        body,
        json!({"email": EMAIL, "email_verified": false, "sent": true})
    );
    let (verify, message) = app.link_token(EMAIL).await;
    assert_eq!(message.subject, "Verify your email address");
    assert!(message
        .text_body
        .contains("http://localhost:3000/verify-email?token="));
    // A verification token does not reset a password.
    app.confirm_reset(&verify, OTHER_PASSWORD)
        .await
        .expect(410, Some("account_token_unusable"));

    app.post_json(
        "/admin/email-verification/confirm",
        json!({"token": verify}),
    )
    .await
    .expect(204, None);
    assert_eq!(app.admins_json(&token).await[0]["email_verified"], true);
    app.post_json(
        "/admin/email-verification/confirm",
        json!({"token": verify}),
    )
    .await
    .expect(410, Some("account_token_unusable"));

    // Verified already: nothing more is sent.
    let body = app
        .send(bearer(
            TestRequest::post().uri("/admin/email-verification"),
            &token,
        ))
        .await
        .expect(202, None);
    assert_eq!(body["sent"], false);
    assert_eq!(body["email_verified"], true);
    assert!(app.emails_to(EMAIL, 0).await.is_empty());
    assert!(app.actions().await.iter().any(|a| a == "email.verified"));
}

async fn an_email_change_unverifies_the_new_address_and_tells_the_old_one(app: TestApp) {
    let token = app.create_and_login("Acme", EMAIL).await;
    app.request_reset(EMAIL).await.expect(202, None);
    let (reset, _) = app.link_token(EMAIL).await;
    app.confirm_reset(&reset, OTHER_PASSWORD)
        .await
        .expect(204, None);
    let token_after = app.token(EMAIL, OTHER_PASSWORD).await;
    assert_ne!(token, token_after);
    assert_eq!(
        app.admins_json(&token_after).await[0]["email_verified"],
        true
    );

    app.update_org(
        &token_after,
        json!({"organization_name": "Acme", "email": "moved@acme.example"}),
    )
    .await
    .expect(200, None);
    let admins = app.admins_json(&token_after).await;
    assert_eq!(admins[0]["email"], "moved@acme.example");
    assert_eq!(admins[0]["email_verified"], false);

    let notices = app.emails_to(EMAIL, 1).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].subject, "Your sign-in email was changed");
    assert!(notices[0]
        .text_body
        .contains("from founder@acme.example to moved@acme.example"));
    assert!(!notices[0].text_body.contains("token="));
    // The audit entry names the credential, never its value.
    let organization = app
        .store
        .admin_credentials_by_email(
            &orgsvc_domain::AdminEmail::parse("moved@acme.example").unwrap(),
        )
        .await
        .unwrap()
        .unwrap()
        .admin;
    let query = AuditQuery {
        limit: PageSize::parse(100).unwrap(),
        before: None,
    };
    let events = app
        .store
        .audit_events(organization.organization_id, query)
        .await
        .unwrap()
        .events;
    let changed = events
        .iter()
        .find(|e| e.action.as_str() == "admin.credentials_changed")
        .expect("no admin.credentials_changed entry");
    assert_eq!(changed.target, format!("{} (email)", organization.id));
}

async fn link_emails_to_one_address_are_rate_limited(app: TestApp) {
    app.create_org("Acme", EMAIL).await.expect(201, None);
    for _ in 0..3 {
        app.request_reset(EMAIL).await.expect(202, None);
    }
    let refused = app.request_reset(EMAIL).await;
    refused.expect(429, Some("rate_limited"));
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Counted per address: another one is not affected, an unknown one
    // neither (and is limited the same way, telling nothing).
    app.request_reset("other@acme.example")
        .await
        .expect(202, None);
    assert_eq!(app.emails_to(EMAIL, 3).await.len(), 3);
}

async fn tokens_and_fields_are_validated(app: TestApp) {
    let problem = app
        .post_json("/admin/password-reset", json!({"email": "not an email"}))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(problem["errors"][0]["field"], "email", "{problem}");
    let problem = app
        .post_json(
            "/admin/password-reset/confirm",
            json!({"token": 5, "password": "short"}),
        )
        .await
        .expect(422, Some("validation_failed"));
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["token", "password"], "{problem}");
    app.post_json("/admin/email-verification/confirm", json!({}))
        .await
        .expect(422, Some("validation_failed"));
    app.send(TestRequest::post().uri("/admin/email-verification"))
        .await
        .expect(401, None);
}

async fn unverified_admins_may_only_verify_when_verification_is_required(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, &[("ORGSVC__AUTH__REQUIRE_VERIFIED_EMAIL", "true")]).await;
    app.create_org("Acme", EMAIL).await.expect(201, None);
    let session = app.login(EMAIL, PASSWORD).await.expect(200, None);
    let token = session["access_token"].as_str().unwrap();
    for request in [
        TestRequest::get().uri("/org/admins"),
        TestRequest::get().uri("/org/data"),
        TestRequest::get().uri("/org/audit"),
    ] {
        app.send(bearer(request, token))
            .await
            .expect(403, Some("email_unverified"));
    }
    // Refresh still works; verification is open.
    let refreshed = app
        .refresh(session["refresh_token"].as_str().unwrap())
        .await
        .expect(200, None);
    let token = refreshed["access_token"].as_str().unwrap();
    app.send(bearer(
        TestRequest::post().uri("/admin/email-verification"),
        token,
    ))
    .await
    .expect(202, None);
    let (verify, _) = app.link_token(EMAIL).await;
    app.post_json(
        "/admin/email-verification/confirm",
        json!({"token": verify}),
    )
    .await
    .expect(204, None);
    app.send(bearer(TestRequest::get().uri("/org/admins"), token))
        .await
        .expect(200, None);
}
