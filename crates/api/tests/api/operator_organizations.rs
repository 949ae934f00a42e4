//! The organization side of the operator API (issue #17): listing and
//! search, one organization with its usage, suspension (and its effect on
//! every tenant route), resumption, deletion, and the audit log across
//! organizations.

use std::sync::Arc;

use actix_web::test::TestRequest;
use orgsvc_app::operators::{create_operator_key, KeyManager};
use orgsvc_domain::testing::{Failure, FaultyStore, Operation, Times};
use orgsvc_domain::{OperatorKeyName, OperatorScope};
use serde_json::{json, Value};

use crate::helpers::{TestApp, PASSWORD};

store_suite!(
    listing_searches_by_prefix_or_substring_in_name_order_with_link_pages,
    listing_filters_on_state_and_creation_time,
    an_organization_comes_with_its_usage,
    suspension_refuses_every_tenant_route_until_resumed,
    suspend_and_resume_are_idempotent_and_audited_with_the_key_name,
    operators_delete_an_organization_without_an_owner,
    the_audit_log_spans_organizations_with_filters_and_pages,
);

store_independent_suite!(
    listing_and_audit_queries_name_every_invalid_parameter,
    a_read_key_lists_but_cannot_suspend_resume_or_delete,
);

/// `request` with `Authorization: Bearer <key>`.
fn with_key(request: TestRequest, key: &str) -> TestRequest {
    request.insert_header(("Authorization", format!("Bearer {key}")))
}

/// A key made as `orgsvc operator-keys create` makes it; its text.
async fn key(app: &TestApp, name: &str, scope: OperatorScope) -> String {
    create_operator_key(
        app.store.as_ref(),
        KeyManager::CommandLine,
        OperatorKeyName::parse(name).unwrap(),
        scope,
        None,
    )
    .await
    .unwrap()
    .secret
    .expose()
    .to_owned()
}

async fn writer(app: &TestApp) -> String {
    key(app, "ops-writer", OperatorScope::Write).await
}

/// `GET uri` with `key`, expecting 200; the body and the `Link` header.
async fn get_ok(app: &TestApp, key: &str, uri: &str) -> (Value, Option<String>) {
    let response = app.send(with_key(TestRequest::get().uri(uri), key)).await;
    let body = response.expect(200, None);
    (body, response.header("link").map(str::to_owned))
}

