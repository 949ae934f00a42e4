//! orgsvc's HTTP API: routes, problem documents, authentication, OpenAPI,
//! configuration and startup. The `orgsvc` binary wires it together.

pub mod config;
pub mod cors;
pub mod extractors;
pub mod head;
pub mod metrics;
pub mod openapi;
pub mod preconditions;
pub mod problem;
pub mod proxies;
pub mod rate_limit;
pub mod request_origin;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod validation;
