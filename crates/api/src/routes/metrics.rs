//! `GET /metrics`: the Prometheus exposition (see [`crate::metrics`]), on
//! the main port or on its own listener (`metrics.listen`).

use std::io;
use std::net::SocketAddr;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware;
use actix_web::{web, App, HttpResponse, HttpServer};
use orgsvc_app::signing_keys::SigningKeys;
use tokio::task::JoinHandle;

use crate::head::head_as_get;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::problem::{ApiError, ErrorChain};
use crate::routes;
use crate::state::AppState;

/// `GET /metrics`: the exposition, not cacheable.
async fn scrape(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(metrics) = &state.metrics else {
        return Err(ApiError::RouteNotFound);
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(metrics.render(
            state.app.hashing_pool_usage(),
            state.signing_keys.as_ref().map(SigningKeys::status),
        )))
}

/// Registers `GET /metrics` when the main port serves it (metrics enabled,
/// no `metrics.listen`); otherwise nothing, so `/metrics` is an unknown
/// path.
pub fn configure(cfg: &mut web::ServiceConfig, metrics: Option<&Metrics>) {
    if metrics.is_some_and(Metrics::on_main_port) {
        cfg.service(
            routes::resource("/metrics", "GET, HEAD".to_owned()).route(web::get().to(scrape)),
        );
    }
}

/// The separate listener of `metrics.listen`: serves `GET /metrics` only
/// (404 problem for anything else), with one worker.
#[derive(Debug)]
pub struct MetricsListener {
    addrs: Vec<SocketAddr>,
    handle: ServerHandle,
    serving: JoinHandle<io::Result<()>>,
}

impl MetricsListener {
    /// Listens on `metrics.listen` when `state` has metrics and they are
    /// served apart; `None` otherwise. Call it inside a tokio runtime.
    pub fn start(state: &web::Data<AppState>) -> io::Result<Option<Self>> {
        let Some(listen) = state.metrics.as_ref().and_then(Metrics::listen) else {
            return Ok(None);
        };
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .service(
                    routes::resource("/metrics", "GET, HEAD".to_owned())
                        .route(web::get().to(scrape)),
                )
                .default_service(web::to(routes::route_not_found))
                .wrap(middleware::from_fn(head_as_get))
                .wrap(middleware::DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(listen)?;
        let addrs = server.addrs();
        for address in &addrs {
            tracing::info!(%address, "metrics listening");
        }
        let server: Server = server.run();
        let handle = server.handle();
        Ok(Some(Self {
            addrs,
            handle,
            serving: tokio::spawn(server),
        }))
    }

    /// The addresses it listens on.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops listening and waits for the server to end.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        match self.serving.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %ErrorChain(&error), "the metrics listener failed")
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "the metrics listener task failed")
            }
        }
    }
}