/// The names of a listing page's items.
fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["organization_name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every name of a listing, following `Link: rel="next"` from `uri`.
async fn all_names(app: &TestApp, key: &str, uri: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next = Some(uri.to_owned());
    while let Some(uri) = next.take() {
        let (page, link) = get_ok(app, key, &uri).await;
        seen.extend(names(&page));
        match (&page["next_cursor"], link) {
            (Value::Null, None) => {}
            (Value::String(cursor), Some(link)) => {
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                assert!(link.contains(&format!("after={cursor}")), "{link}");
                next = Some(link[1..link.find('>').unwrap()].to_owned());
            }
            other => panic!("cursor and Link disagree: {other:?}"),
        }
        assert!(seen.len() <= 50, "paging does not end");
    }
    seen
}

/// Creates an organization; returns its id.
async fn create(app: &TestApp, name: &str, email: &str) -> String {
    let body = app.create_org(name, email).await.expect(201, None);
    body["id"].as_str().unwrap().to_owned()
}

async fn suspend(app: &TestApp, key: &str, id: &str, reason: &str) -> crate::helpers::TestResponse {
    app.send(with_key(
        TestRequest::post()
            .uri(&format!("/operator/organizations/{id}/suspend"))
            .set_json(json!({ "reason": reason })),
        key,
    ))
    .await
}

async fn resume(app: &TestApp, key: &str, id: &str) -> crate::helpers::TestResponse {
    app.send(with_key(
        TestRequest::post().uri(&format!("/operator/organizations/{id}/resume")),
        key,
    ))
    .await
}

async fn listing_searches_by_prefix_or_substring_in_name_order_with_link_pages(app: TestApp) {
    for (n, name) in [
        "Globex",
        "acme-labs",
        "Acme Corp",
        "Big Acme",
        "ACME Zeta",
        "Initech",
    ]
    .into_iter()
    .enumerate()
    {
        create(&app, name, &format!("owner{n}@list.example")).await;
    }
    let key = key(&app, "reader", OperatorScope::Read).await;

    let everything = all_names(&app, &key, "/operator/organizations?limit=2").await;
    assert_eq!(
        everything,
        [
            "Acme Corp",
            "acme-labs",
            "ACME Zeta",
            "Big Acme",
            "Globex",
            "Initech"
        ]
    );
    // Case and separators do not matter; the Link repeats q and match.
    let prefix = all_names(&app, &key, "/operator/organizations?q=ACME-&limit=1").await;
    assert_eq!(prefix, ["Acme Corp", "acme-labs", "ACME Zeta"]);
    let substring = all_names(
        &app,
        &key,
        "/operator/organizations?q=acme&match=substring&limit=2",
    )
    .await;
    assert_eq!(
        substring,
        ["Acme Corp", "acme-labs", "ACME Zeta", "Big Acme"]
    );
    let (page, link) = get_ok(&app, &key, "/operator/organizations?q=nothing").await;
    assert_eq!(page, json!({"items": [], "next_cursor": null}));
    assert_eq!(link, None);

    let (page, _) = get_ok(&app, &key, "/operator/organizations?q=globex").await;
    let item = &page["items"][0];
    assert_eq!(item["canonical_name"], "globex");
    assert_eq!(item["collection_name"], "org_globex");
    assert_eq!(item["state"], "active");
    assert_eq!(item["suspension"], Value::Null);
}

async fn listing_filters_on_state_and_creation_time(app: TestApp) {
    let first = app
        .create_org("First", "first@filter.example")
        .await
        .expect(201, None);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = create(&app, "Second", "second@filter.example").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let third = app
        .create_org("Third", "third@filter.example")
        .await
        .expect(201, None);
    let key = writer(&app).await;
    suspend(&app, &key, &second, "audit pending")
        .await
        .expect(200, None);

    let suspended = all_names(&app, &key, "/operator/organizations?state=suspended").await;
    assert_eq!(suspended, ["Second"]);
    let active = all_names(&app, &key, "/operator/organizations?state=active").await;
    assert_eq!(active, ["First", "Third"]);
    let between = all_names(
        &app,
        &key,
        &format!(
            "/operator/organizations?created_after={}&created_before={}&limit=1",
            crate::helpers::encode(first["created_at"].as_str().unwrap()),
            crate::helpers::encode(third["created_at"].as_str().unwrap()),
        ),
    )
    .await;
    assert_eq!(between, ["Second"]);
}

async fn an_organization_comes_with_its_usage(app: TestApp) {
    let id = create(&app, "Acme", "owner@acme.example").await;
    let token = app.token("owner@acme.example", PASSWORD).await;
    for document in [json!({"a": 1}), json!({"name": "Zoë", "tags": ["x", "y"]})] {
        app.send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .set_json(document),
        )
        .await
        .expect(201, None);
    }
    app.add_admin(&token, "second@acme.example", Some("admin"))
        .await
        .expect(201, None);
    let key = key(&app, "reader", OperatorScope::Read).await;

    let (details, _) = get_ok(&app, &key, &format!("/operator/organizations/{id}")).await;
    assert_eq!(details["id"], id.as_str());
    assert_eq!(details["organization_name"], "Acme");
    assert_eq!(details["state"], "active");
    let usage = &details["usage"];
    assert_eq!(usage["admins"], 2);
    assert_eq!(usage["pending_invitations"], 0);
    assert_eq!(usage["documents"], 2);
    // Compact JSON: {"a":1} is 7 bytes, {"name":"Zoë","tags":["x","y"]} 32.
    assert_eq!(usage["bytes"], 7 + 32);
    assert!(usage["last_login_at"].is_string(), "{usage}");

    let unknown = "01936f3e-8a4b-7c5d-9e6f-0a1b2c3d4e5f";
    app.send(with_key(
        TestRequest::get().uri(&format!("/operator/organizations/{unknown}")),
        &key,
    ))
    .await
    .expect(404, Some("organization_not_found"));

    // While a rename or a move has its documents in two places (MongoDB
    // says so), the view asks to retry: not a store failure.
    let store = Arc::new(FaultyStore::new(app.store.clone()));
    store.fail(Operation::OrganizationUsage, Times::Once, Failure::Busy);
    let moving = TestApp::with_store(
        app.settings.clone(),
        store.clone(),
        tempfile::tempdir().unwrap(),
    )
    .await;
    let uri = format!("/operator/organizations/{id}");
    let busy = moving
        .send_unchecked(with_key(TestRequest::get().uri(&uri), &key))
        .await;
    assert_eq!(busy.header("retry-after"), Some("1"), "{busy:?}");
    busy.expect(503, Some("organization_busy"));
    get_ok(&moving, &key, &uri).await;
}

