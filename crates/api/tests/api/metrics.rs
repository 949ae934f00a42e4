//! `GET /metrics` (`metrics.enabled`, `metrics.listen`): what a scrape
//! shows after some traffic, and where it is served.
//!
//! The recorder is process-global and the tests run in parallel, so counts
//! are compared as "at least": other apps of the process add to them too.

use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use actix_web::web;
use orgsvc_api::credentials::Credentials;
use orgsvc_api::metrics::{self as m, Metrics};
use orgsvc_api::openapi;
use orgsvc_api::startup::Service;
use orgsvc_api::state::AppState;
use orgsvc_domain::testing::Operation;
use orgsvc_domain::ReconcileReport;
use serde_json::json;

use crate::failures::broken_store;
use crate::helpers::{Backend, TestApp, PASSWORD};
use crate::shutdown::{settings, Connection};

backend_suite!(
    a_scrape_counts_requests_by_route_template_and_status_class,
    login_outcomes_and_refresh_token_reuse_are_counted,
);

const ENABLED: (&str, &str) = ("ORGSVC__METRICS__ENABLED", "true");

/// The sum of the samples of `name` whose labels include every one of
/// `labels`; `None` when there is none.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let matches = series_name == name
            && labels
                .iter()
                .all(|(key, wanted)| series_labels.contains(&format!("{key}=\"{wanted}\"")));
        if matches {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    found
}

