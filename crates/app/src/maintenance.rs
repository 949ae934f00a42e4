//! Keeping a store in shape, in the background: reconciling half-done
//! lifecycle operations ([`TenantStore::reconcile`], MongoDB) and purging
//! expired sessions, idle login throttling, the audit entries of
//! long-deleted organizations, ended rate-limit windows, expired account
//! tokens, delivered emails and long-expired invitations.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use orgsvc_domain::{
    ErrorChain, LoginThrottle, SharedRateLimits, StoreError, TenantStore, INVITATION_RETENTION,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Runs [`TenantStore::reconcile`] once and logs what it repaired.
pub async fn reconcile_once(store: &dyn TenantStore, lease_timeout: Duration) {
    match store.reconcile(lease_timeout).await {
        Ok(report) if report.is_empty() => {
            tracing::debug!("reconciliation found nothing to repair")
        }
        Ok(report) => tracing::info!(
            completed = report.completed,
            rolled_back = report.rolled_back,
            "reconciliation repaired half-done operations"
        ),
        Err(error) => tracing::error!(error = %ErrorChain(&error), "reconciliation failed"),
    }
}

/// Reconciles at once, then every `interval`, in the background, until
/// `stop` turns true (or its sender is dropped). A run in progress then is
/// not interrupted: [`TenantStore::begin_drain`] bounds it, and the caller
/// waits for the handle (and aborts it once it has waited long enough).
pub fn spawn_reconciler(
    store: Arc<dyn TenantStore>,
    interval: Duration,
    lease_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => return,
                _ = ticks.tick() => {} // the first tick is immediate
            }
            reconcile_once(store.as_ref(), lease_timeout).await;
        }
    })
}

/// What the maintenance task purges and when: expired refresh tokens and
/// idle login-throttling state ([`TenantStore::purge_sessions`]), the
/// audit entries of organizations deleted more than `audit.retention_days`
/// ago ([`TenantStore::purge_deleted_before`]), and the shared rate limit
/// counters of ended windows
/// ([`SharedRateLimits::purge_expired_rate_limits`]: MongoDB's TTL index
/// deletes them too, but not every MongoDB-compatible server runs it);
/// expired account tokens with their emails
/// ([`orgsvc_domain::AccountTokenStore::purge_account_tokens`]), emails
/// delivered more than [`SENT_MESSAGE_RETENTION`] ago
/// ([`orgsvc_domain::OutboxStore::purge_sent_messages`]) and invitations
/// that expired more than [`INVITATION_RETENTION`] ago
/// ([`orgsvc_domain::InvitationStore::purge_invitations`]; until then
/// the listing shows them `expired`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Maintenance {
    /// Time between runs (`security.purge_interval_secs`).
    pub interval: Duration,
    /// How long the failures and lock history of an email without attempts
    /// are kept: the longest lock, and at least a day, so locks keep growing
    /// for an attacker who comes back.
    pub throttle_memory: Duration,
    /// How long the audit entries of a deleted organization are kept.
    pub audit_retention: Duration,
}

/// How long a delivered email stays in the outbox (our choice: long enough
/// to look into a delivery complaint; its token, if it still lives, keeps
/// it longer).
pub const SENT_MESSAGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Shortest time login-throttling state is kept after the last attempt.
const MIN_THROTTLE_MEMORY: Duration = Duration::from_secs(24 * 60 * 60);

impl Maintenance {
    /// Runs every `interval`, keeping idle login throttling as long as
    /// `throttle`'s longest lock (at least a day) and the audit entries of
    /// deleted organizations for `audit_retention`.
    pub fn new(interval: Duration, throttle: &LoginThrottle, audit_retention: Duration) -> Self {
        Self {
            interval,
            throttle_memory: throttle.max_lock.max(MIN_THROTTLE_MEMORY),
            audit_retention,
        }
    }

    /// Purges once, as of `now`, and logs what went. Failures are logged,
    /// never fatal: the next run tries again.
    pub async fn run_once(&self, store: &dyn TenantStore, now: DateTime<Utc>) {
        match store
            .purge_sessions(now, before(now, self.throttle_memory))
            .await
        {
            Ok(0) => tracing::debug!("no expired sessions to purge"),
            Ok(purged) => {
                tracing::info!(purged, "purged expired sessions and idle login throttling")
            }
            Err(error) => tracing::error!(error = %ErrorChain(&error), "purging sessions failed"),
        }
        match store
            .purge_deleted_before(before(now, self.audit_retention))
            .await
        {
            Ok(0) => tracing::debug!("no audit entries past retention"),
            Ok(purged) => {
                tracing::info!(purged, "purged audit entries of long-deleted organizations")
            }
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), "purging the audit log failed")
            }
        }
        log_purge(
            store.purge_account_tokens(now).await,
            "expired account tokens and their emails",
        );
        log_purge(
            store
                .purge_sent_messages(before(now, SENT_MESSAGE_RETENTION))
                .await,
            "delivered emails past retention",
        );
        log_purge(
            store
                .purge_invitations(before(now, INVITATION_RETENTION))
                .await,
            "invitations expired past retention",
        );
    }

    /// Deletes the shared rate limit counters of windows that ended by
    /// `now`, and logs how many went. Failures are logged, never fatal.
    pub async fn purge_rate_limits(&self, shared: &dyn SharedRateLimits, now: DateTime<Utc>) {
        match shared.purge_expired_rate_limits(now).await {
            Ok(0) => tracing::debug!("no expired rate limit counters"),
            Ok(purged) => tracing::info!(purged, "purged expired rate limit counters"),
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), "purging rate limit counters failed")
            }
        }
    }

    /// Runs at once (in the background, so startup does not wait), then
    /// every `interval`, purging `shared` rate limits too when there are;
    /// abort the handle to stop.
    pub fn spawn(
        self,
        store: Arc<dyn TenantStore>,
        shared: Option<Arc<dyn SharedRateLimits>>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await; // the first tick is immediate
                let now = Utc::now();
                self.run_once(store.as_ref(), now).await;
                if let Some(shared) = &shared {
                    self.purge_rate_limits(shared.as_ref(), now).await;
                }
            }
        })
    }
}

/// Logs what a purge of `what` did; a failure is logged, never fatal.
fn log_purge(result: Result<u64, StoreError>, what: &'static str) {
    match result {
        Ok(0) => tracing::debug!(what, "nothing to purge"),
        Ok(purged) => tracing::info!(purged, what, "purged"),
        Err(error) => tracing::error!(error = %ErrorChain(&error), what, "purging failed"),
    }
}

/// `now - age`, saturating at the earliest representable time.
fn before(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_state_is_kept_for_the_longest_lock_and_at_least_a_day() {
        let throttle = |max_lock| LoginThrottle {
            max_failures: 5,
            base_lock: Duration::from_secs(60),
            max_lock,
        };
        let day = Duration::from_secs(86_400);
        let short = Maintenance::new(day, &throttle(Duration::from_secs(3600)), day);
        assert_eq!(short.throttle_memory, day);
        let long = Maintenance::new(day, &throttle(2 * day), day);
        assert_eq!(long.throttle_memory, 2 * day);
    }

    #[test]
    fn cutoffs_saturate() {
        let now = Utc::now();
        assert_eq!(
            before(now, Duration::from_secs(60)),
            now - TimeDelta::seconds(60)
        );
        assert_eq!(before(now, Duration::MAX), DateTime::<Utc>::MIN_UTC);
    }
}
