//! Building the application and running the service (used by `main` and
//! the tests).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::ConnectionType;
use actix_web::middleware::{self, Next};
use actix_web::{web, App, HttpMessage, HttpResponse};
use orgsvc_domain::SharedRateLimits;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing_actix_web::{RequestId, TracingLogger};
use utoipa_swagger_ui::SwaggerUi;

use crate::config::{ConfigError, Settings};
use crate::cors;
use crate::credentials::{Credentials, CredentialsError};
use crate::email;
use crate::extractors::body::{json_config, query_config};
use crate::head::head_as_get;
use crate::metrics::{self, Metrics, MetricsError};
use crate::openapi;
use crate::routes;
use crate::routes::metrics::{self as metrics_routes, MetricsListener};
use crate::shutdown::{self, ShutdownPlan, Signals};
use crate::state::AppState;
use crate::store_selection::{MigrationFailed, SelectedStore};
use crate::telemetry::InvalidLogFilter;
use crate::transport;
use orgsvc_app::maintenance::spawn_reconciler;
use orgsvc_app::outbox::MailSender;
use orgsvc_auth::KeyError;
use orgsvc_domain::{MailTransport, OutboxStore};

/// What the binary does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Migrate the store, then serve HTTP until SIGTERM or SIGINT (ctrl-c).
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
    /// The credential settings are unusable (e.g. argon2 parameters), or
    /// the signing keys (a private key that does not decrypt with
    /// `auth.key_encryption_secret`, a store that failed).
    #[error("could not set up the credentials")]
    Credentials(#[from] CredentialsError),
    /// The store could not be opened or reached.
    #[error("could not open the store")]
    Store(#[from] orgsvc_domain::StoreError),
    /// A migration failed or an applied one was edited.
    #[error(transparent)]
    Migration(#[from] MigrationFailed),
    /// The HTTP server could not listen or failed.
    #[error("HTTP server error")]
    Server(#[source] io::Error),
    /// The SIGTERM/SIGINT handlers could not be registered.
    #[error("could not listen for shutdown signals")]
    Signals(#[source] io::Error),
    /// Metrics could not be set up (`metrics.*`).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A command cannot run with these settings (what is missing).
    #[error("{0}")]
    Usage(String),
}

impl StartupError {
    /// The process exit code: 2 for invalid configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::LogFilter(_) | Self::Usage(_) => 2,
            Self::Credentials(CredentialsError::Keys(KeyError::Store(_) | KeyError::Contended)) => {
                1
            }
            Self::Credentials(_) => 2,
            Self::Store(_) | Self::Migration(_) | Self::Server(_) | Self::Signals(_) => 1,
            Self::Metrics(_) => 1,
        }
    }
}

/// The application: routes (and `HEAD` wherever `GET` is), OpenAPI
/// document and Swagger UI, problem
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
    let cors = cors::middleware(&state.cors);
    let metrics = state.metrics.clone();
    App::new()
        .app_data(state)
        .app_data(json_config(max_body_bytes))
        .app_data(query_config())
        .configure(routes::configure)
        .configure(|cfg| metrics_routes::configure(cfg, metrics.as_ref()))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::document()))
        .route("/docs", web::get().to(redirect_to_docs))
        .service(routes::other_methods("/openapi.json", "GET, HEAD"))
        .service(routes::other_methods("/docs", "GET, HEAD"))
        .service(routes::other_methods("/docs/{_:.*}", "GET, HEAD"))
        .default_service(web::to(routes::route_not_found))
        .wrap(middleware::from_fn(routes::problem_for_empty_404))
        .wrap(middleware::from_fn(head_as_get))
        .wrap(middleware::Condition::new(
            cors.is_some(),
            cors.unwrap_or_default(),
        ))
        .wrap(middleware::from_fn(cors::problem_for_refused_preflight))
        .wrap(
            middleware::DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("X-Frame-Options", "DENY"))
                .add(("Referrer-Policy", "no-referrer")),
        )
        .wrap(middleware::from_fn(expose_request_id))
        .wrap(middleware::from_fn(close_connections_when_shutting_down))
        .wrap(middleware::Condition::new(
            metrics.is_some(),
            middleware::from_fn(metrics::track_requests),
        ))
        .wrap(TracingLogger::default())
        .wrap(middleware::from_fn(transport::note_request))
}

async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/docs/"))
        .finish()
}

