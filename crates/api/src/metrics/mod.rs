//! Prometheus metrics (`metrics.enabled`): what the service records and
//! `GET /metrics`, in the Prometheus text format (0.0.4), on the main port
//! or on `metrics.listen`.
//!
//! The recorder is process-global (the `metrics` facade has one), installed
//! once by [`Metrics::from_settings`] and shared by every app the process
//! builds. Recording happens in this crate only: the request middleware
//! ([`track_requests`]), the store decorator ([`TimedStore`]: call latency,
//! reconciliation), the hashing pool's observer, and the credential routes
//! (login outcomes, refresh-token reuse). `docs/operations.md` lists every
//! metric with its labels.

mod store;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, Label, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use orgsvc_app::outbox::{MailSender, RoundReport};
use orgsvc_app::signing_keys::SigningKeysStatus;
use orgsvc_app::{AppError, TokenPair};
use orgsvc_auth::{HashingPoolUsage, PasswordHasher};

use crate::config::MetricsSettings;

pub use store::TimedStore;

/// `Content-Type` of `GET /metrics`: the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counter: HTTP requests answered; labels `method`, `route`, `status_class`.
pub const HTTP_REQUESTS: &str = "orgsvc_http_requests_total";
/// Histogram (seconds): time to answer an HTTP request (until the response
/// head is ready); labels as [`HTTP_REQUESTS`].
pub const HTTP_REQUEST_DURATION: &str = "orgsvc_http_request_duration_seconds";
/// Gauge: HTTP requests being handled now.
pub const HTTP_IN_FLIGHT: &str = "orgsvc_http_requests_in_flight";
/// Histogram (seconds): time of a store call; label `operation` (the
/// `TenantStore` method, e.g. `organization_by_name`).
pub const STORE_DURATION: &str = "orgsvc_store_operation_duration_seconds";
/// Histogram (seconds): time a password hash waited for a hashing permit.
pub const HASH_QUEUE_WAIT: &str = "orgsvc_password_hash_queue_wait_seconds";
/// Gauge: password hashes running now (at scrape time).
pub const HASH_IN_USE: &str = "orgsvc_password_hash_pool_in_use";
/// Gauge: password hashes allowed at once (`auth.hashing_concurrency`).
pub const HASH_CAPACITY: &str = "orgsvc_password_hash_pool_capacity";
/// Gauge: password hashes waiting for a permit (at scrape time).
pub const HASH_WAITING: &str = "orgsvc_password_hash_pool_waiting";
/// Counter: `POST /admin/login` attempts by `outcome`: `succeeded`,
/// `failed` (401), `locked` (429 `login_locked`), `rate_limited` (429
/// `rate_limited`).
pub const LOGIN_ATTEMPTS: &str = "orgsvc_login_attempts_total";
/// Counter: used refresh tokens presented again (each revokes a session).
pub const REFRESH_TOKEN_REUSE: &str = "orgsvc_refresh_token_reuse_detected_total";
/// Counter: reconciliation runs by `result` (`ok`, `error`).
pub const RECONCILE_RUNS: &str = "orgsvc_reconcile_runs_total";
/// Counter: half-done operations repaired by reconciliation, by `repair`
/// (`completed`, `rolled_back`).
pub const RECONCILE_REPAIRS: &str = "orgsvc_reconcile_repairs_total";
/// Counter: emails the transport accepted (outbox messages marked sent).
pub const EMAILS_DELIVERED: &str = "orgsvc_emails_delivered_total";
/// Counter: failed email deliveries by `outcome`: `retried` (transient,
/// due again after the backoff) or `given_up` (a permanent refusal, or
/// `email.max_attempts` reached: never delivered).
pub const EMAIL_DELIVERY_FAILURES: &str = "orgsvc_email_delivery_failures_total";
/// Gauge: always 1; label `version` (the crate version).
pub const BUILD_INFO: &str = "orgsvc_build_info";
/// Version of the stored signing key set the instance signs and verifies
/// with (gauge; a stored key set only).
pub const SIGNING_KEY_SET_VERSION: &str = "orgsvc_signing_key_set_version";
/// Failed refreshes of the signing key ring (counter).
pub const SIGNING_KEY_REFRESH_FAILURES: &str = "orgsvc_signing_key_refresh_failures_total";
/// When the key ring last refreshed successfully (gauge, Unix seconds).
pub const SIGNING_KEY_LAST_REFRESH: &str = "orgsvc_signing_key_last_refresh_timestamp_seconds";

/// Bucket upper bounds (seconds) of every histogram: 0.5 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms are drained when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's recorder, once installed.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// Serializes the installation.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Why metrics could not be set up (a startup error).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The recorder could not be built or installed (e.g. another recorder
    /// is installed in the process).
    #[error("could not install the metrics recorder")]
    Install(#[from] metrics_exporter_prometheus::BuildError),
    /// The upkeep thread could not be started.
    #[error("could not start the metrics upkeep thread")]
    Upkeep(#[source] io::Error),
}

/// Metrics switched on: the handle rendering the process's recorder and
/// where `/metrics` is served. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
    listen: Option<SocketAddr>,
}

