//! Settings, layered: built-in defaults, then an optional TOML file, then
//! environment variables.
//!
//! Every key with its default (environment variable in brackets; nested keys
//! join with `__`, e.g. `ORGSVC__SERVER__PORT=9000`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `profile` [`ORGSVC__PROFILE`] | `development` | `development` or `production`; production refuses to start without `auth.key_encryption_secret` (or, with `auth.signing.algorithm = "HS256"`, `auth.jwt_secret`), with `email.transport = "log"`, or without `email.from` and the `email.*_url` link templates |
//! | `server.host` | `127.0.0.1` | address to listen on |
//! | `server.port` | `8080` | port to listen on |
//! | `server.workers` | number of CPUs | HTTP worker threads |
//! | `server.max_body_bytes` | `65536` | largest accepted request body; larger ones get 413 |
//! | `server.shutdown_timeout_secs` | `25` | on SIGTERM/SIGINT, the process exits within this many seconds (at least 2; keep it below the orchestrator's grace period, 30 s on Kubernetes) |
//! | `server.header_read_timeout_secs` | `20` | a request's header fields must arrive within this many seconds (the first request's from the connection's start, later ones' from their first byte); else 408 and the connection is closed (1 to 3600) |
//! | `server.body_read_timeout_secs` | `30` | a request body must arrive completely within this many seconds of the handler starting to read it; else 408 and the connection is closed (1 to 3600) |
//! | `server.keep_alive_secs` | `30` | an idle keep-alive connection is closed after this many seconds without a request (0: no keep-alive, one request per connection; at most 3600) |
//! | `server.max_connections_per_ip` | `64` | open connections per client IP; more are answered 429 `too_many_connections` and closed (0: no limit; never applied to `security.trusted_proxies`) |
//! | `server.public_url` | unset | the service's public base URL (`https://auth.example.com`), for the absolute URLs of `GET /.well-known/oauth-authorization-server`; unset: built from each request's `Host` |
//! | `server.shutdown_delay_secs` | `0` | seconds the listener keeps accepting after the signal while `/health/ready` answers 503 (for load balancers that poll it); part of the timeout, at most `shutdown_timeout_secs - 2` |
//! | `data.max_document_bytes` | `262144` | largest accepted tenant document body (`/org/data`); larger ones get 413 |
//! | `store.kind` | `embedded` | `embedded` (SQLite file) or `mongodb` |
//! | `store.path` | `./data/orgsvc.db` | the embedded store's file |
//! | `store.readers` | number of CPUs, at most 8 | the embedded store's read connections, each on a thread of its own (1 to 64); reads (document listings, logins) run on them in parallel, writes on one writer connection |
//! | `mongodb.uri` | `mongodb://127.0.0.1:27017` | connection string (secret: never logged) |
//! | `mongodb.master_db` | `orgsvc_master` | database holding organizations, admins and tenant collections |
//! | `mongodb.reconcile_interval_secs` | `10` | how often each instance looks for operations to take over and repair |
//! | `mongodb.lease_timeout_secs` | `15` | a create, rename or delete renews a lease on its organization every sixth of this; another instance takes it over only once it went unrenewed this long |
//! | `mongodb.tenancy` [`ORGSVC__MONGODB__TENANCY`] | `collection` | the layout of organizations created from now on: `collection` (a collection `org_<name>` each, renamed with the organization) or `shared` (every such organization's documents in `tenant_documents`, keyed by organization id; a rename moves nothing). Existing organizations keep theirs; `orgsvc tenants move` moves them (see the README, "Choosing a MongoDB layout") |
//! | `auth.signing.algorithm` | `EdDSA` | how access tokens are signed: `EdDSA` (Ed25519), `ES256` or `RS256` with the stored, rotating key set published at `/.well-known/jwks.json`; or `HS256` with `auth.jwt_secret` (no key set) |
//! | `auth.signing.rotate_every_secs` | `2592000` | a new key is generated when the active one is this old (30 days); `orgsvc keys rotate` rotates at once |
//! | `auth.signing.publish_ahead_secs` | `auth.access_token_ttl` | a new key is published this long before it signs (so verifiers' caches have it) |
//! | `auth.key_encryption_secret` | unset | at least 32 bytes; encrypts the stored private signing keys (XChaCha20-Poly1305 under an HKDF-SHA256 key). Unset in development: the keys live in memory only, one per start. Secret: never logged |
//! | `auth.jwt_secret` | unset | HS256 secret: with `auth.signing.algorithm = "HS256"` it signs tokens (unset in development: a random one per start); with an asymmetric algorithm it only verifies tokens issued before the switch (remove it once `auth.access_token_ttl` has passed) |
//! | `auth.access_token_ttl` | `900` | access token lifetime, seconds |
//! | `auth.refresh_token_ttl` | `1209600` | refresh token lifetime (14 days), seconds; each rotation issues a new one |
//! | `auth.issuer` | `orgsvc` | token `iss` |
//! | `auth.audience` | `orgsvc-api` | token `aud` |
//! | `auth.argon2.memory_kib` | `19456` | argon2id memory cost |
//! | `auth.argon2.iterations` | `2` | argon2id time cost |
//! | `auth.argon2.parallelism` | `1` | argon2id lanes |
//! | `auth.hashing_concurrency` | half the CPUs (at least 1) | password hashes computed at once |
//! | `auth.password_reset_ttl_secs` | `1800` | how long a password-reset link works (30 minutes; 60 to 86400) |
//! | `auth.email_verification_ttl_secs` | `86400` | how long an email-verification link works (24 hours; 60 to 2592000) |
//! | `auth.require_verified_email` | `false` | `true`: admins whose email is not verified may log in, refresh, log out and verify their email, and get 403 `email_unverified` on everything else |
//! | `security.login_max_failures` | `5` | failed logins allowed per email before the next attempt locks it |
//! | `security.login_lock_secs` | `60` | first lock; each further lock without a success doubles it |
//! | `security.login_max_lock_secs` | `3600` | longest lock |
//! | `security.login_rate_per_minute` | `30` | credential calls (`POST /admin/login`, `/admin/refresh`, `/admin/password-reset(/confirm)`, `/admin/email-verification/confirm`, `POST /invitations/accept`) per client IP and minute, all counted together; more get 429 (on MongoDB: for all instances together) |
//! | `security.login_rate_burst` | `10` | calls a client IP may make at once before the rate applies (on MongoDB: per window of `burst × 60 s / rate`) |
//! | `security.operator_rate_per_minute` | `600` | operator API (`/operator/*`) requests per operator key and minute; more get 429 `operator_rate_limited` with `Retry-After` (on MongoDB: for all instances together) |
//! | `security.operator_rate_burst` | `120` | requests an operator key may make at once before the rate applies |
//! | `security.trusted_proxies` | empty | addresses and CIDR networks (`10.0.0.0/8`, `::1`) of the proxies whose `X-Forwarded-For`/`Forwarded` is believed; a TOML array, or in the environment a comma-separated list (`ORGSVC__SECURITY__TRUSTED_PROXIES=127.0.0.1/32,10.0.0.0/8`); empty: the connection's peer is the client |
//! | `security.trust_forwarded_for` | `false` | deprecated: `true` trusts any peer as a proxy (the client is the last `X-Forwarded-For` entry); use `security.trusted_proxies` |
//! | `security.purge_interval_secs` | `3600` | how often expired sessions, old audit entries and ended rate limit windows are purged |
//! | `audit.retention_days` | `90` | how long the audit entries of a deleted organization are kept |
//! | `cors.allowed_origins` | empty (off) | origins whose browser pages may call the API (`https://app.example.com`, or `*`); env: comma-separated |
//! | `cors.max_age_secs` | `600` | how long browsers may cache a preflight answer |
//! | `metrics.enabled` | `false` | serve Prometheus metrics at `GET /metrics` (see `docs/operations.md`); off: `/metrics` answers 404 like any unknown path |
//! | `metrics.listen` | unset | with `metrics.enabled`, serve `/metrics` on this address instead (e.g. `127.0.0.1:9100`), not on the main port |
//! | `email.transport` | `log` | how the email outbox (invitations, password resets, email verification) is delivered: `smtp` (to `email.smtp_url`) or `log` (written to the log, links included; development only: production refuses it) |
//! | `email.smtp_url` | unset | the SMTP relay, required with `smtp`: `smtp://host:port` (no encryption), `smtp://host:587?tls=required` (STARTTLS; `tls=opportunistic` when offered), `smtps://user:password@host:465` (implicit TLS); credentials percent-encoded in the userinfo. Secret: never logged |
//! | `email.from` | `orgsvc <no-reply@localhost>` in development | the sender mailbox (`Name <address>` or `address`); required in production |
//! | `email.invitation_url` | `http://localhost:3000/invite?token={token}` in development | the link in invitations: your front end's page that accepts one (`POST /invitations/accept`); an http(s) URL containing `{token}`, which is replaced by the token; required in production |
//! | `email.password_reset_url` | `http://localhost:3000/reset-password?token={token}` in development | the link in password-reset emails: your page that sets the new password (`POST /admin/password-reset/confirm`); as above |
//! | `email.verification_url` | `http://localhost:3000/verify-email?token={token}` in development | the link in email-verification emails: your page that confirms (`POST /admin/email-verification/confirm`); as above |
//! | `email.timeout_secs` | `30` | longest an SMTP command (connecting included) or one delivery may take; slower counts as a transient failure (1 to 600) |
//! | `email.poll_interval_secs` | `5` | how often each instance looks for messages due (at least 1) |
//! | `email.batch_size` | `20` | messages an instance claims at once; a claim lasts `email.timeout_secs × (batch_size + 1)` (1 to 1000) |
//! | `email.retry_base_secs` | `30` | wait after the first failed delivery; doubles with each further failure (at least 1) |
//! | `email.retry_max_secs` | `3600` | longest wait between attempts (at least `email.retry_base_secs`) |
//! | `email.max_attempts` | `10` | failed deliveries after which a message is given up (logged with its id); a permanent refusal (SMTP `5yz`) gives up at once (at least 1) |
//! | `log.level` | `info` | tracing filter; `RUST_LOG` overrides it |
//! | `log.format` | `text` | `text` or `json` |
//!
//! The file is named by `--config FILE` or `ORGSVC_CONFIG`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use orgsvc_app::maintenance::Maintenance;
use orgsvc_app::{AppSettings, EmailLinks, LinkTemplate};
use orgsvc_domain::TenantLayout;
use orgsvc_sqlite::SqliteOptions;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::proxies::TrustedProxies;

