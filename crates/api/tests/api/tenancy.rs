//! MongoDB's shared layout (`mongodb.tenancy = "shared"`, issue #16) through
//! the API, and `orgsvc tenants move`, run as the binary.

use std::cell::Cell;
use std::process::{Command, Output};
use std::time::Duration;

use actix_web::test::TestRequest;
use orgsvc_domain::{MoveTenantError, TenantLayout};
use serde_json::{json, Value};

use crate::helpers::{encode, Backend, TestApp, JWT_SECRET};

const SHARED: [(&str, &str); 1] = [("ORGSVC__MONGODB__TENANCY", "shared")];

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

async fn create_document(app: &TestApp, token: &str, data: Value) -> String {
    let body = app
        .send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(bearer(token))
                .set_json(data),
        )
        .await
        .expect(201, None);
    body["id"].as_str().unwrap().to_owned()
}

/// Every document of the caller's organization, in listing order.
async fn list_all(app: &TestApp, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = after.map_or_else(
            || "limit=100".to_owned(),
            |a| format!("limit=100&after={}", encode(&a)),
        );
        let response = app
            .send(
                TestRequest::get()
                    .uri(&format!("/org/data?{query}"))
                    .insert_header(bearer(token)),
            )
            .await;
        let body = response.expect(200, None);
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[actix_web::test]
async fn mongodb_shared_tenancy_serves_documents_renames_and_deletes() {
    let app = TestApp::spawn_with(Backend::Mongodb, &SHARED).await;
    let token = app
        .create_and_login("Acme Corp", "owner@acme.example")
        .await;
    let other = app.create_and_login("Globex", "owner@globex.example").await;

    let org = app.get_org("Acme Corp").await.expect(200, None);
    assert_eq!(org["collection_name"], "org_acme_corp");
    assert_eq!(org["storage"]["layout"], "shared", "{org}");
    assert_eq!(org["storage"]["collection"], "tenant_documents", "{org}");
    assert_eq!(org["storage"]["database"], org["database"], "{org}");

    let id = create_document(&app, &token, json!({"n": 1})).await;
    create_document(&app, &token, json!({"n": 2})).await;
    let theirs = create_document(&app, &other, json!({"theirs": true})).await;
    let got = app
        .send(
            TestRequest::get()
                .uri(&format!("/org/data/{id}"))
                .insert_header(bearer(&token)),
        )
        .await
        .expect(200, None);
    assert_eq!(got["data"], json!({"n": 1}));
    app.send(
        TestRequest::get()
            .uri(&format!("/org/data/{theirs}"))
            .insert_header(bearer(&token)),
    )
    .await
    .expect(404, None);
    app.send(
        TestRequest::put()
            .uri(&format!("/org/data/{id}"))
            .insert_header(bearer(&token))
            .set_json(json!({"n": 10})),
    )
    .await
    .expect(200, None);
    assert_eq!(list_all(&app, &token).await.len(), 2);

    let renamed = app
        .update_org(&token, json!({"organization_name": "Acme Labs"}))
        .await
        .expect(200, None);
    assert_eq!(renamed["collection_name"], "org_acme_labs");
    let org = app.get_org("Acme Labs").await.expect(200, None);
    assert_eq!(org["collection_name"], "org_acme_labs");
    assert_eq!(org["storage"]["layout"], "shared");
    assert_eq!(org["storage"]["collection"], "tenant_documents");
    let listed = list_all(&app, &token).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["data"], json!({"n": 10}));

    app.send(
        TestRequest::delete()
            .uri(&format!("/org/data/{id}"))
            .insert_header(bearer(&token)),
    )
    .await
    .expect(204, None);
    assert_eq!(list_all(&app, &token).await.len(), 1);

    let deleted = app.delete_org(&token, "Acme Labs").await.expect(200, None);
    assert_eq!(deleted["deleted"], true);
    app.get_org("Acme Labs").await.expect(404, None);
    assert_eq!(list_all(&app, &other).await.len(), 1);
    let again = app.create_and_login("Acme Labs", "new@acme.example").await;
    assert!(list_all(&app, &again).await.is_empty());
}

#[actix_web::test]
async fn mongodb_writes_racing_a_move_are_applied_or_answered_503_never_lost() {
    let app = TestApp::spawn(Backend::Mongodb).await;
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    for n in 0..50 {
        create_document(&app, &token, json!({"seed": n})).await;
    }
    let org_id = app.get_org("Acme").await.expect(200, None)["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let moving = Cell::new(true);
    let writer = async {
        let (mut created, mut refused, mut extra) = (Vec::new(), 0, 0);
        for n in 0.. {
            if !moving.get() {
                extra += 1;
                if extra > 5 {
                    break;
                }
            }
            let response = app
                .send_unchecked(
                    TestRequest::post()
                        .uri("/org/data")
                        .insert_header(bearer(&token))
                        .set_json(json!({"n": n})),
                )
                .await;
            match response.status.as_u16() {
                201 => created.push(response.json()["id"].as_str().unwrap().to_owned()),
                503 => {
                    assert_eq!(response.header("retry-after"), Some("1"));
                    refused += 1;
                }
                status => panic!(
                    "a write racing a move answered {status}: {}",
                    String::from_utf8_lossy(&response.body)
                ),
            }
            tokio::task::yield_now().await;
        }
        (created, refused)
    };
    let mover = async {
        for to in [
            TenantLayout::Shared,
            TenantLayout::Collection,
            TenantLayout::Shared,
        ] {
            tokio::time::sleep(Duration::from_millis(15)).await;
            loop {
                match app.store.move_tenant(org_id, to).await {
                    Ok(moved) => {
                        assert!(moved.moved);
                        break;
                    }
                    Err(MoveTenantError::Busy) => tokio::task::yield_now().await,
                    Err(other) => panic!("moving to {to:?}: {other:?}"),
                }
            }
        }
        moving.set(false);
    };
    let ((created, refused), ()) = tokio::join!(writer, mover);

    let listed: Vec<String> = list_all(&app, &token)
        .await
        .iter()
        .filter(|item| item["data"]["n"].is_i64())
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed, created,
        "every 201 is listed once, no refused write is ({refused} refused)"
    );
    let org = app.get_org("Acme").await.expect(200, None);
    assert_eq!(org["storage"]["layout"], "shared");
    assert_eq!(org["collection_name"], "org_acme");
}

