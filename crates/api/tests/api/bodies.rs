//! Every JSON request body must be a JSON object. Regression: serde's derived
//! `Deserialize` accepts an array for a struct (its fields in order), so
//! `POST /org/create` with `["Acme", "a@acme.example", "password123"]`
//! created the organization.

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::helpers::{TestApp, PASSWORD};

store_suite!(
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