/// `sample`, or 0 when there is none yet.
fn count(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// Scrapes the app's `/metrics`, checking status and content type.
async fn scrape(app: &TestApp) -> String {
    let response = app.send(TestRequest::get().uri("/metrics")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some(m::CONTENT_TYPE));
    String::from_utf8(response.body).unwrap()
}

async fn a_scrape_counts_requests_by_route_template_and_status_class(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[ENABLED]).await;
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    app.get_org("Acme").await.expect(200, None);
    let admin_id = uuid::Uuid::new_v4().to_string();
    app.send(
        TestRequest::get()
            .uri(&format!("/org/admins/{admin_id}"))
            .insert_header(("authorization", format!("Bearer {token}"))),
    )
    .await
    .expect(404, None);
    let unknown = uuid::Uuid::new_v4().to_string();
    app.send(TestRequest::get().uri(&format!("/no/such/{unknown}")))
        .await
        .expect(404, Some("not_found"));

    let text = scrape(&app).await;
    for (name, kind) in [
        (m::HTTP_REQUESTS, "counter"),
        (m::HTTP_REQUEST_DURATION, "histogram"),
        (m::HTTP_IN_FLIGHT, "gauge"),
        (m::STORE_DURATION, "histogram"),
        (m::HASH_QUEUE_WAIT, "histogram"),
        (m::HASH_IN_USE, "gauge"),
        (m::HASH_CAPACITY, "gauge"),
        (m::HASH_WAITING, "gauge"),
        (m::LOGIN_ATTEMPTS, "counter"),
        (m::REFRESH_TOKEN_REUSE, "counter"),
        (m::RECONCILE_RUNS, "counter"),
        (m::RECONCILE_REPAIRS, "counter"),
        (m::BUILD_INFO, "gauge"),
    ] {
        let type_line = format!("# TYPE {name} {kind}");
        assert!(
            text.lines().any(|line| line == type_line),
            "no `{type_line}` in:\n{text}"
        );
    }
    let get_org = [
        ("method", "GET"),
        ("route", "/org/get"),
        ("status_class", "2xx"),
    ];
    assert!(count(&text, m::HTTP_REQUESTS, &get_org) >= 1.0);
    let duration_count = format!("{}_count", m::HTTP_REQUEST_DURATION);
    assert!(count(&text, &duration_count, &get_org) >= 1.0);
    let create = [
        ("method", "POST"),
        ("route", "/org/create"),
        ("status_class", "2xx"),
    ];
    assert!(count(&text, m::HTTP_REQUESTS, &create) >= 1.0);
    // Route templates, never raw paths.
    let admin = [("route", "/org/admins/{id}"), ("status_class", "4xx")];
    assert!(count(&text, m::HTTP_REQUESTS, &admin) >= 1.0);
    let unmatched = [("route", "unmatched"), ("status_class", "4xx")];
    assert!(count(&text, m::HTTP_REQUESTS, &unmatched) >= 1.0);
    assert!(!text.contains(&admin_id) && !text.contains(&unknown));
    // This scrape is in flight while it renders.
    assert!(count(&text, m::HTTP_IN_FLIGHT, &[]) >= 1.0);
    // Store calls are timed by operation; hashing reports its queue.
    let store_count = format!("{}_count", m::STORE_DURATION);
    for operation in ["create_organization", "organization_by_name", "admin_by_id"] {
        assert!(
            count(&text, &store_count, &[("operation", operation)]) >= 1.0,
            "{operation} not timed"
        );
    }
    let wait_count = format!("{}_count", m::HASH_QUEUE_WAIT);
    assert!(
        count(&text, &wait_count, &[]) >= 2.0,
        "create and login hash"
    );
    assert_eq!(
        sample(&text, m::HASH_CAPACITY, &[]),
        Some(app.settings.hashing_concurrency() as f64)
    );
    assert_eq!(
        sample(
            &text,
            m::BUILD_INFO,
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // The key ring follows the stored set: its first version, no failure,
    // refreshed (started) within the last minute.
    assert_eq!(sample(&text, m::SIGNING_KEY_SET_VERSION, &[]), Some(1.0));
    assert_eq!(
        sample(&text, m::SIGNING_KEY_REFRESH_FAILURES, &[]),
        Some(0.0)
    );
    let refreshed = sample(&text, m::SIGNING_KEY_LAST_REFRESH, &[]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 60.0..=now + 1.0).contains(&refreshed),
        "{refreshed} vs {now}"
    );
}

async fn login_outcomes_and_refresh_token_reuse_are_counted(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[ENABLED, ("ORGSVC__SECURITY__LOGIN_MAX_FAILURES", "1")],
    )
    .await;
    app.create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let outcome =
        |text: &str, outcome: &str| count(text, m::LOGIN_ATTEMPTS, &[("outcome", outcome)]);
    let before = scrape(&app).await;

    let tokens = app
        .login("admin@acme.example", PASSWORD)
        .await
        .expect(200, None);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    app.refresh(refresh).await.expect(200, None);
    app.refresh(refresh)
        .await
        .expect(401, Some("invalid_refresh_token"));
    app.login("admin@acme.example", "wrong password!")
        .await
        .expect(401, Some("invalid_credentials"));
    app.login("admin@acme.example", PASSWORD)
        .await
        .expect(429, Some("login_locked"));
    // A malformed request reaches no decision: not an attempt.
    app.send(
        TestRequest::post()
            .uri("/admin/login")
            .set_json(json!({"email": "admin@acme.example"})),
    )
    .await
    .expect(422, None);

    let after = scrape(&app).await;
    for name in ["succeeded", "failed", "locked"] {
        assert!(
            outcome(&after, name) >= outcome(&before, name) + 1.0,
            "{name}: {} -> {}",
            outcome(&before, name),
            outcome(&after, name)
        );
    }
    assert!(
        count(&after, m::REFRESH_TOKEN_REUSE, &[])
            >= count(&before, m::REFRESH_TOKEN_REUSE, &[]) + 1.0
    );

    let limited = TestApp::spawn_with(
        backend,
        &[
            ENABLED,
            ("ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE", "1"),
            ("ORGSVC__SECURITY__LOGIN_RATE_BURST", "1"),
        ],
    )
    .await;
    let before = scrape(&limited).await;
    let client = "198.51.100.7:50000".parse().unwrap();
    for status in [401, 429] {
        let login = TestRequest::post()
            .uri("/admin/login")
            .peer_addr(client)
            .set_json(json!({"email": "nobody@acme.example", "password": PASSWORD}));
        limited.send(login).await.expect(status, None);
    }
    let after = scrape(&limited).await;
    assert!(outcome(&after, "rate_limited") >= outcome(&before, "rate_limited") + 1.0);
}

