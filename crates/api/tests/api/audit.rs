//! The audit log: what is recorded, `GET /org/audit` and its paging, and
//! the retention of a deleted organization's entries.

use std::collections::HashSet;
use std::net::SocketAddr;

use actix_web::test::TestRequest;
use chrono::{DateTime, TimeDelta, Utc};
use orgsvc_domain::{AuditEvent, AuditQuery, OrganizationId, PageSize};
use serde_json::{json, Value};

use crate::admins::{bearer, OTHER_PASSWORD};
use crate::helpers::{TestApp, TestResponse, PASSWORD};

store_suite!(
    every_change_is_recorded_with_actor_target_time_request_id_and_client_ip,
    refused_changes_record_nothing,
    the_deletion_is_recorded_and_the_entries_outlive_the_organization,
    entries_of_a_deleted_organization_are_purged_once_the_retention_has_passed,
    paging_with_before_has_no_gaps_or_repeats,
    entries_recorded_while_paging_never_appear_twice,
    other_organizations_entries_never_appear,
    listing_requires_an_owners_token,
);

store_independent_suite!(listing_returns_422_for_an_invalid_query,);

/// The client address of the tests' requests.
const CLIENT: &str = "203.0.113.7:41000";
/// Its IP, as recorded.
const CLIENT_IP: &str = "203.0.113.7";

/// The actions this side of the audit log records (login events, recorded
/// by the login endpoints, are left out of the comparisons below).
const CHANGES: &[&str] = &[
    "organization.created",
    "organization.renamed",
    "organization.deleted",
    "admin.added",
    "admin.removed",
    "admin.role_changed",
    "admin.credentials_changed",
];

fn from_client(request: TestRequest) -> TestRequest {
    request.peer_addr(CLIENT.parse::<SocketAddr>().unwrap())
}

/// The response's `x-request-id`.
fn request_id(response: &TestResponse) -> String {
    response.header("x-request-id").unwrap().to_owned()
}

/// The entries about changes (see [`CHANGES`]), in the listed order.
fn changes(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|event| CHANGES.contains(&event["action"].as_str().unwrap()))
        .cloned()
        .collect()
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect()
}

impl TestApp {
    /// `GET /org/audit?<query>` with `token`.
    pub async fn audit(&self, token: &str, query: &str) -> TestResponse {
        self.send(bearer(
            TestRequest::get().uri(&format!("/org/audit?{query}")),
            token,
        ))
        .await
    }

    /// Every entry of the caller's organization, following `next_cursor`
    /// with pages of `limit`.
    pub async fn whole_audit_log(&self, token: &str, limit: usize) -> Vec<Value> {
        let mut events = Vec::new();
        let mut query = format!("limit={limit}");
        loop {
            let response = self.audit(token, &query).await;
            let page = response.expect(200, None);
            let batch = page["events"].as_array().unwrap();
            assert!(batch.len() <= limit, "{page}");
            events.extend(batch.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    assert_eq!(
                        response.header("link"),
                        Some(
                            format!("</org/audit?limit={limit}&before={cursor}>; rel=\"next\"")
                                .as_str()
                        )
                    );
                    assert_eq!(cursor, batch.last().unwrap()["id"].as_str().unwrap());
                    query = format!("limit={limit}&before={cursor}");
                }
                None => {
                    assert!(response.header("link").is_none());
                    return events;
                }
            }
        }
    }
}

/// An organization's entries straight from the store, newest first.
async fn stored_entries(app: &TestApp, organization: OrganizationId) -> Vec<AuditEvent> {
    app.store
        .audit_events(
            organization,
            AuditQuery {
                limit: PageSize::parse(100).unwrap(),
                before: None,
            },
        )
        .await
        .unwrap()
        .events
}

fn organization_id(created: &Value) -> OrganizationId {
    OrganizationId::from_uuid(created["id"].as_str().unwrap().parse().unwrap())
}

/// Creates an organization from [`CLIENT`]; answers its creation's body and
/// request id, and its owner's token.
async fn create_from_client(app: &TestApp, name: &str, email: &str) -> (Value, String, String) {
    let response = app
        .send(
            from_client(TestRequest::post().uri("/org/create"))
                .set_json(json!({"organization_name": name, "email": email, "password": PASSWORD})),
        )
        .await;
    let created = response.expect(201, None);
    let token = app.token(email, PASSWORD).await;
    (created, request_id(&response), token)
}

