//! HTTP routes. Each resource answers other methods with a 405 problem
//! whose `Allow` lists `HEAD` wherever `GET` is (answered by
//! [`crate::head`]); the app answers unknown paths with a 404 problem.

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse, Resource, ResponseError};

use crate::problem::ApiError;
use crate::rate_limit::limit_per_client_ip;

pub mod admins;
pub mod audit;
pub mod data;
pub mod health;
pub mod organizations;
pub mod sessions;

/// Registers every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/org/create", "POST").route(web::post().to(organizations::create)))
        .service(resource("/org/get", "GET, HEAD").route(web::get().to(organizations::get)))
        .service(resource("/org/update", "PUT").route(web::put().to(organizations::update)))
        .service(resource("/org/delete", "DELETE").route(web::delete().to(organizations::delete)))
        .service(
            resource("/org/data", "GET, HEAD, POST")
                .route(web::get().to(data::list))
                .route(web::post().to(data::create)),
        )
        .service(
            resource("/org/data/{id}", "GET, HEAD, PUT, DELETE")
                .route(web::get().to(data::get))
                .route(web::put().to(data::replace))
                .route(web::delete().to(data::delete)),
        )
        .service(
            resource("/org/admins", "GET, HEAD, POST")
                .route(web::get().to(admins::list))
                .route(web::post().to(admins::add)),
        )
        .service(
            resource("/org/admins/{id}", "GET, HEAD, PATCH, DELETE")
                .route(web::get().to(admins::get))
                .route(web::patch().to(admins::change_role))
                .route(web::delete().to(admins::remove)),
        )
        .service(resource("/org/audit", "GET, HEAD").route(web::get().to(audit::list)))
        .service(
            resource("/admin/login", "POST").route(
                web::post()
                    .to(sessions::login)
                    .wrap(from_fn(limit_per_client_ip)),
            ),
        )
        .service(
            resource("/admin/refresh", "POST").route(
                web::post()
                    .to(sessions::refresh)
                    .wrap(from_fn(limit_per_client_ip)),
            ),
        )
        .service(resource("/admin/logout", "POST").route(web::post().to(sessions::logout)))
        .service(resource("/health/live", "GET, HEAD").route(web::get().to(health::live)))
        .service(resource("/health/ready", "GET, HEAD").route(web::get().to(health::ready)));
}

/// Answers every method but `allowed` on `path` with a 405 problem, for
/// paths whose `GET` another service registered before it serves (the
/// OpenAPI document and Swagger UI: `crate::startup::app`).
pub fn other_methods(path: &'static str, allowed: &'static str) -> Resource {
    resource(path, allowed)
}

/// A resource that answers methods other than `allowed` with 405.
pub(crate) fn resource(path: &'static str, allowed: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allowed })
    }))
}

/// Answers paths no route matches.
pub async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// Gives the 404 problem to a 404 without content: Swagger UI's answer for
/// an unknown file under `/docs/` (every other error is a problem already).
pub async fn problem_for_empty_404<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let response = next.call(req).await?;
    let empty = matches!(
        response.response().body().size(),
        BodySize::None | BodySize::Sized(0)
    );
    if response.status() == StatusCode::NOT_FOUND && empty {
        let (req, _) = response.into_parts();
        let problem = ApiError::RouteNotFound.error_response();
        return Ok(ServiceResponse::new(req, problem).map_into_right_body());
    }
    Ok(response.map_into_left_body())
}
