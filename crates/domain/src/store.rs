//! The storage port. Adapters (MongoDB, embedded) implement [`TenantStore`];
//! the API holds it as `Arc<dyn TenantStore>`.
//!
//! Every adapter runs the contract suite in [`crate::testing`] (feature
//! `testing`), which checks the rules written on each method below.

use std::time::Duration;

use async_trait::async_trait;

use crate::account_tokens::AccountTokenStore;
use crate::audit::AuditLog;
use crate::documents::{DocumentBody, DocumentPage, DocumentQuery, TenantDocument};
use crate::errors::{
    AddAdminError, ChangeAdminError, CreateOrganizationError, DeleteOrganizationError,
    DocumentError, RenameOrganizationError, StoreError, UpdateAdminError, UsageError,
};
use crate::ids::{AdminId, DocumentId, OrganizationId};
use crate::invitations::InvitationStore;
use crate::model::{
    Admin, AdminCredentials, AdminRole, AdminUpdate, NewAdmin, NewOrganization, Organization,
    TenantLayout,
};
use crate::operator::{
    ChangeStateError, OrganizationPage, OrganizationQuery, OrganizationUsage, StateChange,
};
use crate::operator_keys::OperatorKeyStore;
use crate::outbox::OutboxStore;
use crate::sessions::SessionStore;
use crate::signing_keys::SigningKeyStore;
use crate::tenant_moves::{MoveTenantError, TenantMove};
use crate::values::{AdminEmail, OrganizationName, PasswordHash};

/// What a [`TenantStore::reconcile`] run repaired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Half-done operations carried to completion (renames, deletions,
    /// admin removals and role changes).
    pub completed: u32,
    /// Half-done operations undone (creations, additions of admins).
    pub rolled_back: u32,
}

impl ReconcileReport {
    /// Whether the run found nothing to repair.
    pub fn is_empty(&self) -> bool {
        self.completed == 0 && self.rolled_back == 0
    }
}

