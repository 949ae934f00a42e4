//! `TestApp`: the real application in process, on a fresh store, with typed
//! helpers and checks every response must pass.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::web;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use orgsvc_api::config::Settings;
use orgsvc_api::credentials::Credentials;
use orgsvc_api::metrics::Metrics;
use orgsvc_api::openapi;
use orgsvc_api::rate_limit::LoginRateLimiter;
use orgsvc_api::startup::app;
use orgsvc_api::state::AppState;
use orgsvc_api::store_selection::SelectedStore;
use orgsvc_app::signing_keys::SigningKeys;
use orgsvc_domain::{SharedRateLimits, TenantStore};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The signing secret of every test app, so tests can forge tokens.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret!";

/// The tests' `auth.key_encryption_secret`: access tokens are signed with
/// the stored key set (EdDSA by default); [`JWT_SECRET`] only verifies
/// "legacy" HS256 tokens without `kid`, as after a switch from HS256.
pub const KEY_ENCRYPTION_SECRET: &str = "test-key-encryption-secret-32-bytes!";
/// A password every test admin starts with.
pub const PASSWORD: &str = "correct horse battery staple";

/// Which store a test app runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// SQLite in a temporary directory.
    Embedded,
    /// A fresh database on `ORGSVC_TEST_MONGODB_URI`.
    Mongodb,
}

/// Sends a request to the in-process app; answers its method, path and the response.
type Call = Rc<
    dyn Fn(
        TestRequest,
    ) -> Pin<Box<dyn Future<Output = (Method, String, ServiceResponse<BoxBody>)>>>,
>;

/// The application under test.
pub struct TestApp {
    call: Call,
    /// The settings the app was built from.
    pub settings: Settings,
    /// The store the app serves (for checks that reach past the API).
    pub store: Arc<dyn TenantStore>,
    /// The wall clock of the app's credential rate limit when it is shared
    /// via the store (MongoDB); the in-process limiter keeps its own.
    pub clock: TestClock,
    /// The stored signing key set the app's tokens follow (refreshed only
    /// when a test calls `refresh`: no background task runs here).
    pub signing_keys: Option<SigningKeys>,
    openapi: Value,
    _dir: Arc<TempDir>,
}

/// A wall clock that stands still until a test moves it: it starts at the
/// next whole hour (a window start of every limit the tests use, and in the
/// future, so a TTL monitor leaves what is stored under it alone).
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    fn new() -> Self {
        let hour = TimeDelta::hours(1);
        let next_hour = Utc::now().duration_trunc(hour).unwrap() + hour;
        Self(Arc::new(Mutex::new(next_hour)))
    }

    /// The time the clock shows.
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += TimeDelta::from_std(by).unwrap();
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The size the body declared (HTTP/1.1 sends it as `Content-Length`);
    /// `None` for a streamed body.
    pub body_size: Option<u64>,
}

impl TestResponse {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// Asserts the status and, for errors, the problem `code`; returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> Value {
        let body = if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        };
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {body}"
        );
        if let Some(code) = code {
            assert_eq!(body["code"], code, "body: {body}");
        }
        body
    }
}

impl TestApp {
    /// A new app on an empty store of `backend`, configured (like the binary)
    /// through `Settings::load_from` with cheap argon2 parameters.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// Like [`TestApp::spawn`], with extra `ORGSVC__...` variables.
    pub async fn spawn_with(backend: Backend, extra_env: &[(&str, &str)]) -> Self {
        Self::spawn_instances(backend, extra_env, 1).await.remove(0)
    }

    /// `count` instances of the app on one store, as the binary would run
    /// them: on MongoDB each has its own connection (like a process of its
    /// own) to one shared database; the embedded store is opened once (one
    /// process per file) and served by each. Their credential rate limit is
    /// what the store selects, as in `startup::run`, on one [`TestClock`].
    pub async fn spawn_instances(
        backend: Backend,
        extra_env: &[(&str, &str)],
        count: usize,
    ) -> Vec<Self> {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let settings = test_settings(backend, extra_env, &dir);
        let clock = TestClock::new();
        let mut apps = Vec::new();
        match backend {
            Backend::Embedded => {
                let store = SelectedStore::open(&settings).await.unwrap();
                store.migrate().await.unwrap();
                let shared = store.shared_rate_limits();
                let store = store.into_shared();
                for _ in 0..count {
                    let shared = shared.clone();
                    let app = Self::build(&settings, store.clone(), shared, &clock, &dir);
                    apps.push(app.await);
                }
            }
            Backend::Mongodb => {
                for _ in 0..count {
                    let store = SelectedStore::open(&settings).await.unwrap();
                    store.migrate().await.unwrap();
                    let shared = store.shared_rate_limits();
                    let app = Self::build(&settings, store.into_shared(), shared, &clock, &dir);
                    apps.push(app.await);
                }
            }
        }
        apps
    }

