//! The authenticated admin behind a request's bearer token, and the owner
//! the owner-only routes require.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use orgsvc_app::{AppError, Owner};
use orgsvc_domain::Admin;

use super::bearer::{bearer, Bearer};
use crate::problem::ApiError;
use crate::state::AppState;

/// The admin whose access token authenticated the request.
///
/// Extraction verifies the token, then requires, on every request, that the
/// admin still exists (a removed admin, or one of a deleted organization, is
/// not found), still belongs to the token's organization and that its token
/// version has not moved on (a password change revokes earlier tokens); see
/// [`orgsvc_app::Application::authenticate`]. Anything else is a 401
/// `invalid_token`, at once: nothing is cached. With
/// `auth.require_verified_email`, an unverified admin is a 403
/// `email_unverified`.
#[derive(Clone, Debug)]
pub struct AuthenticatedAdmin(pub Admin);

impl FromRequest for AuthenticatedAdmin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let admin = authenticate(req, EmailRule::Enforced);
        Box::pin(async move { Ok(Self(admin.await?)) })
    }
}

/// [`AuthenticatedAdmin`] without the verified-email rule
/// (`auth.require_verified_email`): for asking for a verification link.
#[derive(Clone, Debug)]
pub struct UnverifiedAdmin(pub Admin);

impl FromRequest for UnverifiedAdmin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let admin = authenticate(req, EmailRule::Waived);
        Box::pin(async move { Ok(Self(admin.await?)) })
    }
}

/// An authenticated admin who is an owner of its organization: what
/// [`AuthenticatedAdmin`] checks, then 403 `owner_required` for an `admin`
/// (before the body or the path is looked at).
#[derive(Clone, Debug)]
pub struct OwnerCaller(pub Owner);

impl FromRequest for OwnerCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = AuthenticatedAdmin::from_request(req, payload);
        Box::pin(async move {
            let AuthenticatedAdmin(admin) = authenticated.await?;
            Ok(Self(Owner::try_from(admin)?))
        })
    }
}

/// Whether extraction applies `auth.require_verified_email`.
#[derive(Clone, Copy)]
enum EmailRule {
    /// [`orgsvc_app::Application::authenticate`].
    Enforced,
    /// [`orgsvc_app::Application::authenticate_unverified`].
    Waived,
}

/// The admin the request's bearer token names, under `rule`.
fn authenticate(
    req: &HttpRequest,
    rule: EmailRule,
) -> impl Future<Output = Result<Admin, ApiError>> + 'static {
    let token = bearer_token(req).map(str::to_owned);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    async move {
        let state = state.ok_or_else(|| ApiError::unexpected("AppState is not registered"))?;
        let token = token?;
        let admin = match rule {
            EmailRule::Enforced => state.app.authenticate(&token).await?,
            EmailRule::Waived => state.app.authenticate_unverified(&token).await?,
        };
        Ok(admin)
    }
}

/// The token of an `Authorization: Bearer <token>` header: none is 401
/// `missing_token`, a blank one 401 `invalid_token`.
fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    match bearer(req) {
        Bearer::Absent => Err(ApiError::MissingToken),
        Bearer::Blank => Err(AppError::InvalidToken.into()),
        Bearer::Token(token) => Ok(token),
    }
}
