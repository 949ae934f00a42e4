//! HTTP routes. Each resource answers other methods with a 405 problem
//! whose `Allow` lists `HEAD` wherever `GET` is (answered by
//! [`crate::head`]); the app answers unknown paths with a 404 problem.

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, Resource, ResponseError, Route};
use utoipa::openapi::path::HttpMethod;

use crate::problem::ApiError;

pub mod account_recovery;
pub mod admins;
pub mod audit;
pub mod data;
pub mod health;
pub mod invitations;
pub mod metrics;
pub mod operator_keys;
pub mod operator_organizations;
pub mod organizations;
mod paging;
pub mod sessions;
pub mod well_known;

/// Each route module's OpenAPI operations, in the document's order: the
/// paths of the document (see [`crate::openapi::document`]).
pub fn documented_operations() -> [utoipa::openapi::OpenApi; 11] {
    use utoipa::OpenApi;
    [
        organizations::Operations::openapi(),
        data::Operations::openapi(),
        admins::Operations::openapi(),
        audit::Operations::openapi(),
        invitations::Operations::openapi(),
        sessions::Operations::openapi(),
        account_recovery::Operations::openapi(),
        operator_keys::Operations::openapi(),
        operator_organizations::Operations::openapi(),
        health::Operations::openapi(),
        well_known::Operations::openapi(),
    ]
}

/// Every route of the API, each module registering its own.
pub fn table() -> RouteTable {
    let mut table = RouteTable::default();
    organizations::routes(&mut table);
    data::routes(&mut table);
    admins::routes(&mut table);
    audit::routes(&mut table);
    invitations::routes(&mut table);
    sessions::routes(&mut table);
    account_recovery::routes(&mut table);
    operator_keys::routes(&mut table);
    operator_organizations::routes(&mut table);
    health::routes(&mut table);
    well_known::routes(&mut table);
    table
}

/// Registers every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    table().register(cfg);
}

/// Routes registered by their OpenAPI operations: each handler is served
/// at the path and methods its `#[utoipa::path]` names (the `P` of
/// [`RouteTable::operation`]), so the served routes and the document
/// cannot drift apart. Each path becomes one resource that answers other
/// methods with a 405 whose `Allow` lists the methods it has (and `HEAD`
/// wherever `GET` is).
#[derive(Default)]
pub struct RouteTable {
    /// Paths in registration order, each with its methods and routes.
    resources: Vec<(String, Vec<(Method, Route)>)>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.operations()).finish()
    }
}

impl RouteTable {
    /// Serves the operation described by `P` (a `#[utoipa::path]`) with
    /// `route` (given a route already limited to the operation's method),
    /// e.g. `table.operation::<__path_get>(|route| route.to(get))`.
    pub fn operation<P: utoipa::Path>(&mut self, route: impl Fn(Route) -> Route) -> &mut Self {
        let path = P::path();
        let index = match self.resources.iter().position(|(known, _)| *known == path) {
            Some(index) => index,
            None => {
                self.resources.push((path, Vec::new()));
                self.resources.len() - 1
            }
        };
        for method in P::methods() {
            let method = http_method(&method);
            let routed = route(web::route().method(method.clone()));
            self.resources[index].1.push((method, routed));
        }
        self
    }

    /// Every (path, method) served, `HEAD` not listed (it follows `GET`).
    pub fn operations(&self) -> Vec<(String, Method)> {
        self.resources
            .iter()
            .flat_map(|(path, routes)| {
                routes
                    .iter()
                    .map(move |(method, _)| (path.clone(), method.clone()))
            })
            .collect()
    }

    /// Adds every resource to `cfg`.
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        for (path, routes) in self.resources {
            let allowed = allow(routes.iter().map(|(method, _)| method));
            let resource = routes
                .into_iter()
                .fold(resource(&path, allowed), |resource, (_, route)| {
                    resource.route(route)
                });
            cfg.service(resource);
        }
    }
}

/// The `Allow` value of a resource with `methods` (RFC 9110 §10.2.1):
/// them in order, with `HEAD` right after `GET`.
fn allow<'a>(methods: impl Iterator<Item = &'a Method>) -> String {
    let mut names = Vec::new();
    for method in methods {
        names.push(method.as_str());
        if *method == Method::GET {
            names.push(Method::HEAD.as_str());
        }
    }
    names.join(", ")
}

/// The HTTP method of an OpenAPI operation.
fn http_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// Answers every method but `allowed` on `path` with a 405 problem, for
/// paths whose `GET` another service registered before it serves (the
/// OpenAPI document and Swagger UI: `crate::startup::app`).
pub fn other_methods(path: &str, allowed: &str) -> Resource {
    resource(path, allowed.to_owned())
}

/// A resource that answers methods other than `allowed` with 405.
pub(crate) fn resource(path: &str, allowed: String) -> Resource {
    web::resource(path).default_service(web::to(move || {
        let allowed = allowed.clone();
        async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allowed }) }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_documented_operation_is_served_and_every_route_is_documented() {
        let served: BTreeSet<(String, String)> = table()
            .operations()
            .into_iter()
            .map(|(path, method)| (path, method.to_string()))
            .collect();
        let document = crate::openapi::document();
        let mut documented = BTreeSet::new();
        for (path, item) in &document.paths.paths {
            let operations = [
                ("GET", &item.get),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("OPTIONS", &item.options),
                ("HEAD", &item.head),
                ("PATCH", &item.patch),
                ("TRACE", &item.trace),
            ];
            for (method, operation) in operations {
                if operation.is_some() {
                    documented.insert((path.clone(), method.to_owned()));
                }
            }
        }
        assert_eq!(served, documented);
        assert_eq!(served.len(), 40);
    }

    #[test]
    fn allow_lists_head_right_after_get() {
        let methods = [Method::GET, Method::PUT, Method::DELETE];
        assert_eq!(allow(methods.iter()), "GET, HEAD, PUT, DELETE");
        assert_eq!(allow([Method::POST].iter()), "POST");
    }
}
