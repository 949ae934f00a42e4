//! The operator behind a request to the operator API (`/operator/*`,
//! issue #17): an operator key sent as a bearer token (RFC 6750 §2.1,
//! `Authorization: Bearer osk_...`).
//!
//! Operator routes take only operator keys, and admin routes only access
//! tokens: an admin's access token here is a 401 `invalid_operator_key`
//! (it does not have the key's shape, so it never reaches the store), and
//! an operator key on an admin route is a 401 `invalid_token` (it is not a
//! JWT).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use orgsvc_app::{AppError, Operator};
use orgsvc_domain::{ClientKey, OperatorScope};

use super::bearer::{bearer, Bearer};
use crate::problem::ApiError;
use crate::state::AppState;

/// An operator whose key authenticated the request, of any scope.
///
/// Extraction looks the key up on every request (nothing is cached: a
/// revoked or expired key is refused at once, on every instance), then
/// counts the request against the key's rate limit
/// (`security.operator_rate_per_minute`). Errors: 401
/// `missing_operator_key` without a bearer token, 401
/// `invalid_operator_key` for a malformed, unknown, revoked or expired key
/// (and for an admin's access token), 429 `operator_rate_limited` with
/// `Retry-After`.
#[derive(Clone, Debug)]
pub struct OperatorCaller(pub Operator);

impl FromRequest for OperatorCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let key = operator_key(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::unexpected("AppState is not registered"))?;
            let operator = state.app.authenticate_operator(key?.as_str()).await?;
            state
                .operator_rate_limiter
                .check_key(ClientKey::operator(operator.key_id))
                .await
                .map_err(|limited| ApiError::OperatorRateLimited {
                    retry_after_secs: limited.retry_after_secs(),
                })?;
            Ok(Self(operator))
        })
    }
}

/// An operator whose key has the `write` scope: what [`OperatorCaller`]
/// checks, then 403 `operator_scope_insufficient` for a `read` key (before
/// the body or the path is looked at).
#[derive(Clone, Debug)]
pub struct OperatorWriter(pub Operator);

impl FromRequest for OperatorWriter {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = OperatorCaller::from_request(req, payload);
        Box::pin(async move {
            let OperatorCaller(operator) = caller.await?;
            operator.require(OperatorScope::Write)?;
            Ok(Self(operator))
        })
    }
}

/// The key of an `Authorization: Bearer <key>` header: none is 401
/// `missing_operator_key`, a blank one 401 `invalid_operator_key`.
fn operator_key(req: &HttpRequest) -> Result<&str, ApiError> {
    match bearer(req) {
        Bearer::Absent => Err(ApiError::MissingOperatorKey),
        Bearer::Blank => Err(AppError::InvalidOperatorKey.into()),
        Bearer::Token(key) => Ok(key),
    }
}
