//! Cross-origin resource sharing (Fetch standard, "CORS protocol"), off
//! unless `cors.allowed_origins` lists origins; built on `actix-cors`.
//!
//! Allowed methods and request headers are those the routes use; the
//! response headers a client reads (`ETag`, `Location`, `Link`,
//! `Retry-After`, `x-request-id`) are exposed. Credentials (cookies) are
//! never allowed: the API takes bearer tokens. A request from an origin not
//! listed gets no `Access-Control-Allow-Origin`, so the browser keeps the
//! answer from the page; a refused preflight is answered 403 problem+json
//! `cors_refused` (see [`problem_for_refused_preflight`]).

use actix_cors::{Cors, CorsError};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::Next;
use actix_web::ResponseError;

use crate::config::CorsSettings;
use crate::problem::ApiError;

/// The methods of the API's routes.
const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The CORS middleware for `settings`; `None` when CORS is off.
pub fn middleware(settings: &CorsSettings) -> Option<Cors> {
    if settings.allowed_origins.is_empty() {
        return None;
    }
    let request_id = HeaderName::from_static("x-request-id");
    let mut cors = Cors::default()
        .allowed_methods(METHODS)
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            request_id.clone(),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::LINK,
            header::RETRY_AFTER,
            request_id,
        ])
        .max_age(Some(settings.max_age_secs as usize));
    if settings.allowed_origins.iter().any(|origin| origin == "*") {
        cors = cors.allow_any_origin().send_wildcard();
    } else {
        for origin in &settings.allowed_origins {
            cors = cors.allowed_origin(origin);
        }
    }
    Some(cors)
}

/// Answers a preflight that `actix-cors` refused (its errors are plain
/// text) with 403 problem+json `cors_refused`, saying why; every other
/// response passes unchanged.
pub async fn problem_for_refused_preflight(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(req).await?.map_into_boxed_body();
    let refusal = response
        .response()
        .error()
        .and_then(|error| error.as_error::<CorsError>())
        .map(ToString::to_string);
    Ok(match refusal {
        Some(reason) => {
            let (request, _) = response.into_parts();
            let answer = ApiError::CorsRefused(reason).error_response();
            ServiceResponse::new(request, answer)
        }
        None => response,
    })
}
