//! Invitations: owners invite, list, revoke and resend; the invitee accepts
//! with the emailed token (read here from the store's outbox) and a
//! password, and is signed in.

use actix_web::test::TestRequest;
use chrono::TimeDelta;
use serde_json::{json, Value};

use crate::admins::bearer;
use crate::helpers::{TestApp, TestResponse};

store_suite!(
    an_invitee_accepts_once_and_is_signed_in_as_the_invited_admin,
    a_revoked_invitation_is_gone_like_an_unknown_token,
    a_resend_kills_the_old_token,
    invitations_list_newest_first_with_a_cursor,
    an_email_taken_before_invite_or_before_accept_is_a_conflict,
);

store_independent_suite!(
    invitation_operations_are_for_owners_only,
    expires_in_must_be_one_second_to_thirty_days,
);

/// A new invitee's password.
const INVITEE_PASSWORD: &str = "my own long passphrase";

impl TestApp {
    /// `POST /org/invitations` with `token` and `body`.
    async fn invite(&self, token: &str, body: Value) -> TestResponse {
        self.send(bearer(TestRequest::post().uri("/org/invitations"), token).set_json(body))
            .await
    }

    /// `POST /invitations/accept` (no bearer token).
    async fn accept(&self, invitation_token: &str, password: &str) -> TestResponse {
        self.send(
            TestRequest::post()
                .uri("/invitations/accept")
                .set_json(json!({"token": invitation_token, "password": password})),
        )
        .await
    }

    /// The token of the newest invitation email queued for `to`, read from
    /// the outbox (claimed, so each email is read once).
    async fn emailed_token(&self, to: &str) -> String {
        let now = orgsvc_domain::clock::now_millis();
        let messages = self
            .store
            .claim_due_messages(now, now + TimeDelta::hours(1), 100)
            .await
            .unwrap();
        let message = messages
            .iter()
            .rev()
            .find(|message| message.to.as_str() == to)
            .unwrap_or_else(|| panic!("no email to {to}"));
        let (_, rest) = message.text_body.split_once("token=").unwrap();
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

async fn an_invitee_accepts_once_and_is_signed_in_as_the_invited_admin(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let invited = app
        .invite(
            &token,
            json!({"email": "New@Acme.example", "role": "owner"}),
        )
        .await
        .expect(201, None);
    assert_eq!(invited["email"], "new@acme.example");
    assert_eq!(invited["role"], "owner");
    assert_eq!(invited["status"], "pending");
    let mut keys: Vec<_> = invited.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["created_at", "email", "expires_at", "id", "role", "status"]
    );
    let emailed = app.emailed_token("new@acme.example").await;
    assert_eq!(emailed.len(), 43);
    assert!(
        !invited.to_string().contains(&emailed),
        "the token is only in the email"
    );

    let response = app.accept(&emailed, INVITEE_PASSWORD).await;
    let accepted = response.expect(201, None);
    assert_eq!(accepted["admin"]["email"], "new@acme.example");
    assert_eq!(accepted["admin"]["role"], "owner");
    assert_eq!(
        accepted["admin"]["email_verified"], true,
        "the link reached the address"
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let admin_id = accepted["admin"]["id"].as_str().unwrap();
    assert_eq!(
        response.header("location"),
        Some(format!("/org/admins/{admin_id}").as_str())
    );
    let access = accepted["tokens"]["access_token"].as_str().unwrap();
    assert_eq!(accepted["tokens"]["token_type"], "bearer");
    app.send(bearer(TestRequest::get().uri("/org/admins"), access))
        .await
        .expect(200, None);
    let refresh = accepted["tokens"]["refresh_token"].as_str().unwrap();
    app.refresh(refresh).await.expect(200, None);
    app.token("new@acme.example", INVITEE_PASSWORD).await;

    let again = app.accept(&emailed, INVITEE_PASSWORD).await;
    let second = again.expect(410, Some("invitation_unusable"));
    let unknown = app
        .accept("no-such-token", INVITEE_PASSWORD)
        .await
        .expect(410, Some("invitation_unusable"));
    assert_eq!(second, unknown, "one body for every unusable token");

    let list = app
        .send(bearer(TestRequest::get().uri("/org/invitations"), &token))
        .await
        .expect(200, None);
    assert_eq!(list["items"][0]["status"], "accepted");
    let audit = app
        .send(bearer(TestRequest::get().uri("/org/audit"), &token))
        .await
        .expect(200, None);
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"invitation.created"), "{actions:?}");
    assert!(actions.contains(&"invitation.accepted"), "{actions:?}");
}

async fn a_revoked_invitation_is_gone_like_an_unknown_token(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let invited = app
        .invite(&token, json!({"email": "new@acme.example"}))
        .await
        .expect(201, None);
    assert_eq!(invited["role"], "admin", "the role defaults to admin");
    let id = invited["id"].as_str().unwrap();
    let emailed = app.emailed_token("new@acme.example").await;
    let revoke = |id: String| {
        let request = bearer(
            TestRequest::delete().uri(&format!("/org/invitations/{id}")),
            &token,
        );
        app.send(request)
    };
    revoke(id.to_owned()).await.expect(204, None);
    let gone = app
        .accept(&emailed, INVITEE_PASSWORD)
        .await
        .expect(410, Some("invitation_unusable"));
    let unknown = app
        .accept(
            "Jx3b7m0H1sXlq9cX2y5c0PZf8oQe4uKt6wVbN1rD2aE",
            INVITEE_PASSWORD,
        )
        .await
        .expect(410, Some("invitation_unusable"));
    assert_eq!(gone, unknown);
    revoke(id.to_owned())
        .await
        .expect(409, Some("invitation_not_pending"));
    revoke("nope".to_owned())
        .await
        .expect(404, Some("invitation_not_found"));
    let other = app.create_and_login("Other", "owner@other.example").await;
    app.send(bearer(
        TestRequest::delete().uri(&format!("/org/invitations/{id}")),
        &other,
    ))
    .await
    .expect(404, Some("invitation_not_found"));
    let list = app
        .send(bearer(TestRequest::get().uri("/org/invitations"), &token))
        .await
        .expect(200, None);
    assert_eq!(list["items"][0]["status"], "revoked");
}

