//! HTTP routes. Each resource answers other methods with a 405 problem
//! whose `Allow` lists `HEAD` wherever `GET` is (answered by
//! [`crate::head`]); the app answers unknown paths with a 404 problem.

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse, Resource};

use crate::problem::ApiError;
use crate::rate_limit::limit_per_client_ip;

pub mod admin;
pub mod admins;
pub mod audit;
pub mod data;
pub mod health;
pub mod organizations;

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
                    .to(admin::login)
                    .wrap(from_fn(limit_per_client_ip)),
            ),
        )
        .service(
            resource("/admin/refresh", "POST").route(
                web::post()
                    .to(admin::refresh)
                    .wrap(from_fn(limit_per_client_ip)),
            ),
        )
        .service(resource("/admin/logout", "POST").route(web::post().to(admin::logout)))
        .service(resource("/health/live", "GET, HEAD").route(web::get().to(health::live)))
        .service(resource("/health/ready", "GET, HEAD").route(web::get().to(health::ready)));
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
