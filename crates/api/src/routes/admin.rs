//! Admin sessions: login, refresh-token rotation and logout.
//!
//! A login answers a short-lived access token (JWT) and an opaque refresh
//! token that starts a session ("family"). `POST /admin/refresh` uses the
//! refresh token up and answers a new pair in the same family; presenting a
//! used refresh token again revokes the whole family (reuse detection).
//! `POST /admin/logout` revokes the family. Both credential endpoints are
//! rate limited per client IP (see [`crate::rate_limit`]), and failed logins
//! lock the email for a growing interval (see [`SessionStore`]).
//!
//! [`SessionStore`]: orgsvc_domain::SessionStore

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use orgsvc_auth::{hash_refresh_token, IssuedToken, OpaqueRefreshToken};
use orgsvc_domain::{
    Admin, AdminCredentials, AdminEmail, AdminId, AuditAction, LoginAttempt, Organization,
    Password, PasswordHash, RefreshToken, RefreshTokenUse, SessionFamilyId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::extractors::body::JsonObject;
use crate::openapi::responses::{
    BadRequestBody, InternalError, InvalidCredentials, InvalidRefreshToken, LoginThrottled,
    PayloadTooLarge, RateLimited, UnsupportedMediaType, ValidationFailed,
};
use crate::problem::{ApiError, ErrorChain};
use crate::rate_limit::whole_seconds_up;
use crate::request_origin::{now_millis, AuditEntry, RequestOrigin};
use crate::state::AppState;
use crate::validation::FieldErrors;

/// Body of `POST /admin/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "email": "admin@acme.example",
    "password": "correct horse battery staple"
}))]
pub struct LoginRequest {
    /// The admin's email.
    #[schema(value_type = String, format = Email, required = true)]
    email: Option<Value>,
    /// The admin's password.
    #[schema(value_type = String, format = Password, required = true)]
    password: Option<Value>,
}

/// A login's fields: both present as strings, not yet validated (an invalid
/// value must fail exactly like a wrong one).
#[derive(Debug)]
struct LoginFields {
    email: String,
    password: String,
}

impl TryFrom<LoginRequest> for LoginFields {
    type Error = ApiError;

    fn try_from(request: LoginRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let email = errors.required("email", request.email.as_ref(), |raw| Ok(raw.to_owned()));
        let password = errors.required("password", request.password.as_ref(), |raw| {
            Ok(raw.to_owned())
        });
        match (email, password) {
            (Some(email), Some(password)) => Ok(Self { email, password }),
            _ => Err(errors.into_error()),
        }
    }
}

/// Body of `POST /admin/refresh` and `POST /admin/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "Jx3b7m0H1sXlq9cX2y5c0PZf8oQe4uKt6wVbN1rD2aE"}))]
pub struct RefreshTokenRequest {
    /// The refresh token from the last login or refresh answer.
    #[schema(value_type = String, required = true)]
    refresh_token: Option<Value>,
}

/// A presented refresh token (any string: an unknown one simply finds no
/// session).
struct PresentedRefreshToken(String);

impl TryFrom<RefreshTokenRequest> for PresentedRefreshToken {
    type Error = ApiError;

    fn try_from(request: RefreshTokenRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        errors
            .required("refresh_token", request.refresh_token.as_ref(), |raw| {
                Ok(raw.to_owned())
            })
            .map(Self)
            .ok_or_else(|| errors.into_error())
    }
}

/// Issued tokens: a short-lived access token and the refresh token that
/// gets the next one.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "token_type": "bearer",
    "expires_in": 900,
    "refresh_token": "Jx3b7m0H1sXlq9cX2y5c0PZf8oQe4uKt6wVbN1rD2aE",
    "refresh_expires_in": 1209600
}))]
pub struct AccessToken {
    /// JWT (HS256) to send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires (`auth.access_token_ttl`).
    expires_in: u64,
    /// Opaque token (256 random bits, URL-safe base64) for `POST
    /// /admin/refresh` and `POST /admin/logout`. It works once: each refresh
    /// answers a new one, and presenting a used one again revokes the
    /// session.
    refresh_token: String,
    /// Seconds until the refresh token expires unless used
    /// (`auth.refresh_token_ttl`).
    refresh_expires_in: u64,
}