async fn a_resend_kills_the_old_token(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let invited = app
        .invite(
            &token,
            json!({"email": "new@acme.example", "expires_in": 3600}),
        )
        .await
        .expect(201, None);
    let id = invited["id"].as_str().unwrap();
    let old = app.emailed_token("new@acme.example").await;
    let resent = app
        .send(bearer(
            TestRequest::post().uri(&format!("/org/invitations/{id}/resend")),
            &token,
        ))
        .await
        .expect(200, None);
    assert_eq!(resent["id"], invited["id"]);
    assert_eq!(resent["status"], "pending");
    assert!(resent["expires_at"].as_str() > invited["expires_at"].as_str());
    let new = app.emailed_token("new@acme.example").await;
    assert_ne!(old, new);
    app.accept(&old, INVITEE_PASSWORD)
        .await
        .expect(410, Some("invitation_unusable"));
    app.accept(&new, INVITEE_PASSWORD).await.expect(201, None);
    app.send(bearer(
        TestRequest::post().uri(&format!("/org/invitations/{id}/resend")),
        &token,
    ))
    .await
    .expect(409, Some("invitation_not_pending"));
}

async fn invitations_list_newest_first_with_a_cursor(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let invited = app
            .invite(&token, json!({"email": format!("new{n}@acme.example")}))
            .await
            .expect(201, None);
        ids.push(invited["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let first = app
        .send(bearer(
            TestRequest::get().uri("/org/invitations?limit=2"),
            &token,
        ))
        .await;
    let page = first.expect(200, None);
    let cursor = page["next_cursor"].as_str().unwrap();
    assert_eq!(
        first.header("link"),
        Some(format!("</org/invitations?limit=2&before={cursor}>; rel=\"next\"").as_str())
    );
    let second = app
        .send(bearer(
            TestRequest::get().uri(&format!("/org/invitations?limit=2&before={cursor}")),
            &token,
        ))
        .await;
    let rest = second.expect(200, None);
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_eq!(second.header("link"), None);
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids, "newest first, each once");
    app.send(bearer(
        TestRequest::get().uri("/org/invitations?before=nope&limit=0"),
        &token,
    ))
    .await
    .expect(422, Some("validation_failed"));
}

async fn an_email_taken_before_invite_or_before_accept_is_a_conflict(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    app.create_org("Other", "owner@other.example")
        .await
        .expect(201, None);
    app.invite(&token, json!({"email": "OWNER@other.example"}))
        .await
        .expect(409, Some("email_taken"));

    app.invite(&token, json!({"email": "late@acme.example"}))
        .await
        .expect(201, None);
    let emailed = app.emailed_token("late@acme.example").await;
    app.add_admin(&token, "late@acme.example", None)
        .await
        .expect(201, None);
    app.accept(&emailed, INVITEE_PASSWORD)
        .await
        .expect(409, Some("email_taken"));
    let list = app
        .send(bearer(TestRequest::get().uri("/org/invitations"), &token))
        .await
        .expect(200, None);
    assert_eq!(list["items"][0]["status"], "pending", "nothing happened");
}

async fn invitation_operations_are_for_owners_only(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let (_, admin) = app
        .add_admin_and_login(&token, "ops@acme.example", "admin")
        .await;
    let invited = app
        .invite(&token, json!({"email": "new@acme.example"}))
        .await
        .expect(201, None);
    let id = invited["id"].as_str().unwrap();
    let requests = [
        TestRequest::post()
            .uri("/org/invitations")
            .set_json(json!({"email": "x@acme.example"})),
        TestRequest::get().uri("/org/invitations"),
        TestRequest::delete().uri(&format!("/org/invitations/{id}")),
        TestRequest::post().uri(&format!("/org/invitations/{id}/resend")),
    ];
    for request in requests {
        app.send(bearer(request, &admin))
            .await
            .expect(403, Some("owner_required"));
    }
    app.send(TestRequest::get().uri("/org/invitations"))
        .await
        .expect(401, Some("missing_token"));
}

async fn expires_in_must_be_one_second_to_thirty_days(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    for expires_in in [json!(0), json!(2_592_001), json!(-5), json!("3600")] {
        let refused = app
            .invite(
                &token,
                json!({"email": "new@acme.example", "expires_in": expires_in}),
            )
            .await
            .expect(422, Some("validation_failed"));
        assert_eq!(refused["errors"][0]["field"], "expires_in", "{expires_in}");
    }
    let longest = app
        .invite(
            &token,
            json!({"email": "new@acme.example", "expires_in": 2_592_000}),
        )
        .await
        .expect(201, None);
    assert_eq!(longest["status"], "pending");
    app.accept("x", "short")
        .await
        .expect(422, Some("validation_failed"));
}