async fn every_change_is_recorded_with_actor_target_time_request_id_and_client_ip(app: TestApp) {
    let started = Utc::now() - TimeDelta::seconds(1);
    let (created, created_rid, token) =
        create_from_client(&app, "Acme", "admin@acme.example").await;
    let founder = created["admin_id"].as_str().unwrap().to_owned();

    let response = app
        .send(
            from_client(bearer(TestRequest::post().uri("/org/admins"), &token)).set_json(
                json!({"email": "ops@acme.example", "password": OTHER_PASSWORD, "role": "admin"}),
            ),
        )
        .await;
    let ops = response.expect(201, None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let added_rid = request_id(&response);

    let response = app
        .send(
            from_client(bearer(
                TestRequest::patch().uri(&format!("/org/admins/{ops}")),
                &token,
            ))
            .set_json(json!({"role": "owner"})),
        )
        .await;
    response.expect(200, None);
    let role_rid = request_id(&response);

    let response = app
        .send(
            from_client(bearer(TestRequest::put().uri("/org/update"), &token))
                .set_json(json!({"organization_name": "Acme Labs"})),
        )
        .await;
    response.expect(200, None);
    let renamed_rid = request_id(&response);

    let response = app
        .send(
            from_client(bearer(TestRequest::put().uri("/org/update"), &token)).set_json(
                json!({"organization_name": "Acme Labs", "password": "a brand new passphrase"}),
            ),
        )
        .await;
    response.expect(200, None);
    let credentials_rid = request_id(&response);
    let token = app
        .token("admin@acme.example", "a brand new passphrase")
        .await;

    let response = app
        .send(from_client(bearer(
            TestRequest::delete().uri(&format!("/org/admins/{ops}")),
            &token,
        )))
        .await;
    response.expect(204, None);
    let removed_rid = request_id(&response);

    let events = app.whole_audit_log(&token, 100).await;
    let recorded = changes(&events);
    // A credential change names which credential changed, never its value.
    let credentials_target = format!("{founder} (password)");
    let expected = [
        ("admin.removed", ops.as_str(), removed_rid),
        (
            "admin.credentials_changed",
            credentials_target.as_str(),
            credentials_rid,
        ),
        ("organization.renamed", "Acme -> Acme Labs", renamed_rid),
        ("admin.role_changed", ops.as_str(), role_rid),
        ("admin.added", ops.as_str(), added_rid),
        ("organization.created", "Acme", created_rid),
    ];
    assert_eq!(
        actions(&recorded),
        expected
            .iter()
            .map(|(action, ..)| *action)
            .collect::<Vec<_>>(),
        "{events:?}"
    );
    let mut previous_at: Option<DateTime<Utc>> = None;
    for (event, (action, target, rid)) in recorded.iter().zip(&expected) {
        assert_eq!(event["target"], *target, "{action}: {event}");
        assert_eq!(event["actor"], founder.as_str(), "{action}: {event}");
        assert_eq!(event["operator"], Value::Null, "{action}: {event}");
        assert_eq!(event["request_id"], rid.as_str(), "{action}: {event}");
        assert_eq!(event["client_ip"], CLIENT_IP, "{action}: {event}");
        let at: DateTime<Utc> = event["at"].as_str().unwrap().parse().unwrap();
        assert!(at >= started && at <= Utc::now(), "{action}: {event}");
        if let Some(later) = previous_at {
            assert!(at <= later, "not newest first: {event}");
        }
        previous_at = Some(at);
        let mut keys: Vec<_> = event.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "action",
                "actor",
                "at",
                "client_ip",
                "id",
                "operator",
                "request_id",
                "target"
            ]
        );
    }
    // Every entry (login events included) is listed once, newest first.
    let ids: Vec<_> = events
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
}

async fn refused_changes_record_nothing(app: TestApp) {
    let (_, _, owner) = create_from_client(&app, "Acme", "admin@acme.example").await;
    app.create_org("Globex", "admin@globex.example")
        .await
        .expect(201, None);
    let founder = app.list_admins(&owner).await.expect(200, None)["admins"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ops, admin) = app
        .add_admin_and_login(&owner, "ops@acme.example", "admin")
        .await;
    let before = changes(&app.whole_audit_log(&owner, 100).await);

    app.add_admin(&owner, "admin@globex.example", None)
        .await
        .expect(409, Some("email_taken"));
    app.add_admin(&owner, "nope", None)
        .await
        .expect(422, Some("validation_failed"));
    app.remove_admin(&owner, &founder)
        .await
        .expect(409, Some("last_owner"));
    app.change_role(&owner, &founder, "admin")
        .await
        .expect(409, Some("last_owner"));
    // Setting the role an admin already has is no change either.
    app.change_role(&owner, &ops, "admin")
        .await
        .expect(200, None);
    app.update_org(&owner, json!({"organization_name": "Globex"}))
        .await
        .expect(409, Some("organization_name_taken"));
    // Neither is an update that keeps the name and the credentials.
    app.update_org(&owner, json!({"organization_name": "Acme"}))
        .await
        .expect(200, None);
    app.update_org(&admin, json!({"organization_name": "Acme Renamed"}))
        .await
        .expect(403, Some("owner_required"));
    app.delete_org(&admin, "Acme")
        .await
        .expect(403, Some("owner_required"));
    app.delete_org(&owner, "Globex")
        .await
        .expect(403, Some("forbidden"));

    let after = changes(&app.whole_audit_log(&owner, 100).await);
    assert_eq!(after, before);
}