impl Metrics {
    /// `None` when `metrics.enabled` is false; otherwise installs the
    /// process's recorder (once: later calls share it) and answers the
    /// handle.
    pub fn from_settings(settings: &MetricsSettings) -> Result<Option<Self>, MetricsError> {
        if !settings.enabled {
            return Ok(None);
        }
        Ok(Some(Self {
            handle: install()?,
            listen: settings.listen,
        }))
    }

    /// The separate address to serve `/metrics` on (`metrics.listen`);
    /// `None`: the main port serves it.
    pub fn listen(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// Whether the main port serves `/metrics`.
    pub fn on_main_port(&self) -> bool {
        self.listen.is_none()
    }

    /// `hasher`, reporting each hash's wait for a permit to
    /// [`HASH_QUEUE_WAIT`].
    pub fn observe_hasher(&self, hasher: PasswordHasher) -> PasswordHasher {
        let wait = histogram!(HASH_QUEUE_WAIT);
        hasher.with_queue_wait_observer(Arc::new(move |waited| wait.record(waited)))
    }

    /// Counts a login attempt's outcome from the login handler's result:
    /// success, 401 or 429 `login_locked`; other errors (malformed requests,
    /// store failures) are not attempts that reached a decision.
    pub fn record_login(&self, result: &Result<TokenPair, AppError>) {
        let outcome = match result {
            Ok(_) => "succeeded",
            Err(AppError::InvalidCredentials) => "failed",
            Err(AppError::LoginLocked { .. }) => "locked",
            Err(_) => return,
        };
        counter!(LOGIN_ATTEMPTS, "outcome" => outcome).increment(1);
    }

    /// Counts a login refused by the per-client-IP rate limit.
    pub fn record_login_rate_limited(&self) {
        counter!(LOGIN_ATTEMPTS, "outcome" => "rate_limited").increment(1);
    }

    /// `sender`, counting its deliveries ([`EMAILS_DELIVERED`]) and
    /// failures ([`EMAIL_DELIVERY_FAILURES`]).
    pub fn observe_sender(&self, sender: MailSender) -> MailSender {
        let delivered = counter!(EMAILS_DELIVERED);
        let retried = counter!(EMAIL_DELIVERY_FAILURES, "outcome" => "retried");
        let given_up = counter!(EMAIL_DELIVERY_FAILURES, "outcome" => "given_up");
        sender.with_observer(Arc::new(move |round: &RoundReport| {
            // Batch sizes far below 2^64.
            delivered.increment(round.delivered as u64);
            retried.increment(round.retried as u64);
            given_up.increment(round.given_up as u64);
        }))
    }

    /// Counts a refresh token presented again after use.
    pub fn record_refresh_token_reuse(&self) {
        counter!(REFRESH_TOKEN_REUSE).increment(1);
    }

    /// The exposition of every metric, with the hashing pool's gauges set
    /// to `usage` and the signing keys' to `keys` (both taken now; `keys`
    /// only with a stored key set).
    pub fn render(&self, usage: HashingPoolUsage, keys: Option<SigningKeysStatus>) -> String {
        set(gauge!(HASH_IN_USE), usage.in_use);
        set(gauge!(HASH_CAPACITY), usage.capacity);
        set(gauge!(HASH_WAITING), usage.waiting);
        if let Some(keys) = keys {
            // Versions and counts far below 2^53: exact as f64.
            gauge!(SIGNING_KEY_SET_VERSION).set(keys.installed_version as f64);
            counter!(SIGNING_KEY_REFRESH_FAILURES).absolute(keys.refresh_failures);
            gauge!(SIGNING_KEY_LAST_REFRESH).set(keys.last_success_unix_ms as f64 / 1000.0);
        }
        self.handle.render()
    }
}

fn set(gauge: Gauge, value: usize) {
    // Counts far below 2^53: exact as f64.
    gauge.set(value as f64);
}

/// Installs the recorder unless installed, with its metric descriptions,
/// the build info and zeroed counters (so that rates exist before the first
/// event), and starts the upkeep thread.
fn install() -> Result<PrometheusHandle, MetricsError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    // A poisoned lock only means an earlier installation panicked: HANDLE
    // says whether it got through.
    let _installing = INSTALLING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)?
        .install_recorder()?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        })
        .map_err(MetricsError::Upkeep)?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for outcome in ["succeeded", "failed", "locked", "rate_limited"] {
        counter!(LOGIN_ATTEMPTS, "outcome" => outcome).increment(0);
    }
    counter!(REFRESH_TOKEN_REUSE).increment(0);
    for result in ["ok", "error"] {
        counter!(RECONCILE_RUNS, "result" => result).increment(0);
    }
    for repair in ["completed", "rolled_back"] {
        counter!(RECONCILE_REPAIRS, "repair" => repair).increment(0);
    }
    counter!(EMAILS_DELIVERED).increment(0);
    for outcome in ["retried", "given_up"] {
        counter!(EMAIL_DELIVERY_FAILURES, "outcome" => outcome).increment(0);
    }
    gauge!(HTTP_IN_FLIGHT).set(0.0);
    // Set only here, under the lock: the recorder is installed exactly once.
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The `# HELP` lines.
fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by method, route template and status class."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by method, route template and status class."
    );
    describe_gauge!(HTTP_IN_FLIGHT, Unit::Count, "HTTP requests being handled.");
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Time of a store call, by operation."
    );
    describe_histogram!(
        HASH_QUEUE_WAIT,
        Unit::Seconds,
        "Time a password hash waited for a hashing permit."
    );
    describe_gauge!(HASH_IN_USE, Unit::Count, "Password hashes running.");
    describe_gauge!(
        HASH_CAPACITY,
        Unit::Count,
        "Password hashes allowed at once (auth.hashing_concurrency)."
    );
    describe_gauge!(
        HASH_WAITING,
        Unit::Count,
        "Password hashes waiting for a permit."
    );
    describe_counter!(
        LOGIN_ATTEMPTS,
        Unit::Count,
        "Login attempts, by outcome (succeeded, failed, locked, rate_limited)."
    );
    describe_counter!(
        REFRESH_TOKEN_REUSE,
        Unit::Count,
        "Used refresh tokens presented again (the session is revoked)."
    );
    describe_counter!(
        RECONCILE_RUNS,
        Unit::Count,
        "Reconciliation runs, by result (ok, error)."
    );
    describe_counter!(
        RECONCILE_REPAIRS,
        Unit::Count,
        "Half-done operations repaired by reconciliation, by repair (completed, rolled_back)."
    );
    describe_gauge!(
        SIGNING_KEY_SET_VERSION,
        "Version of the stored signing key set this instance signs and verifies with."
    );
    describe_counter!(
        SIGNING_KEY_REFRESH_FAILURES,
        Unit::Count,
        "Failed refreshes of the signing key ring (the instance keeps its last ring)."
    );
    describe_gauge!(
        SIGNING_KEY_LAST_REFRESH,
        Unit::Seconds,
        "When the signing key ring last refreshed successfully (Unix time)."
    );
    describe_counter!(
        EMAILS_DELIVERED,
        Unit::Count,
        "Emails accepted by the transport (outbox messages marked sent)."
    );
    describe_counter!(
        EMAIL_DELIVERY_FAILURES,
        Unit::Count,
        "Failed email deliveries, by outcome (retried, given_up)."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label names the running build."
    );
}

