//! [`SqliteStore`]: the [`TenantStore`] on one SQLite file.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use orgsvc_domain::{
    AddAdminError, Admin, AdminCredentials, AdminEmail, AdminId, AdminRole, AdminUpdate,
    ChangeAdminError, ChangeStateError, CreateOrganizationError, DeleteOrganizationError,
    DocumentBody, DocumentError, DocumentId, DocumentPage, DocumentQuery, NewAdmin,
    NewOrganization, Organization, OrganizationId, OrganizationName, OrganizationPage,
    OrganizationQuery, OrganizationUsage, PasswordHash, ReconcileReport, RenameOrganizationError,
    StateChange, StoreError, TenantDocument, TenantStore, UpdateAdminError,
};

use crate::connection::{self, Connections};
use crate::migrations::{self, MigrationError, MIGRATIONS};
use crate::{admin_roles, admins, documents, layout_upgrade, lookups, organizations};

/// Why moving an organization between layouts does not apply to the
/// embedded store ([`orgsvc_domain::MoveTenantError::NotApplicable`]).
pub const ONE_LAYOUT: &str = "the embedded store keeps every organization's documents in one table";

/// The embedded [`TenantStore`]: organizations, admins and one table of the
/// JSON documents of every organization (`tenant_documents`, keyed by
/// organization id), all in one SQLite file in WAL mode.
///
/// Every lifecycle operation is a single transaction, so there is never a
/// half-done operation: [`TenantStore::reconcile`] has nothing to repair and
/// `Busy` is never returned. A rename changes no document, and document
/// writes run on the same writer connection as deletes, so a write racing
/// either lands before or after it, never in between; reads check the
/// organization and read its documents in one snapshot (details in
/// `documents.rs`). Every organization's [`TenantLocation`] has database
/// `"main"` (the SQLite schema name of the store's file) and layout
/// [`TenantLayout::Shared`].
///
/// Cheap to clone: clones share the connections (see the crate docs).
///
/// [`TenantLocation`]: orgsvc_domain::TenantLocation
/// [`TenantLayout::Shared`]: orgsvc_domain::TenantLayout::Shared
#[derive(Clone)]
pub struct SqliteStore {
    connections: Connections,
}

/// How a [`SqliteStore`] is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Read connections, each on a thread of its own, serving reads
    /// concurrently with each other and with the writer (setting
    /// `store.readers`). Default: one per CPU, at most 8.
    pub readers: NonZeroUsize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            readers: connection::default_readers(),
        }
    }
}

