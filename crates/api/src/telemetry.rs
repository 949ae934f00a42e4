//! Logging: a `tracing` subscriber writing text or JSON lines to stdout
//! (the service) or stderr (commands that print their result on stdout).
//! Text is coloured only when its stream is a terminal, so files and log
//! collectors get plain lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter (log.level or RUST_LOG): {0}")]
pub struct InvalidLogFilter(String);

/// Installs the global subscriber writing to stdout: filter from
/// `RUST_LOG` when set, else `log.level`; format from `log.format`. Also
/// forwards `log` records (actix-web's) to `tracing`.
pub fn init(settings: &LogSettings) -> Result<(), InvalidLogFilter> {
    install(settings, false)
}

/// [`init`], writing to stderr: for commands whose output is on stdout.
pub fn init_on_stderr(settings: &LogSettings) -> Result<(), InvalidLogFilter> {
    install(settings, true)
}

fn install(settings: &LogSettings, stderr: bool) -> Result<(), InvalidLogFilter> {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| settings.level.clone());
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|error| InvalidLogFilter(error.to_string()))?;
    let terminal = if stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal);
    let installed = match (settings.format, stderr) {
        (LogFormat::Text, false) => builder.try_init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stderr).try_init(),
        (LogFormat::Json, false) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Json, true) => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init(),
    };
    // Already installed (e.g. by a test harness): keep the existing one.
    if let Err(error) = installed {
        tracing::debug!(%error, "a tracing subscriber was already installed");
    }
    Ok(())
}
