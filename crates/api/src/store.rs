//! Store selection by configuration, migrations, the MongoDB reconciler and
//! the periodic maintenance of sessions and the audit log (both stores).

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use orgsvc_domain::{SharedRateLimits, StoreError, TenantStore};
use orgsvc_mongo::MongoStore;
use orgsvc_sqlite::SqliteStore;
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{AuditSettings, SecuritySettings, Settings, StoreKind};
use crate::problem::ErrorChain;

/// The store chosen by `store.kind`.
#[derive(Debug)]
pub enum SelectedStore {
    /// The embedded SQLite store.
    Embedded(SqliteStore),
    /// The MongoDB store.
    Mongodb(MongoStore),
}

/// A migration that failed or was edited after being applied.
#[derive(Debug, thiserror::Error)]
#[error("migrating the store failed")]
pub struct MigrationFailed(#[source] Box<dyn StdError + Send + Sync>);

impl SelectedStore {
    /// Opens (connects to) the configured store, without migrating it.
    pub async fn open(settings: &Settings) -> Result<Self, StoreError> {
        match settings.store.kind {
            StoreKind::Embedded => {
                let path = &settings.store.path;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|error| {
                        StoreError::new(
                            format!("creating the directory {} of store.path", parent.display()),
                            error,
                        )
                    })?;
                }
                SqliteStore::open(path).await.map(Self::Embedded)
            }
            StoreKind::Mongodb => {
                if settings.mongodb.reconcile_stale_after_secs.is_some() {
                    tracing::warn!("mongodb.reconcile_stale_after_secs is deprecated: it sets mongodb.lease_timeout_secs");
                }
                MongoStore::connect(
                    settings.mongodb.uri.expose_secret(),
                    &settings.mongodb.master_db,
                )
                .await
                .map(|store| {
                    Self::Mongodb(store.with_lease_timeout(settings.mongodb.lease_timeout()))
                })
            }
        }
    }

    /// Which store and where, safe to log (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded(store) => store.describe(),
            Self::Mongodb(store) => store.describe(),
        }
    }

    /// Applies pending migrations; returns the names applied now.
    pub async fn migrate(&self) -> Result<Vec<String>, MigrationFailed> {
        match self {
            Self::Embedded(store) => store.migrate().await.map_err(|e| MigrationFailed(e.into())),
            Self::Mongodb(store) => store.migrate().await.map_err(|e| MigrationFailed(e.into())),
        }
    }

    /// Whether half-done operations can exist and need [`TenantStore::reconcile`]
    /// (MongoDB: its lifecycle operations span several non-atomic steps).
    pub fn needs_reconciliation(&self) -> bool {
        matches!(self, Self::Mongodb(_))
    }

    /// The store's counters for rate limits that every instance shares
    /// (MongoDB); `None` for the embedded store, which serves one process
    /// and keeps its limits in process.
    pub fn shared_rate_limits(&self) -> Option<Arc<dyn SharedRateLimits>> {
        match self {
            Self::Embedded(_) => None,
            Self::Mongodb(store) => Some(Arc::new(store.clone())),
        }
    }

    /// The store as the handlers see it.
    pub fn into_shared(self) -> Arc<dyn TenantStore> {
        match self {
            Self::Embedded(store) => Arc::new(store),
            Self::Mongodb(store) => Arc::new(store),
        }
    }
}

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
/// deletes them too, but not every MongoDB-compatible server runs it).
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

/// Shortest time login-throttling state is kept after the last attempt.
const MIN_THROTTLE_MEMORY: Duration = Duration::from_secs(24 * 60 * 60);

impl Maintenance {
    /// The maintenance the settings ask for.
    pub fn from_settings(security: &SecuritySettings, audit: &AuditSettings) -> Self {
        Self {
            interval: security.purge_interval(),
            throttle_memory: security.login_throttle().max_lock.max(MIN_THROTTLE_MEMORY),
            audit_retention: Duration::from_secs(u64::from(audit.retention_days) * 24 * 60 * 60),
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
    use crate::config::Settings;

    fn settings(env: &[(&str, &str)]) -> Settings {
        let env = env
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        Settings::load_from(None, Some(env)).unwrap()
    }

    #[test]
    fn maintenance_follows_the_settings() {
        let defaults = settings(&[]);
        let maintenance = Maintenance::from_settings(&defaults.security, &defaults.audit);
        assert_eq!(
            maintenance,
            Maintenance {
                interval: Duration::from_secs(3600),
                throttle_memory: Duration::from_secs(86_400),
                audit_retention: Duration::from_secs(90 * 86_400),
            }
        );
        let custom = settings(&[
            ("ORGSVC__SECURITY__PURGE_INTERVAL_SECS", "60"),
            ("ORGSVC__SECURITY__LOGIN_MAX_LOCK_SECS", "172800"),
            ("ORGSVC__AUDIT__RETENTION_DAYS", "7"),
        ]);
        let maintenance = Maintenance::from_settings(&custom.security, &custom.audit);
        assert_eq!(maintenance.interval, Duration::from_secs(60));
        assert_eq!(maintenance.throttle_memory, Duration::from_secs(172_800));
        assert_eq!(maintenance.audit_retention, Duration::from_secs(7 * 86_400));
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
