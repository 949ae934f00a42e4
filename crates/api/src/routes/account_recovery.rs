//! Getting back into an account and proving an address, by email:
//! `POST /admin/password-reset` (+ `/confirm`) and
//! `POST /admin/email-verification` (+ `/confirm`). The use cases are
//! [`orgsvc_app::password_resets`] and [`orgsvc_app::email_verification`];
//! the emails' links point to the front end (`email.*_url`), which posts
//! the token back here.
//!
//! The unauthenticated routes are rate limited per client IP together with
//! the login (see [`crate::rate_limit`]); a reset request is also limited
//! per email ([`crate::rate_limit::LINK_EMAILS_PER_ADDRESS`]).

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use orgsvc_app::email_verification::VerificationRequest;
use orgsvc_domain::{AdminEmail, ClientKey, Password};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::extractors::auth::UnverifiedAdmin;
use crate::extractors::body::JsonObject;
use crate::problem::responses::{
    AccountTokenUnusable, BadRequestBody, EmailLinksThrottled, InternalError,
    OrganizationSuspended, PayloadTooLarge, RateLimited, StoreUnavailable, Unauthorized,
    UnsupportedMediaType, ValidationFailed,
};
use crate::problem::ApiError;
use crate::request_origin::Origin;
use crate::routes::sessions::limit_per_client_ip;
use crate::routes::RouteTable;
use crate::state::AppState;
use crate::validation::FieldErrors;

/// Body of `POST /admin/password-reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "admin@acme.example"}))]
pub struct PasswordResetRequest {
    /// The email of the admin who forgot the password.
    #[schema(value_type = String, format = Email, required = true)]
    email: Option<Value>,
}

/// Body of `POST /admin/password-reset/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "token": "q1Zb9yH0cT7wVn3kX5mRj2sLp8dFg4aE6uYi0oNbC1w",
    "password": "a new long passphrase"
}))]
pub struct PasswordResetConfirmation {
    /// The token from the reset email's link.
    #[schema(value_type = String, required = true)]
    token: Option<Value>,
    /// The new password (8 to 128 characters).
    #[schema(value_type = String, format = Password, required = true, min_length = 8, max_length = 128)]
    password: Option<Value>,
}

/// Body of `POST /admin/email-verification/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"token": "q1Zb9yH0cT7wVn3kX5mRj2sLp8dFg4aE6uYi0oNbC1w"}))]
pub struct EmailVerificationConfirmation {
    /// The token from the verification email's link.
    #[schema(value_type = String, required = true)]
    token: Option<Value>,
}

/// What `POST /admin/email-verification` did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"email": "admin@acme.example", "email_verified": false, "sent": true}))]
pub struct EmailVerificationStatus {
    /// The caller's email.
    email: String,
    /// Whether it is verified already.
    email_verified: bool,
    /// Whether a verification link was sent (not when already verified).
    sent: bool,
}

/// 429 `rate_limited` when `email` was sent too many emails with a link
/// ([`crate::rate_limit::LINK_EMAILS_PER_ADDRESS`]).
async fn limit_link_emails(state: &AppState, email: &AdminEmail) -> Result<(), ApiError> {
    match state
        .email_link_limiter
        .check_key(ClientKey::email(email))
        .await
    {
        Ok(()) => Ok(()),
        Err(limited) => {
            tracing::debug!(
                retry_after_secs = limited.retry_after_secs(),
                "emails with a link to one address over their rate limit"
            );
            Err(ApiError::RateLimited {
                retry_after_secs: limited.retry_after_secs(),
            })
        }
    }
}

/// A presented account token: any string (an unknown one is refused like a
/// used one).
fn token_field(errors: &mut FieldErrors, raw: Option<&Value>) -> Option<String> {
    errors.required("token", raw, |raw| Ok(raw.to_owned()))
}

/// Ask for a password-reset email
///
/// Sends a link to set a new password to the admin with this email, valid
/// `auth.password_reset_ttl_secs` (30 minutes by default) and usable once;
/// the link is `email.password_reset_url` with the token. Answers 202 with
/// no body whether or not an admin has the email, in about the same time:
/// the answer tells nothing about which emails exist. Rate limited per
/// client IP (with `POST /admin/login`) and per email (3 at once, then one
/// a minute, with the verification emails); both answer 429
/// `rate_limited` with `Retry-After`.
#[utoipa::path(
    post,
    path = "/admin/password-reset",
    operation_id = "requestPasswordReset",
    tag = "admin",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted: if an admin has this email, a reset link is on its way to it."),
        (status = 400, response = BadRequestBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 429, response = EmailLinksThrottled),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn request_password_reset(
    state: web::Data<AppState>,
    Origin(origin): Origin,
    body: JsonObject<PasswordResetRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let mut errors = FieldErrors::default();
    let email = errors
        .required("email", request.email.as_ref(), AdminEmail::parse)
        .ok_or_else(|| errors.into_error())?;
    limit_link_emails(&state, &email).await?;
    state.app.request_password_reset(&origin, email);
    Ok(HttpResponse::Accepted().finish())
}

