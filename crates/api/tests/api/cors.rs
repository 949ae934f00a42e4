//! Cross-origin requests (Fetch standard, CORS protocol): off by default;
//! with `cors.allowed_origins`, preflights of listed origins are answered
//! with the routes' methods and headers, other origins get no
//! `Access-Control-Allow-Origin` and a refused preflight is problem+json.
//! Store-independent: run on the embedded store only.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use orgsvc_api::config::Settings;

use crate::helpers::{Backend, TestApp, TestResponse};

const APP: &str = "https://app.example.com";

async fn app_allowing(origins: &str) -> TestApp {
    TestApp::spawn_with(
        Backend::Embedded,
        &[("ORGSVC__CORS__ALLOWED_ORIGINS", origins)],
    )
    .await
}

async fn preflight(app: &TestApp, origin: &str, method: &str, headers: &str) -> TestResponse {
    app.send(
        TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/org/data/01a22998-3322-731b-97d4-2e62c0c7c156")
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", method))
            .insert_header(("Access-Control-Request-Headers", headers)),
    )
    .await
}

fn lists(header: Option<&str>, item: &str) -> bool {
    header.is_some_and(|value| {
        value
            .split(',')
            .any(|entry| entry.trim().eq_ignore_ascii_case(item))
    })
}

#[actix_web::test]
async fn without_allowed_origins_no_cross_origin_access_is_granted() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let answer = app
        .send(
            TestRequest::get()
                .uri("/health/live")
                .insert_header(("Origin", APP)),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let answer = preflight(&app, APP, "PUT", "authorization").await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

#[actix_web::test]
async fn a_listed_origin_gets_its_preflight_answered_with_the_routes_methods_and_headers() {
    let app = app_allowing(&format!("{APP}, https://admin.example.com")).await;
    let answer = preflight(&app, APP, "PUT", "authorization, content-type, if-match").await;
    assert!(answer.status.is_success(), "{}", answer.status);
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    let methods = answer.header("access-control-allow-methods");
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(lists(methods, method), "{method} in {methods:?}");
    }
    let headers = answer.header("access-control-allow-headers");
    for header in ["authorization", "content-type", "if-match"] {
        assert!(lists(headers, header), "{header} in {headers:?}");
    }
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    assert_eq!(answer.header("access-control-allow-credentials"), None);
    assert!(
        lists(answer.header("vary"), "origin"),
        "{:?}",
        answer.header("vary")
    );

    // The actual request: allowed, with the headers a client reads exposed.
    let answer = app
        .send(
            TestRequest::get()
                .uri("/health/live")
                .insert_header(("Origin", "https://admin.example.com")),
        )
        .await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    let exposed = answer.header("access-control-expose-headers");
    for header in ["etag", "location", "link", "retry-after", "x-request-id"] {
        assert!(lists(exposed, header), "{header} in {exposed:?}");
    }
    assert!(lists(answer.header("vary"), "origin"));
}

#[actix_web::test]
async fn another_origin_is_refused_with_a_problem_and_gets_no_access() {
    let app = app_allowing(APP).await;
    let answer = preflight(&app, "https://evil.example", "DELETE", "authorization").await;
    answer.expect(403, Some("cors_refused"));
    assert_eq!(answer.header("access-control-allow-origin"), None);

    // A header the routes do not take is refused too.
    let answer = preflight(&app, APP, "GET", "x-custom-header").await;
    answer.expect(403, Some("cors_refused"));

    // A simple request goes through (CORS protects the reading page, not
    // the server), but without the header that lets the browser read it.
    let answer = app
        .send(
            TestRequest::get()
                .uri("/health/live")
                .insert_header(("Origin", "https://evil.example")),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

#[actix_web::test]
async fn a_wildcard_allows_every_origin_without_credentials() {
    let app = app_allowing("*").await;
    let answer = preflight(&app, "https://anywhere.example", "POST", "content-type").await;
    assert!(answer.status.is_success(), "{}", answer.status);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(answer.header("access-control-allow-credentials"), None);
}

#[test]
fn origins_are_checked_when_the_settings_load() {
    for bad in [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/x",
    ] {
        let env = [
            ("ORGSVC__CORS__ALLOWED_ORIGINS".to_owned(), bad.to_owned()),
            ("ORGSVC__AUTH__JWT_SECRET".to_owned(), "x".repeat(40)),
        ]
        .into_iter()
        .collect();
        let error = Settings::load_from(None, Some(env)).unwrap_err();
        assert!(
            error.to_string().contains("cors.allowed_origins"),
            "{bad}: {error}"
        );
    }
    let env = [(
        "ORGSVC__CORS__ALLOWED_ORIGINS".to_owned(),
        "https://a.example, http://localhost:3000".to_owned(),
    )]
    .into_iter()
    .collect();
    let settings = Settings::load_from(None, Some(env)).unwrap();
    assert_eq!(
        settings.cors.allowed_origins,
        ["https://a.example", "http://localhost:3000"]
    );
}
