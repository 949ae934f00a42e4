//! Conditional writes racing other writes: the decision on `If-Match` /
//! `If-None-Match` is made on a revision the store then compares, so a
//! change in between is never overwritten (RFC 9110 §13.2.2 with
//! optimistic concurrency).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::test::TestRequest;
use orgsvc_domain::testing::{FaultyStore, Operation, Times};
use orgsvc_domain::{DocumentBody, DocumentId, OrganizationName, TenantStore};
use serde_json::json;

use crate::helpers::{TestApp, TestResponse};

store_suite!(a_conditional_write_decides_on_the_revision_the_store_compares,);

/// What the racing client writes.
const RACER: &str = "racer";

/// Arms `store` so that, right before its next call of `operation` (the
/// request's conditional replacement or deletion), another client replaces
/// the document itself; `raced` tells that it happened.
fn race_before(
    store: &FaultyStore,
    operation: Operation,
    organization: orgsvc_domain::OrganizationId,
    id: DocumentId,
    raced: Arc<AtomicBool>,
) {
    store.before(
        operation,
        Times::Once,
        move |inner: Arc<dyn TenantStore>| {
            let raced = raced.clone();
            async move {
                let body = DocumentBody::parse(json!({"by": RACER})).unwrap();
                inner
                    .replace_document(organization, id, body, None)
                    .await
                    .unwrap();
                raced.store(true, Ordering::SeqCst);
            }
        },
    );
}

/// Between the handler's read (revision 1) and its write, another client
/// makes revision 2: the write is decided again on revision 2, never
/// applied over it unchecked.
async fn a_conditional_write_decides_on_the_revision_the_store_compares(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let organization = app
        .store
        .organization_by_name(&OrganizationName::parse("Acme").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let store = Arc::new(FaultyStore::new(app.store.clone()));
    let racing = TestApp::with_store(
        app.settings.clone(),
        store.clone(),
        tempfile::tempdir().unwrap(),
    )
    .await;
    // (method, If-Match, If-None-Match, status, the document's `by` after)
    let cases = [
        // Revision 2 still meets the conditions: the write applies over it.
        ("PUT", None, Some("\"7\""), 200, Some("us")),
        ("PUT", Some("\"1\", \"2\""), None, 200, Some("us")),
        ("DELETE", None, Some("\"7\""), 204, None),
        ("DELETE", Some("\"1\", \"2\""), None, 204, None),
        // Revision 2 fails them: 412, the racer's write stays.
        ("PUT", None, Some("\"2\""), 412, Some(RACER)),
        ("PUT", Some("\"1\", \"7\""), None, 412, Some(RACER)),
        ("DELETE", None, Some("\"2\""), 412, Some(RACER)),
        ("DELETE", Some("\"1\", \"7\""), None, 412, Some(RACER)),
    ];
    for (method, if_match, if_none_match, status, after) in cases {
        let created = racing
            .send(
                TestRequest::post()
                    .uri("/org/data")
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .set_json(json!({"by": "creator"})),
            )
            .await
            .expect(201, None);
        let uri = format!("/org/data/{}", created["id"].as_str().unwrap());
        // Every case's write is conditional (none of its conditions holds
        // for any revision), so the race comes before the store compares.
        let id: DocumentId = created["id"].as_str().unwrap().parse().unwrap();
        let raced = Arc::new(AtomicBool::new(false));
        let operation = match method {
            "PUT" => Operation::ReplaceDocument,
            _ => Operation::DeleteDocument,
        };
        race_before(&store, operation, organization, id, raced.clone());
        let mut request = match method {
            "PUT" => TestRequest::put().uri(&uri).set_json(json!({"by": "us"})),
            _ => TestRequest::delete().uri(&uri),
        }
        .insert_header(("Authorization", format!("Bearer {token}")));
        if let Some(tags) = if_match {
            request = request.insert_header(("If-Match", tags));
        }
        if let Some(tags) = if_none_match {
            request = request.insert_header(("If-None-Match", tags));
        }
        let case = format!("{method} If-Match: {if_match:?} If-None-Match: {if_none_match:?}");
        let response: TestResponse = racing.send(request).await;
        assert_eq!(response.status, status, "{case}: {:?}", response.body);
        assert!(raced.load(Ordering::SeqCst), "{case}: no race happened");
        if status == 412 {
            assert_eq!(response.header("etag"), Some("\"2\""), "{case}");
        }
        let found = racing
            .send(
                TestRequest::get()
                    .uri(&uri)
                    .insert_header(("Authorization", format!("Bearer {token}"))),
            )
            .await;
        match after {
            Some(by) => assert_eq!(found.expect(200, None)["data"]["by"], by, "{case}"),
            None => {
                found.expect(404, Some("document_not_found"));
            }
        }
    }
}
