//! Bearer authentication of the protected operations.

use actix_web::test::TestRequest;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{TestApp, JWT_SECRET};

const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer realm="orgsvc", error="invalid_token""#;

store_suite!(
    a_token_naming_another_organization_is_refused,
    a_correctly_forged_token_is_accepted,
);

store_independent_suite!(
    a_missing_token_is_401_with_a_challenge_without_error,
    another_authorization_scheme_counts_as_a_missing_token,
    a_garbage_token_is_401_invalid_token,
    an_unsigned_alg_none_token_is_refused,
    a_token_signed_with_another_secret_is_refused,
    a_token_for_another_audience_or_issuer_is_refused,
    an_expired_token_is_401_token_expired,
    a_token_not_yet_valid_issued_in_the_future_or_outliving_the_ttl_is_refused,
);

/// Claims as the service issues them, for the admin and organization of
/// `created` (the answer of `POST /org/create`).
fn claims(created: &Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": created["admin_id"],
        "org_id": created["id"],
        "org_name": created["organization_name"],
        "iat": now,
        "exp": now + 600,
        "iss": "orgsvc",
        "aud": "orgsvc-api",
        "jti": "test",
        "ver": 0,
    })
}

fn sign(claims: &Value, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn update_with(app: &TestApp, authorization: &str) -> crate::helpers::TestResponse {
    app.send(
        TestRequest::put()
            .uri("/org/update")
            .insert_header(("Authorization", authorization))
            .set_json(json!({"organization_name": "Acme"})),
    )
    .await
}

#[track_caller]
fn assert_refused(response: &crate::helpers::TestResponse, code: &str) {
    response.expect(401, Some(code));
    assert_eq!(
        response.header("www-authenticate"),
        Some(INVALID_TOKEN_CHALLENGE)
    );
}

async fn a_missing_token_is_401_with_a_challenge_without_error(app: TestApp) {
    let response = app
        .send(TestRequest::delete().uri("/org/delete?organization_name=Acme"))
        .await;
    response.expect(401, Some("missing_token"));
    assert_eq!(
        response.header("www-authenticate"),
        Some(r#"Bearer realm="orgsvc""#)
    );
}

async fn another_authorization_scheme_counts_as_a_missing_token(app: TestApp) {
    let response = update_with(&app, "Basic YWRtaW46cGFzc3dvcmQ=").await;
    response.expect(401, Some("missing_token"));
    assert_eq!(
        response.header("www-authenticate"),
        Some(r#"Bearer realm="orgsvc""#)
    );
}

async fn a_garbage_token_is_401_invalid_token(app: TestApp) {
    for token in [
        "Bearer nonsense",
        "Bearer a.b.c",
        "Bearer ",
        "bearer  two words",
    ] {
        let response = update_with(&app, token).await;
        assert_eq!(response.status, 401, "{token:?}");
        assert!(response
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm"));
    }
    assert_refused(&update_with(&app, "Bearer a.b.c").await, "invalid_token");
}

async fn an_unsigned_alg_none_token_is_refused(app: TestApp) {
    let created = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let signed = sign(&claims(&created), JWT_SECRET);
    let payload = signed.split('.').nth(1).unwrap();
    // base64url of {"alg":"none","typ":"JWT"}
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert_refused(
        &update_with(&app, &format!("Bearer {unsigned}")).await,
        "invalid_token",
    );
}

async fn a_token_signed_with_another_secret_is_refused(app: TestApp) {
    let created = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let forged = sign(&claims(&created), "another-secret-another-secret-another");
    assert_refused(
        &update_with(&app, &format!("Bearer {forged}")).await,
        "invalid_token",
    );
}

async fn a_token_for_another_audience_or_issuer_is_refused(app: TestApp) {
    let created = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    for (claim, value) in [("aud", "someone-else"), ("iss", "someone-else")] {
        let mut claims = claims(&created);
        claims[claim] = json!(value);
        let token = sign(&claims, JWT_SECRET);
        assert_refused(
            &update_with(&app, &format!("Bearer {token}")).await,
            "invalid_token",
        );
    }
}

async fn an_expired_token_is_401_token_expired(app: TestApp) {
    let created = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let mut claims = claims(&created);
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 3600);
    claims["exp"] = json!(now - 600);
    let token = sign(&claims, JWT_SECRET);
    assert_refused(
        &update_with(&app, &format!("Bearer {token}")).await,
        "token_expired",
    );
}

async fn a_token_naming_another_organization_is_refused(app: TestApp) {
    let acme = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let globex = app
        .create_org("Globex", "admin@globex.example")
        .await
        .expect(201, None);
    let mut claims = claims(&acme);
    claims["org_id"] = globex["id"].clone();
    let token = sign(&claims, JWT_SECRET);
    assert_refused(
        &update_with(&app, &format!("Bearer {token}")).await,
        "invalid_token",
    );
    let mut stale = self::claims(&acme);
    stale["ver"] = json!(7);
    let token = sign(&stale, JWT_SECRET);
    assert_refused(
        &update_with(&app, &format!("Bearer {token}")).await,
        "invalid_token",
    );
}

/// Guards the tests above: their forged tokens differ from a valid one only
/// in the tampered part.
async fn a_correctly_forged_token_is_accepted(app: TestApp) {
    let created = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let token = sign(&claims(&created), JWT_SECRET);
    update_with(&app, &format!("Bearer {token}"))
        .await
        .expect(200, None);
}

/// Tokens signed with the service's key but with time claims it never
/// issues: `nbf` an hour ahead, `iat` an hour ahead, or a lifetime beyond
/// `auth.access_token_ttl` (900 s).
async fn a_token_not_yet_valid_issued_in_the_future_or_outliving_the_ttl_is_refused(app: TestApp) {
    let created = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let now = chrono::Utc::now().timestamp();
    for (claim, value) in [
        ("nbf", now + 3600),
        ("iat", now + 3600),
        ("exp", now + 901),
        ("exp", now + 365 * 86_400),
    ] {
        let mut claims = claims(&created);
        claims[claim] = json!(value);
        let token = sign(&claims, JWT_SECRET);
        assert_refused(
            &update_with(&app, &format!("Bearer {token}")).await,
            "invalid_token",
        );
    }
}
