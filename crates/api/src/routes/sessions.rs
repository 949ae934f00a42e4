//! Admin sessions over HTTP: `POST /admin/login`, `/admin/refresh` and
//! `/admin/logout` (the use cases are [`orgsvc_app::sessions`]).
//!
//! A login answers a short-lived access token (JWT) and an opaque refresh
//! token that starts a session ("family"). `POST /admin/refresh` uses the
//! refresh token up and answers a new pair in the same family; presenting a
//! used refresh token again revokes the whole family (reuse detection).
//! `POST /admin/logout` revokes the family. Both credential endpoints are
//! rate limited per client IP (see [`crate::rate_limit`]), and failed logins
//! lock the email for a growing interval.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse, HttpResponseBuilder, ResponseError};
use orgsvc_app::TokenPair;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::extractors::body::JsonObject;
use crate::problem::responses::{
    BadRequestBody, InternalError, InvalidCredentials, InvalidRefreshToken, LoginThrottled,
    OrganizationSuspended, PayloadTooLarge, RateLimited, UnsupportedMediaType, ValidationFailed,
};
use crate::problem::ApiError;
use crate::request_origin::Origin;
use crate::routes::RouteTable;
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
    "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImtWNGIwSTFHN0M2dHFac0d4SnE5bUEifQ.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "token_type": "bearer",
    "expires_in": 900,
    "refresh_token": "Jx3b7m0H1sXlq9cX2y5c0PZf8oQe4uKt6wVbN1rD2aE",
    "refresh_expires_in": 1209600
}))]
pub struct AccessToken {
    /// JWT to send as `Authorization: Bearer <access_token>`, signed with
    /// `auth.signing.algorithm` (EdDSA by default; its `kid` names a key of
    /// `/.well-known/jwks.json`).
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
        (status = 403, response = OrganizationSuspended),
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
    Origin(origin): Origin,
    body: JsonObject<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let fields = LoginFields::try_from(body.into_inner())?;
    let result = state
        .app
        .log_in(&origin, &fields.email, &fields.password)
        .await;
    if let Some(metrics) = &state.metrics {
        metrics.record_login(&result);
    }
    Ok(tokens_response(result?))
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
        (status = 403, response = OrganizationSuspended),
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
    Origin(origin): Origin,
    body: JsonObject<RefreshTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = PresentedRefreshToken::try_from(body.into_inner())?;
    let result = state.app.refresh(&origin, &presented.0).await;
    if let (Some(metrics), Err(orgsvc_app::AppError::RefreshTokenReused)) =
        (&state.metrics, &result)
    {
        metrics.record_refresh_token_reuse();
    }
    Ok(tokens_response(result?))
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
    state.app.log_out(&presented.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Middleware for the credential routes: answers 429 `rate_limited` with
/// `Retry-After` when the client IP (see [`Origin`]) is over
/// `security.login_rate_per_minute` / `security.login_rate_burst` (as
/// [`AppState::login_rate_limiter`] counts: in process or via the store),
/// before the body is read.
pub async fn limit_per_client_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limited = match req.app_data::<web::Data<AppState>>() {
        Some(state) => {
            let limiter = state.login_rate_limiter.clone();
            let Origin(origin) = Origin::of(req.request());
            limiter.check(origin.client_ip).await.err()
        }
        None => {
            let error = ApiError::unexpected("AppState is not registered");
            return Ok(req
                .into_response(error.error_response())
                .map_into_right_body());
        }
    };
    match limited {
        Some(limited) => {
            // Debug only: a flood must not flood the log as well.
            tracing::debug!(
                path = req.path(),
                retry_after_secs = limited.retry_after_secs(),
                "client over the credential rate limit"
            );
            let error = ApiError::RateLimited {
                retry_after_secs: limited.retry_after_secs(),
            };
            if req.path() == "/admin/login" {
                if let Some(metrics) = req
                    .app_data::<web::Data<AppState>>()
                    .and_then(|state| state.metrics.as_ref())
                {
                    metrics.record_login_rate_limited();
                }
            }
            Ok(req
                .into_response(error.error_response())
                .map_into_right_body())
        }
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

impl From<TokenPair> for AccessToken {
    fn from(tokens: TokenPair) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: "bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
            refresh_expires_in: tokens.refresh_expires_in,
        }
    }
}

/// The answer carrying `tokens`; not cacheable (RFC 6749 §5.1).
fn tokens_response(tokens: TokenPair) -> HttpResponse {
    no_store(HttpResponse::Ok()).json(AccessToken::from(tokens))
}

/// `response` marked not cacheable, as every answer carrying tokens is
/// (RFC 6749 §5.1).
pub(crate) fn no_store(mut response: HttpResponseBuilder) -> HttpResponseBuilder {
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    response
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(login, refresh, logout))]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_login>(|route| route.to(login).wrap(from_fn(limit_per_client_ip)));
    table.operation::<__path_refresh>(|route| route.to(refresh).wrap(from_fn(limit_per_client_ip)));
    table.operation::<__path_logout>(|route| route.to(logout));
}

#[cfg(test)]
mod tests {
    use super::*;

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
