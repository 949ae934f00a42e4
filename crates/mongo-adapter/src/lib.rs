//! orgsvc's [`TenantStore`](orgsvc_domain::TenantStore) on MongoDB.
//!
//! Everything lives in one master database: the `organizations`, `admins`
//! and `organization_names` collections, and one `org_<canonical name>`
//! collection per tenant. MongoDB has no multi-document atomicity without
//! transactions, so create, rename and delete record their intent on the
//! organization document first under a lease that the running process
//! renews (see `lease.rs`), take each step idempotently and fenced by the
//! lease, and
//! [`TenantStore::reconcile`](orgsvc_domain::TenantStore::reconcile) takes
//! over only operations whose lease expired (their process crashed, froze
//! or lost the database) and finishes or undoes them.
//!
//! Tenant documents live in their organization's collection as `{_id,
//! organization_id, body, revision, created_at, updated_at}`, and every
//! access filters on the organization id; writes that race a rename are either
//! carried to the new collection or refused as busy (see `tenant_document_ops.rs`).
//! Organizations whose record says `layout: shared` (issue #16; new ones
//! when the store is built [`MongoStore::with_tenancy`]) keep theirs in the
//! one `tenant_documents` collection instead; `TenantScope`
//! (`tenant_documents.rs`) is the one place that names the collection and
//! scopes every query, and `lifecycle/tenant_move.rs` moves an
//! organization's documents between the layouts under the same lease and
//! claim protocol as a rename.
//!
//! Admins have roles; removals and role changes commit on the organization
//! record by compare-and-swap, so every organization keeps an owner even
//! when they race (see `admin_changes.rs`), and additions are confirmed only
//! once their organization is known to exist (see `admin_add.rs`).
//! Reconciliation also drops tenant collections that nobody holds, which
//! writes racing a rename can leave behind (see `orphans.rs`). Sessions
//! live in `refresh_tokens`, `revoked_session_families` and
//! `login_throttles` (see `refresh_tokens.rs` and `login_throttle.rs`), the
//! audit log in `audit_events` (see `audit.rs`). The store also implements
//! [`SharedRateLimits`](orgsvc_domain::SharedRateLimits), counting calls in
//! `rate_limits` (see `rate_limits.rs`). The token signing key set is one
//! document in `signing_keys`, replaced by compare-and-swap on its version
//! (see `signing_keys.rs`). The email outbox is `outbox`, one document per
//! message with the password-reset or verification token it carries
//! embedded, so both are stored by one write (see `outbox.rs`). Invitations
//! are `invitations`, each with its current token's hash and the email
//! that still has to move to the outbox (see `invitations.rs`).

mod admin_add;
mod admin_changes;
mod admins;
mod audit;
mod catalog;
mod collection_moves;
mod errors;
mod failpoints;
mod invitations;
mod lease;
mod lease_timing;
mod lifecycle;
mod login_throttle;
mod migrations;
mod names;
mod operator;
mod operator_keys;
mod orphans;
mod outbox;
mod rate_limits;
mod reconcile;
mod records;
mod refresh_tokens;
mod sessions;
mod signing_keys;
mod store;
mod tenant_document_ops;
mod tenant_documents;
mod transactions;

#[cfg(feature = "failpoints")]
pub use failpoints::{Paused, Step};
pub use lease_timing::DEFAULT_LEASE_TIMEOUT;
pub use migrations::MigrationError;
pub use store::{MongoStore, DEFAULT_SERVER_SELECTION_TIMEOUT};