/// Prefix of the environment variables read as settings.
pub const ENV_PREFIX: &str = "ORGSVC";
/// Separator of nested keys in environment variable names.
pub const ENV_SEPARATOR: &str = "__";
/// Shortest `auth.jwt_secret` accepted in production, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why the settings are unusable. The message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type.
    #[error("invalid configuration")]
    Load(#[from] config::ConfigError),
    /// A value is well-typed but not acceptable.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// All settings of the service.
#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    /// Deployment profile.
    pub profile: Profile,
    /// HTTP server.
    pub server: ServerSettings,
    /// Which store to use.
    pub store: StoreSettings,
    /// MongoDB store (used when `store.kind = "mongodb"`).
    pub mongodb: MongoSettings,
    /// Tenant documents (`/org/data`).
    pub data: DataSettings,
    /// Credentials.
    pub auth: AuthSettings,
    /// Login protection and client identification.
    pub security: SecuritySettings,
    /// The audit log.
    pub audit: AuditSettings,
    /// Cross-origin requests from browsers (off unless origins are listed).
    #[serde(default)]
    pub cors: CorsSettings,
    /// Prometheus metrics (off by default).
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// The emails orgsvc sends, and how they are delivered.
    pub email: EmailSettings,
    /// Logging.
    pub log: LogSettings,
}

/// Deployment profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Local use: generates a JWT secret when none is set.
    Development,
    /// Real deployments: requires every secret.
    Production,
}

/// HTTP server settings.
#[derive(Clone, Debug, Deserialize)]
pub struct ServerSettings {
    /// The public base URL (`https://auth.example.com`), for absolute URLs
    /// in answers; `None`: from each request's `Host`.
    pub public_url: Option<String>,
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Worker threads; `None`: one per CPU.
    pub workers: Option<NonZeroUsize>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: NonZeroUsize,
    /// Seconds from SIGTERM/SIGINT to the process's exit, at most.
    pub shutdown_timeout_secs: u64,
    /// Seconds the listener keeps accepting after the signal (readiness
    /// answers 503 meanwhile); part of the timeout.
    pub shutdown_delay_secs: u64,
    /// Seconds a request's header fields may take to arrive (the first
    /// request's from the connection's start, later ones' from their first
    /// byte).
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may take to arrive, from the first read.
    pub body_read_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open (0: no keep-alive).
    pub keep_alive_secs: u64,
    /// Open connections per client IP (0: no limit).
    pub max_connections_per_ip: usize,
}

/// Longest accepted `server.*_timeout_secs` and `server.keep_alive_secs`.
pub const MAX_TRANSPORT_TIMEOUT_SECS: u64 = 3600;

/// Shortest `server.shutdown_timeout_secs`: one second to drain, one to exit.
pub const MIN_SHUTDOWN_TIMEOUT_SECS: u64 = 2;

impl ServerSettings {
    /// Longest time from the shutdown signal to the process's exit.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// Time the listener keeps accepting after the shutdown signal.
    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_secs(self.shutdown_delay_secs)
    }

    /// Longest time from a request's first byte to the end of its head.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    /// Longest time a request body may take to arrive.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs)
    }

    /// How long an idle keep-alive connection stays open (zero: keep-alive
    /// is off).
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs)
    }
}

/// Tenant document settings.
#[derive(Clone, Debug, Deserialize)]
pub struct DataSettings {
    /// Largest accepted document body (`POST`/`PUT /org/data`), in bytes.
    pub max_document_bytes: NonZeroUsize,
}

/// Which store to use.
#[derive(Clone, Debug, Deserialize)]
pub struct StoreSettings {
    /// The store's kind.
    pub kind: StoreKind,
    /// File of the embedded store.
    pub path: PathBuf,
    /// Read connections of the embedded store; `None`: one per CPU, at most
    /// 8 (see [`StoreSettings::sqlite_options`]).
    pub readers: Option<NonZeroUsize>,
}

impl StoreSettings {
    /// The most `store.readers` accepted: more threads than that only cost
    /// memory (each connection may cache 2 MiB of pages).
    pub const MAX_READERS: usize = 64;

    /// How the embedded store is opened: `store.readers`, or its default.
    pub fn sqlite_options(&self) -> SqliteOptions {
        let defaults = SqliteOptions::default();
        SqliteOptions {
            readers: self.readers.unwrap_or(defaults.readers),
        }
    }
}

/// Kinds of store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// SQLite file, no server needed.
    Embedded,
    /// A MongoDB deployment.
    Mongodb,
}

/// MongoDB settings.
#[derive(Clone, Debug, Deserialize)]
pub struct MongoSettings {
    /// Connection string; may hold credentials, so it is never logged.
    pub uri: SecretString,
    /// Database holding the service's data.
    pub master_db: String,
    /// Seconds between reconciliation runs.
    pub reconcile_interval_secs: u64,
    /// Seconds a lifecycle operation's lease lives without renewal; another
    /// instance takes the operation over only after that.
    pub lease_timeout_secs: u64,
    /// The earlier name of `lease_timeout_secs` (when set, it wins, with a
    /// warning at startup).
    #[serde(default)]
    pub reconcile_stale_after_secs: Option<u64>,
    /// The layout of organizations created from now on: `collection` or
    /// `shared` ([`TenantLayout::as_str`]); checked by
    /// [`Settings::load`], read through [`MongoSettings::tenancy`].
    pub tenancy: String,
}

impl MongoSettings {
    /// Time between reconciliation runs.
    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_secs(self.reconcile_interval_secs)
    }

    /// The layout of organizations created from now on (`mongodb.tenancy`,
    /// validated at load: [`TenantLayout::Collection`] only for a value that
    /// never passed validation).
    pub fn tenancy(&self) -> TenantLayout {
        TenantLayout::parse(&self.tenancy).unwrap_or_default()
    }

    /// How long a lifecycle operation's lease lives without renewal (see
    /// the MongoDB adapter's `lease.rs`).
    pub fn lease_timeout(&self) -> Duration {
        Duration::from_secs(
            self.reconcile_stale_after_secs
                .unwrap_or(self.lease_timeout_secs),
        )
    }
}

