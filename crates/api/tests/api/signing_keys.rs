//! Tokens other services can verify: the JWK Set, the RFC 8414 metadata,
//! `kid` and algorithm checks, and rotation across instances.

use std::time::Duration;

use actix_web::test::TestRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use orgsvc_app::signing_keys::rotate_signing_keys;
use orgsvc_auth::KeyEncryptionKey;
use orgsvc_domain::{KeyState, SigningAlgorithm};
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, KEY_ENCRYPTION_SECRET, PASSWORD};

store_suite!(
    every_token_names_a_published_key_that_verifies_it,
    forged_tokens_are_refused_whatever_their_header_says,
);

mod instances {
    use super::*;

    backend_suite!(
        a_rotation_publishes_first_then_signs_and_old_tokens_keep_working_on_every_instance,
        es256_and_rs256_keys_sign_and_verify_too,
    );
}

store_independent_suite!(the_metadata_points_to_the_key_set_and_the_token_endpoint);

async fn jwks(app: &TestApp) -> (Value, Option<String>) {
    let response = app
        .send(TestRequest::get().uri("/.well-known/jwks.json"))
        .await;
    assert_eq!(
        response.header("content-type"),
        Some("application/jwk-set+json")
    );
    let cache_control = response.header("cache-control").map(str::to_owned);
    (response.expect(200, None), cache_control)
}

/// The claims `app`'s tokens must carry, for verification.
fn validation(app: &TestApp, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&app.settings.auth.issuer]);
    validation.set_audience(&[&app.settings.auth.audience]);
    validation
}

/// Verifies `token` as a resource server would: the key of its `kid` from
/// the JWK Set, with that key's algorithm.
fn verify_with_jwks(app: &TestApp, set: &Value, token: &str) -> Value {
    let kid = decode_header(token).unwrap().kid.expect("a kid");
    let set: JwkSet = serde_json::from_value(set.clone()).unwrap();
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("{kid} is not published"));
    let algorithm: Algorithm = jwk
        .common
        .key_algorithm
        .map(|alg| alg.to_string().parse().unwrap())
        .unwrap();
    let key = DecodingKey::from_jwk(jwk).unwrap();
    decode::<Value>(token, &key, &validation(app, algorithm))
        .unwrap()
        .claims
}

async fn every_token_names_a_published_key_that_verifies_it(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let header = decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA, "EdDSA is the default");
    let (set, cache_control) = jwks(&app).await;
    let claims = verify_with_jwks(&app, &set, &token);
    assert_eq!(claims["iss"], app.settings.auth.issuer.as_str());
    // Half the pre-publication lead time (the access-token TTL, 900 s).
    assert_eq!(cache_control.as_deref(), Some("public, max-age=450"));
    for key in set["keys"].as_array().unwrap() {
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kty"], "OKP");
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(key.get(private).is_none(), "{private} published: {key}");
        }
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn forged_tokens_are_refused_whatever_their_header_says(app: TestApp) {
    let token = app.create_and_login("Acme", "owner@acme.example").await;
    let (set, _) = jwks(&app).await;
    let key = &set["keys"][0];
    let kid = key["kid"].as_str().unwrap();
    let claims = decode::<Value>(&token, &DecodingKey::from_secret(b"unused"), &{
        let mut v = Validation::new(Algorithm::HS256);
        v.insecure_disable_signature_validation();
        v.validate_aud = false;
        v
    })
    .unwrap()
    .claims;
    let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    let hs256 = |secret: &[u8], kid: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    let forged = [
        // The public key (its bytes, its JWK text) as an HMAC secret, with
        // the real key's kid: alg confusion.
        ("public key bytes as HS256 secret", hs256(&x, Some(kid))),
        (
            "public JWK as HS256 secret",
            hs256(key.to_string().as_bytes(), Some(kid)),
        ),
        // The right HS256 secret (the legacy one) does not make a kid of
        // the key set an HS256 key.
        (
            "legacy secret with a set's kid",
            hs256(crate::helpers::JWT_SECRET.as_bytes(), Some(kid)),
        ),
        (
            "unknown kid",
            hs256(crate::helpers::JWT_SECRET.as_bytes(), Some("not-a-kid")),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                b64(&claims)
            ),
        ),
        ("a real signature under another alg", {
            let mut parts = token.split('.');
            let (_, payload, signature) =
                (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            let header = b64(&json!({"alg": "ES256", "typ": "JWT", "kid": kid}));
            format!("{header}.{payload}.{signature}")
        }),
    ];
    for (what, forged) in forged {
        let response = app
            .send(
                TestRequest::get()
                    .uri("/org/admins")
                    .insert_header(("Authorization", format!("Bearer {forged}"))),
            )
            .await;
        assert_eq!(response.status.as_u16(), 401, "{what}");
        response.expect(401, Some("invalid_token"));
    }
    // The genuine token works.
    app.send(
        TestRequest::get()
            .uri("/org/admins")
            .insert_header(("Authorization", format!("Bearer {token}"))),
    )
    .await
    .expect(200, None);
}

