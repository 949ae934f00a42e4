//! orgsvc's domain: what an organization and its admins are, the validated
//! values they are made of, and the [`TenantStore`] port (with its
//! [`SessionStore`], [`AuditLog`], [`SigningKeyStore`], [`OutboxStore`],
//! [`AccountTokenStore`] and [`OperatorKeyStore`] parts) every storage
//! adapter implements,
//! and the [`SharedRateLimits`] port of stores that several instances share.
//!
//! This crate has no infrastructure dependency: no database driver, no web
//! framework, no cryptography. Adapters depend on it, never the reverse.

mod account_tokens;
mod audit;
pub mod clock;
mod documents;
mod errors;
mod ids;
mod invitations;
mod model;
mod operator;
mod operator_keys;
mod outbox;
pub mod preconditions;
mod rate_limits;
mod sessions;
mod signing_keys;
mod store;
mod succession;
mod tenant_moves;
mod values;

#[cfg(feature = "testing")]
pub mod testing;

pub use account_tokens::{AccountToken, AccountTokenPurpose, AccountTokenStore, TokenHash};
pub use audit::{AuditAction, AuditEvent, AuditFilter, AuditLog, AuditPage, AuditQuery};
pub use documents::{
    check_field_name, check_revision, json_len, DocumentBody, DocumentPage, DocumentQuery,
    FieldFilter, FilterValue, InvalidDocument, PageCursor, PageSize, TenantDocument,
};
pub use errors::{
    AddAdminError, ChangeAdminError, CreateOrganizationError, DeleteOrganizationError,
    DocumentError, ErrorChain, RenameOrganizationError, StoreError, UpdateAdminError, UsageError,
};
pub use ids::{
    AdminId, AuditEventId, DocumentId, InvitationId, OperatorKeyId, OrganizationId,
    OutboxMessageId, SessionFamilyId,
};
pub use invitations::{
    invitation_ttl, AcceptInvitationError, Invitation, InvitationError, InvitationPage,
    InvitationQuery, InvitationStatus, InvitationStore, InvitationTtlError, DEFAULT_INVITATION_TTL,
    INVITATION_RETENTION, MAX_INVITATION_TTL,
};
pub use model::{
    Admin, AdminCredentials, AdminRole, AdminUpdate, NewAdmin, NewOrganization, NewOwner,
    Organization, OrganizationState, Suspension, TenantLayout, TenantLocation,
    SHARED_DOCUMENTS_COLLECTION,
};
pub use operator::{
    ChangeStateError, NameMatch, NameSearch, OrganizationCursor, OrganizationPage,
    OrganizationQuery, OrganizationUsage, StateChange, StateFilter,
};
pub use operator_keys::{
    last_use_due, CreateOperatorKeyError, OperatorKey, OperatorKeyName, OperatorKeyStore,
    OperatorScope, LAST_USE_RESOLUTION,
};
pub use outbox::{
    given_up_at, DeliveryError, MailTransport, OutboxMessage, OutboxStore, RetryPolicy,
};
pub use rate_limits::{ClientKey, RateDecision, RateLimit, RateWindow, SharedRateLimits};
pub use sessions::{
    LoginAttempt, LoginThrottle, RefreshToken, RefreshTokenHash, RefreshTokenUse, SessionStore,
    ThrottleState,
};
pub use signing_keys::{
    active_key, add_key, check_key_set, next_maintenance_at, plan_maintenance, KeySetError,
    KeyState, MaintenancePlan, NewSigningKey, PublicKeyParameters, ReplaceKeySetError,
    RotationPolicy, SealedPrivateKey, SigningAlgorithm, SigningKey, SigningKeyStore,
    VersionedKeySet,
};
pub use store::{ReconcileReport, TenantStore};
pub use succession::{plan_admin_change, AdminChange, AdminChangePlan, AdminStanding};
pub use tenant_moves::{MoveTenantError, TenantMove};
pub use values::{
    AdminEmail, CollectionName, NameFragment, OrganizationName, Password, PasswordHash, ValueError,
    COLLECTION_PREFIX,
};
