//! Behaviour shared by every route: unknown routes and methods, headers,
//! health probes and the documentation.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::shutdown::Connection;
use crate::transport::with_service;

use crate::helpers::{Backend, TestApp, TestResponse};

store_suite!(health_live_and_ready_answer_200,);

store_independent_suite!(
    an_unknown_route_is_a_404_problem,
    a_wrong_method_is_a_405_problem_listing_the_allowed_one,
    responses_carry_security_headers_and_a_request_id,
    swagger_ui_is_served_at_docs,
);

async fn an_unknown_route_is_a_404_problem(app: TestApp) {
    app.send(TestRequest::get().uri("/org/unknown"))
        .await
        .expect(404, Some("not_found"));
}

async fn a_wrong_method_is_a_405_problem_listing_the_allowed_one(app: TestApp) {
    for (request, allowed) in [
        (TestRequest::get().uri("/org/create"), "POST"),
        (TestRequest::post().uri("/org/get"), "GET, HEAD"),
        (TestRequest::get().uri("/org/update"), "PUT"),
        (TestRequest::post().uri("/org/delete"), "DELETE"),
        (TestRequest::delete().uri("/health/live"), "GET, HEAD"),
        (TestRequest::put().uri("/health/ready"), "GET, HEAD"),
        (TestRequest::post().uri("/openapi.json"), "GET, HEAD"),
        (TestRequest::put().uri("/docs"), "GET, HEAD"),
        (TestRequest::delete().uri("/docs/"), "GET, HEAD"),
        (TestRequest::post().uri("/docs/index.css"), "GET, HEAD"),
    ] {
        let response = app.send(request).await;
        response.expect(405, Some("method_not_allowed"));
        assert_eq!(response.header("allow"), Some(allowed));
    }
    // HEAD is allowed exactly where GET is (its 405 has no content).
    for uri in ["/org/create", "/admin/login"] {
        let response = app
            .send(TestRequest::default().method(Method::HEAD).uri(uri))
            .await;
        response.expect(405, None);
        assert_eq!(response.header("allow"), Some("POST"));
    }
}

async fn responses_carry_security_headers_and_a_request_id(app: TestApp) {
    let first = app.send(TestRequest::get().uri("/health/live")).await;
    let second = app.send(TestRequest::get().uri("/health/live")).await;
    // `send` checks nosniff and presence of x-request-id on every response.
    assert_ne!(first.header("x-request-id"), second.header("x-request-id"));
    assert_eq!(first.header("x-frame-options"), Some("DENY"));
}

async fn health_live_and_ready_answer_200(app: TestApp) {
    for uri in ["/health/live", "/health/ready"] {
        let body = app
            .send(TestRequest::get().uri(uri))
            .await
            .expect(200, None);
        assert_eq!(body["status"], "ok");
    }
}

async fn swagger_ui_is_served_at_docs(app: TestApp) {
    let redirect = app.send(TestRequest::get().uri("/docs")).await;
    assert!(redirect.status.is_redirection());
    assert_eq!(redirect.header("location"), Some("/docs/"));
    let page = app.send(TestRequest::get().uri("/docs/")).await;
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("swagger"));
    // An unknown file under /docs/ is a problem like any unknown path.
    let missing = app.send(TestRequest::get().uri("/docs/missing.js")).await;
    missing.expect(404, Some("not_found"));
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
}

/// `HEAD` answers every `GET` resource with `GET`'s status and headers and
/// no content, declaring `GET`'s content length (RFC 9110 §9.3.2); the
/// stores play no part, so the embedded one suffices.
#[actix_web::test]
async fn head_answers_like_get_without_content_on_every_kind_of_resource() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let created = app
        .send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .set_json(json!({"name": "Zoë"})),
        )
        .await
        .expect(201, None);
    let document = format!("/org/data/{}", created["id"].as_str().unwrap());
    let bearer = Some(token.as_str());
    let cases: [(&str, Option<&str>, Option<&str>); 15] = [
        ("/health/live", None, None),
        ("/health/ready", None, None),
        ("/org/get?organization_name=Acme", None, None),
        ("/org/get?organization_name=Nobody", None, None),
        ("/org/get", None, None),
        ("/org/admins", bearer, None),
        ("/org/admins", None, None),
        ("/org/audit", bearer, None),
        ("/org/data?limit=1", bearer, None),
        (&document, bearer, None),
        (&document, bearer, Some("\"1\"")),
        ("/openapi.json", None, None),
        ("/docs", None, None),
        ("/docs/", None, None),
        ("/org/unknown", None, None),
    ];
    for (uri, token, if_none_match) in cases {
        let request = |method: Method| {
            let mut request = TestRequest::default().method(method).uri(uri);
            if let Some(token) = token {
                request = request.insert_header(("Authorization", format!("Bearer {token}")));
            }
            if let Some(tags) = if_none_match {
                request = request.insert_header(("If-None-Match", tags));
            }
            request
        };
        let get = app.send(request(Method::GET)).await;
        let head = app.send(request(Method::HEAD)).await;
        let case = format!(
            "HEAD {uri} (token: {}, If-None-Match: {if_none_match:?})",
            token.is_some()
        );
        assert_eq!(head.status, get.status, "{case}");
        assert_eq!(headers(&head), headers(&get), "{case}");
        assert!(head.body.is_empty(), "{case}: a body was sent");
        assert_eq!(head.body_size, Some(get.body.len() as u64), "{case}");
    }
}

/// A response's headers but the request id, sorted.
fn headers(response: &TestResponse) -> Vec<(String, String)> {
    let mut headers: Vec<_> = response
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != "x-request-id")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    headers
}

/// On the wire, `HEAD` sends `GET`'s `Content-Length` and no content: the
/// next response on the connection follows the head at once.
#[actix_web::test]
async fn head_on_the_wire_declares_gets_content_length_and_sends_no_content() {
    let (get, head, after) = with_service(&[], |addr| {
        let mut connection = Connection::open(addr);
        let get = connection.get("/openapi.json");
        let head = connection.head("/openapi.json");
        let after = connection.get("/health/live");
        (get, head, after)
    })
    .await;
    assert_eq!((get.status, head.status), (200, 200));
    assert!(get.body.len() > 1000);
    assert_eq!(
        head.headers.get("content-length"),
        Some(&get.body.len().to_string())
    );
    assert_eq!(
        head.headers.get("content-type"),
        get.headers.get("content-type")
    );
    assert_eq!(after.status, 200, "the HEAD answer carried content");
}
