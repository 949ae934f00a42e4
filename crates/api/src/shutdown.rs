//! Graceful shutdown: when each step happens after SIGTERM or SIGINT, the
//! signals themselves, and the deadline that ends the process whatever
//! still runs.
//!
//! The sequence ([`crate::startup::Service::serve_until`]): readiness answers
//! 503 `shutting_down` at once and long lifecycle operations are told their
//! deadline ([`orgsvc_domain::TenantStore::begin_drain`]); after
//! `server.shutdown_delay_secs` (default 0) the listener closes, so new
//! connections are refused, idle keep-alive connections are closed and
//! in-flight requests finish; connections still open one second before
//! `server.shutdown_timeout_secs` are closed, and the process exits within
//! the timeout.

use std::io;
use std::time::{Duration, Instant};

use crate::config::ServerSettings;

const ONE_SECOND: Duration = Duration::from_secs(1);

/// When each step of a graceful shutdown happens, counted from the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownPlan {
    /// The listener closes (`server.shutdown_delay_secs`); until then it
    /// accepts connections, and readiness answers 503.
    pub close_listener_after: Duration,
    /// Lifecycle operations still running then stop between two steps and
    /// release their lease: 10 % (at least one second) before the
    /// connections close, so that their requests can still answer.
    pub operations_deadline: Duration,
    /// Connections still open then are closed, cutting their requests; the
    /// background reconciliation and email delivery are stopped too.
    pub close_connections_after: Duration,
    /// The process exits then, whatever still runs
    /// (`server.shutdown_timeout_secs`).
    pub exit_by: Duration,
}

impl ShutdownPlan {
    /// The plan the (validated) settings ask for.
    pub fn from_settings(server: &ServerSettings) -> Self {
        let exit_by = server.shutdown_timeout();
        let close_connections_after = exit_by.saturating_sub(ONE_SECOND);
        let lead = (exit_by / 10).max(ONE_SECOND);
        Self {
            close_listener_after: server.shutdown_delay().min(close_connections_after),
            operations_deadline: close_connections_after.saturating_sub(lead),
            close_connections_after,
            exit_by,
        }
    }

    /// actix-web's `shutdown_timeout`: whole seconds from closing the
    /// listener to closing the connections (at least one).
    pub fn drain_secs(&self) -> u64 {
        self.close_connections_after
            .saturating_sub(self.close_listener_after)
            .as_secs()
            .max(1)
    }
}

/// The shutdown signals (SIGTERM and SIGINT), registered before serving so
/// that none is missed.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers (inside the runtime).
    pub fn register() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next signal; answers its name.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}

/// Exits the process with status 1 at `deadline` unless it has exited by
/// then: the bound holds even when a handler or a blocking task ignores the
/// shutdown. Runs on a thread of its own, so a stalled runtime cannot hold
/// it up; never disarmed, so only for a process that is ending.
pub fn exit_at(deadline: Instant) {
    let spawned = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            tracing::error!(
                "shutdown did not finish within server.shutdown_timeout_secs: exiting now"
            );
            std::process::exit(1);
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the shutdown deadline thread");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Settings;

    fn plan(timeout: &str, delay: &str) -> ShutdownPlan {
        let env: HashMap<String, String> = [
            ("ORGSVC__SERVER__SHUTDOWN_TIMEOUT_SECS", timeout),
            ("ORGSVC__SERVER__SHUTDOWN_DELAY_SECS", delay),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        ShutdownPlan::from_settings(&Settings::load_from(None, Some(env)).unwrap().server)
    }

    #[test]
    fn the_default_plan_ends_before_kubernetes_grace_period() {
        let plan = plan("25", "0");
        assert_eq!(
            plan,
            ShutdownPlan {
                close_listener_after: Duration::ZERO,
                operations_deadline: Duration::from_millis(21_500),
                close_connections_after: Duration::from_secs(24),
                exit_by: Duration::from_secs(25),
            }
        );
        assert_eq!(plan.drain_secs(), 24);
    }

    #[test]
    fn steps_keep_their_order_for_every_valid_timeout_and_delay() {
        for timeout in 2..=40_u64 {
            for delay in 0..=timeout - 2 {
                let plan = plan(&timeout.to_string(), &delay.to_string());
                assert!(plan.operations_deadline < plan.close_connections_after);
                assert!(plan.close_listener_after < plan.close_connections_after);
                assert!(plan.close_connections_after < plan.exit_by);
                assert_eq!(plan.exit_by, Duration::from_secs(timeout));
                assert_eq!(
                    plan.close_listener_after + Duration::from_secs(plan.drain_secs()),
                    plan.close_connections_after,
                    "timeout {timeout}, delay {delay}"
                );
            }
        }
    }
}