/// Once shutdown has begun, closes each connection after its response, so
/// that keep-alive clients reconnect (to another instance).
async fn close_connections_when_shutting_down(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let readiness = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.readiness.clone());
    let mut response = next.call(req).await?;
    if readiness.is_some_and(|readiness| readiness.is_shutting_down()) {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
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
/// serves HTTP until SIGTERM or SIGINT, then shuts down gracefully within
/// `server.shutdown_timeout_secs` (see [`crate::shutdown`]). Half-done
/// MongoDB operations are reconciled in the background, the first time as
/// soon as the service listens; the email outbox is delivered in the
/// background too.
pub async fn run(settings: Settings, command: Command) -> Result<(), StartupError> {
    if settings.security.trust_forwarded_for {
        tracing::warn!("security.trust_forwarded_for is deprecated: it trusts any peer as a proxy; list the proxies in security.trusted_proxies instead");
    }
    let store = SelectedStore::open(&settings).await?;
    tracing::info!(store = %store.describe(), "store opened");
    let applied = store.migrate().await?;
    if applied.is_empty() {
        tracing::info!("store schema is up to date");
    } else {
        tracing::info!(migrations = ?applied, "migrations applied");
    }
    if command == Command::Migrate {
        return Ok(());
    }

    let reconcile = store.needs_reconciliation();
    let shared_rate_limits = store.shared_rate_limits();
    let store = store.into_shared();
    let credentials = Credentials::load(&settings, store.clone()).await?;
    let mut state = AppState::new(&settings, store, credentials);
    if let Some(metrics) = Metrics::from_settings(&settings.metrics)? {
        state = state.with_metrics(metrics);
    }
    if let Some(shared) = shared_rate_limits.clone() {
        state = state.with_shared_rate_limits(&settings.security, shared);
    }
    let limiter = if state.login_rate_limiter.is_shared() {
        "shared by every instance on the store"
    } else {
        "in process"
    };
    tracing::info!(limiter, "credential rate limit");
    let state = web::Data::new(state);
    let signals = Signals::register().map_err(StartupError::Signals)?;
    let service = Service::start(&settings, state, reconcile, shared_rate_limits)?;
    let exit_by = service.plan().exit_by;
    service.serve_until(on_signal(signals, exit_by)).await
}

/// Completes at the first SIGTERM or SIGINT, after arming the deadline that
/// ends the process `exit_by` later; a second signal ends it at once.
async fn on_signal(mut signals: Signals, exit_by: Duration) {
    let signal = signals.recv().await;
    tracing::info!(signal, "shutting down");
    shutdown::exit_at(Instant::now() + exit_by);
    tokio::spawn(async move {
        let signal = signals.recv().await;
        tracing::warn!(signal, "second shutdown signal: exiting at once");
        std::process::exit(1);
    });
}

/// The service, listening: the HTTP server and its background tasks.
pub struct Service {
    server: Server,
    addrs: Vec<SocketAddr>,
    state: web::Data<AppState>,
    plan: ShutdownPlan,
    background: Background,
    metrics: Option<MetricsListener>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("addrs", &self.addrs)
            .field("metrics", &self.metrics)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Listens on `server.host`:`server.port`, then starts the background
    /// tasks: maintenance, the email outbox's sender (through the
    /// `email.transport` the settings name; it needs the runtime: lettre's
    /// connection pool lives on it), and with `reconcile` the reconciliation of
    /// half-done operations (first run at once, so start-up never waits for
    /// it). Maintenance also purges `shared_rate_limits` when given.
    /// Connections are accepted once [`Service::serve_until`] runs. Call it
    /// inside the runtime that will serve.
    pub fn start(
        settings: &Settings,
        state: web::Data<AppState>,
        reconcile: bool,
        shared_rate_limits: Option<Arc<dyn SharedRateLimits>>,
    ) -> Result<Self, StartupError> {
        let plan = ShutdownPlan::from_settings(&settings.server);
        let app_state = state.clone();
        let (server, addr) =
            transport::serve(settings, plan.drain_secs(), move || app(app_state.clone()))
                .map_err(StartupError::Server)?;
        let addrs = vec![addr];
        for address in &addrs {
            tracing::info!(%address, "listening");
        }
        let metrics = MetricsListener::start(&state).map_err(StartupError::Server)?;
        let transport = email::transport(&settings.email)?;
        let background =
            Background::spawn(settings, &state, reconcile, shared_rate_limits, transport);
        Ok(Self {
            server,
            addrs,
            state,
            plan,
            background,
            metrics,
        })
    }

    /// The addresses of the separate metrics listener (`metrics.listen`);
    /// empty without one.
    pub fn metrics_addrs(&self) -> &[SocketAddr] {
        self.metrics.as_ref().map_or(&[], MetricsListener::addrs)
    }

    /// The addresses the service listens on.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// When the shutdown steps happen.
    pub fn plan(&self) -> ShutdownPlan {
        self.plan
    }

    /// Serves until `shutdown` completes, then shuts down gracefully: see
    /// [`crate::shutdown`] for the sequence.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> Result<(), StartupError> {
        let Self {
            server,
            state,
            plan,
            background,
            metrics,
            ..
        } = self;
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        tokio::select! {
            served = &mut server => {
                background.abort();
                if let Some(metrics) = metrics {
                    metrics.stop().await;
                }
                return served.map_err(StartupError::Server);
            }
            () = shutdown => {}
        }
        let signalled = Instant::now();
        state.readiness.shut_down();
        state
            .app
            .store()
            .begin_drain(signalled + plan.operations_deadline);
        background.stop_starting();
        tracing::info!(
            close_listener_after = ?plan.close_listener_after,
            operations_deadline = ?plan.operations_deadline,
            close_connections_after = ?plan.close_connections_after,
            "readiness answers 503; draining"
        );
        let stop = async {
            tokio::time::sleep(plan.close_listener_after).await;
            tracing::info!("listener closed; finishing in-flight requests");
            handle.stop(true).await;
        };
        let (served, ()) = tokio::join!(server, stop);
        background
            .finish(signalled + plan.close_connections_after)
            .await;
        if let Some(metrics) = metrics {
            metrics.stop().await;
        }
        tracing::info!(elapsed = ?signalled.elapsed(), "stopped");
        served.map_err(StartupError::Server)
    }
}