/// Credential settings.
#[derive(Clone, Debug, Deserialize)]
pub struct AuthSettings {
    /// How access tokens are signed.
    pub signing: SigningConfig,
    /// Encrypts the stored private signing keys (at least 32 bytes).
    pub key_encryption_secret: Option<SecretString>,
    /// HS256 secret: signs with `signing.algorithm = "HS256"`, else only
    /// verifies tokens issued before the switch.
    pub jwt_secret: Option<SecretString>,
    /// Access token lifetime, in seconds.
    pub access_token_ttl: u64,
    /// Refresh token lifetime, in seconds.
    pub refresh_token_ttl: u64,
    /// Token issuer (`iss`).
    pub issuer: String,
    /// Token audience (`aud`).
    pub audience: String,
    /// Password hashing cost.
    pub argon2: orgsvc_auth::Argon2Params,
    /// Password hashes computed at once; `None`: half the CPUs, at least
    /// one (see [`Settings::hashing_concurrency`]).
    pub hashing_concurrency: Option<NonZeroUsize>,
    /// How long a password-reset link works, in seconds.
    pub password_reset_ttl_secs: u64,
    /// How long an email-verification link works, in seconds.
    pub email_verification_ttl_secs: u64,
    /// Whether unverified admins are refused all but verification, logout
    /// and refresh.
    pub require_verified_email: bool,
}

/// Allowed `auth.password_reset_ttl_secs`: a minute to a day.
const PASSWORD_RESET_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=86_400;
/// Allowed `auth.email_verification_ttl_secs`: a minute to 30 days.
const EMAIL_VERIFICATION_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=2_592_000;

/// How access tokens are signed (`auth.signing.*`).
#[derive(Clone, Debug, Deserialize)]
pub struct SigningConfig {
    /// The algorithm.
    pub algorithm: SigningAlgorithmSetting,
    /// Age of the active key at which a new one is generated, in seconds.
    pub rotate_every_secs: u64,
    /// How long a new key is published before it signs, in seconds;
    /// `None`: `auth.access_token_ttl`.
    pub publish_ahead_secs: Option<u64>,
}

/// `auth.signing.algorithm`: a JWS `alg` (RFC 7518 §3.1), `EdDSA`, `ES256`,
/// `RS256` or `HS256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlgorithmSetting {
    /// The stored, rotating key set, its keys of this algorithm.
    KeySet(orgsvc_domain::SigningAlgorithm),
    /// HMAC SHA-256 with `auth.jwt_secret`: no key set, nothing published.
    Hs256,
}

impl SigningAlgorithmSetting {
    /// The stored key set's algorithm; `None` for HS256.
    pub fn asymmetric(self) -> Option<orgsvc_domain::SigningAlgorithm> {
        match self {
            Self::KeySet(algorithm) => Some(algorithm),
            Self::Hs256 => None,
        }
    }
}

impl<'de> Deserialize<'de> for SigningAlgorithmSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name == "HS256" {
            return Ok(Self::Hs256);
        }
        orgsvc_domain::SigningAlgorithm::parse(&name)
            .map(Self::KeySet)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "auth.signing.algorithm must be EdDSA, ES256, RS256 or HS256, not {name:?}"
                ))
            })
    }
}

impl AuthSettings {
    /// When keys move on: `auth.signing.*` with the access-token TTL.
    pub fn rotation_policy(&self) -> orgsvc_domain::RotationPolicy {
        let token_ttl = Duration::from_secs(self.access_token_ttl);
        orgsvc_domain::RotationPolicy {
            publish_ahead: self
                .signing
                .publish_ahead_secs
                .map_or(token_ttl, Duration::from_secs),
            rotate_every: Duration::from_secs(self.signing.rotate_every_secs),
            ..orgsvc_domain::RotationPolicy::new(token_ttl)
        }
    }
}

/// Login protection and client identification.
#[derive(Clone, Debug, Deserialize)]
pub struct SecuritySettings {
    /// Failed logins allowed per email before the next attempt locks it.
    pub login_max_failures: u32,
    /// First lock, in seconds.
    pub login_lock_secs: u64,
    /// Longest lock, in seconds.
    pub login_max_lock_secs: u64,
    /// Login and refresh calls allowed per client IP and minute.
    pub login_rate_per_minute: NonZeroU32,
    /// Calls a client IP may make at once before the rate applies.
    pub login_rate_burst: NonZeroU32,
    /// Operator API requests allowed per operator key and minute.
    pub operator_rate_per_minute: NonZeroU32,
    /// Requests an operator key may make at once before the rate applies.
    pub operator_rate_burst: NonZeroU32,
    /// Proxies whose forwarding headers name the client (see
    /// [`crate::proxies::resolve_client_ip`]).
    #[serde(default)]
    pub trusted_proxies: TrustedProxies,
    /// Deprecated: trust the connection's peer, whatever it is, as a proxy
    /// (the client is then the last `X-Forwarded-For` entry).
    pub trust_forwarded_for: bool,
    /// Seconds between purges of expired sessions and old audit entries.
    pub purge_interval_secs: u64,
}

impl SecuritySettings {
    /// How failed logins lock an email.
    pub fn login_throttle(&self) -> orgsvc_domain::LoginThrottle {
        orgsvc_domain::LoginThrottle {
            max_failures: self.login_max_failures,
            base_lock: Duration::from_secs(self.login_lock_secs),
            max_lock: Duration::from_secs(self.login_max_lock_secs),
        }
    }

    /// The per-client-IP limit of `POST /admin/login` and `/admin/refresh`.
    pub fn login_rate_limit(&self) -> orgsvc_domain::RateLimit {
        orgsvc_domain::RateLimit {
            rate_per_minute: self.login_rate_per_minute,
            burst: self.login_rate_burst,
        }
    }

    /// The per-key limit of the operator API (`/operator/*`).
    pub fn operator_rate_limit(&self) -> orgsvc_domain::RateLimit {
        orgsvc_domain::RateLimit {
            rate_per_minute: self.operator_rate_per_minute,
            burst: self.operator_rate_burst,
        }
    }

    /// Time between purges.
    pub fn purge_interval(&self) -> Duration {
        Duration::from_secs(self.purge_interval_secs)
    }
}

/// Audit log settings.
#[derive(Clone, Debug, Deserialize)]
pub struct AuditSettings {
    /// Days the entries of a deleted organization are kept.
    pub retention_days: u32,
}

/// Cross-origin resource sharing (the Fetch standard's CORS protocol).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CorsSettings {
    /// Origins whose browser pages may call the API: exact
    /// `scheme://host[:port]` values, or `*` for any origin (the API takes
    /// bearer tokens, never cookies, so credentials are never allowed).
    /// Empty: CORS is off and browsers refuse cross-origin calls. A TOML
    /// array, or a comma-separated list in `ORGSVC__CORS__ALLOWED_ORIGINS`.
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub allowed_origins: Vec<String>,
    /// Seconds a browser may cache a preflight answer (default 600).
    #[serde(default = "default_cors_max_age")]
    pub max_age_secs: u32,
}

fn default_cors_max_age() -> u32 {
    600
}

/// A list given as an array, or as one comma-separated string (as
/// environment variables give it); blank entries are dropped.
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    let entries = match ListOrText::deserialize(deserializer)? {
        ListOrText::List(list) => list,
        ListOrText::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(entries
        .into_iter()
        .map(|entry| entry.trim().to_owned())
        .filter(|entry| !entry.is_empty())
        .collect())
}

/// Prometheus metrics (`GET /metrics`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// Whether metrics are recorded and served.
    pub enabled: bool,
    /// Serve `/metrics` on this address (`host:port`) instead of the main
    /// port; `None`: on the main port.
    pub listen: Option<SocketAddr>,
}

impl MetricsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match self.listen {
            Some(listen) if !self.enabled => Err(ConfigError::Invalid(format!(
                "metrics.listen ({listen}) requires metrics.enabled = true"
            ))),
            _ => Ok(()),
        }
    }
}

/// How the email outbox is delivered (`email.*`).
#[derive(Clone, Debug, Deserialize)]
pub struct EmailSettings {
    /// Which transport.
    pub transport: EmailTransportKind,
    /// The SMTP relay's URL (see the `email` module's `SmtpTransport`); may
    /// hold a password, so it is never logged (`Debug` redacts it).
    #[serde(default)]
    pub smtp_url: Option<SecretString>,
    /// The sender mailbox; `None`: [`DEVELOPMENT_FROM`] (development only).
    #[serde(default)]
    pub from: Option<String>,
    /// The invitation link template (contains `{token}`); `None`: the
    /// development default.
    #[serde(default)]
    pub invitation_url: Option<String>,
    /// The password reset link template (contains `{token}`).
    #[serde(default)]
    pub password_reset_url: Option<String>,
    /// The email verification link template (contains `{token}`).
    #[serde(default)]
    pub verification_url: Option<String>,
    /// Seconds an SMTP command, and one delivery, may take.
    pub timeout_secs: u64,
    /// Seconds between looks at the outbox.
    pub poll_interval_secs: u64,
    /// Messages claimed at once.
    pub batch_size: u32,
    /// Seconds to wait after the first failure (doubling after each).
    pub retry_base_secs: u64,
    /// Longest wait between attempts, in seconds.
    pub retry_max_secs: u64,
    /// Failed deliveries after which a message is given up.
    pub max_attempts: u32,
}