/// Every tenant route the owner's token opens answers 403
/// `organization_suspended` while the organization is suspended; `GET
/// /org/get` still answers; nothing is lost; resume restores access.
async fn suspension_refuses_every_tenant_route_until_resumed(app: TestApp) {
    let id = create(&app, "Acme", "owner@acme.example").await;
    let session = app
        .login("owner@acme.example", PASSWORD)
        .await
        .expect(200, None);
    let token = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let document = app
        .send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .set_json(json!({"kept": true})),
        )
        .await
        .expect(201, None);
    let document_id = document["id"].as_str().unwrap().to_owned();
    let other = app.create_and_login("Globex", "owner@globex.example").await;
    let key = writer(&app).await;

    let suspended = suspend(&app, &key, &id, "  unpaid invoice  ")
        .await
        .expect(200, None);
    assert_eq!(suspended["state"], "suspended");
    assert_eq!(suspended["suspension"]["reason"], "unpaid invoice");

    app.login("owner@acme.example", PASSWORD)
        .await
        .expect(403, Some("organization_suspended"));
    // A wrong password still says only that the credentials are wrong.
    app.login("owner@acme.example", "wrong password entirely")
        .await
        .expect(401, Some("invalid_credentials"));
    app.refresh(&refresh)
        .await
        .expect(403, Some("organization_suspended"));
    let bearer =
        |request: TestRequest| request.insert_header(("Authorization", format!("Bearer {token}")));
    let doc_uri = format!("/org/data/{document_id}");
    let admin_uri = "/org/admins/01936f3e-8a4b-7c5d-9e6f-1a2b3c4d5e6f";
    let invitation_uri = "/org/invitations/01936f3e-8a4b-7c5d-9e6f-2a2b3c4d5e6f";
    let tenant_requests = vec![
        TestRequest::get().uri("/org/data"),
        TestRequest::post().uri("/org/data").set_json(json!({"new": 1})),
        TestRequest::get().uri(&doc_uri),
        TestRequest::put().uri(&doc_uri).set_json(json!({"kept": false})),
        TestRequest::delete().uri(&doc_uri),
        TestRequest::get().uri("/org/admins"),
        TestRequest::post()
            .uri("/org/admins")
            .set_json(json!({"email": "new@acme.example", "password": PASSWORD})),
        TestRequest::get().uri(admin_uri),
        TestRequest::patch().uri(admin_uri).set_json(json!({"role": "owner"})),
        TestRequest::delete().uri(admin_uri),
        TestRequest::get().uri("/org/invitations"),
        TestRequest::post()
            .uri("/org/invitations")
            .set_json(json!({"email": "new@acme.example"})),
        TestRequest::delete().uri(invitation_uri),
        TestRequest::post().uri(&format!("{invitation_uri}/resend")),
        TestRequest::get().uri("/org/audit"),
        TestRequest::put()
            .uri("/org/update")
            .set_json(json!({"organization_name": "Acme Renamed", "email": "owner@acme.example", "password": PASSWORD})),
        TestRequest::delete().uri("/org/delete?organization_name=Acme"),
        TestRequest::post().uri("/admin/email-verification"),
    ];
    for request in tenant_requests {
        let response = app.send(bearer(request)).await;
        response.expect(403, Some("organization_suspended"));
    }
    let public = app.get_org("Acme").await.expect(200, None);
    assert_eq!(public["state"], "suspended");
    assert_eq!(
        public.get("suspension"),
        None,
        "the reason is for operators"
    );
    // Another organization is untouched.
    app.send(
        TestRequest::get()
            .uri("/org/data")
            .insert_header(("Authorization", format!("Bearer {other}"))),
    )
    .await
    .expect(200, None);

    let resumed = resume(&app, &key, &id).await.expect(200, None);
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["suspension"], Value::Null);
    // The access token works again; the refresh token's session ended.
    let kept = app
        .send(bearer(TestRequest::get().uri(&doc_uri)))
        .await
        .expect(200, None);
    assert_eq!(kept["id"], document_id.as_str());
    app.refresh(&refresh).await.expect(401, None);
    app.token("owner@acme.example", PASSWORD).await;
    assert_eq!(
        app.get_org("Acme").await.expect(200, None)["state"],
        "active"
    );
}