/// Log in as an admin
///
/// Exchanges an admin's email and password for an access token and a
/// refresh token (a new session). Unknown emails, wrong passwords and
/// malformed values get the same answer in about the same time. The access
/// token identifies the admin and its organization; it stays valid across
/// renames and is revoked by a password change, the admin's removal or the
/// organization's deletion.
///
/// Failed logins are counted per email (known or not): after
/// `security.login_max_failures` of them the email is locked (429
/// `login_locked`, even for the right password) for `security.login_lock_secs`,
/// doubling with each further lock up to `security.login_max_lock_secs`; a
/// successful login starts over. Each client IP may call this operation and
/// `POST /admin/refresh` `security.login_rate_per_minute` times a minute after
/// a burst of `security.login_rate_burst` (429 `rate_limited`). Both 429s carry
/// `Retry-After`.
#[utoipa::path(
    post,
    path = "/admin/login",
    operation_id = "adminLogin",
    tag = "admin",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "An access token and a refresh token (sent with `Cache-Control: no-store`).", body = AccessToken),
        (status = 400, response = BadRequestBody),
        (status = 401, response = InvalidCredentials),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 429, response = LoginThrottled),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    origin: RequestOrigin,
    body: JsonObject<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let result = attempt_login(&state, &origin, body).await;
    if let Some(metrics) = &state.metrics {
        metrics.record_login(&result);
    }
    result
}

/// [`login`], before its outcome is counted.
async fn attempt_login(
    state: &web::Data<AppState>,
    origin: &RequestOrigin,
    body: JsonObject<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let fields = LoginFields::try_from(body.into_inner())?;
    let email = AdminEmail::parse(&fields.email).ok();
    if let Some(email) = &email {
        check_not_locked(state, origin, email).await?;
    }
    let credentials = match &email {
        Some(email) => state.store.admin_credentials_by_email(email).await?,
        None => None,
    };
    // An out-of-bounds password cannot match any stored hash: verify it
    // against the dummy hash, like an unknown email, to keep the timing.
    let password = Password::parse(&fields.password).ok();
    let hash = credentials
        .as_ref()
        .filter(|_| password.is_some())
        .map(|credentials| &credentials.password_hash);
    let verified = state.hasher.verify(&fields.password, hash).await?;
    let (Some(email), Some(credentials), Some(password), true) =
        (email, credentials.clone(), password, verified)
    else {
        if let Some(credentials) = credentials {
            // In the background, so a known email answers as fast as an
            // unknown one.
            audit_in_background(state, origin, AuditAction::LoginFailed, &credentials.admin);
        }
        return Err(ApiError::InvalidCredentials);
    };
    state.store.login_succeeded(&email).await?;
    let AdminCredentials {
        admin,
        password_hash,
    } = credentials;
    let organization = state
        .store
        .organization_by_id(admin.organization_id)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    if state.hasher.needs_rehash(&password_hash) {
        rehash_in_background(state, admin.id, password_hash, password);
    }
    let response = issue_tokens(state, &admin, &organization, SessionFamilyId::new()).await?;
    state
        .audit(origin, entry(AuditAction::LoginSucceeded, &admin, true))
        .await;
    tracing::info!(admin_id = %admin.id, "admin logged in");
    Ok(response)
}

/// Counts a login attempt for `email` in advance; 429 `login_locked` while
/// it is locked (recording `login.locked` when this attempt locked the email
/// of an admin).
async fn check_not_locked(
    state: &web::Data<AppState>,
    origin: &RequestOrigin,
    email: &AdminEmail,
) -> Result<(), ApiError> {
    let now = now_millis();
    let throttle = state.security.login_throttle();
    let LoginAttempt::Locked { until, just_locked } = state
        .store
        .begin_login_attempt(email, now, &throttle)
        .await?
    else {
        return Ok(());
    };
    if just_locked {
        tracing::warn!("failed logins locked an email");
        let (state, origin, email) = (state.clone(), origin.clone(), email.clone());
        // The lookup runs in the background too: known and unknown emails
        // answer alike.
        tokio::spawn(async move {
            match state.store.admin_credentials_by_email(&email).await {
                Ok(Some(credentials)) => {
                    let entry = entry(AuditAction::LoginLocked, &credentials.admin, false);
                    state.audit(&origin, entry).await;
                }
                Ok(None) => {}
                Err(error) => tracing::error!(
                    error = %ErrorChain(&error),
                    "could not look up the admin of a locked email for the audit log"
                ),
            }
        });
    }
    let remaining = (until - now).to_std().unwrap_or_default();
    Err(ApiError::LoginLocked {
        retry_after_secs: whole_seconds_up(remaining),
    })
}