    /// An app serving `store` with the tests' usual settings, e.g. an
    /// `InMemoryStore` or a `FaultyStore` around one: no infrastructure.
    pub async fn serving(store: Arc<dyn TenantStore>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = test_settings(Backend::Embedded, &[], &dir);
        Self::with_store(settings, store, dir).await
    }

    /// An app serving `store` with `settings` (credential rate limit in
    /// process).
    pub async fn with_store(settings: Settings, store: Arc<dyn TenantStore>, dir: TempDir) -> Self {
        Self::build(&settings, store, None, &TestClock::new(), &Arc::new(dir)).await
    }

    async fn build(
        settings: &Settings,
        store: Arc<dyn TenantStore>,
        shared_rate_limits: Option<Arc<dyn SharedRateLimits>>,
        clock: &TestClock,
        dir: &Arc<TempDir>,
    ) -> Self {
        let credentials = Credentials::load(settings, store.clone()).await.unwrap();
        let signing_keys = credentials.signing_keys.clone();
        let mut state = AppState::new(settings, store.clone(), credentials);
        if let Some(metrics) = Metrics::from_settings(&settings.metrics).unwrap() {
            state = state.with_metrics(metrics);
        }
        if let Some(shared) = shared_rate_limits {
            let reading = clock.clone();
            let operators = LoginRateLimiter::of_limit(settings.security.operator_rate_limit())
                .shared_via(shared.clone())
                .with_clock(Arc::new(move || reading.now()));
            state = state.with_operator_rate_limiter(operators);
            let reading = clock.clone();
            let limiter = LoginRateLimiter::shared(&settings.security, shared)
                .with_clock(Arc::new(move || reading.now()));
            state = state.with_login_rate_limiter(limiter);
        }
        let service = Rc::new(test::init_service(app(web::Data::new(state))).await);
        let call: Call = Rc::new(move |request: TestRequest| {
            let service = service.clone();
            Box::pin(async move {
                let request = request.to_request();
                let method = request.method().clone();
                let path = request.path().to_owned();
                match service.call(request).await {
                    Ok(response) => (method, path, response.map_into_boxed_body()),
                    Err(error) => {
                        panic!(
                            "the app answered with an error instead of a response: {error:?} ({})",
                            error.as_response_error().status_code()
                        )
                    }
                }
            })
        });
        Self {
            call,
            settings: settings.clone(),
            store,
            clock: clock.clone(),
            signing_keys,
            openapi: serde_json::to_value(openapi::document()).unwrap(),
            _dir: dir.clone(),
        }
    }

    /// Sends a request and checks what every response must satisfy: no 5xx,
    /// never a password hash, security headers and a request id, errors as
    /// problem documents, and a status documented for the operation.
    pub async fn send(&self, request: TestRequest) -> TestResponse {
        let response = self.send_unchecked(request).await;
        assert!(
            !response.status.is_server_error(),
            "client input produced a {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        response
    }

    /// Sends a request, checking everything [`TestApp::send`] does except the
    /// absence of 5xx.
    pub async fn send_unchecked(&self, request: TestRequest) -> TestResponse {
        let (method, path, response) = (self.call)(request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body_size = match response.response().body().size() {
            BodySize::Sized(size) => Some(size),
            BodySize::None => Some(0),
            BodySize::Stream => None,
        };
        let body = test::read_body(response).await.to_vec();
        let response = TestResponse {
            status,
            headers,
            body,
            body_size,
        };
        self.check_invariants(&method, &path, &response);
        response
    }

    fn check_invariants(&self, method: &Method, path: &str, response: &TestResponse) {
        let text = String::from_utf8_lossy(&response.body);
        assert!(
            !text.contains("$argon2"),
            "a response contains a password hash: {text}"
        );
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert!(response.header("x-request-id").is_some(), "no x-request-id");
        let is_error = response.status.is_client_error() || response.status.is_server_error();
        if is_error && !path.starts_with("/docs/") {
            assert_eq!(
                response.header("content-type"),
                Some("application/problem+json")
            );
        }
        if is_error && !path.starts_with("/docs/") && method != Method::HEAD {
            let problem = response.json();
            assert_eq!(problem["status"], response.status.as_u16(), "{problem}");
            for field in ["type", "title", "detail", "code"] {
                assert!(
                    problem[field].is_string(),
                    "problem without {field}: {problem}"
                );
            }
        }
        let operation = &self.openapi["paths"][path][method.as_str().to_ascii_lowercase()];
        if operation.is_object() {
            let status = response.status.as_str();
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} answered {status}, which its OpenAPI operation does not document"
            );
        }
    }