async fn suspend_and_resume_are_idempotent_and_audited_with_the_key_name(app: TestApp) {
    let id = create(&app, "Acme", "owner@acme.example").await;
    let key = writer(&app).await;
    let first = suspend(&app, &key, &id, "first reason")
        .await
        .expect(200, None);
    let again = suspend(&app, &key, &id, "second reason")
        .await
        .expect(200, None);
    assert_eq!(again["suspension"], first["suspension"]);
    assert_eq!(again["suspension"]["reason"], "first reason");
    resume(&app, &key, &id).await.expect(200, None);
    let again = resume(&app, &key, &id).await.expect(200, None);
    assert_eq!(again["state"], "active");

    for (action, expected) in [("organization.suspended", 1), ("organization.resumed", 1)] {
        let (page, _) = get_ok(
            &app,
            &key,
            &format!("/operator/audit?organization_id={id}&action={action}"),
        )
        .await;
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), expected, "{action}: {page}");
        assert_eq!(events[0]["operator"], "ops-writer");
        assert_eq!(events[0]["actor"], Value::Null);
        assert_eq!(events[0]["organization_id"], id.as_str());
    }

    let unknown = "01936f3e-8a4b-7c5d-9e6f-0a1b2c3d4e5f";
    suspend(&app, &key, unknown, "x")
        .await
        .expect(404, Some("organization_not_found"));
    suspend(&app, &key, &id, "   ")
        .await
        .expect(422, Some("validation_failed"));
}

async fn operators_delete_an_organization_without_an_owner(app: TestApp) {
    let id = create(&app, "Acme", "owner@acme.example").await;
    let key = writer(&app).await;
    suspend(&app, &key, &id, "closing").await.expect(200, None);
    let uri = format!("/operator/organizations/{id}");
    let deleted = app
        .send(with_key(TestRequest::delete().uri(&uri), &key))
        .await
        .expect(200, None);
    assert_eq!(deleted["organization_name"], "Acme");
    app.get_org("Acme").await.expect(404, None);
    app.send(with_key(TestRequest::get().uri(&uri), &key))
        .await
        .expect(404, Some("organization_not_found"));
    app.send(with_key(TestRequest::delete().uri(&uri), &key))
        .await
        .expect(404, Some("organization_not_found"));
    // The name and the email are free again.
    create(&app, "Acme", "owner@acme.example").await;
    let (page, _) = get_ok(
        &app,
        &key,
        &format!("/operator/audit?organization_id={id}&action=organization.deleted"),
    )
    .await;
    assert_eq!(page["events"][0]["operator"], "ops-writer");
}

