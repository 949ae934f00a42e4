//! Login protection: per-email lockout, per-client-IP rate limiting, the
//! audit trail of logins, and rehashing after an argon2 parameter change.

use std::str::FromStr;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use futures_util::future::join_all;
use orgsvc_auth::Argon2Params;
use orgsvc_domain::{AdminEmail, AdminId, AuditAction, AuditEvent, AuditQuery, OrganizationId};
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestResponse, PASSWORD};

const WRONG: &str = "not the password";

/// Three failures allowed, then a 60 s lock.
const LOCKOUT: &[(&str, &str)] = &[
    ("ORGSVC__SECURITY__LOGIN_MAX_FAILURES", "3"),
    ("ORGSVC__SECURITY__LOGIN_LOCK_SECS", "60"),
    ("ORGSVC__SECURITY__LOGIN_MAX_LOCK_SECS", "120"),
];

/// One call a minute after a burst of two.
const TINY_RATE: &[(&str, &str)] = &[
    ("ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE", "1"),
    ("ORGSVC__SECURITY__LOGIN_RATE_BURST", "2"),
];

/// One call a minute after a burst of four; shared via the store, four calls
/// per 4-minute window.
const FOUR_A_WINDOW: &[(&str, &str)] = &[
    ("ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE", "1"),
    ("ORGSVC__SECURITY__LOGIN_RATE_BURST", "4"),
];

backend_suite!(
    failed_logins_lock_the_email_even_for_the_right_password,
    parallel_wrong_logins_cannot_exceed_the_limit,
    an_unknown_email_locks_the_same_way,
    a_successful_login_resets_the_failure_count,
    logins_are_audited_with_request_id_and_client_ip,
    login_and_refresh_are_rate_limited_per_client_ip,
    forwarded_for_names_the_client_only_when_trusted,
    clients_behind_trusted_proxies_are_limited_and_audited_apart,
    a_login_rehashes_the_password_after_an_argon2_parameter_change,
);

async fn lockout_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, LOCKOUT).await
}

/// Creates an organization; answers its id and its admin's id.
async fn create(app: &TestApp, name: &str, email: &str) -> (OrganizationId, AdminId) {
    let created = app.create_org(name, email).await.expect(201, None);
    (
        OrganizationId::from_str(created["id"].as_str().unwrap()).unwrap(),
        AdminId::from_str(created["admin_id"].as_str().unwrap()).unwrap(),
    )
}

/// `POST /admin/login` from `client` (`ip:port`), with optional headers.
async fn login_from(
    app: &TestApp,
    client: &str,
    headers: &[(&str, &str)],
    email: &str,
    password: &str,
) -> TestResponse {
    let mut request = TestRequest::post()
        .uri("/admin/login")
        .peer_addr(client.parse().unwrap())
        .set_json(json!({"email": email, "password": password}));
    for header in headers {
        request = request.insert_header(*header);
    }
    app.send(request).await
}

/// The `Retry-After` of a 429 with `code`, in seconds.
#[track_caller]
fn retry_after(response: &TestResponse, code: &str) -> u64 {
    response.expect(429, Some(code));
    response.header("retry-after").unwrap().parse().unwrap()
}

/// The organization's audit log once `done` holds for it (recording may
/// finish after the answer); fails after 10 s.
async fn audited(
    app: &TestApp,
    organization: OrganizationId,
    done: impl Fn(&[AuditEvent]) -> bool,
) -> Vec<AuditEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = app
            .store
            .audit_events(organization, AuditQuery::default())
            .await
            .unwrap()
            .events;
        if done(&events) {
            return events;
        }
        assert!(Instant::now() < deadline, "not recorded: {events:?}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(events: &[AuditEvent], action: AuditAction) -> usize {
    events.iter().filter(|event| event.action == action).count()
}

async fn failed_logins_lock_the_email_even_for_the_right_password(backend: Backend) {
    let app = lockout_app(backend).await;
    create(&app, "Acme", "admin@acme.example").await;
    for _ in 0..3 {
        app.login("admin@acme.example", WRONG)
            .await
            .expect(401, Some("invalid_credentials"));
    }
    for _ in 0..2 {
        let locked = app.login("admin@acme.example", PASSWORD).await;
        let seconds = retry_after(&locked, "login_locked");
        assert!((50..=60).contains(&seconds), "Retry-After: {seconds}");
    }
    // Other emails are not affected.
    create(&app, "Globex", "admin@globex.example").await;
    app.login("admin@globex.example", PASSWORD)
        .await
        .expect(200, None);
}