    /// `POST /org/create`.
    pub async fn create_org(&self, name: &str, email: &str) -> TestResponse {
        self.send(
            TestRequest::post()
                .uri("/org/create")
                .set_json(json!({"organization_name": name, "email": email, "password": PASSWORD})),
        )
        .await
    }

    /// `GET /org/get?organization_name=`.
    pub async fn get_org(&self, name: &str) -> TestResponse {
        self.send(TestRequest::get().uri(&format!("/org/get?organization_name={}", encode(name))))
            .await
    }

    /// `POST /admin/login`.
    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.send(
            TestRequest::post()
                .uri("/admin/login")
                .set_json(json!({"email": email, "password": password})),
        )
        .await
    }

    /// `PUT /org/update` with `token`.
    pub async fn update_org(&self, token: &str, body: Value) -> TestResponse {
        self.send(
            TestRequest::put()
                .uri("/org/update")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .set_json(body),
        )
        .await
    }

    /// `DELETE /org/delete?organization_name=` with `token`.
    pub async fn delete_org(&self, token: &str, name: &str) -> TestResponse {
        self.send(
            TestRequest::delete()
                .uri(&format!("/org/delete?organization_name={}", encode(name)))
                .insert_header(("Authorization", format!("Bearer {token}"))),
        )
        .await
    }

    /// `POST /admin/refresh` with `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.send(
            TestRequest::post()
                .uri("/admin/refresh")
                .set_json(json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// `POST /admin/logout` with `refresh_token`.
    pub async fn logout(&self, refresh_token: &str) -> TestResponse {
        self.send(
            TestRequest::post()
                .uri("/admin/logout")
                .set_json(json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// Creates an organization and logs its admin in; returns the token.
    pub async fn create_and_login(&self, name: &str, email: &str) -> String {
        self.create_org(name, email).await.expect(201, None);
        self.token(email, PASSWORD).await
    }

    /// Logs in and returns the access token.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let body = self.login(email, password).await.expect(200, None);
        body["access_token"].as_str().unwrap().to_owned()
    }
}

/// The settings of a test app on `backend` (configured, like the binary,
/// through `Settings::load_from`), with cheap argon2 parameters, a store in
/// `dir` or a fresh MongoDB database, and `extra_env` on top.
fn test_settings(backend: Backend, extra_env: &[(&str, &str)], dir: &TempDir) -> Settings {
    let mut env: HashMap<String, String> = [
        ("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "256"),
        ("ORGSVC__AUTH__ARGON2__ITERATIONS", "1"),
        ("ORGSVC__AUTH__ARGON2__PARALLELISM", "1"),
        ("ORGSVC__AUTH__HASHING_CONCURRENCY", "2"),
        ("ORGSVC__AUTH__JWT_SECRET", JWT_SECRET),
        ("ORGSVC__AUTH__KEY_ENCRYPTION_SECRET", KEY_ENCRYPTION_SECRET),
        ("ORGSVC__SERVER__MAX_BODY_BYTES", "4096"),
        // Tests log in often from one (absent) client address; the
        // rate-limit tests set their own, tiny, limits.
        ("ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE", "1000000"),
        ("ORGSVC__SECURITY__LOGIN_RATE_BURST", "1000000"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    match backend {
        Backend::Embedded => {
            env.insert("ORGSVC__STORE__KIND".into(), "embedded".into());
            let path = dir.path().join("orgsvc.db");
            env.insert("ORGSVC__STORE__PATH".into(), path.display().to_string());
        }
        Backend::Mongodb => {
            let uri = std::env::var("ORGSVC_TEST_MONGODB_URI").unwrap_or_else(|_| {
                panic!("ORGSVC_TEST_MONGODB_URI is not set: run the tests with scripts/test")
            });
            env.insert("ORGSVC__STORE__KIND".into(), "mongodb".into());
            env.insert("ORGSVC__MONGODB__URI".into(), uri);
            let database = format!("orgsvc_api_test_{}", uuid::Uuid::new_v4().simple());
            env.insert("ORGSVC__MONGODB__MASTER_DB".into(), database);
        }
    }
    for (key, value) in extra_env {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    Settings::load_from(None, Some(env)).unwrap()
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