/// `email.transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransportKind {
    /// Written to the log (development).
    Log,
    /// Sent to `email.smtp_url`.
    Smtp,
}

/// `email.from` in development when unset.
pub const DEVELOPMENT_FROM: &str = "orgsvc <no-reply@localhost>";
/// The page of `email.invitation_url` in development when unset (see
/// [`LinkTemplate::development`]).
pub const DEVELOPMENT_INVITATION_PAGE: &str = "invite";
/// The page of `email.password_reset_url` in development when unset.
pub const DEVELOPMENT_PASSWORD_RESET_PAGE: &str = "reset-password";
/// The page of `email.verification_url` in development when unset.
pub const DEVELOPMENT_VERIFICATION_PAGE: &str = "verify-email";
/// Longest accepted `email.timeout_secs`.
pub const MAX_EMAIL_TIMEOUT_SECS: u64 = 600;
/// Largest accepted `email.batch_size`.
pub const MAX_EMAIL_BATCH_SIZE: u32 = 1000;

impl EmailSettings {
    /// `email.from`, or [`DEVELOPMENT_FROM`].
    pub fn from(&self) -> &str {
        self.from.as_deref().unwrap_or(DEVELOPMENT_FROM)
    }

    /// `email.from` as a mailbox.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `email.from` when it is no mailbox.
    pub fn from_mailbox(&self) -> Result<lettre::message::Mailbox, ConfigError> {
        self.from().parse().map_err(|error| {
            ConfigError::Invalid(format!(
                "email.from must be a mailbox like `orgsvc <no-reply@example.com>` ({error})"
            ))
        })
    }

    /// The links of the emails the use cases send: `email.*_url`, each
    /// unset one its development default. (Loading the settings refuses a
    /// template [`LinkTemplate::parse`] refuses; one that slipped past, in
    /// settings built by hand, is replaced by the default too.)
    pub fn links(&self) -> EmailLinks {
        let or_development = |template: &Option<String>, page: &str| {
            template
                .as_deref()
                .and_then(|raw| LinkTemplate::parse(raw).ok())
                .unwrap_or_else(|| LinkTemplate::development(page))
        };
        EmailLinks {
            invitation: or_development(&self.invitation_url, DEVELOPMENT_INVITATION_PAGE),
            password_reset: or_development(
                &self.password_reset_url,
                DEVELOPMENT_PASSWORD_RESET_PAGE,
            ),
            email_verification: or_development(
                &self.verification_url,
                DEVELOPMENT_VERIFICATION_PAGE,
            ),
        }
    }

    /// How the background sender works.
    pub fn sender_settings(&self) -> orgsvc_app::outbox::SenderSettings {
        orgsvc_app::outbox::SenderSettings {
            poll_interval: Duration::from_secs(self.poll_interval_secs),
            batch_size: self.batch_size,
            delivery_timeout: Duration::from_secs(self.timeout_secs),
            retry: orgsvc_domain::RetryPolicy {
                base: Duration::from_secs(self.retry_base_secs),
                max: Duration::from_secs(self.retry_max_secs),
            },
            max_attempts: self.max_attempts,
        }
    }

    fn validate(&self, profile: Profile) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if profile == Profile::Production {
            if self.transport == EmailTransportKind::Log {
                return invalid("profile \"production\" refuses email.transport = \"log\" (it writes emails and their links to the log): set email.transport = \"smtp\" (env ORGSVC__EMAIL__TRANSPORT) and email.smtp_url".into());
            }
            for (key, set) in [
                ("from", self.from.is_some()),
                ("invitation_url", self.invitation_url.is_some()),
                ("password_reset_url", self.password_reset_url.is_some()),
                ("verification_url", self.verification_url.is_some()),
            ] {
                if !set {
                    let env = key.to_uppercase();
                    return invalid(format!(
                        "profile \"production\" requires email.{key} (env ORGSVC__EMAIL__{env})"
                    ));
                }
            }
        }
        match (&self.smtp_url, self.transport) {
            (None, EmailTransportKind::Smtp) => {
                return invalid("email.transport = \"smtp\" requires email.smtp_url (env ORGSVC__EMAIL__SMTP_URL)".into());
            }
            (Some(url), _) => {
                smtp_builder(url.expose_secret())?;
            }
            (None, EmailTransportKind::Log) => {}
        }
        self.from_mailbox()?;
        for (key, template) in [
            ("email.invitation_url", &self.invitation_url),
            ("email.password_reset_url", &self.password_reset_url),
            ("email.verification_url", &self.verification_url),
        ] {
            if let Some(raw) = template {
                if let Err(error) = LinkTemplate::parse(raw) {
                    return invalid(format!(
                        "{key} {error}, e.g. https://app.example.com/invite?token={{token}} (got {raw:?})"
                    ));
                }
            }
        }
        if !(1..=MAX_EMAIL_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return invalid(format!(
                "email.timeout_secs must be between 1 and {MAX_EMAIL_TIMEOUT_SECS}"
            ));
        }
        if self.poll_interval_secs == 0 {
            return invalid("email.poll_interval_secs must be at least 1".into());
        }
        if !(1..=MAX_EMAIL_BATCH_SIZE).contains(&self.batch_size) {
            return invalid(format!(
                "email.batch_size must be between 1 and {MAX_EMAIL_BATCH_SIZE}"
            ));
        }
        if self.retry_base_secs == 0 || self.retry_max_secs < self.retry_base_secs {
            return invalid(
                "email.retry_base_secs must be at least 1 and at most email.retry_max_secs".into(),
            );
        }
        if self.max_attempts == 0 {
            return invalid("email.max_attempts must be at least 1".into());
        }
        Ok(())
    }
}

/// lettre's builder for `url`, or an error naming `email.smtp_url` (lettre's
/// reasons name the part at fault, never the URL or its password).
pub fn smtp_builder(
    url: &str,
) -> Result<lettre::transport::smtp::AsyncSmtpTransportBuilder, ConfigError> {
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url).map_err(|error| {
        ConfigError::Invalid(format!(
            "email.smtp_url must be smtp://host[:port][?tls=required|opportunistic] or smtps://[user:password@]host[:port] ({error})"
        ))
    })
}

/// Logging settings.
#[derive(Clone, Debug, Deserialize)]
pub struct LogSettings {
    /// Filter directive such as `info` or `orgsvc_api=debug,info`.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// What the use cases need from these settings.
    pub fn app_settings(&self) -> AppSettings {
        AppSettings {
            refresh_token_ttl: Duration::from_secs(self.auth.refresh_token_ttl),
            login_throttle: self.security.login_throttle(),
            email_links: self.email.links(),
            password_reset_ttl: Duration::from_secs(self.auth.password_reset_ttl_secs),
            email_verification_ttl: Duration::from_secs(self.auth.email_verification_ttl_secs),
            require_verified_email: self.auth.require_verified_email,
        }
    }

    /// The background maintenance these settings ask for
    /// (`security.purge_interval_secs`, `security.login_max_lock_secs`,
    /// `audit.retention_days`).
    pub fn maintenance(&self) -> Maintenance {
        Maintenance::new(
            self.security.purge_interval(),
            &self.security.login_throttle(),
            Duration::from_secs(u64::from(self.audit.retention_days) * 24 * 60 * 60),
        )
    }

