//! orgsvc's [`TenantStore`](orgsvc_domain::TenantStore) on MongoDB.
//!
//! Everything lives in one master database: the `organizations`, `admins`
//! and `organization_names` collections, and one `org_<canonical name>`
//! collection per tenant. MongoDB has no multi-document atomicity without
//! transactions, so create, rename and delete record their intent on the
//! organization document first, take each step idempotently, and
//! [`TenantStore::reconcile`](orgsvc_domain::TenantStore::reconcile) finishes
//! or undoes whatever a crash interrupted.

mod admins;
mod catalog;
mod documents;
mod errors;
mod failpoints;
mod lifecycle;
mod migrations;
mod names;
mod reconcile;
mod rename_sync;
mod store;

#[cfg(feature = "failpoints")]
pub use failpoints::Step;
pub use migrations::MigrationError;
pub use store::MongoStore;