/// Middleware recording [`HTTP_REQUESTS`], [`HTTP_REQUEST_DURATION`] and
/// [`HTTP_IN_FLIGHT`], labelled with the route template (never the raw
/// path; `unmatched` when no route matched, or when an inner middleware
/// failed the request before a response existed).
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let in_flight = InFlight::enter();
    let result = next.call(req).await;
    drop(in_flight);
    // Once routed, the template is looked up from the matched resource
    // (cheap); before the call it would take matching the path again.
    let (status, route) = match &result {
        Ok(response) => (response.status(), response.request().match_pattern()),
        Err(error) => (error.as_response_error().status_code(), None),
    };
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    record_request(method, route, status_class(status), started.elapsed());
    result
}

/// The request series' handles by (method, route, status class), cached
/// per thread: once a series exists, a request costs no key building or
/// registry lookup. At most routes × methods × status classes entries.
type RequestSeries = HashMap<(&'static str, String, &'static str), (Counter, Histogram)>;

thread_local! {
    static REQUEST_SERIES: RefCell<RequestSeries> = RefCell::default();
}

/// Counts a request of `method`, `route`, `class` that took `elapsed`.
fn record_request(method: &'static str, route: String, class: &'static str, elapsed: Duration) {
    REQUEST_SERIES.with_borrow_mut(|cache| {
        let (count, duration) =
            cache
                .entry((method, route, class))
                .or_insert_with_key(|(method, route, class)| {
                    let labels = [
                        ("method", *method),
                        ("route", route.as_str()),
                        ("status_class", *class),
                    ]
                    .map(|(key, value)| Label::new(key, value.to_owned()));
                    (
                        counter!(HTTP_REQUESTS, labels.iter()),
                        histogram!(HTTP_REQUEST_DURATION, labels.iter()),
                    )
                });
        duration.record(elapsed);
        count.increment(1);
    });
}

/// Counts a request in flight until dropped (also when the client goes
/// away and the request's future is dropped).
struct InFlight(&'static Gauge);

impl InFlight {
    fn enter() -> Self {
        // The recorder is installed once, before any app records.
        static IN_FLIGHT: OnceLock<Gauge> = OnceLock::new();
        let gauge = IN_FLIGHT.get_or_init(|| gauge!(HTTP_IN_FLIGHT));
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The method as a label: the methods the API knows, others as `other`
/// (clients can send any token as a method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `1xx` to `5xx`.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_cover_every_status() {
        assert_eq!(status_class(StatusCode::CONTINUE), "1xx");
        assert_eq!(status_class(StatusCode::NO_CONTENT), "2xx");
        assert_eq!(status_class(StatusCode::PERMANENT_REDIRECT), "3xx");
        assert_eq!(status_class(StatusCode::TOO_MANY_REQUESTS), "4xx");
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
