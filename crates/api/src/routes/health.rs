//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::responses::NotReady;
use crate::problem::ApiError;
use crate::routes::RouteTable;
use crate::state::AppState;

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthStatus {
    /// Always `ok`.
    status: &'static str,
}

const OK: HealthStatus = HealthStatus { status: "ok" };

/// Liveness probe
///
/// Answers 200 while the process serves HTTP.
#[utoipa::path(
    get,
    path = "/health/live",
    operation_id = "healthLive",
    tag = "health",
    responses((status = 200, description = "The process is alive.", body = HealthStatus))
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(OK)
}

/// Readiness probe
///
/// Answers 200 when the store answers; 503 when it does not or shutdown began.
#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "healthReady",
    tag = "health",
    responses(
        (status = 200, description = "The store answers.", body = HealthStatus),
        (status = 503, response = NotReady),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.readiness.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    state.app.check_readiness().await?;
    Ok(HttpResponse::Ok().json(OK))
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(live, ready))]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_live>(|route| route.to(live));
    table.operation::<__path_ready>(|route| route.to(ready));
}