/// Set a new password with a reset link's token
///
/// Uses the token up (it works once) and sets the password. Every access
/// and refresh token the admin held stops working, as after a password
/// change; a lock from failed logins on the email is lifted, and the email
/// counts as verified (the link reached it). Rate limited per client IP
/// with `POST /admin/login`.
#[utoipa::path(
    post,
    path = "/admin/password-reset/confirm",
    operation_id = "confirmPasswordReset",
    tag = "admin",
    request_body = PasswordResetConfirmation,
    responses(
        (status = 204, description = "The password is set; log in with it."),
        (status = 400, response = BadRequestBody),
        (status = 410, response = AccountTokenUnusable),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 429, response = RateLimited),
        (status = 500, response = InternalError),
        (status = 503, response = StoreUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn confirm_password_reset(
    state: web::Data<AppState>,
    Origin(origin): Origin,
    body: JsonObject<PasswordResetConfirmation>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let mut errors = FieldErrors::default();
    let token = token_field(&mut errors, request.token.as_ref());
    let password = errors.required("password", request.password.as_ref(), Password::parse);
    let (Some(token), Some(password)) = (token, password) else {
        return Err(errors.into_error());
    };
    state
        .app
        .confirm_password_reset(&origin, &token, &password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ask for an email-verification link
///
/// Sends the caller a link that verifies its current email, valid
/// `auth.email_verification_ttl_secs` (24 hours by default) and usable
/// once; the link is `email.verification_url` with the token. Nothing is
/// sent when the email is verified already. Open to unverified admins even
/// with `auth.require_verified_email`. Limited per address with the reset
/// emails (3 at once, then one a minute: 429 `rate_limited`).
#[utoipa::path(
    post,
    path = "/admin/email-verification",
    operation_id = "requestEmailVerification",
    tag = "admin",
    security(("bearer_auth" = [])),
    responses(
        (status = 202, description = "A verification link is on its way (`sent: true`), or the email is verified already (`sent: false`).", body = EmailVerificationStatus),
        (status = 401, response = Unauthorized),
        (status = 403, response = OrganizationSuspended),
        (status = 429, response = EmailLinksThrottled),
        (status = 500, response = InternalError),
        (status = 503, response = StoreUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn request_email_verification(
    state: web::Data<AppState>,
    UnverifiedAdmin(admin): UnverifiedAdmin,
) -> Result<HttpResponse, ApiError> {
    if !admin.email_verified {
        limit_link_emails(&state, &admin.email).await?;
    }
    let outcome = state.app.request_email_verification(&admin).await?;
    Ok(HttpResponse::Accepted().json(EmailVerificationStatus {
        email: admin.email.to_string(),
        email_verified: outcome == VerificationRequest::AlreadyVerified,
        sent: outcome == VerificationRequest::Sent,
    }))
}

/// Verify an email with a verification link's token
///
/// Uses the token up (it works once) and marks the email it was sent to as
/// verified (`email_verified` in the admin listing). No sign-in needed: the
/// token is the proof. Rate limited per client IP with `POST /admin/login`.
#[utoipa::path(
    post,
    path = "/admin/email-verification/confirm",
    operation_id = "confirmEmailVerification",
    tag = "admin",
    request_body = EmailVerificationConfirmation,
    responses(
        (status = 204, description = "The email is verified."),
        (status = 400, response = BadRequestBody),
        (status = 410, response = AccountTokenUnusable),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 429, response = RateLimited),
        (status = 500, response = InternalError),
        (status = 503, response = StoreUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn confirm_email_verification(
    state: web::Data<AppState>,
    Origin(origin): Origin,
    body: JsonObject<EmailVerificationConfirmation>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let mut errors = FieldErrors::default();
    let token =
        token_field(&mut errors, request.token.as_ref()).ok_or_else(|| errors.into_error())?;
    state
        .app
        .confirm_email_verification(&origin, &token)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(
    request_password_reset,
    confirm_password_reset,
    request_email_verification,
    confirm_email_verification
))]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_request_password_reset>(|route| {
        route
            .to(request_password_reset)
            .wrap(from_fn(limit_per_client_ip))
    });
    table.operation::<__path_confirm_password_reset>(|route| {
        route
            .to(confirm_password_reset)
            .wrap(from_fn(limit_per_client_ip))
    });
    table.operation::<__path_request_email_verification>(|route| {
        route.to(request_email_verification)
    });
    table.operation::<__path_confirm_email_verification>(|route| {
        route
            .to(confirm_email_verification)
            .wrap(from_fn(limit_per_client_ip))
    });
}