/// Get a new access token with a refresh token
///
/// Uses the refresh token up and answers a new access token with a new
/// refresh token of the same session. A refresh token works once: presenting
/// one that was already used revokes its whole session (every refresh token
/// issued from the same login), since either it was stolen or the client
/// lost track of its latest token. Unknown, expired and revoked tokens, and
/// tokens of an admin whose password changed since, who was removed or
/// whose organization was deleted, are refused with 401
/// `invalid_refresh_token`. Rate limited per client IP together with `POST
/// /admin/login` (429 `rate_limited` with `Retry-After`).
#[utoipa::path(
    post,
    path = "/admin/refresh",
    operation_id = "adminRefresh",
    tag = "admin",
    request_body = RefreshTokenRequest,
    responses(
        (status = 200, description = "A new access token and refresh token (sent with `Cache-Control: no-store`); the presented refresh token is used up.", body = AccessToken),
        (status = 400, response = BadRequestBody),
        (status = 401, response = InvalidRefreshToken),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 429, response = RateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn refresh(
    state: web::Data<AppState>,
    origin: RequestOrigin,
    body: JsonObject<RefreshTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = PresentedRefreshToken::try_from(body.into_inner())?;
    let hash = hash_refresh_token(&presented.0);
    let token = match state.store.use_refresh_token(&hash, now_millis()).await? {
        RefreshTokenUse::Fresh(token) => token,
        RefreshTokenUse::Reused(token) => {
            if let Some(metrics) = &state.metrics {
                metrics.record_refresh_token_reuse();
            }
            state.store.revoke_family(token.family).await?;
            tracing::warn!(
                admin_id = %token.admin_id,
                family = %token.family,
                "a used refresh token was presented again: session revoked"
            );
            let audit = AuditEntry {
                organization: token.organization_id,
                actor: None,
                action: AuditAction::RefreshTokenReuseDetected,
                target: token.admin_id.to_string(),
            };
            state.audit(&origin, audit).await;
            return Err(ApiError::InvalidRefreshToken);
        }
        RefreshTokenUse::Invalid => return Err(ApiError::InvalidRefreshToken),
    };
    let Some((admin, organization)) = still_valid(&state, &token).await? else {
        state.store.revoke_family(token.family).await?;
        return Err(ApiError::InvalidRefreshToken);
    };
    issue_tokens(&state, &admin, &organization, token.family).await
}

/// The admin and organization of a fresh refresh token, when the admin
/// still exists in that organization under the same token version (no
/// password change, removal or deletion since it was issued).
async fn still_valid(
    state: &AppState,
    token: &RefreshToken,
) -> Result<Option<(Admin, Organization)>, ApiError> {
    let admin = state
        .store
        .admin_by_id(token.admin_id)
        .await?
        .filter(|admin| admin.accepts_credential(token.organization_id, token.token_version));
    let Some(admin) = admin else {
        return Ok(None);
    };
    let organization = state
        .store
        .organization_by_id(admin.organization_id)
        .await?;
    Ok(organization.map(|organization| (admin, organization)))
}

/// Log out
///
/// Revokes the session of the refresh token: it and every refresh token
/// issued from the same login stop working (access tokens already issued
/// stay valid until they expire, at most `auth.access_token_ttl`). Answers
/// 204 whether or not the token was known, so it reveals nothing and can be
/// repeated.
#[utoipa::path(
    post,
    path = "/admin/logout",
    operation_id = "adminLogout",
    tag = "admin",
    request_body = RefreshTokenRequest,
    responses(
        (status = 204, description = "The session is revoked (or the token was unknown, expired or already revoked)."),
        (status = 400, response = BadRequestBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn logout(
    state: web::Data<AppState>,
    body: JsonObject<RefreshTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = PresentedRefreshToken::try_from(body.into_inner())?;
    let hash = hash_refresh_token(&presented.0);
    // The port has no lookup that leaves a token unused, but the family is
    // revoked anyway; a used token here is a logout, not a replay.
    match state.store.use_refresh_token(&hash, now_millis()).await? {
        RefreshTokenUse::Fresh(token) | RefreshTokenUse::Reused(token) => {
            state.store.revoke_family(token.family).await?;
            tracing::info!(admin_id = %token.admin_id, "admin logged out");
        }
        RefreshTokenUse::Invalid => {}
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Issues an access token and a refresh token of `family` for `admin`, stores
/// the refresh token's hash, and answers both (not cacheable).
async fn issue_tokens(
    state: &AppState,
    admin: &Admin,
    organization: &Organization,
    family: SessionFamilyId,
) -> Result<HttpResponse, ApiError> {
    let IssuedToken {
        access_token,
        expires_in,
    } = state.tokens.issue(admin, organization)?;
    let refresh_token = OpaqueRefreshToken::generate();
    let issued_at = now_millis();
    state
        .store
        .save_refresh_token(RefreshToken {
            hash: refresh_token.hash(),
            family,
            admin_id: admin.id,
            organization_id: organization.id,
            token_version: admin.token_version,
            issued_at,
            expires_at: expiry(issued_at, state.refresh_token_ttl),
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(AccessToken {
            access_token,
            token_type: "bearer",
            expires_in,
            refresh_token: refresh_token.into_exposed(),
            refresh_expires_in: state.refresh_token_ttl.as_secs(),
        }))
}

/// `issued_at + ttl`, saturating.
fn expiry(issued_at: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| issued_at.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// An audit entry about `admin` (the target); `signed_in` makes it the
/// actor too.
fn entry(action: AuditAction, admin: &Admin, signed_in: bool) -> AuditEntry {
    AuditEntry {
        organization: admin.organization_id,
        actor: signed_in.then_some(admin.id),
        action,
        target: admin.id.to_string(),
    }
}

/// Records `action` about `admin` (nobody signed in) without delaying the
/// answer.
fn audit_in_background(
    state: &web::Data<AppState>,
    origin: &RequestOrigin,
    action: AuditAction,
    admin: &Admin,
) {
    let (state, origin, entry) = (state.clone(), origin.clone(), entry(action, admin, false));
    tokio::spawn(async move { state.audit(&origin, entry).await });
}

/// Replaces `current` with a hash of `password` under the configured
/// argon2 parameters, in the background (the login does not wait). Failures
/// are logged; the password never is.
fn rehash_in_background(
    state: &web::Data<AppState>,
    admin: AdminId,
    current: PasswordHash,
    password: Password,
) {
    let state = state.clone();
    tokio::spawn(async move {
        let rehashed = match state.hasher.hash(&password).await {
            Ok(rehashed) => rehashed,
            Err(error) => {
                tracing::error!(admin_id = %admin, error = %ErrorChain(&error), "rehashing a password failed");
                return;
            }
        };
        match state.store.rehash_password(admin, &current, rehashed).await {
            Ok(true) => {
                tracing::info!(admin_id = %admin, "password rehashed with the configured argon2 parameters")
            }
            Ok(false) => {
                tracing::info!(admin_id = %admin, "password changed meanwhile: not rehashed")
            }
            Err(error) => {
                tracing::error!(admin_id = %admin, error = %ErrorChain(&error), "storing a rehashed password failed")
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_expire_ttl_after_issue_saturating() {
        let issued_at = now_millis();
        let ttl = std::time::Duration::from_secs(3600);
        assert_eq!(expiry(issued_at, ttl), issued_at + TimeDelta::hours(1));
        let forever = std::time::Duration::from_secs(u64::MAX);
        assert_eq!(expiry(issued_at, forever), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn refresh_requests_need_a_string_token() {
        for body in [
            serde_json::json!({}),
            serde_json::json!({"refresh_token": null}),
            serde_json::json!({"refresh_token": 5}),
        ] {
            let request: RefreshTokenRequest = serde_json::from_value(body).unwrap();
            let Err(ApiError::Validation(fields)) = PresentedRefreshToken::try_from(request) else {
                panic!("accepted");
            };
            assert_eq!(fields[0].field, "refresh_token");
        }
    }
}