    /// Loads the settings from the defaults, `file` (if any) and the process
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, None)
    }

    /// Like [`Settings::load`], reading environment variables from `env`
    /// instead of the process environment when given (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut builder = with_defaults(Config::builder())?;
        if let Some(file) = file {
            builder = builder.add_source(File::from(file).format(FileFormat::Toml).required(true));
        }
        let settings: Self = builder
            .add_source(
                Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator(ENV_SEPARATOR)
                    .separator(ENV_SEPARATOR)
                    .source(env),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(readers) = self.store.readers {
            if readers.get() > StoreSettings::MAX_READERS {
                return Err(ConfigError::Invalid(format!(
                    "store.readers must be between 1 and {} (got {readers})",
                    StoreSettings::MAX_READERS
                )));
            }
        }
        if self.auth.access_token_ttl == 0 {
            return Err(ConfigError::Invalid(
                "auth.access_token_ttl must be at least 1 second".into(),
            ));
        }
        if self.auth.refresh_token_ttl == 0 {
            return Err(ConfigError::Invalid(
                "auth.refresh_token_ttl must be at least 1 second".into(),
            ));
        }
        if self.security.login_max_failures == 0 {
            return Err(ConfigError::Invalid(
                "security.login_max_failures must be at least 1".into(),
            ));
        }
        if self.security.login_lock_secs == 0
            || self.security.login_max_lock_secs < self.security.login_lock_secs
        {
            return Err(ConfigError::Invalid(
                "security.login_lock_secs must be at least 1 and at most security.login_max_lock_secs".into(),
            ));
        }
        if self.security.purge_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "security.purge_interval_secs must be at least 1".into(),
            ));
        }
        if self.server.shutdown_timeout_secs < MIN_SHUTDOWN_TIMEOUT_SECS {
            return Err(ConfigError::Invalid(format!(
                "server.shutdown_timeout_secs must be at least {MIN_SHUTDOWN_TIMEOUT_SECS}"
            )));
        }
        if self.server.shutdown_delay_secs
            > self.server.shutdown_timeout_secs - MIN_SHUTDOWN_TIMEOUT_SECS
        {
            return Err(ConfigError::Invalid(format!(
                "server.shutdown_delay_secs must be at most server.shutdown_timeout_secs - {MIN_SHUTDOWN_TIMEOUT_SECS} (the rest drains in-flight requests)"
            )));
        }
        for (key, secs, min) in [
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
                1,
            ),
            (
                "server.body_read_timeout_secs",
                self.server.body_read_timeout_secs,
                1,
            ),
            ("server.keep_alive_secs", self.server.keep_alive_secs, 0),
        ] {
            if !(min..=MAX_TRANSPORT_TIMEOUT_SECS).contains(&secs) {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be between {min} and {MAX_TRANSPORT_TIMEOUT_SECS}"
                )));
            }
        }
        for origin in &self.cors.allowed_origins {
            if !is_valid_origin(origin) {
                return Err(ConfigError::Invalid(format!(
                    "cors.allowed_origins: {origin:?} is not an origin (scheme://host[:port], without a path) or \"*\""
                )));
            }
        }
        self.metrics.validate()?;
        if self.mongodb.reconcile_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "mongodb.reconcile_interval_secs must be at least 1".into(),
            ));
        }
        if self.mongodb.lease_timeout().is_zero() {
            return Err(ConfigError::Invalid(
                "mongodb.lease_timeout_secs must be at least 1".into(),
            ));
        }
        if TenantLayout::parse(&self.mongodb.tenancy).is_none() {
            return Err(ConfigError::Invalid(format!(
                "mongodb.tenancy must be \"collection\" or \"shared\" (got {:?})",
                self.mongodb.tenancy
            )));
        }
        let secret_len =
            |secret: &Option<SecretString>| secret.as_ref().map(|s| s.expose_secret().len());
        if secret_len(&self.auth.key_encryption_secret).is_some_and(|len| len < MIN_SECRET_BYTES) {
            return Err(ConfigError::Invalid(format!(
                "auth.key_encryption_secret must be at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        if self.auth.signing.rotate_every_secs == 0 {
            return Err(ConfigError::Invalid(
                "auth.signing.rotate_every_secs must be at least 1".into(),
            ));
        }
        if let Some(url) = &self.server.public_url {
            if !is_valid_public_url(url) {
                return Err(ConfigError::Invalid(format!(
                    "server.public_url must be an http:// or https:// URL with a host and no query or fragment, e.g. https://auth.example.com (got {url:?})"
                )));
            }
        }
        for (key, value, range) in [
            (
                "auth.password_reset_ttl_secs",
                self.auth.password_reset_ttl_secs,
                PASSWORD_RESET_TTL_SECS,
            ),
            (
                "auth.email_verification_ttl_secs",
                self.auth.email_verification_ttl_secs,
                EMAIL_VERIFICATION_TTL_SECS,
            ),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be between {} and {} seconds (got {value})",
                    range.start(),
                    range.end()
                )));
            }
        }
        let publish_ahead = self.auth.rotation_policy().publish_ahead;
        if Duration::from_secs(self.auth.signing.rotate_every_secs) <= publish_ahead {
            return Err(ConfigError::Invalid(
                "auth.signing.rotate_every_secs must be longer than auth.signing.publish_ahead_secs (default: auth.access_token_ttl): a key must sign before the next one is due".into(),
            ));
        }
        if self.profile == Profile::Production
            && secret_len(&self.auth.jwt_secret).is_some_and(|len| len < MIN_SECRET_BYTES)
        {
            // Even as the legacy verifier of an asymmetric deployment: a
            // guessable secret forges tokens without `kid`.
            return Err(ConfigError::Invalid(format!(
                "auth.jwt_secret must be at least {MIN_SECRET_BYTES} bytes in production"
            )));
        }
        if self.profile == Profile::Production {
            let (key, len) = match self.auth.signing.algorithm {
                SigningAlgorithmSetting::Hs256 => ("jwt_secret", secret_len(&self.auth.jwt_secret)),
                _ => (
                    "key_encryption_secret",
                    secret_len(&self.auth.key_encryption_secret),
                ),
            };
            if len.unwrap_or(0) < MIN_SECRET_BYTES {
                let env = key.to_uppercase();
                return Err(ConfigError::Invalid(format!(
                    "profile \"production\" requires auth.{key} (env ORGSVC__AUTH__{env}) of at least {MIN_SECRET_BYTES} bytes"
                )));
            }
        }
        self.email.validate(self.profile)?;
        Ok(())
    }

    /// HTTP worker threads.
    pub fn workers(&self) -> usize {
        self.server
            .workers
            .map_or_else(cpu_count, NonZeroUsize::get)
    }

    /// Password hashes computed at once: `auth.hashing_concurrency`, by
    /// default half the CPUs (at least one). Each hash keeps a core busy for
    /// tens of milliseconds; with one permit per CPU a login storm would take
    /// every core and starve the cheap requests (`GET /org/get`, health
    /// probes). Leaving half the cores to them keeps requests flowing while
    /// logins queue for a permit.
    pub fn hashing_concurrency(&self) -> usize {
        self.auth
            .hashing_concurrency
            .map_or_else(default_hashing_concurrency, NonZeroUsize::get)
    }
}

