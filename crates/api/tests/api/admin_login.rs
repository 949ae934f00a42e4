//! `POST /admin/login`.

use actix_web::test::TestRequest;
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

store_suite!(
    login_returns_a_bearer_token_that_must_not_be_cached,
    login_answers_unknown_email_and_wrong_password_identically,
    login_with_a_malformed_email_or_out_of_bounds_password_is_401,
    login_ignores_the_case_of_the_email,
);

store_independent_suite!(login_returns_422_when_fields_are_missing_or_not_strings,);

async fn login_returns_a_bearer_token_that_must_not_be_cached(app: TestApp) {
    app.create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let response = app.login("admin@acme.example", PASSWORD).await;
    let body = response.expect(200, None);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    assert_eq!(body.as_object().unwrap().len(), 5, "{body}");
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

async fn login_answers_unknown_email_and_wrong_password_identically(app: TestApp) {
    app.create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let unknown = app.login("nobody@acme.example", PASSWORD).await;
    let wrong = app.login("admin@acme.example", "wrong password!").await;
    unknown.expect(401, Some("invalid_credentials"));
    wrong.expect(401, Some("invalid_credentials"));
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(
        unknown.header("www-authenticate"),
        wrong.header("www-authenticate")
    );
}

async fn login_with_a_malformed_email_or_out_of_bounds_password_is_401(app: TestApp) {
    app.create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let reference = app.login("nobody@acme.example", PASSWORD).await;
    for (email, password) in [
        ("not an email", PASSWORD),
        ("admin@acme.example", "short"),
        ("admin@acme.example", &"x".repeat(500)),
        ("", ""),
    ] {
        let response = app.login(email, password).await;
        response.expect(401, Some("invalid_credentials"));
        assert_eq!(response.body, reference.body);
    }
}

async fn login_ignores_the_case_of_the_email(app: TestApp) {
    app.create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    app.login("  ADMIN@Acme.Example ", PASSWORD)
        .await
        .expect(200, None);
}

async fn login_returns_422_when_fields_are_missing_or_not_strings(app: TestApp) {
    let body = app
        .send(
            TestRequest::post()
                .uri("/admin/login")
                .set_json(json!({"password": 12345678})),
        )
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");
}