async fn parallel_wrong_logins_cannot_exceed_the_limit(backend: Backend) {
    let app = lockout_app(backend).await;
    create(&app, "Acme", "admin@acme.example").await;
    let answers = join_all((0..12).map(|_| app.login("admin@acme.example", WRONG))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    let refused = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((refused, locked), (3, 9), "{statuses:?}");
    retry_after(
        &app.login("admin@acme.example", PASSWORD).await,
        "login_locked",
    );
}

async fn an_unknown_email_locks_the_same_way(backend: Backend) {
    let app = lockout_app(backend).await;
    create(&app, "Acme", "admin@acme.example").await;
    let mut answers = Vec::new();
    for email in ["admin@acme.example", "nobody@acme.example"] {
        let mut failures = Vec::new();
        for _ in 0..3 {
            failures.push(app.login(email, WRONG).await);
        }
        let locked = app.login(email, PASSWORD).await;
        answers.push((failures, locked));
    }
    let (known, unknown) = (&answers[0], &answers[1]);
    for (a, b) in known.0.iter().zip(&unknown.0) {
        a.expect(401, Some("invalid_credentials"));
        assert_eq!(a.body, b.body);
        assert_eq!(a.header("www-authenticate"), b.header("www-authenticate"));
    }
    let known_wait = retry_after(&known.1, "login_locked");
    let unknown_wait = retry_after(&unknown.1, "login_locked");
    assert!(known_wait.abs_diff(unknown_wait) <= 1);
    assert_eq!(known.1.json()["title"], unknown.1.json()["title"]);
}

async fn a_successful_login_resets_the_failure_count(backend: Backend) {
    let app = lockout_app(backend).await;
    create(&app, "Acme", "admin@acme.example").await;
    for _ in 0..3 {
        for _ in 0..2 {
            app.login("admin@acme.example", WRONG)
                .await
                .expect(401, Some("invalid_credentials"));
        }
        app.login("admin@acme.example", PASSWORD)
            .await
            .expect(200, None);
    }
}

async fn logins_are_audited_with_request_id_and_client_ip(backend: Backend) {
    let app = lockout_app(backend).await;
    let (org, admin) = create(&app, "Acme", "admin@acme.example").await;
    let client = "192.0.2.10:40000";
    login_from(&app, client, &[], "admin@acme.example", PASSWORD)
        .await
        .expect(200, None);
    for _ in 0..3 {
        login_from(&app, client, &[], "admin@acme.example", WRONG)
            .await
            .expect(401, None);
    }
    for _ in 0..2 {
        login_from(&app, client, &[], "admin@acme.example", PASSWORD)
            .await
            .expect(429, Some("login_locked"));
    }

    let events = audited(&app, org, |events| {
        count(events, AuditAction::LoginFailed) == 3 && count(events, AuditAction::LoginLocked) == 1
    })
    .await;
    assert_eq!(count(&events, AuditAction::LoginSucceeded), 1, "{events:?}");
    for event in &events {
        if !matches!(
            event.action,
            AuditAction::LoginSucceeded | AuditAction::LoginFailed | AuditAction::LoginLocked
        ) {
            continue;
        }
        assert_eq!(event.target, admin.to_string(), "{event:?}");
        let signed_in = event.action == AuditAction::LoginSucceeded;
        assert_eq!(event.actor, signed_in.then_some(admin), "{event:?}");
        assert_eq!(event.client_ip.as_deref(), Some("192.0.2.10"), "{event:?}");
        assert!(event.request_id.is_some(), "{event:?}");
    }
}

async fn login_and_refresh_are_rate_limited_per_client_ip(backend: Backend) {
    let app = TestApp::spawn_with(backend, TINY_RATE).await;
    create(&app, "Acme", "admin@acme.example").await;
    let (a, b) = ("198.51.100.1:50000", "198.51.100.2:50000");
    let body = login_from(&app, a, &[], "admin@acme.example", PASSWORD)
        .await
        .expect(200, None);
    login_from(&app, a, &[], "admin@acme.example", WRONG)
        .await
        .expect(401, None);

    let limited = login_from(&app, a, &[], "admin@acme.example", PASSWORD).await;
    let seconds = retry_after(&limited, "rate_limited");
    match backend {
        // In process (GCRA), the next call is a minute away.
        Backend::Embedded => assert!((1..=60).contains(&seconds), "Retry-After: {seconds}"),
        // Shared via the store, at the end of the 2-minute window (the
        // test clock stands at its start).
        Backend::Mongodb => assert_eq!(seconds, 120),
    }
    // Checked before the body is read, and shared with the refresh.
    let malformed = TestRequest::post()
        .uri("/admin/login")
        .peer_addr(a.parse().unwrap())
        .insert_header(("content-type", "application/json"))
        .set_payload("{");
    retry_after(&app.send(malformed).await, "rate_limited");
    let refresh = TestRequest::post()
        .uri("/admin/refresh")
        .peer_addr(a.parse().unwrap())
        .set_json(json!({"refresh_token": body["refresh_token"]}));
    retry_after(&app.send(refresh).await, "rate_limited");
    // Logout is not limited; other clients are not affected.
    let logout = TestRequest::post()
        .uri("/admin/logout")
        .peer_addr(a.parse().unwrap())
        .set_json(json!({"refresh_token": "unknown"}));
    app.send(logout).await.expect(204, None);
    login_from(&app, b, &[], "admin@acme.example", PASSWORD)
        .await
        .expect(200, None);
}

async fn forwarded_for_names_the_client_only_when_trusted(backend: Backend) {
    let one_call = [
        ("ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE", "1"),
        ("ORGSVC__SECURITY__LOGIN_RATE_BURST", "1"),
    ];
    let proxy = "10.0.0.1:443";
    let from = |client| [("x-forwarded-for", client)];

    let untrusting = TestApp::spawn_with(backend, &one_call).await;
    let email = "nobody@acme.example";
    login_from(&untrusting, proxy, &from("203.0.113.1"), email, WRONG)
        .await
        .expect(401, None);
    // Without trust, the header is the client's word: the proxy is limited.
    let limited = login_from(&untrusting, proxy, &from("203.0.113.2"), email, WRONG).await;
    retry_after(&limited, "rate_limited");

    let mut trusting_env = one_call.to_vec();
    trusting_env.push(("ORGSVC__SECURITY__TRUST_FORWARDED_FOR", "true"));
    let trusting = TestApp::spawn_with(backend, &trusting_env).await;
    login_from(&trusting, proxy, &from("203.0.113.1"), email, WRONG)
        .await
        .expect(401, None);
    login_from(&trusting, proxy, &from("203.0.113.2"), email, WRONG)
        .await
        .expect(401, None);
    // Only the last entry (the one the proxy appended) counts.
    let spoofed = from("203.0.113.9, 203.0.113.1");
    let limited = login_from(&trusting, proxy, &spoofed, email, WRONG).await;
    retry_after(&limited, "rate_limited");
}

async fn clients_behind_trusted_proxies_are_limited_and_audited_apart(backend: Backend) {
    let env = [
        ("ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE", "1"),
        ("ORGSVC__SECURITY__LOGIN_RATE_BURST", "1"),
        (
            "ORGSVC__SECURITY__TRUSTED_PROXIES",
            "127.0.0.1/32,10.0.0.0/8",
        ),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    let (org, _) = create(&app, "Acme", "admin@acme.example").await;
    let email = "admin@acme.example";
    let proxy = "10.0.0.1:443";
    // Through two trusted proxies, the first writing `IP:port`.
    let a = [(
        "x-forwarded-for",
        "198.51.100.9, 203.0.113.1:5000, 10.0.0.2",
    )];
    // RFC 7239, quoted `[IPv6]:port`.
    let b = [("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")];
    login_from(&app, proxy, &a, email, WRONG)
        .await
        .expect(401, None);
    login_from(&app, proxy, &b, email, WRONG)
        .await
        .expect(401, None);
    // An untrusted peer's headers are its own word: it is the client.
    let direct = "192.0.2.50:40000";
    login_from(
        &app,
        direct,
        &[("x-forwarded-for", "203.0.113.1")],
        email,
        WRONG,
    )
    .await
    .expect(401, None);
    // Each client has its own budget, used up now.
    retry_after(
        &login_from(&app, proxy, &a, email, WRONG).await,
        "rate_limited",
    );
    retry_after(
        &login_from(&app, proxy, &b, email, WRONG).await,
        "rate_limited",
    );

    let events = audited(&app, org, |events| {
        count(events, AuditAction::LoginFailed) == 3
    })
    .await;
    let mut ips: Vec<_> = events
        .iter()
        .filter(|event| event.action == AuditAction::LoginFailed)
        .filter_map(|event| event.client_ip.clone())
        .collect();
    ips.sort();
    assert_eq!(
        ips,
        ["192.0.2.50", "2001:db8::1", "203.0.113.1"],
        "{events:?}"
    );
}

async fn a_login_rehashes_the_password_after_an_argon2_parameter_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = AdminEmail::parse("admin@acme.example").unwrap();
    create(&app, "Acme", email.as_str()).await;
    let stored = || async {
        app.store
            .admin_credentials_by_email(&email)
            .await
            .unwrap()
            .unwrap()
    };
    let before = stored().await;
    let old_params = "$argon2id$v=19$m=256,t=1,p=1$";
    assert!(before.password_hash.as_phc_str().starts_with(old_params));
    let old_token = app.token(email.as_str(), PASSWORD).await;

    // The same store, served again with stronger parameters.
    let mut settings = app.settings.clone();
    settings.auth.argon2 = Argon2Params {
        memory_kib: 512,
        iterations: 2,
        parallelism: 1,
    };
    let restarted =
        TestApp::with_store(settings, app.store.clone(), tempfile::tempdir().unwrap()).await;
    restarted
        .login(email.as_str(), PASSWORD)
        .await
        .expect(200, None);

    let new_params = "$argon2id$v=19$m=512,t=2,p=1$";
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let credentials = stored().await;
        if credentials
            .password_hash
            .as_phc_str()
            .starts_with(new_params)
        {
            break credentials;
        }
        assert!(Instant::now() < deadline, "the password was not rehashed");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    // A rehash is no password change: tokens stay valid.
    assert_eq!(after.admin, before.admin);
    restarted
        .send(
            TestRequest::get()
                .uri("/org/data")
                .insert_header(("Authorization", format!("Bearer {old_token}"))),
        )
        .await
        .expect(200, None);
    restarted
        .login(email.as_str(), PASSWORD)
        .await
        .expect(200, None);
    restarted
        .login(email.as_str(), WRONG)
        .await
        .expect(401, Some("invalid_credentials"));
}

/// Logs in from `client` through each app in turn, `rounds` times; answers
/// the successes per app and the `Retry-After` of every refusal.
async fn logins_round_robin(
    apps: &[TestApp],
    client: &str,
    rounds: usize,
) -> (Vec<usize>, Vec<u64>) {
    let mut allowed = vec![0; apps.len()];
    let mut waits = Vec::new();
    for _ in 0..rounds {
        for (n, app) in apps.iter().enumerate() {
            let answer = login_from(app, client, &[], "admin@acme.example", PASSWORD).await;
            if answer.status.is_success() {
                allowed[n] += 1;
            } else {
                waits.push(retry_after(&answer, "rate_limited"));
            }
        }
    }
    (allowed, waits)
}

#[actix_web::test]
async fn three_instances_on_one_mongodb_allow_the_configured_budget_between_them() {
    let apps = TestApp::spawn_instances(Backend::Mongodb, FOUR_A_WINDOW, 3).await;
    create(&apps[0], "Acme", "admin@acme.example").await;
    let client = "198.51.100.9:50000";

    let (allowed, waits) = logins_round_robin(&apps, client, 4).await;
    assert_eq!(allowed.iter().sum::<usize>(), 4, "{allowed:?}");
    // Refused until the window ends: the whole window, as the clock stands
    // at its start.
    assert_eq!(waits, [240; 8]);
    // Parallel calls through all three cannot exceed it either.
    let other = "198.51.100.10:50000";
    let parallel =
        (0..12).map(|n| login_from(&apps[n % 3], other, &[], "admin@acme.example", PASSWORD));
    let answers = join_all(parallel).await;
    let successes = answers.iter().filter(|a| a.status.is_success()).count();
    assert_eq!(successes, 4);

    // Once the window has ended, the budget is back, once.
    apps[0].clock.advance(Duration::from_secs(239));
    let (allowed, _) = logins_round_robin(&apps, client, 1).await;
    assert_eq!(allowed, [0, 0, 0]);
    apps[0].clock.advance(Duration::from_secs(1));
    let (allowed, waits) = logins_round_robin(&apps, client, 2).await;
    assert_eq!(allowed.iter().sum::<usize>(), 4, "{allowed:?}");
    assert_eq!(waits, [240; 2]);
}

#[actix_web::test]
async fn the_embedded_store_keeps_its_limit_in_process() {
    let apps = TestApp::spawn_instances(Backend::Embedded, FOUR_A_WINDOW, 3).await;
    create(&apps[0], "Acme", "admin@acme.example").await;
    // Each app counts its own calls (one process per store file in
    // production), ...
    let (allowed, waits) = logins_round_robin(&apps, "198.51.100.9:50000", 5).await;
    assert_eq!(allowed, [4, 4, 4]);
    // ... GCRA: after the burst, the next call is a minute away (less the
    // time the calls took), not the 4 minutes of a shared window.
    assert_eq!(waits.len(), 3);
    assert!(
        waits.iter().all(|wait| (50..=60).contains(wait)),
        "{waits:?}"
    );
}

#[actix_web::test]
async fn throttling_answers_are_documented_with_retry_after() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let document = app
        .send(TestRequest::get().uri("/openapi.json"))
        .await
        .expect(200, None);
    for (path, codes) in [
        ("/admin/login", &["rate_limited", "login_locked"][..]),
        ("/admin/refresh", &["rate_limited"][..]),
    ] {
        let reference = document["paths"][path]["post"]["responses"]["429"]["$ref"]
            .as_str()
            .unwrap();
        let name = reference.rsplit('/').next().unwrap();
        let response = &document["components"]["responses"][name];
        assert!(response["headers"]["Retry-After"].is_object(), "{path}");
        let examples = &response["content"]["application/problem+json"]["examples"];
        for code in codes {
            assert_eq!(examples[code]["value"]["status"], 429, "{path} {code}");
        }
    }
}