/// The environment of `orgsvc` on the MongoDB database `database`.
fn mongodb_env(database: &str) -> Vec<(String, String)> {
    let uri = std::env::var("ORGSVC_TEST_MONGODB_URI")
        .unwrap_or_else(|_| panic!("ORGSVC_TEST_MONGODB_URI is not set: run scripts/test"));
    [
        ("ORGSVC__AUTH__JWT_SECRET", JWT_SECRET),
        ("ORGSVC__STORE__KIND", "mongodb"),
        ("ORGSVC__MONGODB__URI", uri.as_str()),
        ("ORGSVC__MONGODB__MASTER_DB", database),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn orgsvc(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orgsvc"))
        .env_remove("RUST_LOG")
        .env_remove("ORGSVC_CONFIG")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("ORGSVC__LOG__LEVEL", "warn")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[actix_web::test]
async fn mongodb_tenants_move_moves_one_organization_or_all_of_them() {
    let database = format!("orgsvc_cli_test_{}", uuid::Uuid::new_v4().simple());
    let app = TestApp::spawn_with(
        Backend::Mongodb,
        &[("ORGSVC__MONGODB__MASTER_DB", database.as_str())],
    )
    .await;
    let env = mongodb_env(&database);
    let acme = app.create_and_login("Acme", "owner@acme.example").await;
    let globex = app.create_and_login("Globex", "owner@globex.example").await;
    for n in 0..30 {
        create_document(&app, &acme, json!({"n": n})).await;
    }
    create_document(&app, &globex, json!({"g": 1})).await;
    let before = list_all(&app, &acme).await;

    let moved = orgsvc(&env, &["tenants", "move", "Acme", "--to", "shared"]);
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let said = text(&moved.stderr);
    assert!(said.contains("moved organization Acme"), "{said}");
    assert!(
        said.contains("30 documents now in tenant_documents"),
        "{said}"
    );
    let org = app.get_org("Acme").await.expect(200, None);
    assert_eq!(org["storage"]["layout"], "shared");
    assert_eq!(list_all(&app, &acme).await, before);

    let again = orgsvc(&env, &["tenants", "move", "acme", "--to", "shared"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("already in the shared layout"));

    let all = orgsvc(&env, &["tenants", "move", "--all", "--to", "shared"]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    let said = text(&all.stderr);
    assert!(
        said.contains("moved 1/2 organizations (1 documents); 1 already shared, 0 skipped"),
        "{said}"
    );
    let globex_org = app.get_org("Globex").await.expect(200, None);
    assert_eq!(globex_org["storage"]["layout"], "shared");

    let back = orgsvc(&env, &["tenants", "move", "--all", "--to", "collection"]);
    assert!(back.status.success(), "{}", text(&back.stderr));
    assert!(text(&back.stderr).contains("moved 2/2 organizations (31 documents)"));
    let org = app.get_org("Acme").await.expect(200, None);
    assert_eq!(org["storage"]["layout"], "collection");
    assert_eq!(org["storage"]["collection"], "org_acme");
    assert_eq!(list_all(&app, &acme).await, before);

    let unknown = orgsvc(&env, &["tenants", "move", "Initech", "--to", "shared"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
    assert!(text(&unknown.stderr).contains("no organization is named Initech"));
    for usage in [
        &["tenants", "move", "--to", "shared"][..],
        &["tenants", "move", "Acme", "--all", "--to", "shared"],
        &["tenants", "move", "Acme", "--to", "elsewhere"],
        &["tenants", "move", "Acme"],
    ] {
        let refused = orgsvc(&env, usage);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{usage:?}: {}",
            text(&refused.stderr)
        );
    }
}

#[actix_web::test]
async fn embedded_tenants_move_is_not_applicable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orgsvc.db");
    let env: Vec<(String, String)> = [
        ("ORGSVC__AUTH__JWT_SECRET", JWT_SECRET),
        ("ORGSVC__STORE__KIND", "embedded"),
        ("ORGSVC__STORE__PATH", path.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let migrated = orgsvc(&env, &["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let settings =
        orgsvc_api::config::Settings::load_from(None, Some(env.iter().cloned().collect())).unwrap();
    // Held open, as by a running service: the answer does not need the
    // store, nor an organization of that name.
    let store = orgsvc_api::store_selection::SelectedStore::open(&settings)
        .await
        .unwrap()
        .into_shared();
    store
        .create_organization(orgsvc_domain::testing::new_org(
            "Acme",
            "owner@acme.example",
        ))
        .await
        .unwrap();

    for args in [
        &["tenants", "move", "Acme", "--to", "shared"][..],
        &["tenants", "move", "Nobody", "--to", "collection"],
        &["tenants", "move", "--all", "--to", "shared"],
    ] {
        let refused = orgsvc(&env, args);
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
        assert!(
            text(&refused.stderr).contains(
                "not applicable: the embedded store keeps every organization's documents in one table"
            ),
            "{}",
            text(&refused.stderr)
        );
    }
}
