//! The store `store.kind` selects: opening it, migrating it, and what it
//! offers the composition root (the port, shared rate limits, whether it
//! needs reconciling).

use std::error::Error as StdError;
use std::sync::Arc;

use orgsvc_domain::{SharedRateLimits, StoreError, TenantStore};
use orgsvc_mongo::MongoStore;
use orgsvc_sqlite::SqliteStore;
use secrecy::ExposeSecret;

use crate::config::{Settings, StoreKind};

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
                SqliteStore::open_with(path, settings.store.sqlite_options())
                    .await
                    .map(Self::Embedded)
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
                    Self::Mongodb(
                        store
                            .with_lease_timeout(settings.mongodb.lease_timeout())
                            .with_tenancy(settings.mongodb.tenancy()),
                    )
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
