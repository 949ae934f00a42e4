//! HTTP routes. Each resource answers other methods with a 405 problem; the
//! app answers unknown paths with a 404 problem.

use actix_web::{web, HttpResponse, Resource};

use crate::problem::ApiError;

pub mod admin;
pub mod data;
pub mod health;
pub mod organizations;

/// Registers every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/org/create", "POST").route(web::post().to(organizations::create)))
        .service(resource("/org/get", "GET").route(web::get().to(organizations::get)))
        .service(resource("/org/update", "PUT").route(web::put().to(organizations::update)))
        .service(resource("/org/delete", "DELETE").route(web::delete().to(organizations::delete)))
        .service(
            resource("/org/data", "GET, POST")
                .route(web::get().to(data::list))
                .route(web::post().to(data::create)),
        )
        .service(
            resource("/org/data/{id}", "GET, PUT, DELETE")
                .route(web::get().to(data::get))
                .route(web::put().to(data::replace))
                .route(web::delete().to(data::delete)),
        )
        .service(resource("/admin/login", "POST").route(web::post().to(admin::login)))
        .service(resource("/health/live", "GET").route(web::get().to(health::live)))
        .service(resource("/health/ready", "GET").route(web::get().to(health::ready)));
}

/// A resource that answers methods other than `allowed` with 405.
fn resource(path: &'static str, allowed: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allowed })
    }))
}

/// Answers paths no route matches.
pub async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}
