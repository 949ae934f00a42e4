//! Transport-level faults on a real socket (issue 13, items 4 and 5): the
//! HTTP layer's own refusals are problem documents, request heads and
//! bodies that stall are timed out with a 408, connections per client IP
//! are bounded, and clients stalled mid-body do not starve the service.
//! Body parsing faults (duplicated keys, numbers out of range, syntax
//! errors) name their place as a JSON Pointer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use actix_web::web;
use orgsvc_api::credentials::Credentials;
use orgsvc_api::startup::Service;
use orgsvc_api::state::AppState;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::failures::broken_store;
use crate::helpers::{Backend, TestApp, PASSWORD};
use crate::shutdown::{settings, Connection, RawResponse};

/// Runs `client` (blocking socket code) against a service started with
/// `env` on top of the test settings, then stops the service.
pub(crate) async fn with_service<T: Send + 'static>(
    env: &[(&str, &str)],
    client: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> T {
    let settings = settings(env);
    let credentials = Credentials::from_settings(&settings).unwrap();
    let state = web::Data::new(AppState::new(&settings, broken_store(), credentials));
    let service = Service::start(&settings, state, false, None).unwrap();
    let addr = service.addrs()[0];
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = actix_web::rt::spawn(service.serve_until(async {
        let _ = stopped.await;
    }));
    let result = actix_web::rt::task::spawn_blocking(move || client(addr)).await;
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    result.unwrap()
}

/// Asserts a problem document with `status` and `code` that closes the
/// connection; returns the document.
#[track_caller]
fn expect_problem(response: &RawResponse, status: u16, code: &str) -> Value {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json"),
        "{response:?}"
    );
    let problem = response.json();
    assert_eq!(problem["code"], code, "{problem}");
    assert_eq!(problem["status"], status, "{problem}");
    for field in ["type", "title", "detail"] {
        assert!(problem[field].is_string(), "{problem}");
    }
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    problem
}

/// Reads the answer, then checks that the server closed the connection.
#[track_caller]
fn answer_then_close(connection: &mut Connection) -> RawResponse {
    let response = connection
        .response()
        .expect("the connection closed without an answer");
    assert!(
        connection.response().is_none(),
        "the connection stayed open"
    );
    response
}

#[actix_web::test]
async fn a_malformed_request_line_or_header_is_a_400_problem() {
    with_service(&[], |addr| {
        for request in [
            "NOT A REQUEST\r\n\r\n",
            "GET /health/live HTTP/1.1\r\nHost: orgsvc\r\nno colon here\r\n\r\n",
        ] {
            let mut connection = Connection::open(addr);
            connection.send(request.as_bytes());
            let response = answer_then_close(&mut connection);
            expect_problem(&response, 400, "malformed_request");
        }
        // A malformed request after a good one on the same connection.
        let mut connection = Connection::open(addr);
        assert_eq!(connection.get("/health/live").status, 200);
        connection.send(b"GET /health/live HTTP/1.1\r\nHost orgsvc\r\n\r\n");
        let response = answer_then_close(&mut connection);
        expect_problem(&response, 400, "malformed_request");
    })
    .await;
}

#[actix_web::test]
async fn too_many_header_fields_are_a_431_problem() {
    with_service(&[], |addr| {
        let mut request = String::from("GET /health/live HTTP/1.1\r\nHost: orgsvc\r\n");
        for index in 0..120 {
            request.push_str(&format!("X-Field-{index}: {index}\r\n"));
        }
        request.push_str("\r\n");
        let mut connection = Connection::open(addr);
        connection.send(request.as_bytes());
        let response = answer_then_close(&mut connection);
        expect_problem(&response, 431, "header_fields_too_large");
    })
    .await;
}

#[actix_web::test]
async fn a_stalled_request_head_is_a_408_problem() {
    let env = [("ORGSVC__SERVER__HEADER_READ_TIMEOUT_SECS", "1")];
    with_service(&env, |addr| {
        let mut connection = Connection::open(addr);
        let started = Instant::now();
        connection.send(b"GET /health/live HTTP/1.1\r\nHost: orgsvc\r\n");
        let response = answer_then_close(&mut connection);
        expect_problem(&response, 408, "request_timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
    })
    .await;
}

#[actix_web::test]
async fn a_stalled_head_of_a_later_request_on_a_kept_alive_connection_is_a_408_problem() {
    let env = [("ORGSVC__SERVER__HEADER_READ_TIMEOUT_SECS", "1")];
    with_service(&env, |addr| {
        let mut connection = Connection::open(addr);
        assert_eq!(connection.get("/health/live").status, 200);
        connection.send(b"GET /health/live HTTP/1.1\r\nHo");
        let response = answer_then_close(&mut connection);
        expect_problem(&response, 408, "request_timeout");
    })
    .await;
}

#[actix_web::test]
async fn a_stalled_request_body_is_a_408_problem_and_the_connection_closes() {
    let env = [("ORGSVC__SERVER__BODY_READ_TIMEOUT_SECS", "1")];
    with_service(&env, |addr| {
        let mut connection = Connection::open(addr);
        connection.send(
            b"POST /org/create HTTP/1.1\r\nHost: orgsvc\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"organiz",
        );
        let response = answer_then_close(&mut connection);
        expect_problem(&response, 408, "request_timeout");
    })
    .await;
}

#[actix_web::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let env = [("ORGSVC__SERVER__KEEP_ALIVE_SECS", "1")];
    with_service(&env, |addr| {
        let mut connection = Connection::open(addr);
        assert_eq!(connection.get("/health/live").status, 200);
        let started = Instant::now();
        assert!(connection.response().is_none(), "an answer without request");
        assert!(started.elapsed() < Duration::from_secs(5));
    })
    .await;
}