async fn the_deletion_is_recorded_and_the_entries_outlive_the_organization(app: TestApp) {
    let (created, _, owner) = create_from_client(&app, "Acme", "admin@acme.example").await;
    let organization = organization_id(&created);
    let (_, second_owner) = app
        .add_admin_and_login(&owner, "boss@acme.example", "owner")
        .await;
    let second_id = app.list_admins(&owner).await.expect(200, None)["admins"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .send(from_client(bearer(
            TestRequest::delete().uri("/org/delete?organization_name=Acme"),
            &second_owner,
        )))
        .await;
    response.expect(200, None);

    let entries = stored_entries(&app, organization).await;
    let deleted = &entries[0];
    assert_eq!(deleted.action.as_str(), "organization.deleted");
    assert_eq!(deleted.organization_id, organization);
    assert_eq!(
        deleted.actor.map(|actor| actor.to_string()),
        Some(second_id)
    );
    assert_eq!(deleted.target, "Acme");
    assert_eq!(deleted.request_id, Some(request_id(&response)));
    assert_eq!(deleted.client_ip.as_deref(), Some(CLIENT_IP));
    let kept: Vec<_> = entries
        .iter()
        .map(|entry| entry.action.as_str())
        .filter(|action| CHANGES.contains(action))
        .collect();
    assert_eq!(
        kept,
        [
            "organization.deleted",
            "admin.added",
            "organization.created"
        ]
    );
    // A new organization with the same name starts a log of its own.
    let (_, _, token) = create_from_client(&app, "Acme", "admin@acme.example").await;
    let fresh = changes(&app.whole_audit_log(&token, 100).await);
    assert_eq!(actions(&fresh), ["organization.created"]);
}

async fn entries_of_a_deleted_organization_are_purged_once_the_retention_has_passed(app: TestApp) {
    let (created, _, owner) = create_from_client(&app, "Acme", "admin@acme.example").await;
    let acme = organization_id(&created);
    app.add_admin(&owner, "ops@acme.example", None)
        .await
        .expect(201, None);
    let (globex_created, _, globex) =
        create_from_client(&app, "Globex", "admin@globex.example").await;
    let globex_id = organization_id(&globex_created);
    app.delete_org(&owner, "Acme").await.expect(200, None);

    let entries = stored_entries(&app, acme).await;
    assert_eq!(entries[0].action.as_str(), "organization.deleted");
    let deleted_at = entries[0].at;
    let globex_entries = stored_entries(&app, globex_id).await;
    assert!(!globex_entries.is_empty());

    let maintenance = app.settings.maintenance();
    let retention = TimeDelta::from_std(maintenance.audit_retention).unwrap();
    assert_eq!(
        retention,
        TimeDelta::days(i64::from(app.settings.audit.retention_days))
    );
    // Until the retention has passed, everything is kept.
    for now in [
        Utc::now(),
        deleted_at + retention - TimeDelta::minutes(1),
        deleted_at + retention,
    ] {
        maintenance.run_once(app.store.as_ref(), now).await;
        assert_eq!(stored_entries(&app, acme).await, entries, "at {now}");
    }
    // Once it has, the deleted organization's entries go; others stay.
    // (A minute past it rather than a millisecond: the MongoDB stand-in
    // compares times in `find` filters at about a second's precision.)
    maintenance
        .run_once(
            app.store.as_ref(),
            deleted_at + retention + TimeDelta::minutes(1),
        )
        .await;
    assert!(stored_entries(&app, acme).await.is_empty());
    assert_eq!(stored_entries(&app, globex_id).await, globex_entries);
    // Also far in the future, an existing organization's entries stay.
    maintenance
        .run_once(app.store.as_ref(), Utc::now() + retention * 10)
        .await;
    assert_eq!(stored_entries(&app, globex_id).await, globex_entries);
    assert!(!changes(&app.whole_audit_log(&globex, 100).await).is_empty());
}

async fn paging_with_before_has_no_gaps_or_repeats(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for n in 0..6 {
        app.add_admin(&token, &format!("ops{n}@acme.example"), None)
            .await
            .expect(201, None);
    }
    let all = app.audit(&token, "limit=100").await.expect(200, None);
    assert!(all["next_cursor"].is_null(), "{all}");
    let all = all["events"].as_array().unwrap().clone();
    assert!(changes(&all).len() >= 7, "{all:?}");
    // The default page is 20 entries.
    let default = app.audit(&token, "").await.expect(200, None);
    assert_eq!(
        default["events"].as_array().unwrap(),
        &all[..all.len().min(20)]
    );
    for limit in [1, 2, 3, all.len()] {
        let paged = app.whole_audit_log(&token, limit).await;
        assert_eq!(paged, all, "limit {limit}");
    }
    let ids: HashSet<_> = all.iter().map(|event| event["id"].clone()).collect();
    assert_eq!(ids.len(), all.len());
}

async fn entries_recorded_while_paging_never_appear_twice(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for n in 0..4 {
        app.add_admin(&token, &format!("ops{n}@acme.example"), None)
            .await
            .expect(201, None);
    }
    let first = app.audit(&token, "limit=2").await.expect(200, None);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    // A change between two pages lands before the first page.
    app.add_admin(&token, "late@acme.example", None)
        .await
        .expect(201, None);
    let mut seen: Vec<Value> = first["events"].as_array().unwrap().clone();
    let mut query = format!("limit=2&before={cursor}");
    loop {
        let page = app.audit(&token, &query).await.expect(200, None);
        seen.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => query = format!("limit=2&before={next}"),
            None => break,
        }
    }
    let now = app.whole_audit_log(&token, 100).await;
    assert_eq!(
        now[1..],
        seen[..],
        "the late entry is the only new one, on top"
    );
    assert_eq!(now[0]["action"], "admin.added");
}

