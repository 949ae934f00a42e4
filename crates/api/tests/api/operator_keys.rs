//! The operator API's keys (issue #17): `POST`, `GET /operator/keys`,
//! `DELETE /operator/keys/{name}`, the `operator_key` scheme, scopes, and
//! the separation from admins' access tokens.

use std::time::Duration;

use actix_web::test::TestRequest;
use chrono::TimeDelta;
use orgsvc_app::operators::{create_operator_key, KeyManager};
use orgsvc_auth::OperatorApiKey;
use orgsvc_domain::{
    AuditAction, AuditEvent, AuditEventId, OperatorKey, OperatorKeyName, OperatorScope,
    OrganizationId,
};
use serde_json::json;

use crate::helpers::{Backend, TestApp};

store_suite!(
    keys_are_created_listed_and_revoked_through_the_api,
    a_revoked_key_is_refused_at_once,
    an_expired_key_is_refused,
    a_read_key_gets_403_on_key_management,
    the_last_use_of_a_key_is_recorded,
    an_operators_action_shows_in_the_organizations_audit_log,
);

store_independent_suite!(
    operator_routes_refuse_admin_tokens_and_missing_or_malformed_keys,
    admin_routes_refuse_operator_keys,
    create_returns_422_listing_every_invalid_field,
);

/// `request` with `Authorization: Bearer <key>`.
fn with_key(request: TestRequest, key: &str) -> TestRequest {
    request.insert_header(("Authorization", format!("Bearer {key}")))
}

fn name(raw: &str) -> OperatorKeyName {
    OperatorKeyName::parse(raw).unwrap()
}

/// The first key, as `orgsvc operator-keys create` makes it.
async fn bootstrap(app: &TestApp, key_name: &str, scope: OperatorScope) -> String {
    let created = create_operator_key(
        app.store.as_ref(),
        KeyManager::CommandLine,
        name(key_name),
        scope,
        None,
    )
    .await
    .unwrap();
    created.secret.expose().to_owned()
}

async fn list(app: &TestApp, key: &str) -> serde_json::Value {
    app.send(with_key(TestRequest::get().uri("/operator/keys"), key))
        .await
        .expect(200, None)
}

async fn keys_are_created_listed_and_revoked_through_the_api(app: TestApp) {
    let root = bootstrap(&app, "root", OperatorScope::Write).await;

    let response = app
        .send(with_key(
            TestRequest::post()
                .uri("/operator/keys")
                .set_json(json!({"name": "deploy-bot", "scope": "write", "expires_in": 3600})),
            &root,
        ))
        .await;
    let created = response.expect(201, None);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(
        response.header("location"),
        Some("/operator/keys/deploy-bot")
    );
    let deploy = created["key"].as_str().unwrap().to_owned();
    assert!(deploy.starts_with("osk_") && deploy.len() == 47, "{deploy}");
    assert_eq!(created["name"], "deploy-bot");
    assert_eq!(created["scope"], "write");
    assert!(created["expires_at"].is_string());
    assert_eq!(created["revoked_at"], json!(null));

    // The new key works, and the listing shows every key without secrets.
    let listed = list(&app, &deploy).await;
    let names: Vec<_> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["root", "deploy-bot"]);
    let text = listed.to_string();
    let stored = app.store.operator_keys().await.unwrap();
    for secret in [root.as_str(), deploy.as_str()]
        .into_iter()
        .chain(stored.iter().map(|key| key.hash.as_str()))
    {
        assert!(!text.contains(secret), "the listing shows a secret: {text}");
    }
    assert!(listed["keys"][0].get("key").is_none());

    // Names are unique, revoked ones included; the scope defaults to read.
    app.send(with_key(
        TestRequest::post()
            .uri("/operator/keys")
            .set_json(json!({"name": "deploy-bot"})),
        &root,
    ))
    .await
    .expect(409, Some("operator_key_name_taken"));
    let reader = app
        .send(with_key(
            TestRequest::post()
                .uri("/operator/keys")
                .set_json(json!({"name": "dashboard"})),
            &root,
        ))
        .await
        .expect(201, None);
    assert_eq!(reader["scope"], "read");
    assert_eq!(reader["expires_at"], json!(null));

    app.send(with_key(
        TestRequest::delete().uri("/operator/keys/deploy-bot"),
        &root,
    ))
    .await
    .expect(204, None);
    // Idempotent for a known name; 404 for an unknown one.
    app.send(with_key(
        TestRequest::delete().uri("/operator/keys/deploy-bot"),
        &root,
    ))
    .await
    .expect(204, None);
    for unknown in ["nobody", "Not%20A%20Name"] {
        app.send(with_key(
            TestRequest::delete().uri(&format!("/operator/keys/{unknown}")),
            &root,
        ))
        .await
        .expect(404, Some("operator_key_not_found"));
    }
    let listed = list(&app, &root).await;
    assert!(listed["keys"][1]["revoked_at"].is_string(), "{listed}");
    assert_eq!(listed["keys"][0]["revoked_at"], json!(null));
    app.send(with_key(
        TestRequest::post()
            .uri("/operator/keys")
            .set_json(json!({"name": "deploy-bot"})),
        &root,
    ))
    .await
    .expect(409, Some("operator_key_name_taken"));
}

