//! orgsvc's HTTP API: routes, problem documents, authentication, OpenAPI,
//! configuration and startup. The `orgsvc` binary wires it together.
//!
//! Handlers only map HTTP: they parse a request into domain values, call a
//! use case of [`orgsvc_app::Application`] (held by [`state::AppState`])
//! and map its result or [`orgsvc_app::AppError`] (one table, in
//! [`problem`]).

pub mod config;
pub mod cors;
pub mod credentials;
pub mod email;
pub mod extractors;
pub mod head;
pub mod key_commands;
pub mod metrics;
pub mod openapi;
pub mod operator_key_commands;
pub mod problem;
pub mod proxies;
pub mod rate_limit;
pub mod request_origin;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store_selection;
pub mod telemetry;
pub mod tenant_commands;
pub mod transport;
pub mod validation;
