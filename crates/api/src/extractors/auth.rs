//! The authenticated admin behind a request's bearer token.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use orgsvc_auth::TokenError;
use orgsvc_domain::Admin;

use crate::problem::ApiError;
use crate::state::AppState;

/// The admin whose access token authenticated the request.
///
/// Extraction verifies the token, then requires, on every request, that the
/// admin still exists (a removed admin, or one of a deleted organization, is
/// not found), still belongs to the token's organization and that its token
/// version has not moved on (a password change revokes earlier tokens).
/// Anything else is a 401 `invalid_token`, at once: nothing is cached.
#[derive(Clone, Debug)]
pub struct AuthenticatedAdmin(pub Admin);

impl FromRequest for AuthenticatedAdmin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::unexpected("AppState is not registered"))?;
            authenticate(&state, token?.as_str()).await.map(Self)
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header; a missing header
/// or another scheme counts as no token.
fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or(ApiError::MissingToken)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::InvalidToken);
    }
    Ok(token)
}

/// The admin a valid `token` names, if it still holds: see
/// [`AuthenticatedAdmin`].
async fn authenticate(state: &AppState, token: &str) -> Result<Admin, ApiError> {
    let claims = state.tokens.verify(token).map_err(|error| match error {
        TokenError::Expired => ApiError::TokenExpired,
        TokenError::Invalid => ApiError::InvalidToken,
    })?;
    let admin = state
        .store
        .admin_by_id(claims.sub)
        .await?
        .filter(|admin| admin.accepts_credential(claims.org_id, claims.ver))
        .ok_or(ApiError::InvalidToken)?;
    Ok(admin)
}
