//! Every JSON request body must be a JSON object. Regression: serde's derived
//! `Deserialize` accepts an array for a struct (its fields in order), so
//! `POST /org/create` with `["Acme", "a@acme.example", "password123"]`
//! created the organization.
//!
//! Every body-taking operation follows one media-type rule. Regression:
//! `text/json` was accepted by some operations and refused by others.

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, PASSWORD};

store_independent_suite!(
    array_bodies_are_refused_with_422_by_every_operation_and_change_nothing,
    other_non_object_bodies_are_refused_with_422,
);

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// Expects the 422 of a body that is not a JSON object.
fn expect_not_an_object(app_response: &crate::helpers::TestResponse, what: &str) {
    let body = app_response.expect(422, Some("validation_failed"));
    assert_eq!(body["errors"][0]["field"], "", "{what}: {body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("JSON object"),
        "{what}: {body}"
    );
}

async fn array_bodies_are_refused_with_422_by_every_operation_and_change_nothing(app: TestApp) {
    // Creation: the fields in declaration order, as serde would read them.
    let response = app
        .send(TestRequest::post().uri("/org/create").set_json(json!([
            "Acme",
            "admin@acme.example",
            PASSWORD
        ])))
        .await;
    expect_not_an_object(&response, "create");
    app.get_org("Acme").await.expect(404, None);

    let token = app.create_and_login("Acme", "admin@acme.example").await;

    // Login with the right credentials as an array.
    let response = app
        .send(
            TestRequest::post()
                .uri("/admin/login")
                .set_json(json!(["admin@acme.example", PASSWORD])),
        )
        .await;
    expect_not_an_object(&response, "login");

    // Update: a rename and a new password as an array.
    let response = app
        .send(
            TestRequest::put()
                .uri("/org/update")
                .insert_header(bearer(&token))
                .set_json(json!(["Acme Labs", null, "another password"])),
        )
        .await;
    expect_not_an_object(&response, "update");
    app.get_org("Acme Labs").await.expect(404, None);
    app.token("admin@acme.example", PASSWORD).await;

    // Delete's optional body (without the query parameter).
    let response = app
        .send(
            TestRequest::delete()
                .uri("/org/delete")
                .insert_header(bearer(&token))
                .set_json(json!(["Acme"])),
        )
        .await;
    expect_not_an_object(&response, "delete");
    app.get_org("Acme").await.expect(200, None);

    // Documents.
    let response = app
        .send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(bearer(&token))
                .set_json(json!([{"a": 1}])),
        )
        .await;
    expect_not_an_object(&response, "create document");
    let created = app
        .send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(bearer(&token))
                .set_json(json!({"a": 1})),
        )
        .await
        .expect(201, None);
    let uri = format!("/org/data/{}", created["id"].as_str().unwrap());
    let response = app
        .send(
            TestRequest::put()
                .uri(&uri)
                .insert_header(bearer(&token))
                .set_json(json!([{"a": 2}])),
        )
        .await;
    expect_not_an_object(&response, "replace document");
    let found = app
        .send(TestRequest::get().uri(&uri).insert_header(bearer(&token)))
        .await
        .expect(200, None);
    assert_eq!(found["revision"], 1);
    assert_eq!(found["data"], json!({"a": 1}));
}

async fn other_non_object_bodies_are_refused_with_422(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for value in [
        json!("Acme"),
        json!(42),
        json!(true),
        json!(null),
        json!([]),
    ] {
        for (request, what) in [
            (TestRequest::post().uri("/org/create"), "create"),
            (TestRequest::post().uri("/admin/login"), "login"),
            (
                TestRequest::put()
                    .uri("/org/update")
                    .insert_header(bearer(&token)),
                "update",
            ),
            (
                TestRequest::delete()
                    .uri("/org/delete")
                    .insert_header(bearer(&token)),
                "delete",
            ),
        ] {
            let response = app.send(request.set_json(&value)).await;
            expect_not_an_object(&response, &format!("{what} {value}"));
        }
    }
    app.get_org("Acme").await.expect(200, None);
    let _: Value = app
        .login("admin@acme.example", PASSWORD)
        .await
        .expect(200, None);
}

