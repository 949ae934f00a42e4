//! orgsvc's embedded [`TenantStore`](orgsvc_domain::TenantStore): everything
//! in one SQLite file, so the service runs with no database server and a
//! small deployment has one file to back up.
//!
//! Layout: the master tables `organizations` and `admins` (created by the
//! versioned migrations in `migrations/sqlite/`) and one table
//! `org_<canonical name>` per organization holding its JSON documents, with
//! their revision and an index for listing them in `(created_at, id)` order
//! (see `tenant_tables.rs` and `documents.rs`).
//!
//! Concurrency: one writer connection behind a mutex serializes all writes
//! (SQLite admits one writer at a time anyway); a few read-only connections
//! serve reads concurrently with it, which WAL mode allows. Every SQLite call
//! runs on tokio's blocking pool.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = orgsvc_sqlite::SqliteStore::open("data/orgsvc.db".as_ref()).await?;
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```

mod admins;
mod connection;
mod constraints;
mod documents;
mod migrations;
mod organizations;
mod rows;
mod store;
mod tenant_tables;

pub use migrations::MigrationError;
pub use store::SqliteStore;
