//! orgsvc's [`TenantStore`](orgsvc_domain::TenantStore) on MongoDB.
//!
//! Everything lives in one master database: the `organizations`, `admins`
//! and `organization_names` collections, and one `org_<canonical name>`
//! collection per tenant. MongoDB has no multi-document atomicity without
//! transactions, so create, rename and delete record their intent on the
//! organization document first, take each step idempotently, and
//! [`TenantStore::reconcile`](orgsvc_domain::TenantStore::reconcile) finishes
//! or undoes whatever a crash interrupted.
//!
//! Tenant documents live in their organization's collection as `{_id, body,
//! revision, created_at, updated_at}`; writes that race a rename are either
//! carried to the new collection or refused as busy (see `documents_api.rs`).

mod admins;
mod catalog;
mod documents;
mod documents_api;
mod errors;
mod failpoints;
mod lifecycle;
mod migrations;
mod names;
mod reconcile;
mod rename_sync;
mod store;
mod tenant_documents;

#[cfg(feature = "failpoints")]
pub use failpoints::{Paused, Step};
pub use migrations::MigrationError;
pub use store::MongoStore;