async fn a_rotation_publishes_first_then_signs_and_old_tokens_keep_working_on_every_instance(
    backend: Backend,
) {
    let env = [("ORGSVC__AUTH__SIGNING__PUBLISH_AHEAD_SECS", "1")];
    let apps = TestApp::spawn_instances(backend, &env, 2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let before = a.create_and_login("Acme", "owner@acme.example").await;
    let first_kid = decode_header(&before).unwrap().kid.unwrap();
    assert_eq!(jwks(b).await.0["keys"].as_array().unwrap().len(), 1);

    // An operator rotates (as `orgsvc keys rotate` does).
    let encryption =
        KeyEncryptionKey::derive(&KEY_ENCRYPTION_SECRET.as_bytes().to_vec().into()).unwrap();
    let policy = a.settings.auth.rotation_policy();
    let update = rotate_signing_keys(
        a.store.as_ref(),
        &policy,
        SigningAlgorithm::EdDsa,
        &encryption,
    )
    .await
    .unwrap();
    let next_kid = update.added.unwrap();
    let (refresh_a, refresh_b) = (
        a.signing_keys.as_ref().unwrap(),
        b.signing_keys.as_ref().unwrap(),
    );
    // Both instances publish the new key before either signs with it.
    let (ra, rb) = tokio::join!(refresh_a.refresh(), refresh_b.refresh());
    assert!(ra.unwrap() && rb.unwrap());
    for app in [a, b] {
        let kids: Vec<_> = jwks(app).await.0["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            kids.contains(&first_kid) && kids.contains(&next_kid),
            "{kids:?}"
        );
        let token = app.token("owner@acme.example", PASSWORD).await;
        assert_eq!(decode_header(&token).unwrap().kid.unwrap(), first_kid);
    }

    // Once published long enough, both (racing) promote it: one active key.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ra, rb) = tokio::join!(refresh_a.refresh(), refresh_b.refresh());
    ra.unwrap();
    rb.unwrap();
    let stored = a.store.load_signing_keys().await.unwrap();
    let active: Vec<_> = stored
        .keys
        .iter()
        .filter(|key| key.state == KeyState::Active)
        .collect();
    assert_eq!(active.len(), 1, "{stored:?}");
    assert_eq!(active[0].kid, next_kid);

    let after = b.token("owner@acme.example", PASSWORD).await;
    assert_eq!(decode_header(&after).unwrap().kid.unwrap(), next_kid);
    // The token from before the rotation still works everywhere (its key is
    // retired but published), and the new one works on the other instance.
    for (app, token) in [(a, &before), (b, &before), (a, &after)] {
        app.send(
            TestRequest::get()
                .uri("/org/admins")
                .insert_header(("Authorization", format!("Bearer {token}"))),
        )
        .await
        .expect(200, None);
    }
    let (set, _) = jwks(a).await;
    verify_with_jwks(a, &set, &before);
    verify_with_jwks(a, &set, &after);
}

async fn es256_and_rs256_keys_sign_and_verify_too(backend: Backend) {
    for algorithm in ["ES256", "RS256"] {
        let app =
            TestApp::spawn_with(backend, &[("ORGSVC__AUTH__SIGNING__ALGORITHM", algorithm)]).await;
        let token = app.create_and_login("Acme", "owner@acme.example").await;
        assert_eq!(
            format!("{:?}", decode_header(&token).unwrap().alg),
            algorithm
        );
        let (set, _) = jwks(&app).await;
        verify_with_jwks(&app, &set, &token);
    }
}

async fn the_metadata_points_to_the_key_set_and_the_token_endpoint(app: TestApp) {
    let metadata = app
        .send(
            TestRequest::get()
                .uri("/.well-known/oauth-authorization-server")
                .insert_header(("Host", "auth.example.com"))
                // Any client can send these: never believed here.
                .insert_header(("X-Forwarded-Host", "attacker.example"))
                .insert_header(("X-Forwarded-Proto", "https"))
                .insert_header(("Forwarded", "host=attacker.example;proto=https")),
        )
        .await
        .expect(200, None);
    assert_eq!(metadata["issuer"], app.settings.auth.issuer.as_str());
    assert_eq!(
        metadata["jwks_uri"],
        "http://auth.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        metadata["token_endpoint"],
        "http://auth.example.com/admin/login"
    );
    assert_eq!(
        metadata["access_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
}

#[actix_web::test]
async fn the_public_url_setting_makes_the_metadata_urls() {
    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[("ORGSVC__SERVER__PUBLIC_URL", "https://id.example.com/")],
    )
    .await;
    let metadata = app
        .send(TestRequest::get().uri("/.well-known/oauth-authorization-server"))
        .await
        .expect(200, None);
    assert_eq!(
        metadata["jwks_uri"],
        "https://id.example.com/.well-known/jwks.json"
    );
}

/// Runs `orgsvc keys ARGS` on the embedded store in `dir`.
fn keys_command(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_orgsvc"))
        .arg("keys")
        .args(args)
        .env("ORGSVC__STORE__PATH", dir.join("orgsvc.db"))
        .env("ORGSVC__AUTH__KEY_ENCRYPTION_SECRET", KEY_ENCRYPTION_SECRET)
        .env("ORGSVC__LOG__LEVEL", "warn")
        .output()
        .unwrap()
}

#[test]
fn the_keys_command_rotates_and_lists_the_set_without_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let text = |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).into_owned();
    // No store there yet: refused, nothing created.
    let missing = keys_command(dir.path(), &["list"]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no embedded store"));
    assert!(!dir.path().join("orgsvc.db").exists());
    let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_orgsvc"))
        .arg("migrate")
        .env("ORGSVC__STORE__PATH", dir.path().join("orgsvc.db"))
        .env("ORGSVC__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{migrate:?}");

    let first = keys_command(dir.path(), &["rotate"]);
    assert!(first.status.success(), "{first:?}");
    assert!(
        text(&first).contains("the set's first key, signing now"),
        "{}",
        text(&first)
    );
    let second = keys_command(dir.path(), &["rotate"]);
    assert!(second.status.success(), "{second:?}");
    assert!(
        text(&second).contains("published now, signs in 900 s"),
        "{}",
        text(&second)
    );
    // A third while the second waits is refused, and changes nothing.
    let third = keys_command(dir.path(), &["rotate"]);
    assert_eq!(third.status.code(), Some(2), "{third:?}");
    let refusal = String::from_utf8_lossy(&third.stderr);
    assert!(refusal.contains("waiting to sign"), "{refusal}");

    // Under another secret, a rotation would split the set: refused.
    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_orgsvc"))
        .args(["keys", "rotate"])
        .env("ORGSVC__STORE__PATH", dir.path().join("orgsvc.db"))
        .env(
            "ORGSVC__AUTH__KEY_ENCRYPTION_SECRET",
            "another-key-encryption-secret-32-bytes",
        )
        .env("ORGSVC__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
    let refusal = String::from_utf8_lossy(&wrong.stderr);
    assert!(refusal.contains("does not decrypt"), "{refusal}");

    let list = keys_command(dir.path(), &["list"]);
    assert!(list.status.success(), "{list:?}");
    let listed = text(&list);
    assert!(listed.starts_with("key set version 2\n"), "{listed}");
    assert_eq!(
        listed
            .lines()
            .filter(|line| line.contains(" active "))
            .count(),
        1
    );
    assert_eq!(
        listed
            .lines()
            .filter(|line| line.contains(" next "))
            .count(),
        1
    );
    // Nothing but the table: logs go to stderr, and no key material.
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert!(
        !listed.contains("ciphertext") && !listed.contains("nonce"),
        "{listed}"
    );
}

#[test]
fn the_keys_command_needs_a_key_encryption_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orgsvc.db"), b"").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orgsvc"))
        .args(["keys", "rotate"])
        .env("ORGSVC__STORE__PATH", dir.path().join("orgsvc.db"))
        .env_remove("ORGSVC__AUTH__KEY_ENCRYPTION_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth.key_encryption_secret"), "{stderr}");
}
