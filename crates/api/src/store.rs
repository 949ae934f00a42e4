//! Store selection by configuration, migrations and the MongoDB reconciler.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use orgsvc_domain::{StoreError, TenantStore};
use orgsvc_mongo::MongoStore;
use orgsvc_sqlite::SqliteStore;
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;

use crate::config::{Settings, StoreKind};
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
            StoreKind::Mongodb => MongoStore::connect(
                settings.mongodb.uri.expose_secret(),
                &settings.mongodb.master_db,
            )
            .await
            .map(Self::Mongodb),
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

    /// The store as the handlers see it.
    pub fn into_shared(self) -> Arc<dyn TenantStore> {
        match self {
            Self::Embedded(store) => Arc::new(store),
            Self::Mongodb(store) => Arc::new(store),
        }
    }
}

/// Runs [`TenantStore::reconcile`] once and logs what it repaired.
pub async fn reconcile_once(store: &dyn TenantStore, stale_after: Duration) {
    match store.reconcile(stale_after).await {
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

/// Reconciles every `interval` in the background; abort the handle to stop.
pub fn spawn_reconciler(
    store: Arc<dyn TenantStore>,
    interval: Duration,
    stale_after: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; startup already reconciled
        loop {
            ticks.tick().await;
            reconcile_once(store.as_ref(), stale_after).await;
        }
    })
}
