//! Behaviour shared by every route: unknown routes and methods, headers,
//! health probes and the documentation.

use actix_web::test::TestRequest;

use crate::helpers::TestApp;

store_suite!(
    an_unknown_route_is_a_404_problem,
    a_wrong_method_is_a_405_problem_listing_the_allowed_one,
    responses_carry_security_headers_and_a_request_id,
    health_live_and_ready_answer_200,
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
        (TestRequest::post().uri("/org/get"), "GET"),
        (TestRequest::get().uri("/org/update"), "PUT"),
        (TestRequest::post().uri("/org/delete"), "DELETE"),
        (TestRequest::delete().uri("/health/live"), "GET"),
    ] {
        let response = app.send(request).await;
        response.expect(405, Some("method_not_allowed"));
        assert_eq!(response.header("allow"), Some(allowed));
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
}
