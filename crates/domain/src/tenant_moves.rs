//! Moving an organization's documents between layouts (issue #16): the
//! port's [`TenantStore::move_tenant`](crate::TenantStore::move_tenant)
//! answers these.

use crate::errors::StoreError;
use crate::model::Organization;

/// What [`TenantStore::move_tenant`](crate::TenantStore::move_tenant) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantMove {
    /// The organization as it is afterwards (its
    /// [`TenantLocation::layout`](crate::TenantLocation::layout) is the
    /// requested one).
    pub organization: Organization,
    /// Whether documents moved: `false` when the organization already was
    /// in the requested layout (a no-op success).
    pub moved: bool,
    /// How many documents the organization holds in its new layout (0 when
    /// nothing moved).
    pub documents: u64,
}

/// Why an organization's documents could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum MoveTenantError {
    /// No such organization (or one being created or deleted).
    #[error("organization not found")]
    NotFound,
    /// Another lifecycle operation (a rename, a deletion, a move to the
    /// other layout) on this organization is in progress: try again.
    #[error("another change to this organization is in progress")]
    Busy,
    /// The store has no such layouts (the embedded store keeps every
    /// organization's documents in one table); the message says why.
    #[error("not applicable: {0}")]
    NotApplicable(String),
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}
