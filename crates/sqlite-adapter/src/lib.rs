//! orgsvc's embedded [`TenantStore`](orgsvc_domain::TenantStore): everything
//! in one SQLite file, so the service runs with no database server and a
//! small deployment has one file to back up.
//!
//! Layout: the master tables `organizations` and `admins` (created by the
//! versioned migrations in `migrations/sqlite/`) and one table,
//! `tenant_documents`, holding every organization's JSON documents keyed by
//! organization id, with their revision and an index for listing one
//! organization's documents in `(created_at, id)` order (see `documents.rs`).
//! Each organization's logical collection, `org_<canonical name>`, is
//! metadata: no create, rename or delete changes the schema, so their cost
//! does not grow with the number of organizations. Stores of earlier
//! releases, with a table per organization, are upgraded when opened
//! (`layout_upgrade.rs`, `tenant_tables.rs`). Sessions and the audit log
//! have their own tables: `refresh_tokens`, `revoked_families`,
//! `login_throttles` (see `sessions.rs`), `audit_events` (`audit.rs`), and the
//! token signing keys `signing_key_set` and `signing_keys` (`signing_keys.rs`),
//! the email outbox and single-use account tokens `outbox_messages` and
//! `account_tokens` (`account_tokens.rs`), and the invitations
//! `invitations` (`invitations.rs`).
//!
//! Concurrency: one writer connection serializes all writes (SQLite admits
//! one writer at a time anyway); read-only connections serve reads
//! concurrently with it, which WAL mode allows ([`SqliteOptions::readers`]). Each connection has a thread
//! of its own, and every SQLite call runs there (`connection.rs`). Lookups
//! of organizations and admins are cached in the process, coherent with every
//! write (`cache.rs`, read through by `lookups.rs`); for that the store takes `<file>.lock`: one process
//! per file.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = orgsvc_sqlite::SqliteStore::open("data/orgsvc.db".as_ref()).await?;
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```

mod account_tokens;
mod admin_roles;
mod admins;
mod audit;
mod cache;
mod connection;
mod constraints;
mod documents;
mod invitations;
mod layout_upgrade;
mod login_throttles;
mod lookups;
mod migrations;
mod operator_keys;
mod organizations;
mod records;
mod refresh_tokens;
mod rows;
mod sessions;
mod signing_keys;
mod store;
mod tenant_tables;

pub use migrations::MigrationError;
pub use store::{SqliteOptions, SqliteStore, ONE_LAYOUT};
