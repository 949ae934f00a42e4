//! What every handler shares: the application (the use cases) and the
//! HTTP layer's own settings.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orgsvc_app::signing_keys::SigningKeys;
use orgsvc_app::Application;
use orgsvc_domain::{SharedRateLimits, TenantStore};

use crate::config::{CorsSettings, SecuritySettings, Settings};
use crate::credentials::Credentials;
use crate::metrics::{Metrics, TimedStore};
use crate::rate_limit::{LoginRateLimiter, LINK_EMAILS_PER_ADDRESS};

/// Shared application state (held in `web::Data`).
#[derive(Clone)]
pub struct AppState {
    /// The use cases, over the store selected by configuration.
    pub app: Application,
    /// The stored signing key set the token service follows, when there
    /// is one (refreshed in the background by `startup`).
    pub signing_keys: Option<SigningKeys>,
    /// `server.public_url`: the base of absolute URLs in answers.
    pub public_url: Option<String>,
    /// How long verifiers may cache the JWK Set: half the pre-publication
    /// lead time of a new key, at most an hour.
    pub jwks_max_age: Duration,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest accepted tenant document body (`/org/data`), in bytes.
    pub max_document_bytes: usize,
    /// Longest a request body may take to arrive, from the first read.
    pub body_read_timeout: Duration,
    /// Login protection and client identification.
    pub security: SecuritySettings,
    /// Per-client-IP limit of `POST /admin/login` and `/admin/refresh`,
    /// shared by every worker (and every instance, when shared via the
    /// store).
    pub login_rate_limiter: Arc<LoginRateLimiter>,
    /// Per-address limit of the emails with a link (password reset, email
    /// verification): [`crate::rate_limit::LINK_EMAILS_PER_ADDRESS`].
    pub email_link_limiter: Arc<LoginRateLimiter>,
    /// Per-key limit of the operator API (`security.operator_rate_*`).
    pub operator_rate_limiter: Arc<LoginRateLimiter>,
    /// Whether the service is shutting down (readiness then answers 503).
    pub readiness: Readiness,
    /// Cross-origin requests from browsers.
    pub cors: CorsSettings,
    /// Prometheus metrics, when `metrics.enabled` (see
    /// [`AppState::with_metrics`]).
    pub metrics: Option<Metrics>,
}

/// Whether the service still takes new work: it stops at the shutdown
/// signal, for good. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the service as shutting down.
    pub fn shut_down(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`Readiness::shut_down`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("app", &self.app)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_document_bytes", &self.max_document_bytes)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("security", &self.security)
            .field("readiness", &self.readiness)
            .field("login_rate_limiter", &self.login_rate_limiter)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state serving `store` with `credentials`, limiting the credential
    /// routes in process; see [`AppState::with_login_rate_limiter`].
    pub fn new(settings: &Settings, store: Arc<dyn TenantStore>, credentials: Credentials) -> Self {
        Self {
            app: Application::new(
                store,
                credentials.hasher,
                credentials.tokens,
                settings.app_settings(),
            ),
            signing_keys: credentials.signing_keys,
            public_url: settings.server.public_url.clone(),
            jwks_max_age: (settings.auth.rotation_policy().publish_ahead / 2)
                .min(Duration::from_secs(3600)),
            max_body_bytes: settings.server.max_body_bytes.get(),
            max_document_bytes: settings.data.max_document_bytes.get(),
            body_read_timeout: settings.server.body_read_timeout(),
            security: settings.security.clone(),
            login_rate_limiter: Arc::new(LoginRateLimiter::in_process(&settings.security)),
            email_link_limiter: Arc::new(LoginRateLimiter::of_limit(LINK_EMAILS_PER_ADDRESS)),
            operator_rate_limiter: Arc::new(LoginRateLimiter::of_limit(
                settings.security.operator_rate_limit(),
            )),
            readiness: Readiness::default(),
            cors: settings.cors.clone(),
            metrics: None,
        }
    }

    /// The same state, recording `metrics`: store calls are timed (through
    /// [`TimedStore`]) and the hashing pool reports its queue waits.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self {
            app: self
                .app
                .map_store(|store| Arc::new(TimedStore::new(store)))
                .map_hasher(|hasher| metrics.observe_hasher(hasher)),
            metrics: Some(metrics),
            ..self
        }
    }

    /// The same state, limiting the credential routes with `limiter` (e.g.
    /// [`LoginRateLimiter::shared`], so that every instance on the store
    /// enforces one budget).
    pub fn with_login_rate_limiter(self, limiter: LoginRateLimiter) -> Self {
        Self {
            login_rate_limiter: Arc::new(limiter),
            ..self
        }
    }

    /// The same state, limiting each operator key's requests with `limiter`
    /// (e.g. one shared via the store with a test clock).
    pub fn with_operator_rate_limiter(self, limiter: LoginRateLimiter) -> Self {
        Self {
            operator_rate_limiter: Arc::new(limiter),
            ..self
        }
    }

    /// The same state, every rate limit counted in `shared` by every
    /// instance on the store together.
    pub fn with_shared_rate_limits(
        self,
        security: &SecuritySettings,
        shared: Arc<dyn SharedRateLimits>,
    ) -> Self {
        Self {
            email_link_limiter: Arc::new(
                LoginRateLimiter::of_limit(LINK_EMAILS_PER_ADDRESS).shared_via(shared.clone()),
            ),
            operator_rate_limiter: Arc::new(
                LoginRateLimiter::of_limit(security.operator_rate_limit())
                    .shared_via(shared.clone()),
            ),
            ..self.with_login_rate_limiter(LoginRateLimiter::shared(security, shared))
        }
    }
}