/// The tasks running beside the server.
struct Background {
    reconciler: Option<JoinHandle<()>>,
    stop_reconciler: watch::Sender<bool>,
    maintenance: JoinHandle<()>,
    /// Keeps the signing keys current (a stored key set only).
    key_refresher: Option<JoinHandle<()>>,
    /// Delivers the email outbox.
    mail_sender: JoinHandle<()>,
}

impl Background {
    fn spawn(
        settings: &Settings,
        state: &AppState,
        reconcile: bool,
        shared_rate_limits: Option<Arc<dyn SharedRateLimits>>,
        transport: Arc<dyn MailTransport>,
    ) -> Self {
        let store = state.app.store().clone();
        let outbox: Arc<dyn OutboxStore> = store.clone();
        let mut sender = MailSender::new(outbox, transport, settings.email.sender_settings());
        if let Some(metrics) = &state.metrics {
            sender = metrics.observe_sender(sender);
        }
        tracing::info!(
            transport = ?settings.email.transport,
            from = settings.email.from(),
            "email outbox delivery"
        );
        let (stop_reconciler, stop) = watch::channel(false);
        let mail_sender = sender.spawn(stop_reconciler.subscribe());
        let reconciler = reconcile.then(|| {
            spawn_reconciler(
                store.clone(),
                settings.mongodb.reconcile_interval(),
                settings.mongodb.lease_timeout(),
                stop,
            )
        });
        let maintenance = settings.maintenance().spawn(store, shared_rate_limits);
        let key_refresher = state
            .signing_keys
            .clone()
            .map(|keys| keys.spawn_refresher(stop_reconciler.subscribe()));
        Self {
            reconciler,
            stop_reconciler,
            maintenance,
            key_refresher,
            mail_sender,
        }
    }

    /// No new reconciliation or email round starts; one in progress goes on
    /// (an email round ends after the message being delivered).
    fn stop_starting(&self) {
        self.stop_reconciler.send_replace(true);
    }

    /// Stops maintenance, and waits for the email delivery and the
    /// reconciliation in progress until `deadline` (they were told to stop
    /// before, by `stop_starting` and `begin_drain`).
    async fn finish(self, deadline: Instant) {
        self.maintenance.abort();
        if let Some(refresher) = self.key_refresher {
            refresher.abort();
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        let mut mail_sender = self.mail_sender;
        if tokio::time::timeout_at(deadline, &mut mail_sender)
            .await
            .is_err()
        {
            tracing::warn!(
                "an email delivery was still running at the shutdown deadline: stopped; its message is delivered again once its claim expires"
            );
            mail_sender.abort();
        }
        if let Some(mut reconciler) = self.reconciler {
            if tokio::time::timeout_at(deadline, &mut reconciler)
                .await
                .is_err()
            {
                tracing::warn!(
                    "reconciliation still running at the shutdown deadline: stopped; another instance or the next start finishes it"
                );
                reconciler.abort();
            }
        }
    }

    fn abort(self) {
        self.maintenance.abort();
        self.mail_sender.abort();
        if let Some(refresher) = self.key_refresher {
            refresher.abort();
        }
        if let Some(reconciler) = self.reconciler {
            reconciler.abort();
        }
    }
}