/// Organizations, their admins and their tenant collections.
///
/// A store also keeps the admins' sessions, the audit log, the token
/// signing keys, the email outbox, the single-use account tokens and the
/// invitations and the operator API keys: see the supertraits
/// [`SessionStore`], [`AuditLog`], [`SigningKeyStore`], [`OutboxStore`],
/// [`AccountTokenStore`], [`InvitationStore`] and [`OperatorKeyStore`] for
/// their own rules.
///
/// Rules every implementation MUST follow:
/// - Organization names are unique by their canonical form
///   ([`OrganizationName::canonical`]); emails are unique across all admins.
/// - Each organization owns exactly one tenant collection, named by
///   [`OrganizationName::collection_name`] (its [`crate::TenantLocation`]'s
///   `collection`), which exists from the moment `create_organization`
///   returns until `delete_organization` returns. In the
///   [`TenantLayout::Shared`] layout (stores that have it, issue #16) that
///   collection is logical: the documents live in
///   [`crate::SHARED_DOCUMENTS_COLLECTION`] keyed by organization id, under
///   the same isolation rules.
/// - Timestamps have millisecond precision, so a value returned by one call
///   equals the value read back later.
/// - Operations on different organizations never interfere; two operations
///   racing for the same name or email: exactly one wins.
/// - Tenant documents live in their organization's collection and nowhere
///   else: an operation on organization A never reads, lists, changes or
///   deletes a document of organization B, whatever id it names.
/// - A document write that races a rename (or a move between layouts) is
///   either applied in the renamed collection (the new layout) or refused
///   with [`DocumentError::Busy`]: never lost, never left behind in the old
///   collection.
/// - A failure (or a crash) part-way through an operation leaves nothing
///   visible through this trait that the operation would not have produced,
///   once [`TenantStore::reconcile`] has run: no organization without its
///   admin, no admin without its organization, no orphan collection, no lost
///   tenant document.
/// - Every organization has at least one admin with [`AdminRole::Owner`];
///   changes that would leave it without one are refused atomically, even
///   when they race each other.
#[async_trait]
pub trait TenantStore:
    SessionStore
    + AuditLog
    + SigningKeyStore
    + OutboxStore
    + AccountTokenStore
    + InvitationStore
    + OperatorKeyStore
    + Send
    + Sync
    + 'static
{
    /// Registers an organization, its first admin (an owner) and its
    /// (empty) tenant collection.
    ///
    /// MUST return [`CreateOrganizationError::NameTaken`] when any organization
    /// (including one being created or renamed to that name) has the same
    /// canonical name, and [`CreateOrganizationError::EmailTaken`] when the
    /// email is in use; in both cases nothing is stored.
    async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError>;

    /// The organization whose canonical name equals `name`'s, if it exists and
    /// is not being created or deleted. During a rename it is found under its
    /// old name until the rename completes.
    async fn organization_by_name(
        &self,
        name: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError>;

    /// The organization with this id, under the same visibility rule as
    /// [`TenantStore::organization_by_name`].
    async fn organization_by_id(
        &self,
        id: OrganizationId,
    ) -> Result<Option<Organization>, StoreError>;

    /// Renames an organization and moves its tenant collection (with every
    /// document, `_id`s and indexes) to the collection of the new name.
    ///
    /// When the canonical name does not change, only the spelling is updated
    /// and no data moves. MUST return `NotFound` for an unknown organization,
    /// `NameTaken` when another organization holds or is being renamed to the
    /// new canonical name (nothing changes), and `Busy` while another
    /// lifecycle operation on the same organization is in progress.
    async fn rename_organization(
        &self,
        id: OrganizationId,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError>;

    /// [`rename_organization`](Self::rename_organization) on the condition
    /// that the organization's canonical name is still `expected`'s, checked
    /// atomically with the rename (compare-and-swap): a caller that decided
    /// on a name it read earlier never renames what another rename made of
    /// the organization since. MUST return `NameChanged`, changing nothing,
    /// when the current canonical name differs.
    async fn rename_organization_from(
        &self,
        id: OrganizationId,
        expected: &OrganizationName,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError>;

    /// Deletes an organization, its admins, its invitations and its tenant
    /// collection (its audit entries stay: see [`AuditLog`]).
    ///
    /// MUST return `NotFound` for an unknown organization and `Busy` while
    /// another lifecycle operation on it is in progress. Afterwards the name
    /// and the admin emails are free again.
    async fn delete_organization(&self, id: OrganizationId) -> Result<(), DeleteOrganizationError>;

    /// One page of every visible organization (the visibility rule of
    /// [`TenantStore::organization_by_id`]) that meets the query, in
    /// canonical-name order after `query.after` (the rule is
    /// [`OrganizationQuery::admits`]; `next` is set when more may follow).
    /// A prefix search MUST read an index range of the canonical name, not
    /// every organization (see [`crate::NameFragment::prefix_upper_bound`]).
    async fn list_organizations(
        &self,
        query: &OrganizationQuery,
    ) -> Result<OrganizationPage, StoreError>;

    /// Suspends or resumes an organization and returns it as it is then.
    ///
    /// Compare-and-swap on the organization's state alone: a change that
    /// changes nothing ([`StateChange::apply`] gives `None`) stores nothing
    /// and returns the organization unchanged; a concurrent rename is never
    /// lost and never loses the state; a deleted organization (or one being
    /// created or deleted) is never brought back: `NotFound`.
    async fn change_organization_state(
        &self,
        id: OrganizationId,
        change: &StateChange,
    ) -> Result<Organization, ChangeStateError>;

    /// What the organization holds (admins, pending invitations at `now`,
    /// documents and their bytes), or `None` for an unknown organization;
    /// `Busy` while its documents are being moved (stores whose renames or
    /// moves copy documents).
    async fn organization_usage(
        &self,
        id: OrganizationId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<OrganizationUsage>, UsageError>;

    /// The admin with this id, if it and its organization exist.
    async fn admin_by_id(&self, id: AdminId) -> Result<Option<Admin>, StoreError>;

    /// The admin with this email and its password hash, for verifying a
    /// login; `None` when no admin of an existing organization has it.
    async fn admin_credentials_by_email(
        &self,
        email: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError>;

    /// Changes an admin's email and/or password hash and returns the admin.
    ///
    /// A new password hash MUST increment [`Admin::token_version`]; an email
    /// change alone does not. A changed email MUST clear
    /// [`Admin::email_verified`]. MUST return `EmailTaken` when another admin
    /// uses the email (nothing changes) and `NotFound` for an unknown admin.
    async fn update_admin(
        &self,
        id: AdminId,
        update: AdminUpdate,
    ) -> Result<Admin, UpdateAdminError>;

    /// Adds an admin to an existing organization.
    ///
    /// MUST return `EmailTaken` when any admin uses the email and
    /// `OrganizationNotFound` for an unknown organization (or one being
    /// created or deleted); nothing is stored then.
    async fn add_admin(
        &self,
        organization: OrganizationId,
        admin: NewAdmin,
    ) -> Result<Admin, AddAdminError>;

    /// The organization's admins, oldest first; empty for an unknown
    /// organization.
    async fn admins_of(&self, organization: OrganizationId) -> Result<Vec<Admin>, StoreError>;

    /// Removes an admin from its organization. When it was the
    /// organization's primary admin ([`Organization::admin_id`]), the
    /// longest-standing remaining owner becomes the primary admin.
    ///
    /// MUST return `NotFound` when the organization has no admin with this
    /// id and `LastOwner` (removing nothing) when it is the organization's
    /// only owner.
    async fn remove_admin(
        &self,
        organization: OrganizationId,
        admin: AdminId,
    ) -> Result<(), ChangeAdminError>;

    /// Gives an admin another role and returns it. `NotFound` as for
    /// [`TenantStore::remove_admin`]; `LastOwner` (changing nothing) when it
    /// would demote the organization's only owner. Demoting the primary
    /// admin makes the longest-standing remaining owner primary.
    async fn set_admin_role(
        &self,
        organization: OrganizationId,
        admin: AdminId,
        role: AdminRole,
    ) -> Result<Admin, ChangeAdminError>;

    /// Replaces an admin's password hash with a rehash of the same password
    /// (new hashing parameters), only if the stored hash still equals
    /// `current`: a password changed meanwhile is never overwritten. Unlike a
    /// password change it leaves [`Admin::token_version`] and `updated_at`
    /// as they are. Returns whether the hash was replaced.
    async fn rehash_password(
        &self,
        admin: AdminId,
        current: &PasswordHash,
        rehashed: PasswordHash,
    ) -> Result<bool, StoreError>;

    /// Stores a new document in the organization's collection, with a fresh
    /// time-ordered id, revision 1 and `created_at == updated_at`.
    ///
    /// MUST return `OrganizationNotFound` for an unknown organization (or one
    /// being created or deleted) and `Busy` when the write cannot be applied
    /// because a rename (or a move between layouts) is moving the collection
    /// (nothing is stored then).
    async fn insert_document(
        &self,
        organization: OrganizationId,
        body: DocumentBody,
    ) -> Result<TenantDocument, DocumentError>;

    /// The organization's document with this id. MUST return `NotFound` when
    /// the organization has no such document, even if another one does;
    /// `OrganizationNotFound` as above; `Busy` only while a rename is moving
    /// the collection.
    async fn find_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
    ) -> Result<TenantDocument, DocumentError>;

    /// One page of the organization's documents that meet every filter, in
    /// `(created_at, id)` order, starting after `query.after`. `next` is set
    /// when more documents may follow. Documents inserted while a client
    /// pages through appear after the cursor or not at all, never twice.
    /// `OrganizationNotFound` and `Busy` as for `find_document`.
    async fn list_documents(
        &self,
        organization: OrganizationId,
        query: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError>;

    /// Replaces a document's body, increments its revision and sets
    /// `updated_at`; `created_at` and the id stay.
    ///
    /// With `expected_revision`, MUST return `RevisionMismatch` (changing
    /// nothing) unless the stored revision equals it. `NotFound` and `Busy`
    /// as above.
    async fn replace_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        body: DocumentBody,
        expected_revision: Option<u64>,
    ) -> Result<TenantDocument, DocumentError>;

    /// Deletes a document. With `expected_revision`, MUST return
    /// `RevisionMismatch` (deleting nothing) unless the stored revision
    /// equals it. `NotFound` and `Busy` as above.
    async fn delete_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        expected_revision: Option<u64>,
    ) -> Result<(), DocumentError>;

    /// Moves the organization's documents to `layout` (issue #16) and
    /// returns the organization with that layout: every document, with its
    /// id, body, revision and times, ends up in the new layout exactly once.
    ///
    /// Moving to the layout the organization is in is a no-op success
    /// (`moved: false`). While the move runs, document operations answer
    /// `Busy` or are applied before or after it, never lost, as during a
    /// rename; renames and deletions answer `Busy`. A move interrupted by a
    /// crash is completed by [`TenantStore::reconcile`] or by calling this
    /// again. MUST return `NotFound` for an unknown organization (or one
    /// being created or deleted), `Busy` while another lifecycle operation
    /// on it runs, and `NotApplicable` from stores that have one layout.
    async fn move_tenant(
        &self,
        id: OrganizationId,
        layout: TenantLayout,
    ) -> Result<TenantMove, MoveTenantError>;

    /// Completes or rolls back lifecycle operations that were abandoned: the
    /// process running them stopped renewing their lease `lease_timeout`
    /// ago or more (it died, froze, or lost the database). Operations whose
    /// process keeps renewing are left alone however long they run.
    /// Idempotent; safe to run while the service serves requests and from
    /// several processes at once: of two reconcilers racing for one
    /// operation, exactly one takes it over. Stores whose operations are
    /// atomic return an empty report.
    async fn reconcile(&self, lease_timeout: Duration) -> Result<ReconcileReport, StoreError>;

    /// Checks that the store answers (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Asks long-running lifecycle operations to stop by `deadline` (the
    /// process is shutting down): an operation still running then stops
    /// between two steps, gives up its lease so that another instance takes
    /// it over at once, and answers `Busy`. Operations that finish earlier
    /// are unaffected. Stores without long operations do nothing (the
    /// default).
    fn begin_drain(&self, deadline: std::time::Instant) {
        let _ = deadline;
    }
}
