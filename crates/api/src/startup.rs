//! Building the application and running the service (used by `main` and
//! the tests).

use std::io;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{self, Next};
use actix_web::{web, App, HttpMessage, HttpResponse, HttpServer};
use tracing_actix_web::{RequestId, TracingLogger};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::{ConfigError, Settings};
use crate::extractors::body::{json_config, query_config};
use crate::openapi::ApiDoc;
use crate::rate_limit::LoginRateLimiter;
use crate::routes;
use crate::state::{AppState, Credentials};
use crate::store::{reconcile_once, spawn_reconciler, Maintenance, MigrationFailed, SelectedStore};
use crate::telemetry::InvalidLogFilter;

/// What the binary does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Migrate the store, then serve HTTP until SIGTERM or ctrl-c.
    Serve,
    /// Migrate the store and exit.
    Migrate,
}

/// Why the service could not start (or stopped abnormally).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The log filter is invalid.
    #[error(transparent)]
    LogFilter(#[from] InvalidLogFilter),
    /// The credential settings are unusable (e.g. argon2 parameters).
    #[error("invalid auth settings")]
    Auth(#[from] orgsvc_auth::AuthError),
    /// The store could not be opened or reached.
    #[error("could not open the store")]
    Store(#[from] orgsvc_domain::StoreError),
    /// A migration failed or an applied one was edited.
    #[error(transparent)]
    Migration(#[from] MigrationFailed),
    /// The HTTP server could not listen or failed.
    #[error("HTTP server error")]
    Server(#[source] io::Error),
}

impl StartupError {
    /// The process exit code: 2 for invalid configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::LogFilter(_) | Self::Auth(_) => 2,
            Self::Store(_) | Self::Migration(_) | Self::Server(_) => 1,
        }
    }
}

/// The application: routes, OpenAPI document and Swagger UI, problem
/// documents for unknown routes, security headers, request ids and request
/// logging.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_body_bytes = state.max_body_bytes;
    App::new()
        .app_data(state)
        .app_data(json_config(max_body_bytes))
        .app_data(query_config())
        .configure(routes::configure)
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()))
        .route("/docs", web::get().to(redirect_to_docs))
        .default_service(web::to(routes::route_not_found))
        .wrap(
            middleware::DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("X-Frame-Options", "DENY"))
                .add(("Referrer-Policy", "no-referrer")),
        )
        .wrap(middleware::from_fn(expose_request_id))
        .wrap(TracingLogger::default())
}

async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/docs/"))
        .finish()
}

/// Sends the request id `TracingLogger` assigned (and logs) as `x-request-id`.
async fn expose_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req.extensions().get::<RequestId>().copied();
    let mut response = next.call(req).await?;
    if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

/// Opens the configured store, migrates it and, for [`Command::Serve`],
/// serves HTTP until SIGTERM or ctrl-c (reconciling MongoDB at start and
/// periodically meanwhile).
pub async fn run(settings: Settings, command: Command) -> Result<(), StartupError> {
    let credentials = match command {
        Command::Serve => Some(Credentials::from_settings(&settings)?),
        Command::Migrate => None,
    };
    let store = SelectedStore::open(&settings).await?;
    tracing::info!(store = %store.describe(), "store opened");
    let applied = store.migrate().await?;
    if applied.is_empty() {
        tracing::info!("store schema is up to date");
    } else {
        tracing::info!(migrations = ?applied, "migrations applied");
    }
    let Some(credentials) = credentials else {
        return Ok(()); // Command::Migrate
    };

    let needs_reconciliation = store.needs_reconciliation();
    let shared_rate_limits = store.shared_rate_limits();
    let store = store.into_shared();
    let reconciler = if needs_reconciliation {
        let stale_after = settings.mongodb.reconcile_stale_after();
        reconcile_once(store.as_ref(), stale_after).await;
        Some(spawn_reconciler(
            store.clone(),
            settings.mongodb.reconcile_interval(),
            stale_after,
        ))
    } else {
        None
    };

    let maintenance = Maintenance::from_settings(&settings.security, &settings.audit)
        .spawn(store.clone(), shared_rate_limits.clone());

    let mut state = AppState::new(&settings, store, credentials);
    if let Some(shared) = shared_rate_limits {
        state = state.with_login_rate_limiter(LoginRateLimiter::shared(&settings.security, shared));
    }
    let limiter = if state.login_rate_limiter.is_shared() {
        "shared by every instance on the store"
    } else {
        "in process"
    };
    tracing::info!(limiter, "credential rate limit");
    let state = web::Data::new(state);
    let served = serve(&settings, state).await;
    if let Some(reconciler) = reconciler {
        reconciler.abort();
    }
    maintenance.abort();
    tracing::info!("stopped");
    served
}

async fn serve(settings: &Settings, state: web::Data<AppState>) -> Result<(), StartupError> {
    let server = HttpServer::new(move || app(state.clone()))
        .workers(settings.workers())
        .bind((settings.server.host, settings.server.port))
        .map_err(StartupError::Server)?;
    for address in server.addrs() {
        tracing::info!(%address, "listening");
    }
    // actix-web stops accepting on SIGTERM/SIGINT and drains in-flight
    // requests (30 s at most) before `run` completes.
    server.run().await.map_err(StartupError::Server)
}