async fn other_organizations_entries_never_appear(app: TestApp) {
    let acme = app.create_and_login("Acme", "admin@acme.example").await;
    let globex = app.create_and_login("Globex", "admin@globex.example").await;
    app.add_admin(&acme, "ops@acme.example", None)
        .await
        .expect(201, None);
    app.add_admin(&globex, "ops@globex.example", None)
        .await
        .expect(201, None);
    app.update_org(&globex, json!({"organization_name": "Globex Two"}))
        .await
        .expect(200, None);
    let acme_events = app.whole_audit_log(&acme, 100).await;
    let globex_events = app.whole_audit_log(&globex, 100).await;
    assert_eq!(
        actions(&changes(&acme_events)),
        ["admin.added", "organization.created"]
    );
    assert_eq!(
        actions(&changes(&globex_events)),
        [
            "organization.renamed",
            "admin.added",
            "organization.created"
        ]
    );
    let acme_ids: HashSet<_> = acme_events.iter().map(|e| e["id"].clone()).collect();
    assert!(globex_events
        .iter()
        .all(|event| !acme_ids.contains(&event["id"])));
    // A cursor from another organization's log only says where to start.
    let foreign = globex_events.last().unwrap()["id"].as_str().unwrap();
    let page = app
        .audit(&acme, &format!("before={foreign}"))
        .await
        .expect(200, None);
    for event in page["events"].as_array().unwrap() {
        assert!(acme_ids.contains(&event["id"]), "{event}");
    }
}

async fn listing_returns_422_for_an_invalid_query(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = uuid::Uuid::now_v7().to_string();
    let upper = id.to_uppercase();
    let simple = id.replace('-', "");
    for (query, fields) in [
        ("limit=0", &["limit"][..]),
        ("limit=101", &["limit"]),
        ("limit=ten", &["limit"]),
        ("before=nope", &["before"]),
        (&format!("before={upper}"), &["before"]),
        (&format!("before={simple}"), &["before"]),
        ("limit=-1&before=1738324800123_0", &["limit", "before"]),
        ("after=x", &["query"]),
        ("limit=1&limit=2", &["query"]),
    ] {
        let problem = app
            .audit(&token, query)
            .await
            .expect(422, Some("validation_failed"));
        let named: Vec<_> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{query}: {problem}");
    }
    let problem = app.audit(&token, "before=nope").await.expect(422, None);
    assert_eq!(
        problem["errors"][0]["message"],
        "is not a cursor returned by this API"
    );
    app.audit(&token, &format!("limit=1&before={id}"))
        .await
        .expect(200, None);
}

async fn listing_requires_an_owners_token(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let response = app.send(TestRequest::get().uri("/org/audit")).await;
    response.expect(401, Some("missing_token"));
    // Without a token, the query is not even looked at.
    app.send(TestRequest::get().uri("/org/audit?limit=0"))
        .await
        .expect(401, Some("missing_token"));
    let (_, admin) = app
        .add_admin_and_login(&owner, "ops@acme.example", "admin")
        .await;
    app.audit(&admin, "limit=0")
        .await
        .expect(403, Some("owner_required"));
    app.audit(&owner, "").await.expect(200, None);
}
