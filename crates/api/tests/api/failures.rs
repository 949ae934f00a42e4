//! When the store fails: a generic 500 that leaks nothing, and readiness 503.

use std::sync::Arc;

use actix_web::test::TestRequest;
use orgsvc_api::config::Settings;
use orgsvc_domain::testing::{Failure, FaultyStore, Times};
use orgsvc_domain::StoreError;
use serde_json::json;

use crate::helpers::TestApp;

const SECRET_DETAIL: &str = "connection to mongodb://user:hunter2@db.internal refused";

/// A store whose every call fails with a [`StoreError`] carrying
/// [`SECRET_DETAIL`] (which must never reach a client): the shared
/// [`FaultyStore`] around an empty in-memory store, failing everything. It
/// records the deadlines `begin_drain` is given; tests make reconciliation
/// hang (a hook before it that never ends) or report repairs
/// (`heal(Operation::Reconcile)`, then `reconcile_reports`).
pub fn broken_store() -> Arc<FaultyStore> {
    let store = FaultyStore::in_memory();
    store.fail_every(Times::Always, Failure::store(broken));
    Arc::new(store)
}

fn broken() -> StoreError {
    StoreError::new("store call failed", std::io::Error::other(SECRET_DETAIL))
}

async fn broken_app() -> TestApp {
    let env = [
        ("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "256"),
        ("ORGSVC__AUTH__ARGON2__ITERATIONS", "1"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let settings = Settings::load_from(None, Some(env)).unwrap();
    TestApp::with_store(settings, broken_store(), tempfile::tempdir().unwrap()).await
}

#[actix_web::test]
async fn store_failures_answer_a_generic_500_that_leaks_nothing() {
    let app = broken_app().await;
    for request in [
        TestRequest::get().uri("/org/get?organization_name=Acme"),
        TestRequest::post().uri("/org/create").set_json(
            json!({"organization_name": "Acme", "email": "a@acme.example", "password": "long enough"}),
        ),
        TestRequest::post()
            .uri("/admin/login")
            .set_json(json!({"email": "a@acme.example", "password": "long enough"})),
    ] {
        let response = app.send_unchecked(request).await;
        let body = response.expect(500, Some("internal_error"));
        let text = body.to_string();
        assert!(!text.contains("hunter2") && !text.contains("mongodb"), "{text}");
        assert!(!text.contains("store call failed"), "{text}");
    }
}

#[actix_web::test]
async fn readiness_is_503_when_the_store_does_not_answer() {
    let app = broken_app().await;
    app.send_unchecked(TestRequest::get().uri("/health/ready"))
        .await
        .expect(503, Some("store_unavailable"));
    app.send(TestRequest::get().uri("/health/live"))
        .await
        .expect(200, None);
}

/// A MongoDB that cannot be reached (nothing listens on the port) answers
/// every store-backed call with 503 `store_unavailable` and `Retry-After`
/// once the server selection timeout has passed, not with a 500.
#[actix_web::test]
async fn an_unreachable_mongodb_is_a_503_to_retry_not_a_500() {
    let env = [
        ("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "256"),
        ("ORGSVC__AUTH__ARGON2__ITERATIONS", "1"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let settings = Settings::load_from(None, Some(env)).unwrap();
    let store = orgsvc_mongo::MongoStore::connect(
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300",
        "orgsvc_unreachable",
    )
    .await
    .unwrap();
    let app = TestApp::with_store(settings, Arc::new(store), tempfile::tempdir().unwrap()).await;
    for request in [
        TestRequest::get().uri("/org/get?organization_name=Acme"),
        TestRequest::post()
            .uri("/admin/login")
            .set_json(json!({"email": "a@acme.example", "password": "long enough"})),
    ] {
        let response = app.send_unchecked(request).await;
        assert_eq!(response.header("retry-after"), Some("5"), "{response:?}");
        response.expect(503, Some("store_unavailable"));
    }
}
