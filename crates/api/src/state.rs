//! What every handler shares: the application (the use cases) and the
//! HTTP layer's own settings.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orgsvc_app::signing_keys::{SigningKeys, SigningSettings};
use orgsvc_app::Application;
use orgsvc_auth::{
    generate_signing_key, KeyEncryptionKey, KeyError, KeyRing, PasswordHasher, TokenService,
    TokenSettings,
};
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{add_key, TenantStore};
use secrecy::{ExposeSecret, SecretSlice};

use crate::config::{CorsSettings, SecuritySettings, Settings};
use crate::metrics::{Metrics, TimedStore};
use crate::rate_limit::LoginRateLimiter;

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

/// The credential services built from `auth.*`.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Argon2id hashing.
    pub hasher: PasswordHasher,
    /// Access tokens.
    pub tokens: TokenService,
    /// The stored signing key set the tokens follow (asymmetric algorithm
    /// with `auth.key_encryption_secret`); its refresher runs beside the
    /// server.
    pub signing_keys: Option<SigningKeys>,
}

/// Why the credential services could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The hashing or token settings are unusable.
    #[error(transparent)]
    Auth(#[from] orgsvc_auth::AuthError),
    /// The signing keys could not be generated, loaded or used.
    #[error("the signing keys are unusable")]
    Keys(#[from] KeyError),
}

impl Credentials {
    /// The credential services, signing with the stored key set on `store`
    /// (kept current by the returned [`SigningKeys`]) when
    /// `auth.signing.algorithm` is asymmetric and
    /// `auth.key_encryption_secret` is set; otherwise as
    /// [`Credentials::from_settings`].
    pub async fn load(
        settings: &Settings,
        store: Arc<dyn TenantStore>,
    ) -> Result<Self, CredentialsError> {
        let auth = &settings.auth;
        let (Some(algorithm), Some(secret)) = (
            auth.signing.algorithm.asymmetric(),
            &auth.key_encryption_secret,
        ) else {
            return Self::from_settings(settings);
        };
        let encryption = KeyEncryptionKey::derive(&SecretSlice::from(
            secret.expose_secret().as_bytes().to_vec(),
        ))?;
        if auth.jwt_secret.is_some() {
            tracing::warn!(
                "auth.jwt_secret is set: HS256 tokens without kid signed with it are still accepted; remove it once auth.access_token_ttl has passed since the switch to the key set"
            );
        }
        let signing_keys = SigningKeys::start(
            store,
            SigningSettings {
                algorithm,
                policy: auth.rotation_policy(),
                encryption,
                legacy_secret: legacy_secret(settings),
                issuer: auth.issuer.clone(),
                audience: auth.audience.clone(),
            },
        )
        .await?;
        Ok(Self {
            hasher: hasher(settings)?,
            tokens: signing_keys.tokens().clone(),
            signing_keys: Some(signing_keys),
        })
    }

    /// The credential services without a stored key set: with
    /// `auth.signing.algorithm = "HS256"`, `auth.jwt_secret` (or, which
    /// `Settings::load` allows in development only, a random secret);
    /// with an asymmetric algorithm, one key of it generated now and kept
    /// in memory only (development without `auth.key_encryption_secret`),
    /// verifying `auth.jwt_secret`'s tokens too. Either way a warning says
    /// that tokens stop working at restart.
    pub fn from_settings(settings: &Settings) -> Result<Self, CredentialsError> {
        let auth = &settings.auth;
        let ttl = Duration::from_secs(auth.access_token_ttl);
        let tokens = match auth.signing.algorithm.asymmetric() {
            None => {
                let secret = legacy_secret(settings).unwrap_or_else(|| {
                    tracing::warn!(
                        "auth.jwt_secret is not set: using a random secret, so access tokens stop working at restart; set ORGSVC__AUTH__JWT_SECRET"
                    );
                    orgsvc_auth::generate_secret()
                });
                TokenService::new(TokenSettings {
                    secret,
                    issuer: auth.issuer.clone(),
                    audience: auth.audience.clone(),
                    ttl,
                })?
            }
            Some(algorithm) => {
                tracing::warn!(
                    algorithm = %algorithm,
                    "auth.key_encryption_secret is not set: signing with a key kept in memory only (a key set in the store is not used), so access tokens stop working at restart and other instances cannot verify them; set ORGSVC__AUTH__KEY_ENCRYPTION_SECRET"
                );
                let encryption = KeyEncryptionKey::derive(&orgsvc_auth::generate_secret())?;
                let key = generate_signing_key(algorithm, &encryption)?;
                let keys = add_key(&[], key, now_millis()).map_err(KeyError::from)?;
                let ring =
                    KeyRing::new(&keys, Some(&encryption), legacy_secret(settings).as_ref())?;
                TokenService::with_key_ring(ring, auth.issuer.clone(), auth.audience.clone(), ttl)
            }
        };
        Ok(Self {
            hasher: hasher(settings)?,
            tokens,
            signing_keys: None,
        })
    }
}

/// `auth.jwt_secret`, as bytes.
fn legacy_secret(settings: &Settings) -> Option<SecretSlice<u8>> {
    settings
        .auth
        .jwt_secret
        .as_ref()
        .map(|secret| SecretSlice::from(secret.expose_secret().as_bytes().to_vec()))
}

/// The argon2id hasher `auth.argon2` and `auth.hashing_concurrency` ask for.
fn hasher(settings: &Settings) -> Result<PasswordHasher, orgsvc_auth::AuthError> {
    PasswordHasher::new(settings.auth.argon2, settings.hashing_concurrency())
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
}