async fn the_audit_log_spans_organizations_with_filters_and_pages(app: TestApp) {
    let acme = create(&app, "Acme", "owner@acme.example").await;
    let globex = create(&app, "Globex", "owner@globex.example").await;
    let key = key(&app, "reader", OperatorScope::Read).await;

    let mut seen = Vec::new();
    let mut next = Some("/operator/audit?action=organization.created&limit=1".to_owned());
    while let Some(uri) = next.take() {
        let (page, link) = get_ok(&app, &key, &uri).await;
        for event in page["events"].as_array().unwrap() {
            seen.push(event["organization_id"].as_str().unwrap().to_owned());
        }
        if let Some(link) = link {
            assert!(link.contains("action=organization.created"), "{link}");
            next = Some(link[1..link.find('>').unwrap()].to_owned());
        }
        assert!(seen.len() <= 4);
    }
    assert_eq!(seen, [globex.clone(), acme.clone()], "newest first");

    let (page, _) = get_ok(
        &app,
        &key,
        &format!("/operator/audit?organization_id={acme}"),
    )
    .await;
    let events = page["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events
        .iter()
        .all(|event| event["organization_id"] == acme.as_str()));
}

async fn listing_and_audit_queries_name_every_invalid_parameter(app: TestApp) {
    let key = key(&app, "reader", OperatorScope::Read).await;
    let fields = |body: Value| -> Vec<String> {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap().to_owned())
            .collect()
    };
    let body = app
        .send(with_key(
            TestRequest::get().uri(
                "/operator/organizations?q=a%2Fb&match=fuzzy&state=deleted\
                 &created_after=yesterday&created_before=2025-13-01T00:00:00Z&limit=0&after=NOPE",
            ),
            &key,
        ))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(
        fields(body),
        [
            "q",
            "match",
            "state",
            "created_after",
            "created_before",
            "limit",
            "after"
        ]
    );
    app.send(with_key(
        TestRequest::get().uri("/operator/organizations?sort=name"),
        &key,
    ))
    .await
    .expect(422, Some("validation_failed"));
    let body = app
        .send(with_key(
            TestRequest::get().uri(
                "/operator/audit?organization_id=acme&action=nothing.happened&limit=101&before=x",
            ),
            &key,
        ))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(
        fields(body),
        ["organization_id", "action", "limit", "before"]
    );
}

async fn a_read_key_lists_but_cannot_suspend_resume_or_delete(app: TestApp) {
    let id = create(&app, "Acme", "owner@acme.example").await;
    let reader = key(&app, "reader", OperatorScope::Read).await;
    get_ok(&app, &reader, "/operator/organizations").await;
    get_ok(&app, &reader, &format!("/operator/organizations/{id}")).await;
    get_ok(&app, &reader, "/operator/audit").await;
    suspend(&app, &reader, &id, "no")
        .await
        .expect(403, Some("operator_scope_insufficient"));
    resume(&app, &reader, &id)
        .await
        .expect(403, Some("operator_scope_insufficient"));
    app.send(with_key(
        TestRequest::delete().uri(&format!("/operator/organizations/{id}")),
        &reader,
    ))
    .await
    .expect(403, Some("operator_scope_insufficient"));
    // Without a key, or with an admin's access token: 401.
    app.send(TestRequest::get().uri("/operator/organizations"))
        .await
        .expect(401, None);
    let token = app.token("owner@acme.example", PASSWORD).await;
    app.send(
        TestRequest::get()
            .uri("/operator/organizations")
            .insert_header(("Authorization", format!("Bearer {token}"))),
    )
    .await
    .expect(401, None);
    assert_eq!(
        app.get_org("Acme").await.expect(200, None)["state"],
        "active"
    );
}
