//! orgsvc's domain: what an organization and its admin are, the validated
//! values they are made of, and the [`TenantStore`] port every storage adapter
//! implements.
//!
//! This crate has no infrastructure dependency: no database driver, no web
//! framework, no cryptography. Adapters depend on it, never the reverse.

mod documents;
mod errors;
mod ids;
mod model;
mod store;
mod values;

#[cfg(feature = "testing")]
pub mod testing;

pub use documents::{
    check_field_name, DocumentBody, DocumentPage, DocumentQuery, FieldFilter, FilterValue,
    InvalidDocument, PageCursor, PageSize, TenantDocument,
};
pub use errors::{
    CreateOrganizationError, DeleteOrganizationError, DocumentError, RenameOrganizationError,
    StoreError, UpdateAdminError,
};
pub use ids::{AdminId, DocumentId, OrganizationId};
pub use model::{
    Admin, AdminCredentials, AdminUpdate, NewAdmin, NewOrganization, Organization, TenantLocation,
};
pub use store::{ReconcileReport, TenantStore};
pub use values::{
    AdminEmail, CollectionName, OrganizationName, Password, PasswordHash, ValueError,
    COLLECTION_PREFIX,
};