async fn a_revoked_key_is_refused_at_once(app: TestApp) {
    let root = bootstrap(&app, "root", OperatorScope::Write).await;
    let other = bootstrap(&app, "other", OperatorScope::Write).await;
    list(&app, &other).await;
    app.send(with_key(
        TestRequest::delete().uri("/operator/keys/other"),
        &root,
    ))
    .await
    .expect(204, None);
    let refused = app
        .send(with_key(TestRequest::get().uri("/operator/keys"), &other))
        .await;
    refused.expect(401, Some("invalid_operator_key"));
    assert_eq!(
        refused.header("www-authenticate"),
        Some(r#"Bearer realm="orgsvc-operator", error="invalid_token""#)
    );
    // A key may revoke itself.
    app.send(with_key(
        TestRequest::delete().uri("/operator/keys/root"),
        &root,
    ))
    .await
    .expect(204, None);
    app.send(with_key(TestRequest::get().uri("/operator/keys"), &root))
        .await
        .expect(401, Some("invalid_operator_key"));
}

async fn an_expired_key_is_refused(app: TestApp) {
    let secret = OperatorApiKey::generate();
    let key = OperatorKey::create(
        name("expired"),
        OperatorScope::Write,
        secret.hash(),
        orgsvc_domain::clock::now_millis() - TimeDelta::hours(2),
        Some(Duration::from_secs(3600)),
    );
    app.store.create_operator_key(key).await.unwrap();
    app.send(with_key(
        TestRequest::get().uri("/operator/keys"),
        secret.expose(),
    ))
    .await
    .expect(401, Some("invalid_operator_key"));
}

async fn a_read_key_gets_403_on_key_management(app: TestApp) {
    let reader = bootstrap(&app, "reader", OperatorScope::Read).await;
    let requests = [
        TestRequest::get().uri("/operator/keys"),
        TestRequest::post()
            .uri("/operator/keys")
            .set_json(json!({"name": "escalated", "scope": "write"})),
        TestRequest::delete().uri("/operator/keys/reader"),
    ];
    for request in requests {
        let response = app.send(with_key(request, &reader)).await;
        response.expect(403, Some("operator_scope_insufficient"));
        assert_eq!(
            response.header("www-authenticate"),
            Some(r#"Bearer realm="orgsvc-operator", error="insufficient_scope", scope="write""#)
        );
    }
    let keys = app.store.operator_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].revoked_at, None);
}

async fn the_last_use_of_a_key_is_recorded(app: TestApp) {
    let root = bootstrap(&app, "root", OperatorScope::Write).await;
    let before = orgsvc_domain::clock::now_millis();
    assert_eq!(
        app.store.operator_keys().await.unwrap()[0].last_used_at,
        None
    );
    list(&app, &root).await;
    let used = app.store.operator_keys().await.unwrap()[0].last_used_at;
    assert!(used.is_some_and(|at| at >= before), "{used:?}");
    // At most one write a minute: the next use leaves it.
    list(&app, &root).await;
    assert_eq!(
        app.store.operator_keys().await.unwrap()[0].last_used_at,
        used
    );
}