/// Opens connections until one is answered (or closed) instead of served:
/// `/health/live` answers on each while it is served.
fn open_served(addr: SocketAddr) -> Connection {
    let mut connection = Connection::open(addr);
    assert_eq!(connection.get("/health/live").status, 200);
    connection
}

#[actix_web::test]
async fn connections_per_client_ip_are_limited_and_released_on_close() {
    let env = [("ORGSVC__SERVER__MAX_CONNECTIONS_PER_IP", "3")];
    with_service(&env, |addr| {
        let held: Vec<Connection> = (0..3).map(|_| open_served(addr)).collect();
        let mut fourth = Connection::open(addr);
        let response = fourth
            .response()
            .expect("the connection over the limit closed without an answer");
        let problem = expect_problem(&response, 429, "too_many_connections");
        assert_eq!(
            response.header("retry-after"),
            Some("1"),
            "a refused client is told when to come back: {response:?}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains('3'),
            "{problem}"
        );
        assert!(fourth.response().is_none());
        // Closing one frees its place (once the server has seen the close).
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut connection = Connection::open(addr);
            connection.send(b"GET /health/live HTTP/1.1\r\nHost: orgsvc\r\n\r\n");
            match connection.response() {
                Some(response) if response.status == 200 => break,
                Some(response) => assert_eq!(response.status, 429, "{response:?}"),
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "closed connections were not released"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await;
}

#[actix_web::test]
async fn connections_of_a_trusted_proxy_are_not_limited() {
    let env = [
        ("ORGSVC__SERVER__MAX_CONNECTIONS_PER_IP", "2"),
        ("ORGSVC__SECURITY__TRUSTED_PROXIES", "127.0.0.1"),
    ];
    with_service(&env, |addr| {
        let _held: Vec<Connection> = (0..5).map(|_| open_served(addr)).collect();
    })
    .await;
}

/// The issue's drill, smaller: many connections stop mid-body; once the
/// body timeout has passed, each got its 408 and `/health/live` answers.
#[actix_web::test]
async fn clients_stalled_mid_body_are_answered_408_and_do_not_starve_the_service() {
    let env = [
        ("ORGSVC__SERVER__BODY_READ_TIMEOUT_SECS", "1"),
        ("ORGSVC__SERVER__MAX_CONNECTIONS_PER_IP", "0"),
    ];
    with_service(&env, |addr| {
        let mut stalled: Vec<Connection> = (0..50)
            .map(|_| {
                let mut connection = Connection::open(addr);
                connection.send(
                    b"POST /org/create HTTP/1.1\r\nHost: orgsvc\r\nContent-Type: application/json\r\n\
                      Content-Length: 100\r\n\r\n{\"organiz",
                );
                connection
            })
            .collect();
        for connection in &mut stalled {
            let response = answer_then_close(connection);
            expect_problem(&response, 408, "request_timeout");
        }
        // `Connection` reads with a 10 s timeout: the probe must answer.
        let mut probe = Connection::open(addr);
        assert_eq!(probe.get("/health/live").status, 200);
    })
    .await;
}

fn create_body(json: &str) -> TestRequest {
    TestRequest::post()
        .uri("/org/create")
        .insert_header(("Content-Type", "application/json"))
        .set_payload(json.to_owned())
}

#[actix_web::test]
async fn a_duplicated_key_is_a_422_naming_it_with_a_json_pointer() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let body = format!(
        r#"{{"organization_name": "Acme", "email": "a@acme.example", "email": "b@acme.example", "password": "{PASSWORD}"}}"#
    );
    let problem = app
        .send(create_body(&body))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(problem["errors"][0]["field"], "/email", "{problem}");
    assert!(problem["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("more than once"));
    app.get_org("Acme").await.expect(404, None);

    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let problem = app
        .send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(r#"{"admin": {"email": "x", "name": "y", "email": "z"}}"#),
        )
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(problem["errors"][0]["field"], "/admin/email", "{problem}");
}

#[actix_web::test]
async fn a_number_out_of_range_is_a_422_naming_it_with_a_json_pointer() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let problem = app
        .send(create_body(r#"{"organization_name": 1e400}"#))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(
        problem["errors"][0]["field"], "/organization_name",
        "{problem}"
    );
    assert!(problem["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("out of range"));

    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let problem = app
        .send(
            TestRequest::post()
                .uri("/org/data")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(r#"{"tags": ["a", {"n": -1e999}]}"#),
        )
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(problem["errors"][0]["field"], "/tags/1/n", "{problem}");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("2^63"),
        "{problem}"
    );
}

#[actix_web::test]
async fn a_syntax_error_inside_a_member_names_it_with_a_json_pointer() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let problem = app
        .send(create_body(
            r#"{"organization_name": "Acme", "email": [1, }"#,
        ))
        .await
        .expect(400, Some("malformed_json"));
    assert_eq!(problem["errors"][0]["field"], "/email/1", "{problem}");
    let problem = app
        .send(create_body(r#"{"organization_name": "Acme""#))
        .await
        .expect(400, Some("malformed_json"));
    assert!(
        problem["detail"].as_str().unwrap().contains("EOF"),
        "{problem}"
    );
}