/// `Content-Type`s every JSON body is accepted with (RFC 6838 §4.2.8
/// suffixes; case-insensitive names; parameters, `charset` included, have
/// no effect on JSON, RFC 8259 §11).
const ACCEPTED: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
    "Application/JSON; Charset=\"Utf-8\"",
    "application/json; charset=iso-8859-1",
    "application/merge-patch+json",
    "application/problem+json; charset=utf-8",
];

/// `Content-Type`s every JSON body is refused with (`None`: no header).
const REFUSED: &[Option<&str>] = &[
    None,
    Some("text/json"),
    Some("text/json; charset=utf-8"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=x"),
    Some("application/xml"),
    Some("application/jsonx"),
    Some("text/vnd.api+json"),
    Some("json"),
    Some(""),
];

/// The same media-type rule for every operation that takes a JSON body:
/// the accepted types never get 415, every other type (or none) gets a
/// 415 problem naming `application/json`, and so does a body sent with a
/// content coding. Independent of the store.
#[actix_web::test]
async fn every_body_taking_operation_follows_one_media_type_rule() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let document = app
        .send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(bearer(&token))
                .set_json(json!({"a": 1})),
        )
        .await
        .expect(201, None);
    let document = format!("/org/data/{}", document["id"].as_str().unwrap());
    let admin = format!("/org/admins/{}", uuid::Uuid::now_v7());
    let operations = || {
        [
            TestRequest::post().uri("/org/create"),
            TestRequest::put().uri("/org/update"),
            TestRequest::delete().uri("/org/delete"),
            TestRequest::post().uri("/admin/login"),
            TestRequest::post().uri("/admin/refresh"),
            TestRequest::post().uri("/admin/logout"),
            TestRequest::post().uri("/org/admins"),
            TestRequest::patch().uri(&admin),
            TestRequest::post().uri("/org/data"),
            TestRequest::put().uri(&document),
        ]
        .map(|request| request.insert_header(bearer(&token)))
    };
    // A body no operation can act on (`{}` misses required fields, or is
    // an empty document), so accepted types change nothing that matters.
    // No content coding is decoded (RFC 9110 §8.4.1): a coded body is 415
    // with `Accept-Encoding: identity`; `identity` itself is no coding.
    for coding in ["gzip", "x-unknown", "identity, gzip"] {
        for request in operations() {
            let request = request
                .insert_header(("content-type", "application/json"))
                .insert_header(("content-encoding", coding))
                .set_payload("{}");
            let response = app.send(request).await;
            assert_eq!(
                response.header("accept-encoding"),
                Some("identity"),
                "{coding}: {response:?}"
            );
            response.expect(415, Some("unsupported_content_encoding"));
        }
    }
    for request in operations() {
        let request = request
            .insert_header(("content-type", "application/json"))
            .insert_header(("content-encoding", "Identity"))
            .set_payload("{}");
        let response = app.send(request).await;
        assert_ne!(response.status, 415, "identity: {response:?}");
    }
    for content_type in ACCEPTED {
        for request in operations() {
            let request = request
                .insert_header(("content-type", *content_type))
                .set_payload("{}");
            let response = app.send(request).await;
            assert_ne!(response.status, 415, "{content_type}: {response:?}");
        }
    }
    for content_type in REFUSED {
        for request in operations() {
            let mut request = request.set_payload("{}");
            if let Some(content_type) = content_type {
                request = request.insert_header(("content-type", *content_type));
            }
            let response = app.send(request).await;
            let problem = response.expect(415, Some("unsupported_media_type"));
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains("application/json"),
                "{content_type:?}: {problem}"
            );
        }
    }
    app.get_org("Acme").await.expect(200, None);
}