/// Default of `auth.hashing_concurrency`: `max(1, cpus / 2)`.
fn default_hashing_concurrency() -> usize {
    (cpu_count() / 2).max(1)
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

fn with_defaults(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, config::ConfigError> {
    let argon2 = orgsvc_auth::Argon2Params::default();
    builder
        .set_default("profile", "development")?
        .set_default("server.host", "127.0.0.1")?
        .set_default("server.port", 8080)?
        .set_default("server.max_body_bytes", 65_536)?
        .set_default("server.shutdown_timeout_secs", 25)?
        .set_default("server.shutdown_delay_secs", 0)?
        .set_default("server.header_read_timeout_secs", 20)?
        .set_default("server.body_read_timeout_secs", 30)?
        .set_default("server.keep_alive_secs", 30)?
        .set_default("server.max_connections_per_ip", 64)?
        .set_default("store.kind", "embedded")?
        .set_default("store.path", "./data/orgsvc.db")?
        .set_default("mongodb.uri", "mongodb://127.0.0.1:27017")?
        .set_default("mongodb.master_db", "orgsvc_master")?
        .set_default("mongodb.reconcile_interval_secs", 10)?
        .set_default("mongodb.lease_timeout_secs", 15)?
        .set_default("mongodb.tenancy", TenantLayout::Collection.as_str())?
        .set_default("data.max_document_bytes", 262_144)?
        .set_default("auth.signing.algorithm", "EdDSA")?
        .set_default("auth.signing.rotate_every_secs", 30 * 24 * 3600)?
        .set_default("auth.access_token_ttl", 900)?
        .set_default("auth.refresh_token_ttl", 1_209_600)?
        .set_default("auth.issuer", "orgsvc")?
        .set_default("auth.audience", "orgsvc-api")?
        .set_default("auth.argon2.memory_kib", argon2.memory_kib)?
        .set_default("auth.argon2.iterations", argon2.iterations)?
        .set_default("auth.argon2.parallelism", argon2.parallelism)?
        .set_default("auth.password_reset_ttl_secs", 1800)?
        .set_default("auth.email_verification_ttl_secs", 86_400)?
        .set_default("auth.require_verified_email", false)?
        .set_default("security.login_max_failures", 5)?
        .set_default("security.login_lock_secs", 60)?
        .set_default("security.login_max_lock_secs", 3600)?
        .set_default("security.login_rate_per_minute", 30)?
        .set_default("security.login_rate_burst", 10)?
        .set_default("security.operator_rate_per_minute", 600)?
        .set_default("security.operator_rate_burst", 120)?
        .set_default("security.trust_forwarded_for", false)?
        .set_default("security.purge_interval_secs", 3600)?
        .set_default("audit.retention_days", 90)?
        .set_default("email.transport", "log")?
        .set_default("email.timeout_secs", 30)?
        .set_default("email.poll_interval_secs", 5)?
        .set_default("email.batch_size", 20)?
        .set_default("email.retry_base_secs", 30)?
        .set_default("email.retry_max_secs", 3600)?
        .set_default("email.max_attempts", 10)?
        .set_default("log.level", "info")?
        .set_default("log.format", "text")
}

/// Whether `url` can be `server.public_url`: `http://` or `https://`, a
/// host, an optional port and path, no query or fragment.
fn is_valid_public_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    !authority.is_empty()
        && !authority.contains('@')
        && !url.contains(['?', '#'])
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `origin` can be listed in `cors.allowed_origins`: `*`, or an
/// origin as browsers send it (RFC 6454 §6.2: `scheme://host[:port]`, no
/// path, no trailing slash).
pub fn is_valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
            if port.parse::<u16>().is_err() {
                return false;
            }
            host
        }
        _ => rest,
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_optional_port() {
        for good in [
            "*",
            "https://app.example.com",
            "http://localhost:3000",
            "https://[::1]:8443",
            "http://127.0.0.1",
        ] {
            assert!(is_valid_origin(good), "{good}");
        }
        for bad in [
            "",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://files.example.com",
            "https://",
            "https://app.example.com:port",
            "https://user@app.example.com",
            "https://a.example.com?x=1",
        ] {
            assert!(!is_valid_origin(bad), "{bad}");
        }
    }

    fn env(vars: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            vars.iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        )
    }

    /// The email settings production requires.
    const PRODUCTION_EMAIL: [(&str, &str); 5] = [
        ("ORGSVC__EMAIL__TRANSPORT", "smtp"),
        (
            "ORGSVC__EMAIL__SMTP_URL",
            "smtps://mailer:hunter2@smtp.example.com",
        ),
        ("ORGSVC__EMAIL__FROM", "Example <no-reply@example.com>"),
        (
            "ORGSVC__EMAIL__INVITATION_URL",
            "https://app.example.com/invite?token={token}",
        ),
        (
            "ORGSVC__EMAIL__PASSWORD_RESET_URL",
            "https://app.example.com/reset#{token}",
        ),
    ];

    /// `vars` with every email setting production requires.
    fn production_env(vars: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        let mut all: Vec<(&str, &str)> = PRODUCTION_EMAIL.to_vec();
        all.push((
            "ORGSVC__EMAIL__VERIFICATION_URL",
            "https://app.example.com/verify/{token}",
        ));
        all.extend_from_slice(vars);
        env(&all)
    }

    #[test]
    fn email_defaults_to_the_log_with_local_links_in_development() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        let email = &settings.email;
        assert_eq!(email.transport, EmailTransportKind::Log);
        assert!(email.smtp_url.is_none());
        assert_eq!(email.from(), "orgsvc <no-reply@localhost>");
        let links = email.links();
        assert_eq!(
            links.invitation.as_str(),
            "http://localhost:3000/invite?token={token}"
        );
        assert_eq!(
            links.password_reset.as_str(),
            "http://localhost:3000/reset-password?token={token}"
        );
        assert_eq!(
            links.email_verification.as_str(),
            "http://localhost:3000/verify-email?token={token}"
        );
        let sender = email.sender_settings();
        assert_eq!(sender, orgsvc_app::outbox::SenderSettings::default());
    }

    #[test]
    fn production_refuses_the_log_transport_and_missing_email_settings() {
        let long = "x".repeat(MIN_SECRET_BYTES);
        let secret = ("ORGSVC__AUTH__KEY_ENCRYPTION_SECRET", long.as_str());
        let production = ("ORGSVC__PROFILE", "production");
        let log = Settings::load_from(None, env(&[production, secret])).unwrap_err();
        assert!(log.to_string().contains("email.transport"), "{log}");
        // Each required email setting is named when missing.
        for missing in [
            "from",
            "invitation_url",
            "password_reset_url",
            "verification_url",
        ] {
            let vars: HashMap<String, String> = production_env(&[production, secret])
                .unwrap()
                .into_iter()
                .filter(|(key, _)| *key != format!("ORGSVC__EMAIL__{}", missing.to_uppercase()))
                .collect();
            let error = Settings::load_from(None, Some(vars)).unwrap_err();
            assert!(
                error.to_string().contains(&format!("email.{missing}")),
                "{error}"
            );
        }
        let settings = Settings::load_from(None, production_env(&[production, secret])).unwrap();
        assert_eq!(settings.email.transport, EmailTransportKind::Smtp);
    }

    #[test]
    fn unusable_email_settings_are_refused_naming_the_key() {
        for (key, value, named) in [
            ("TRANSPORT", "sendmail", None),
            ("FROM", "not a mailbox", Some("email.from")),
            (
                "INVITATION_URL",
                "https://app.example.com/invite",
                Some("email.invitation_url"),
            ),
            (
                "PASSWORD_RESET_URL",
                "ftp://x/{token}",
                Some("email.password_reset_url"),
            ),
            (
                "VERIFICATION_URL",
                "https://{token}",
                Some("email.verification_url"),
            ),
            (
                "SMTP_URL",
                "http://user:hunter2@relay",
                Some("email.smtp_url"),
            ),
            ("TIMEOUT_SECS", "0", Some("email.timeout_secs")),
            ("POLL_INTERVAL_SECS", "0", Some("email.poll_interval_secs")),
            ("BATCH_SIZE", "0", Some("email.batch_size")),
            ("RETRY_BASE_SECS", "7200", Some("email.retry_base_secs")),
            ("MAX_ATTEMPTS", "0", Some("email.max_attempts")),
        ] {
            let var = format!("ORGSVC__EMAIL__{key}");
            let error = Settings::load_from(None, env(&[(&var, value)])).unwrap_err();
            let message = error.to_string();
            assert!(!message.contains("hunter2"), "{message}");
            match named {
                Some(named) => assert!(message.contains(named), "{key}={value}: {message}"),
                None => assert!(matches!(error, ConfigError::Load(_)), "{key}: {message}"),
            }
        }
        let smtp_without_url =
            Settings::load_from(None, env(&[("ORGSVC__EMAIL__TRANSPORT", "smtp")])).unwrap_err();
        assert!(smtp_without_url.to_string().contains("email.smtp_url"));
    }

    #[test]
    fn the_smtp_url_is_a_secret_debug_never_shows() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__EMAIL__TRANSPORT", "smtp"),
                (
                    "ORGSVC__EMAIL__SMTP_URL",
                    "smtps://mailer:hunter2@smtp.example.com",
                ),
                ("ORGSVC__EMAIL__RETRY_BASE_SECS", "2"),
                ("ORGSVC__EMAIL__MAX_ATTEMPTS", "3"),
            ]),
        )
        .unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
        let sender = settings.email.sender_settings();
        assert_eq!(sender.retry.base, Duration::from_secs(2));
        assert_eq!(sender.max_attempts, 3);
    }

    #[test]
    fn defaults_apply_without_file_or_environment() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(settings.profile, Profile::Development);
        assert_eq!(settings.server.host.to_string(), "127.0.0.1");
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.server.max_body_bytes.get(), 65_536);
        assert!(settings.server.workers.is_none());
        assert_eq!(settings.server.shutdown_timeout(), Duration::from_secs(25));
        assert_eq!(settings.server.shutdown_delay(), Duration::ZERO);
        assert_eq!(
            settings.server.header_read_timeout(),
            Duration::from_secs(20)
        );
        assert_eq!(settings.server.body_read_timeout(), Duration::from_secs(30));
        assert_eq!(settings.server.keep_alive(), Duration::from_secs(30));
        assert_eq!(settings.server.max_connections_per_ip, 64);
        assert_eq!(settings.store.kind, StoreKind::Embedded);
        assert_eq!(settings.store.path, PathBuf::from("./data/orgsvc.db"));
        assert_eq!(settings.store.readers, None);
        assert_eq!(
            settings.store.sqlite_options().readers.get(),
            cpu_count().min(8)
        );
        assert_eq!(
            settings.mongodb.uri.expose_secret(),
            "mongodb://127.0.0.1:27017"
        );
        assert_eq!(settings.mongodb.master_db, "orgsvc_master");
        assert_eq!(settings.mongodb.reconcile_interval_secs, 10);
        assert_eq!(settings.mongodb.lease_timeout(), Duration::from_secs(15));
        assert_eq!(settings.mongodb.tenancy(), TenantLayout::Collection);
        assert_eq!(settings.data.max_document_bytes.get(), 262_144);
        assert!(settings.auth.jwt_secret.is_none());
        assert_eq!(settings.auth.access_token_ttl, 900);
        assert_eq!(settings.auth.issuer, "orgsvc");
        assert_eq!(settings.auth.audience, "orgsvc-api");
        assert_eq!(settings.auth.argon2.memory_kib, 19_456);
        assert_eq!(settings.auth.argon2.iterations, 2);
        assert_eq!(settings.auth.argon2.parallelism, 1);
        assert_eq!(settings.log.level, "info");
        assert_eq!(settings.log.format, LogFormat::Text);
        assert_eq!(settings.workers(), cpu_count());
        assert_eq!(settings.hashing_concurrency(), (cpu_count() / 2).max(1));
        assert!(settings.hashing_concurrency() >= 1);
    }

    #[test]
    fn mongodb_tenancy_is_collection_or_shared() {
        let shared =
            Settings::load_from(None, env(&[("ORGSVC__MONGODB__TENANCY", "shared")])).unwrap();
        assert_eq!(shared.mongodb.tenancy(), TenantLayout::Shared);
        let collection =
            Settings::load_from(None, env(&[("ORGSVC__MONGODB__TENANCY", "collection")])).unwrap();
        assert_eq!(collection.mongodb.tenancy(), TenantLayout::Collection);
        for bad in ["Shared", "per-tenant", ""] {
            let err =
                Settings::load_from(None, env(&[("ORGSVC__MONGODB__TENANCY", bad)])).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid configuration: mongodb.tenancy must be \"collection\" or \"shared\" (got {bad:?})"
                )
            );
        }
    }

    #[test]
    fn environment_overrides_nested_and_top_level_keys() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__SERVER__PORT", "9000"),
                ("ORGSVC__STORE__KIND", "mongodb"),
                ("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "256"),
                ("ORGSVC__AUTH__JWT_SECRET", "12345"),
                ("ORGSVC__LOG__FORMAT", "json"),
                ("ORGSVC_CONFIG", "ignored.toml"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.server.port, 9000);
        assert_eq!(settings.store.kind, StoreKind::Mongodb);
        assert_eq!(settings.auth.argon2.memory_kib, 256);
        assert_eq!(
            settings
                .auth
                .jwt_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("12345".to_owned())
        );
        assert_eq!(settings.log.format, LogFormat::Json);
    }

    #[test]
    fn file_overrides_defaults_and_environment_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orgsvc.toml");
        std::fs::write(
            &path,
            "profile = \"development\"\n[server]\nport = 7000\nworkers = 3\n[log]\nlevel = \"debug\"\n",
        )
        .unwrap();
        let settings =
            Settings::load_from(Some(&path), env(&[("ORGSVC__LOG__LEVEL", "warn")])).unwrap();
        assert_eq!(settings.server.port, 7000);
        assert_eq!(settings.workers(), 3);
        assert_eq!(settings.log.level, "warn");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let error =
            Settings::load_from(Some(Path::new("/nonexistent/orgsvc.toml")), env(&[])).unwrap_err();
        assert!(matches!(error, ConfigError::Load(_)), "{error}");
    }

    #[test]
    fn wrongly_typed_values_are_errors_naming_the_key() {
        for (key, value) in [
            ("ORGSVC__SERVER__PORT", "eighty"),
            ("ORGSVC__SERVER__PORT", "70000"),
            ("ORGSVC__STORE__KIND", "postgres"),
            ("ORGSVC__PROFILE", "staging"),
            ("ORGSVC__SERVER__MAX_BODY_BYTES", "0"),
            ("ORGSVC__DATA__MAX_DOCUMENT_BYTES", "0"),
        ] {
            let error = Settings::load_from(None, env(&[(key, value)])).unwrap_err();
            assert!(
                matches!(error, ConfigError::Load(_)),
                "{key}={value}: {error}"
            );
        }
    }

    #[test]
    fn session_and_security_keys_have_defaults() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(settings.auth.refresh_token_ttl, 1_209_600);
        let security = &settings.security;
        assert_eq!(security.login_max_failures, 5);
        assert_eq!(security.login_lock_secs, 60);
        assert_eq!(security.login_max_lock_secs, 3600);
        assert_eq!(security.login_rate_per_minute.get(), 30);
        assert_eq!(security.login_rate_burst.get(), 10);
        assert_eq!(security.operator_rate_per_minute.get(), 600);
        assert_eq!(security.operator_rate_burst.get(), 120);
        assert!(!security.trust_forwarded_for);
        assert!(security.trusted_proxies.is_empty());
        assert_eq!(security.purge_interval(), Duration::from_secs(3600));
        assert_eq!(settings.audit.retention_days, 90);
        assert_eq!(
            security.login_throttle(),
            orgsvc_domain::LoginThrottle {
                max_failures: 5,
                base_lock: Duration::from_secs(60),
                max_lock: Duration::from_secs(3600),
            }
        );
    }

    #[test]
    fn maintenance_follows_the_settings() {
        let defaults = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(
            defaults.maintenance(),
            Maintenance {
                interval: Duration::from_secs(3600),
                throttle_memory: Duration::from_secs(86_400),
                audit_retention: Duration::from_secs(90 * 86_400),
            }
        );
        let custom = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__SECURITY__PURGE_INTERVAL_SECS", "60"),
                ("ORGSVC__SECURITY__LOGIN_MAX_LOCK_SECS", "172800"),
                ("ORGSVC__AUDIT__RETENTION_DAYS", "7"),
            ]),
        )
        .unwrap();
        let maintenance = custom.maintenance();
        assert_eq!(maintenance.interval, Duration::from_secs(60));
        assert_eq!(maintenance.throttle_memory, Duration::from_secs(172_800));
        assert_eq!(maintenance.audit_retention, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn session_and_security_keys_are_read_from_the_environment() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__AUTH__REFRESH_TOKEN_TTL", "600"),
                ("ORGSVC__SECURITY__LOGIN_MAX_FAILURES", "3"),
                ("ORGSVC__SECURITY__LOGIN_LOCK_SECS", "10"),
                ("ORGSVC__SECURITY__LOGIN_MAX_LOCK_SECS", "20"),
                ("ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE", "2"),
                ("ORGSVC__SECURITY__LOGIN_RATE_BURST", "1"),
                ("ORGSVC__SECURITY__TRUST_FORWARDED_FOR", "true"),
                ("ORGSVC__SECURITY__PURGE_INTERVAL_SECS", "5"),
                ("ORGSVC__AUDIT__RETENTION_DAYS", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.auth.refresh_token_ttl, 600);
        let security = &settings.security;
        assert_eq!(
            security.login_throttle(),
            orgsvc_domain::LoginThrottle {
                max_failures: 3,
                base_lock: Duration::from_secs(10),
                max_lock: Duration::from_secs(20),
            }
        );
        assert_eq!(security.login_rate_per_minute.get(), 2);
        assert_eq!(security.login_rate_burst.get(), 1);
        assert!(security.trust_forwarded_for);
        assert_eq!(security.purge_interval(), Duration::from_secs(5));
        assert_eq!(settings.audit.retention_days, 7);
    }

    #[test]
    fn unusable_session_and_security_values_are_refused_naming_the_key() {
        let var = |key: &str| format!("ORGSVC__{}", key.to_uppercase().replace('.', "__"));
        for (key, value) in [
            ("auth.refresh_token_ttl", "0"),
            ("security.login_max_failures", "0"),
            ("security.login_lock_secs", "0"),
            ("security.login_lock_secs", "7200"),
            ("security.purge_interval_secs", "0"),
            ("server.shutdown_timeout_secs", "1"),
            ("server.shutdown_delay_secs", "24"),
            ("server.header_read_timeout_secs", "0"),
            ("server.body_read_timeout_secs", "0"),
            ("server.body_read_timeout_secs", "3601"),
            ("server.keep_alive_secs", "3601"),
            ("store.readers", "65"),
        ] {
            let error = Settings::load_from(None, env(&[(&var(key), value)])).unwrap_err();
            assert!(error.to_string().contains(key), "{key}={value}: {error}");
        }
        for (key, value) in [
            ("security.login_rate_per_minute", "0"),
            ("security.login_rate_burst", "0"),
            ("security.operator_rate_per_minute", "0"),
            ("security.operator_rate_burst", "0"),
            ("security.trust_forwarded_for", "maybe"),
            ("store.readers", "0"),
        ] {
            let error = Settings::load_from(None, env(&[(&var(key), value)])).unwrap_err();
            let load = matches!(error, ConfigError::Load(_));
            assert!(load, "{key}={value}: {error}");
        }
    }

    #[test]
    fn trusted_proxies_are_read_from_a_toml_array() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orgsvc.toml");
        std::fs::write(
            &path,
            "[security]\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\", \"fd00::/8\"]\n",
        )
        .unwrap();
        let settings = Settings::load_from(Some(&path), env(&[])).unwrap();
        let proxies = &settings.security.trusted_proxies;
        assert_eq!(
            proxies,
            &TrustedProxies::parse("127.0.0.1/32,10.0.0.0/8,fd00::/8").unwrap()
        );
        assert!(proxies.contains("10.9.8.7".parse().unwrap()));
        assert!(proxies.contains("fd00::1".parse().unwrap()));
        assert!(!proxies.contains("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn trusted_proxies_are_read_from_a_comma_separated_environment_variable() {
        let settings = Settings::load_from(
            None,
            env(&[(
                "ORGSVC__SECURITY__TRUSTED_PROXIES",
                "127.0.0.1/32, 10.0.0.0/8,::1",
            )]),
        )
        .unwrap();
        let proxies = &settings.security.trusted_proxies;
        assert_eq!(
            proxies,
            &TrustedProxies::parse("127.0.0.1/32,10.0.0.0/8,::1").unwrap()
        );
        assert!(proxies.contains("127.0.0.1".parse().unwrap()));
        assert!(proxies.contains("10.0.0.1".parse().unwrap()));
        assert!(proxies.contains("::1".parse().unwrap()));
        let single = Settings::load_from(
            None,
            env(&[("ORGSVC__SECURITY__TRUSTED_PROXIES", "10.0.0.1")]),
        )
        .unwrap();
        assert!(single
            .security
            .trusted_proxies
            .contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn metrics_are_off_by_default_and_read_from_the_environment() {
        let defaults = Settings::load_from(None, env(&[])).unwrap();
        assert!(!defaults.metrics.enabled);
        assert_eq!(defaults.metrics.listen, None);
        let on = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__METRICS__ENABLED", "true"),
                ("ORGSVC__METRICS__LISTEN", "127.0.0.1:9100"),
            ]),
        )
        .unwrap();
        assert!(on.metrics.enabled);
        assert_eq!(on.metrics.listen, Some("127.0.0.1:9100".parse().unwrap()));
        let listen_only =
            Settings::load_from(None, env(&[("ORGSVC__METRICS__LISTEN", "127.0.0.1:9100")]));
        let error = listen_only.unwrap_err().to_string();
        assert!(error.contains("metrics.enabled"), "{error}");
        let Err(ConfigError::Load(error)) =
            Settings::load_from(None, env(&[("ORGSVC__METRICS__LISTEN", "nowhere")]))
        else {
            panic!("accepted an address without a port");
        };
        assert!(format!("{error}").contains("metrics.listen"), "{error}");
    }

    #[test]
    fn an_invalid_trusted_proxy_is_refused_naming_it() {
        let error = Settings::load_from(
            None,
            env(&[(
                "ORGSVC__SECURITY__TRUSTED_PROXIES",
                "10.0.0.0/8,proxy.internal",
            )]),
        )
        .unwrap_err();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        assert!(message.contains("`proxy.internal`"), "{message}");
        assert!(message.contains("security.trusted_proxies"), "{message}");
    }

    #[test]
    fn production_requires_a_long_enough_secret() {
        let error =
            Settings::load_from(None, env(&[("ORGSVC__PROFILE", "production")])).unwrap_err();
        assert!(
            error.to_string().contains("auth.key_encryption_secret"),
            "{error}"
        );
        let long = "x".repeat(MIN_SECRET_BYTES);
        for key in [
            "ORGSVC__AUTH__KEY_ENCRYPTION_SECRET",
            "ORGSVC__AUTH__JWT_SECRET",
        ] {
            let short = Settings::load_from(
                None,
                env(&[
                    ("ORGSVC__PROFILE", "production"),
                    ("ORGSVC__AUTH__SIGNING__ALGORITHM", "HS256"),
                    ("ORGSVC__AUTH__KEY_ENCRYPTION_SECRET", &long),
                    (key, "short"),
                ]),
            );
            assert!(short.is_err(), "{key}");
        }
        let settings = Settings::load_from(
            None,
            production_env(&[
                ("ORGSVC__PROFILE", "production"),
                ("ORGSVC__AUTH__KEY_ENCRYPTION_SECRET", &long),
            ]),
        )
        .unwrap();
        assert_eq!(settings.profile, Profile::Production);
        assert_eq!(
            settings.auth.signing.algorithm.asymmetric(),
            Some(orgsvc_domain::SigningAlgorithm::EdDsa)
        );
        // HS256 takes auth.jwt_secret instead.
        let hs256 = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__PROFILE", "production"),
                ("ORGSVC__AUTH__SIGNING__ALGORITHM", "HS256"),
            ]),
        )
        .unwrap_err();
        assert!(hs256.to_string().contains("auth.jwt_secret"), "{hs256}");
        Settings::load_from(
            None,
            production_env(&[
                ("ORGSVC__PROFILE", "production"),
                ("ORGSVC__AUTH__SIGNING__ALGORITHM", "HS256"),
                ("ORGSVC__AUTH__JWT_SECRET", &long),
            ]),
        )
        .unwrap();
    }

    #[test]
    fn public_urls_are_http_urls_with_a_host() {
        for good in [
            "https://auth.example.com",
            "https://auth.example.com/",
            "http://127.0.0.1:8080",
            "https://example.com/orgsvc",
        ] {
            assert!(is_valid_public_url(good), "{good}");
        }
        for bad in [
            "auth.example.com",
            "not a url",
            "ftp://x",
            "https://",
            "https://h?x=1",
            "https://h/#f",
            "https://user@h",
        ] {
            assert!(!is_valid_public_url(bad), "{bad}");
            let refused = Settings::load_from(None, env(&[("ORGSVC__SERVER__PUBLIC_URL", bad)]));
            assert!(refused.is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_rotate_slower_than_they_are_published() {
        let refused = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__AUTH__SIGNING__ROTATE_EVERY_SECS", "60"),
                ("ORGSVC__AUTH__SIGNING__PUBLISH_AHEAD_SECS", "600"),
            ]),
        )
        .unwrap_err();
        assert!(
            refused.to_string().contains("rotate_every_secs"),
            "{refused}"
        );
    }

    #[test]
    fn a_short_legacy_secret_is_refused_in_production() {
        let long = "x".repeat(MIN_SECRET_BYTES);
        let refused = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__PROFILE", "production"),
                ("ORGSVC__AUTH__KEY_ENCRYPTION_SECRET", &long),
                ("ORGSVC__AUTH__JWT_SECRET", "x"),
            ]),
        )
        .unwrap_err();
        assert!(refused.to_string().contains("auth.jwt_secret"), "{refused}");
    }

    #[test]
    fn signing_settings_default_to_ed25519_rotated_monthly_published_one_ttl_ahead() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        let policy = settings.auth.rotation_policy();
        assert_eq!(policy.publish_ahead, Duration::from_secs(900));
        assert_eq!(policy.rotate_every, Duration::from_secs(30 * 24 * 3600));
        let custom = Settings::load_from(
            None,
            env(&[
                ("ORGSVC__AUTH__SIGNING__ALGORITHM", "ES256"),
                ("ORGSVC__AUTH__SIGNING__PUBLISH_AHEAD_SECS", "60"),
                ("ORGSVC__AUTH__SIGNING__ROTATE_EVERY_SECS", "86400"),
            ]),
        )
        .unwrap();
        assert_eq!(
            custom.auth.signing.algorithm.asymmetric(),
            Some(orgsvc_domain::SigningAlgorithm::Es256)
        );
        assert_eq!(
            custom.auth.rotation_policy().publish_ahead,
            Duration::from_secs(60)
        );
        let unknown =
            Settings::load_from(None, env(&[("ORGSVC__AUTH__SIGNING__ALGORITHM", "none")]));
        assert!(unknown.is_err());
    }
}
