//! orgsvc's application layer: one home per use case.
//!
//! [`Application`] holds the store (the domain's [`TenantStore`] port), the
//! password hasher and the token service, and offers each use case as a
//! method that takes domain values and answers domain results (a token
//! pair, an organization, a page of documents) or an [`AppError`]:
//! - [`sessions`]: log in, refresh, log out, authenticate an access token;
//! - [`organizations`]: create, get, update (rename and credentials), delete;
//! - [`admins`]: add, list, get, change the role of, remove;
//! - [`documents`]: the tenant's documents, with conditional writes;
//! - [`audit`]: recording what requests did, and reading the log;
//! - [`password_resets`], [`email_verification`]: account recovery by
//!   email;
//! - [`emails`]: the emails use cases store in the outbox, from templates;
//! - [`invitations`]: invite, list, revoke, resend; accept (no sign-in);
//! - [`operator_organizations`]: the operator API on organizations: list,
//!   get with usage, suspend, resume, delete, the audit log across them;
//! - [`maintenance`]: the periodic purge of sessions, throttles and audit;
//! - [`signing_keys`]: the stored signing key set, kept current and rotated;
//! - [`outbox`]: delivering the email outbox in the background;
//! - [`operators`]: operator API keys (create, list, revoke, authenticate)
//!   and the audit of operator actions;
//! - [`tenant_moves`]: moving organizations' documents between storage
//!   layouts (`orgsvc tenants move`).
//!
//! This crate depends on `orgsvc-domain` and `orgsvc-auth` only: no web
//! framework, no database driver (`scripts/check-layering` proves it). The
//! HTTP layer parses requests into domain values, calls a use case and maps
//! its result; the rules themselves live in the domain.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use orgsvc_auth::{HashingPoolUsage, JwkSet, PasswordHasher, TokenService};
use orgsvc_domain::{LoginThrottle, TenantStore};

pub mod admins;
pub mod audit;
pub mod documents;
pub mod email_verification;
pub mod emails;
mod error;
pub mod invitations;
pub mod maintenance;
pub mod operator_organizations;
pub mod operators;
pub mod organizations;
pub mod outbox;
pub mod password_resets;
pub mod sessions;
pub mod signing_keys;
pub mod tenant_moves;

pub use admins::Owner;
pub use audit::RequestOrigin;
pub use emails::{EmailLinks, LinkTemplate, LinkTemplateError};
pub use error::AppError;
pub use operators::Operator;
pub use sessions::TokenPair;

/// What the use cases need from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSettings {
    /// How long a refresh token stays usable (`auth.refresh_token_ttl`).
    pub refresh_token_ttl: Duration,
    /// When failed logins lock an email (`security.login_*`).
    pub login_throttle: LoginThrottle,
    /// Where the links of the emails point (`email.*_url`).
    pub email_links: EmailLinks,
    /// How long a password-reset link works
    /// (`auth.password_reset_ttl_secs`, default 30 minutes).
    pub password_reset_ttl: Duration,
    /// How long an email-verification link works
    /// (`auth.email_verification_ttl_secs`, default 24 hours).
    pub email_verification_ttl: Duration,
    /// Whether admins with an unverified email are refused everything but
    /// verifying it, logging out and refreshing
    /// (`auth.require_verified_email`).
    pub require_verified_email: bool,
}

/// The use cases, over one store and one pair of credential services.
/// Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Application {
    store: Arc<dyn TenantStore>,
    hasher: PasswordHasher,
    tokens: TokenService,
    settings: AppSettings,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("hasher", &self.hasher)
            .field("tokens", &self.tokens)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// The use cases over `store`, hashing with `hasher` and signing with
    /// `tokens`.
    pub fn new(
        store: Arc<dyn TenantStore>,
        hasher: PasswordHasher,
        tokens: TokenService,
        settings: AppSettings,
    ) -> Self {
        Self {
            store,
            hasher,
            tokens,
            settings,
        }
    }

    /// The same application over `decorate(store)` (e.g. a decorator that
    /// times every call).
    pub fn map_store(
        self,
        decorate: impl FnOnce(Arc<dyn TenantStore>) -> Arc<dyn TenantStore>,
    ) -> Self {
        Self {
            store: decorate(self.store),
            ..self
        }
    }

    /// The same application hashing with `decorate(hasher)` (e.g. one that
    /// reports its queue waits).
    pub fn map_hasher(self, decorate: impl FnOnce(PasswordHasher) -> PasswordHasher) -> Self {
        Self {
            hasher: decorate(self.hasher),
            ..self
        }
    }

    /// The store, for the composition root's background jobs (reconciling,
    /// draining at shutdown).
    pub fn store(&self) -> &Arc<dyn TenantStore> {
        &self.store
    }

    /// Whether the service can serve (readiness): the store answers.
    ///
    /// # Errors
    /// [`AppError::StoreUnavailable`] for any failure of the store's ping,
    /// whatever its kind: a store that cannot answer a ping cannot serve.
    pub async fn check_readiness(&self) -> Result<(), AppError> {
        self.store.ping().await.map_err(AppError::StoreUnavailable)
    }

    /// The public keys that verify access tokens, to publish (RFC 7517 §5):
    /// every key of the signing key set, `next` and `retired` included;
    /// empty when tokens are signed with the HS256 secret.
    pub fn jwks(&self) -> JwkSet {
        self.tokens.key_ring().jwks().clone()
    }

    /// The `iss` of access tokens.
    pub fn token_issuer(&self) -> &str {
        self.tokens.issuer()
    }

    /// How busy the password-hashing pool is now (metrics).
    pub fn hashing_pool_usage(&self) -> HashingPoolUsage {
        self.hasher.pool_usage()
    }
}