#[actix_web::test]
async fn metrics_is_a_404_problem_when_disabled() {
    let app = TestApp::spawn(Backend::Embedded).await;
    for request in [
        TestRequest::get(),
        TestRequest::default().method(actix_web::http::Method::HEAD),
    ] {
        app.send(request.uri("/metrics")).await.expect(404, None);
    }
    app.send(TestRequest::get().uri("/metrics"))
        .await
        .expect(404, Some("not_found"));
}

#[test]
fn metrics_is_not_part_of_the_openapi_document() {
    let document = serde_json::to_value(openapi::document()).unwrap();
    assert!(document["paths"]["/org/get"].is_object());
    assert!(document["paths"].get("/metrics").is_none());
}

#[actix_web::test]
async fn metrics_listen_serves_metrics_on_its_own_port_only() {
    let settings = settings(&[
        ENABLED,
        ("ORGSVC__METRICS__LISTEN", "127.0.0.1:0"),
        ("ORGSVC__AUTH__HASHING_CONCURRENCY", "2"),
        ("ORGSVC__SERVER__SHUTDOWN_TIMEOUT_SECS", "2"),
    ]);
    let metrics = Metrics::from_settings(&settings.metrics).unwrap().unwrap();
    let credentials = Credentials::from_settings(&settings).unwrap();
    let baseline = metrics.render(credentials.hasher.pool_usage(), None);
    // Every call fails, but reconciliation reports repairs.
    let store = broken_store();
    store.heal(Operation::Reconcile);
    store.reconcile_reports(ReconcileReport {
        completed: 2,
        rolled_back: 1,
    });
    let state = AppState::new(&settings, store.clone(), credentials).with_metrics(metrics);
    let service = Service::start(&settings, web::Data::new(state), true, None).unwrap();
    let main = service.addrs()[0];
    let apart = service.metrics_addrs()[0];
    assert_ne!(main.port(), apart.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = actix_web::rt::spawn(service.serve_until(async {
        let _ = stopped.await;
    }));

    let runs = |text: &str| count(text, m::RECONCILE_RUNS, &[("result", "ok")]);
    let repaired = |text: &str, baseline: &str| {
        [("completed", 2.0), ("rolled_back", 1.0)]
            .into_iter()
            .all(|(repair, repaired)| {
                let labels = [("repair", repair)];
                count(text, m::RECONCILE_REPAIRS, &labels)
                    >= count(baseline, m::RECONCILE_REPAIRS, &labels) + repaired
            })
    };
    let (on_main, other_path, text) = actix_web::rt::task::spawn_blocking(move || {
        let on_main = Connection::open(main).get("/metrics");
        let other_path = Connection::open(apart).get("/org/get");
        // The first reconciliation runs as the service starts.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let scraped = Connection::open(apart).get("/metrics");
            assert_eq!(scraped.status, 200);
            assert_eq!(
                scraped.headers.get("content-type").map(String::as_str),
                Some(m::CONTENT_TYPE)
            );
            let text = String::from_utf8(scraped.body).unwrap();
            let counted = runs(&text) > runs(&baseline) && repaired(&text, &baseline);
            if counted || Instant::now() > deadline {
                break (on_main, other_path, (baseline, text));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();

    assert_eq!(on_main.status, 404, "the main port serves /metrics");
    assert_eq!(other_path.status, 404, "the metrics port serves the API");
    let (baseline, text) = text;
    assert!(runs(&text) > runs(&baseline), "no reconciliation counted");
    assert!(repaired(&text, &baseline), "the repairs were not counted");
    // Timing the store keeps its behaviour: shutdown still reaches it.
    assert_eq!(store.drains().len(), 1);
}
