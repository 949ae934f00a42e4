//! Admin login.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use orgsvc_domain::{AdminEmail, Password};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::extractors::body::JsonObject;
use crate::openapi::responses::{
    BadRequestBody, InternalError, InvalidCredentials, PayloadTooLarge, UnsupportedMediaType,
    ValidationFailed,
};
use crate::problem::ApiError;
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

/// A login attempt: both fields present as strings, not yet validated (an
/// invalid value must fail exactly like a wrong one).
#[derive(Debug)]
struct LoginAttempt {
    email: String,
    password: String,
}

impl TryFrom<LoginRequest> for LoginAttempt {
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

/// An issued access token.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "token_type": "bearer",
    "expires_in": 900
}))]
pub struct AccessToken {
    /// JWT (HS256) to send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds until the token expires.
    expires_in: u64,
}

/// Log in as an admin
///
/// Exchanges an admin's email and password for an access token. Unknown
/// emails, wrong passwords and malformed values get the same answer in about
/// the same time. The token identifies the admin and its organization; it
/// stays valid across renames and is revoked by a password change or the
/// organization's deletion.
#[utoipa::path(
    post,
    path = "/admin/login",
    operation_id = "adminLogin",
    tag = "admin",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "An access token (sent with `Cache-Control: no-store`).", body = AccessToken),
        (status = 400, response = BadRequestBody),
        (status = 401, response = InvalidCredentials),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    body: JsonObject<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let attempt = LoginAttempt::try_from(body.into_inner())?;
    let credentials = match AdminEmail::parse(&attempt.email) {
        Ok(email) => state.store.admin_credentials_by_email(&email).await?,
        Err(_) => None,
    };
    // An out-of-bounds password cannot match any stored hash: verify it
    // against the dummy hash, like an unknown email, to keep the timing.
    let password = Password::parse(&attempt.password).ok();
    let hash = credentials
        .as_ref()
        .filter(|_| password.is_some())
        .map(|credentials| &credentials.password_hash);
    let verified = state.hasher.verify(&attempt.password, hash).await?;
    let Some(admin) = credentials.filter(|_| verified).map(|c| c.admin) else {
        return Err(ApiError::InvalidCredentials);
    };
    let organization = state
        .store
        .organization_by_id(admin.organization_id)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    let token = state.tokens.issue(&admin, &organization)?;
    tracing::info!(admin_id = %admin.id, "admin logged in");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(AccessToken {
            access_token: token.access_token,
            token_type: "bearer",
            expires_in: token.expires_in,
        }))
}