async fn operator_routes_refuse_admin_tokens_and_missing_or_malformed_keys(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let missing = app.send(TestRequest::get().uri("/operator/keys")).await;
    missing.expect(401, Some("missing_operator_key"));
    assert_eq!(
        missing.header("www-authenticate"),
        Some(r#"Bearer realm="orgsvc-operator""#)
    );
    let forged = format!("osk_{}", "A".repeat(43));
    for presented in [token.as_str(), "osk_short", forged.as_str()] {
        for request in [
            TestRequest::get().uri("/operator/keys"),
            TestRequest::post()
                .uri("/operator/keys")
                .set_json(json!({"name": "x1"})),
            TestRequest::delete().uri("/operator/keys/x1"),
        ] {
            app.send(with_key(request, presented))
                .await
                .expect(401, Some("invalid_operator_key"));
        }
    }
    assert!(app.store.operator_keys().await.unwrap().is_empty());
}

async fn admin_routes_refuse_operator_keys(app: TestApp) {
    app.create_org("Acme", "owner@acme.example")
        .await
        .expect(201, None);
    let key = bootstrap(&app, "root", OperatorScope::Write).await;
    for request in [
        TestRequest::get().uri("/org/admins"),
        TestRequest::get().uri("/org/audit"),
        TestRequest::get().uri("/org/data"),
        TestRequest::post()
            .uri("/org/admins")
            .set_json(json!({"email": "x@acme.example", "password": "long enough password"})),
    ] {
        let response = app.send(with_key(request, &key)).await;
        response.expect(401, Some("invalid_token"));
        assert_eq!(
            response.header("www-authenticate"),
            Some(r#"Bearer realm="orgsvc", error="invalid_token""#)
        );
    }
}

async fn create_returns_422_listing_every_invalid_field(app: TestApp) {
    let root = bootstrap(&app, "root", OperatorScope::Write).await;
    let body = app
        .send(with_key(
            TestRequest::post()
                .uri("/operator/keys")
                .set_json(json!({"name": "Bad Name", "scope": "admin", "expires_in": 0})),
            &root,
        ))
        .await
        .expect(422, Some("validation_failed"));
    let fields: Vec<_> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "scope", "expires_in"]);
    app.send(with_key(
        TestRequest::post()
            .uri("/operator/keys")
            .set_json(json!({})),
        &root,
    ))
    .await
    .expect(422, Some("validation_failed"));
}

#[actix_web::test]
async fn each_key_is_rate_limited_on_its_own() {
    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[
            ("ORGSVC__SECURITY__OPERATOR_RATE_PER_MINUTE", "1"),
            ("ORGSVC__SECURITY__OPERATOR_RATE_BURST", "2"),
        ],
    )
    .await;
    let first = bootstrap(&app, "first", OperatorScope::Write).await;
    let second = bootstrap(&app, "second", OperatorScope::Write).await;
    list(&app, &first).await;
    list(&app, &first).await;
    let limited = app
        .send(with_key(TestRequest::get().uri("/operator/keys"), &first))
        .await;
    limited.expect(429, Some("operator_rate_limited"));
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another key has its own budget.
    list(&app, &second).await;
}

async fn an_operators_action_shows_in_the_organizations_audit_log(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let organization = app.get_org("Acme").await.expect(200, None);
    let organization_id: uuid::Uuid = organization["id"].as_str().unwrap().parse().unwrap();
    let event = AuditEvent {
        id: AuditEventId::new(),
        organization_id: OrganizationId::from_uuid(organization_id),
        actor: None,
        operator: Some(name("support-bot")),
        action: AuditAction::OrganizationRenamed,
        target: "Acme -> Acme".into(),
        at: orgsvc_domain::clock::now_millis(),
        request_id: Some("req-operator".into()),
        client_ip: None,
    };
    app.store.record(event).await.unwrap();
    let page = app
        .send(
            TestRequest::get()
                .uri("/org/audit")
                .insert_header(("Authorization", format!("Bearer {token}"))),
        )
        .await
        .expect(200, None);
    let newest = &page["events"][0];
    assert_eq!(newest["operator"], "support-bot", "{page}");
    assert_eq!(newest["actor"], json!(null), "{page}");
    assert_eq!(newest["request_id"], "req-operator", "{page}");
}

/// On MongoDB every instance counts a key's requests together.
#[actix_web::test]
async fn on_mongodb_instances_share_each_keys_budget() {
    let apps = TestApp::spawn_instances(
        Backend::Mongodb,
        &[
            ("ORGSVC__SECURITY__OPERATOR_RATE_PER_MINUTE", "1"),
            ("ORGSVC__SECURITY__OPERATOR_RATE_BURST", "2"),
        ],
        2,
    )
    .await;
    let key = bootstrap(&apps[0], "shared", OperatorScope::Write).await;
    list(&apps[0], &key).await;
    list(&apps[1], &key).await;
    for app in &apps {
        let limited = app
            .send(with_key(TestRequest::get().uri("/operator/keys"), &key))
            .await;
        limited.expect(429, Some("operator_rate_limited"));
        assert!(limited.header("retry-after").is_some());
    }
    // The window ends: the key may call again.
    apps[0].clock.advance(Duration::from_secs(120));
    list(&apps[1], &key).await;
}