impl SqliteStore {
    /// [`SqliteStore::open_with`] the default [`SqliteOptions`].
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (creating the file and its parent directories if needed) the
    /// store at `path`, WAL mode, without migrating; a store of a release
    /// before migration `0010_shared_documents` (a table per organization)
    /// is first upgraded to one documents table, which takes time linear in
    /// organizations + documents and logs its progress.
    ///
    /// Errors: the file is in use by another process (its `<file>.lock` is
    /// held), cannot be opened, or its upgrade failed (the file is then
    /// unchanged).
    pub async fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        Ok(Self {
            connections: Connections::open(path, options.readers, layout_upgrade::run).await?,
        })
    }

    /// Applies pending migrations; returns the names applied now, including
    /// (on the first call) those the upgrade at open applied.
    pub async fn migrate(&self) -> Result<Vec<String>, MigrationError> {
        let mut applied = self.connections.take_applied_at_open();
        applied.extend(
            self.connections
                .write(|connection| migrations::apply(connection, MIGRATIONS))
                .await?,
        );
        Ok(applied)
    }

    /// Log-safe description, e.g. `sqlite file ./data/orgsvc.db`.
    pub fn describe(&self) -> String {
        format!("sqlite file {}", self.connections.path().display())
    }

    /// The connections, for the [`SessionStore`](orgsvc_domain::SessionStore)
    /// and [`AuditLog`](orgsvc_domain::AuditLog) parts (`sessions.rs`,
    /// `audit.rs`).
    pub(crate) fn connections(&self) -> &Connections {
        &self.connections
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.connections.path())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn add_admin(
        &self,
        organization: OrganizationId,
        admin: NewAdmin,
    ) -> Result<Admin, AddAdminError> {
        self.connections
            .write(move |connection| admin_roles::add(connection, organization, &admin))
            .await
    }

    async fn admins_of(&self, organization: OrganizationId) -> Result<Vec<Admin>, StoreError> {
        self.connections
            .read(move |connection| admins::of_organization(connection, organization))
            .await
    }

    async fn remove_admin(
        &self,
        organization: OrganizationId,
        admin: AdminId,
    ) -> Result<(), ChangeAdminError> {
        self.connections
            .write(move |connection| admin_roles::remove(connection, organization, admin))
            .await
    }

    async fn set_admin_role(
        &self,
        organization: OrganizationId,
        admin: AdminId,
        role: AdminRole,
    ) -> Result<Admin, ChangeAdminError> {
        self.connections
            .write(move |connection| admin_roles::set_role(connection, organization, admin, role))
            .await
    }

    async fn rehash_password(
        &self,
        admin: AdminId,
        current: &PasswordHash,
        rehashed: PasswordHash,
    ) -> Result<bool, StoreError> {
        let current = current.clone();
        self.connections
            .write(move |connection| admins::rehash(connection, admin, &current, &rehashed))
            .await
    }

    async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        self.connections
            .write(move |connection| organizations::create(connection, &new))
            .await
    }

    async fn organization_by_name(
        &self,
        name: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError> {
        lookups::organization_by_name(&self.connections, name).await
    }

    async fn organization_by_id(
        &self,
        id: OrganizationId,
    ) -> Result<Option<Organization>, StoreError> {
        lookups::organization_by_id(&self.connections, id).await
    }

    async fn rename_organization(
        &self,
        id: OrganizationId,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        let new_name = new_name.clone();
        self.connections
            .write(move |connection| organizations::rename(connection, id, None, &new_name))
            .await
    }

    async fn rename_organization_from(
        &self,
        id: OrganizationId,
        expected: &OrganizationName,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        let (expected, new_name) = (expected.canonical().to_owned(), new_name.clone());
        self.connections
            .write(move |connection| {
                organizations::rename(connection, id, Some(&expected), &new_name)
            })
            .await
    }

    async fn delete_organization(&self, id: OrganizationId) -> Result<(), DeleteOrganizationError> {
        self.connections
            .write(move |connection| organizations::delete(connection, id))
            .await
    }

    async fn list_organizations(
        &self,
        query: &OrganizationQuery,
    ) -> Result<OrganizationPage, StoreError> {
        let query = query.clone();
        self.connections
            .read(move |connection| organizations::list(connection, &query))
            .await
    }

    async fn change_organization_state(
        &self,
        id: OrganizationId,
        change: &StateChange,
    ) -> Result<Organization, ChangeStateError> {
        let change = change.clone();
        self.connections
            .write(move |connection| organizations::change_state(connection, id, &change))
            .await
    }

    async fn organization_usage(
        &self,
        id: OrganizationId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<OrganizationUsage>, orgsvc_domain::UsageError> {
        self.connections
            .read(move |connection| organizations::usage(connection, id, now))
            .await
            .map_err(orgsvc_domain::UsageError::from)
    }

    /// Not applicable: the embedded store has one layout.
    async fn move_tenant(
        &self,
        _id: OrganizationId,
        _layout: orgsvc_domain::TenantLayout,
    ) -> Result<orgsvc_domain::TenantMove, orgsvc_domain::MoveTenantError> {
        Err(orgsvc_domain::MoveTenantError::NotApplicable(
            ONE_LAYOUT.to_owned(),
        ))
    }

    async fn admin_by_id(&self, id: AdminId) -> Result<Option<Admin>, StoreError> {
        lookups::admin_by_id(&self.connections, id).await
    }

    async fn admin_credentials_by_email(
        &self,
        email: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError> {
        let email = email.clone();
        self.connections
            .read(move |connection| admins::credentials_by_email(connection, &email))
            .await
    }

    async fn update_admin(
        &self,
        id: AdminId,
        update: AdminUpdate,
    ) -> Result<Admin, UpdateAdminError> {
        self.connections
            .write(move |connection| admins::update(connection, id, &update))
            .await
    }

    async fn insert_document(
        &self,
        organization: OrganizationId,
        body: DocumentBody,
    ) -> Result<TenantDocument, DocumentError> {
        self.connections
            .write(move |connection| documents::insert(connection, organization, body))
            .await
    }

    async fn find_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
    ) -> Result<TenantDocument, DocumentError> {
        self.connections
            .read(move |connection| documents::find(connection, organization, id))
            .await
    }

    async fn list_documents(
        &self,
        organization: OrganizationId,
        query: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError> {
        self.connections
            .read(move |connection| documents::list(connection, organization, &query))
            .await
    }

    async fn replace_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        body: DocumentBody,
        expected_revision: Option<u64>,
    ) -> Result<TenantDocument, DocumentError> {
        self.connections
            .write(move |connection| {
                documents::replace(connection, organization, id, body, expected_revision)
            })
            .await
    }

    async fn delete_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        expected_revision: Option<u64>,
    ) -> Result<(), DocumentError> {
        self.connections
            .write(move |connection| {
                documents::delete(connection, organization, id, expected_revision)
            })
            .await
    }

    /// Every operation is one transaction: there is never anything to repair.
    async fn reconcile(&self, _stale_after: Duration) -> Result<ReconcileReport, StoreError> {
        Ok(ReconcileReport::default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.connections
            .read(|connection| {
                connection
                    .query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(|e| StoreError::new("pinging SQLite", e))
            })
            .await
    }
}
