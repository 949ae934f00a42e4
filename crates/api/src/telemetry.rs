//! Logging: a `tracing` subscriber writing text or JSON lines to stdout.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter (log.level or RUST_LOG): {0}")]
pub struct InvalidLogFilter(String);

/// Installs the global subscriber: filter from `RUST_LOG` when set, else
/// `log.level`; format from `log.format`. Also forwards `log` records
/// (actix-web's) to `tracing`.
pub fn init(settings: &LogSettings) -> Result<(), InvalidLogFilter> {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| settings.level.clone());
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|error| InvalidLogFilter(error.to_string()))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already installed (e.g. by a test harness): keep the existing one.
    if let Err(error) = installed {
        tracing::debug!(%error, "a tracing subscriber was already installed");
    }
    Ok(())
}
