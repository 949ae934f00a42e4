//! [`MongoStore`]: connection, collections and the [`TenantStore`] entry points.
//!
//! Each trait method forwards to the store's own method of the same name,
//! which lives in the file that explains how it stays correct:
//!
//! | methods | file |
//! |---|---|
//! | `create_organization`, `rename_organization`, `delete_organization`, `move_tenant` | `lifecycle/create.rs`, `lifecycle/rename.rs`, `lifecycle/delete.rs`, `lifecycle/tenant_move.rs` (leases: `lease.rs`; collection moves and the claiming copy: `collection_moves.rs`; the one scope of every document query: `TenantScope` in `tenant_documents.rs`) |
//! | `organization_by_name`, `organization_by_id` | here (`visible_organization`) |
//! | `admin_by_id`, `admin_credentials_by_email`, `update_admin`, `admins_of`, `rehash_password` | `admins.rs` (the lookups through `visible_admin`) |
//! | `add_admin` | `admin_add.rs` |
//! | `remove_admin`, `set_admin_role` | `admin_changes.rs` (`change_admin_role`) |
//! | `insert_document`, `find_document`, `list_documents`, `replace_document`, `delete_document` | `tenant_document_ops.rs` (stored shape: `tenant_documents.rs`) |
//! | `reconcile` | `reconcile.rs` (orphan collections: `orphans.rs`) |
//! | `save_refresh_token`, `use_refresh_token`, `revoke_family` | `refresh_tokens.rs` (trait impl: `sessions.rs`) |
//! | `begin_login_attempt`, `login_succeeded` | `login_throttle.rs` |
//! | audit log | `audit.rs`; shared rate limits: `rate_limits.rs` |
//! | `claim_due_messages`, `mark_sent`, `mark_failed`, `purge_sent_messages`, `issue_account_token`, `use_account_token`, `purge_account_tokens` | `outbox.rs` |
//! | `create_invitation`, `invitations_of`, `revoke_invitation`, `replace_invitation_token`, `accept_invitation`, `purge_invitations` | `invitations.rs` |
//!
//! Master records (organizations, admins, name claims) and their conversion
//! to domain values: `records.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use orgsvc_domain::{
    AddAdminError, Admin, AdminChange, AdminCredentials, AdminEmail, AdminId, AdminRole,
    AdminUpdate, ChangeAdminError, CreateOrganizationError, DeleteOrganizationError, DocumentBody,
    DocumentError, DocumentId, DocumentPage, DocumentQuery, NewAdmin, NewOrganization,
    Organization, OrganizationId, OrganizationName, PasswordHash, ReconcileReport,
    RenameOrganizationError, StoreError, TenantDocument, TenantLayout, TenantStore,
    UpdateAdminError,
};
use tokio::sync::OnceCell;

use crate::errors::store_error;
use crate::failpoints::{Failpoints, Step};
use crate::lease_timing::{Leases, DEFAULT_LEASE_TIMEOUT};
use crate::migrations::{self, MigrationError};
use crate::records::{
    AdminDoc, NameClaim, OrgDoc, OrgState, StoredLayout, ADMINS, ORGANIZATIONS, ORGANIZATION_NAMES,
};

/// How long an operation waits for a reachable server before failing with
/// an unavailable [`StoreError`] (503 `store_unavailable` to clients), unless
/// the connection string sets `serverSelectionTimeoutMS`. The driver's own
/// default is 30 s.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The MongoDB tenant store. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    description: String,
    failpoints: Failpoints,
    leases: Leases,
    /// Whether the deployment runs transactions, once asked.
    transactions: Arc<OnceCell<bool>>,
    /// When this store last swept orphan collections (see `orphans.rs`).
    orphan_sweep: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// The layout of organizations created from now on.
    tenancy: StoredLayout,
}

impl MongoStore {
    /// Connects (parses the URI, sets app name "orgsvc" and, unless the URI
    /// sets one, [`DEFAULT_SERVER_SELECTION_TIMEOUT`], validates `master_db`
    /// as a MongoDB database name) without running migrations. The driver
    /// opens connections lazily, so an unreachable server shows up on first
    /// use (e.g. [`TenantStore::ping`]).
    pub async fn connect(uri: &str, master_db: &str) -> Result<Self, StoreError> {
        validate_database_name(master_db)?;
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(|e| store_error("parsing the MongoDB connection string", e))?;
        options.app_name = Some("orgsvc".to_owned());
        // The driver waits 30 s for a server by default: a request would
        // hang that long before failing. A URI's `serverSelectionTimeoutMS`
        // still wins.
        options
            .server_selection_timeout
            .get_or_insert(DEFAULT_SERVER_SELECTION_TIMEOUT);
        let hosts: Vec<String> = options.hosts.iter().map(ToString::to_string).collect();
        let description = format!("mongodb://{}/{master_db}", hosts.join(","));
        let client = Client::with_options(options)
            .map_err(|e| store_error("configuring the MongoDB client", e))?;
        Ok(Self {
            db: client.database(master_db),
            client,
            description,
            failpoints: Failpoints::new(),
            leases: Leases::new(DEFAULT_LEASE_TIMEOUT),
            transactions: Arc::default(),
            orphan_sweep: Arc::default(),
            tenancy: StoredLayout::Collection,
        })
    }

    /// The same store creating organizations in `layout` (issue #16; the
    /// default is [`TenantLayout::Collection`], a collection each). Each
    /// organization's record keeps its own layout, so one deployment can
    /// hold organizations in both; `orgsvc tenants move` moves existing ones.
    #[must_use]
    pub fn with_tenancy(mut self, layout: TenantLayout) -> Self {
        self.tenancy = layout.into();
        self
    }

    /// The same store with another lease timeout (default
    /// [`DEFAULT_LEASE_TIMEOUT`]): a lifecycle operation that has not renewed
    /// its lease for this long may be taken over by another process (see
    /// `lease.rs`). Renewals happen every sixth of it; every instance of a
    /// deployment should use the same value. Zero is raised to 100 ms.
    #[must_use]
    pub fn with_lease_timeout(mut self, timeout: Duration) -> Self {
        self.leases = Leases::new(timeout.max(Duration::from_millis(100)));
        self
    }

    /// Applies pending migrations from `migrations/mongodb` (embedded in the
    /// binary) and returns the names of those applied now.
    pub async fn migrate(&self) -> Result<Vec<String>, MigrationError> {
        migrations::apply(&self.db).await
    }

    /// A log-safe description: hosts and master database, never credentials,
    /// e.g. `mongodb://db:27017/orgsvc_master`.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// The layout of organizations created from now on.
    pub(crate) fn tenancy(&self) -> StoredLayout {
        self.tenancy
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    pub(crate) fn organizations(&self) -> Collection<OrgDoc> {
        self.db.collection(ORGANIZATIONS)
    }

    pub(crate) fn admins(&self) -> Collection<AdminDoc> {
        self.db.collection(ADMINS)
    }

    pub(crate) fn name_claims(&self) -> Collection<NameClaim> {
        self.db.collection(ORGANIZATION_NAMES)
    }

    pub(crate) fn orphan_sweep_clock(&self) -> &std::sync::Mutex<Option<std::time::Instant>> {
        &self.orphan_sweep
    }

    pub(crate) fn leases(&self) -> &Leases {
        &self.leases
    }

    pub(crate) fn transactions(&self) -> &OnceCell<bool> {
        &self.transactions
    }

    /// Whether copies must use transactions (tests only).
    pub(crate) fn forces_transactions(&self) -> bool {
        self.failpoints.forces_transactions()
    }

    pub(crate) fn tenant(&self, collection: &str) -> Collection<Document> {
        self.db.collection(collection)
    }

    /// Stops here if a test armed a failpoint after `step`.
    pub(crate) fn failpoint(&self, step: Step) -> Result<(), StoreError> {
        self.failpoints.check(step)
    }

    /// Waits here while a test holds `step`, then stops if a test armed a
    /// failpoint after it.
    pub(crate) async fn checkpoint(&self, step: Step) -> Result<(), StoreError> {
        self.failpoints.hold(step).await;
        self.failpoints.check(step)
    }

    /// Whether renames must skip the native `renameCollection` (tests only).
    pub(crate) fn forces_copy(&self) -> bool {
        self.failpoints.forces_copy()
    }

    /// The visible (active or renaming) organization matching `filter`.
    async fn visible_organization(
        &self,
        mut filter: Document,
    ) -> Result<Option<Organization>, StoreError> {
        filter.insert("state", OrgState::visible_filter());
        self.organizations()
            .find_one(filter)
            .await
            .map_err(|e| store_error("reading an organization", e))?
            .map(|doc| doc.to_organization())
            .transpose()
    }
}

#[cfg(feature = "failpoints")]
impl MongoStore {
    /// Makes the next operation reaching `step` fail right after it, as if the
    /// process died there (one shot, shared by clones).
    pub fn fail_after(&self, step: Step) {
        self.failpoints.fail_after(step);
    }

    /// Holds the next operation reaching `step` right after it, until the
    /// returned handle resumes it (or is dropped). Only these steps can be
    /// held: the document steps, `CreateNameClaimed`, `CreateAdminInserted`,
    /// `RenameNameClaimed`, `RenameCopyBatch`, `RenameCollectionMoved`,
    /// `RenameRecordUpdated`, `RenameStragglersSwept` and the admin steps.
    pub fn pause_after(&self, step: Step) -> crate::failpoints::Paused {
        self.failpoints.pause_after(step)
    }

    /// Makes renames skip the native `renameCollection` and use the batched
    /// copy, as on servers that lack it.
    pub fn force_copy_fallback(&self) {
        self.failpoints.force_copy();
    }

    /// Makes copies run each batch in a transaction even where the server
    /// does not say it runs them (to exercise that path on any server).
    pub fn force_transactions(&self) {
        self.failpoints.force_transactions();
    }

    /// Stops (`true`) or restarts the lease renewals of this store's
    /// operations, as if the process were paused (`kill -STOP`) while its
    /// requests go on when resumed.
    pub fn freeze_lease_renewals(&self, frozen: bool) {
        self.leases.freeze(frozen);
    }
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("server", &self.description)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TenantStore for MongoStore {
    async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        self.create_organization(new).await
    }

    async fn organization_by_name(
        &self,
        name: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError> {
        self.visible_organization(doc! { "canonical": name.canonical() })
            .await
    }

    async fn organization_by_id(
        &self,
        id: OrganizationId,
    ) -> Result<Option<Organization>, StoreError> {
        self.visible_organization(doc! { "_id": id.to_string() })
            .await
    }

    async fn rename_organization(
        &self,
        id: OrganizationId,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.rename_organization(id, None, new_name).await
    }

    async fn list_organizations(
        &self,
        query: &orgsvc_domain::OrganizationQuery,
    ) -> Result<orgsvc_domain::OrganizationPage, StoreError> {
        self.list_organization_page(query).await
    }

    async fn change_organization_state(
        &self,
        id: OrganizationId,
        change: &orgsvc_domain::StateChange,
    ) -> Result<Organization, orgsvc_domain::ChangeStateError> {
        self.change_state(id, change).await
    }

    async fn organization_usage(
        &self,
        id: OrganizationId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<orgsvc_domain::OrganizationUsage>, orgsvc_domain::UsageError> {
        self.usage(id, now).await
    }

    async fn rename_organization_from(
        &self,
        id: OrganizationId,
        expected: &OrganizationName,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.rename_organization(id, Some(expected.canonical()), new_name)
            .await
    }

    async fn delete_organization(&self, id: OrganizationId) -> Result<(), DeleteOrganizationError> {
        self.delete_organization(id).await
    }

    async fn move_tenant(
        &self,
        id: OrganizationId,
        layout: TenantLayout,
    ) -> Result<orgsvc_domain::TenantMove, orgsvc_domain::MoveTenantError> {
        self.move_tenant(id, layout.into()).await
    }

    async fn admin_by_id(&self, id: AdminId) -> Result<Option<Admin>, StoreError> {
        self.visible_admin(doc! { "_id": id.to_string() })
            .await?
            .map(|doc| doc.to_admin())
            .transpose()
    }

    async fn admin_credentials_by_email(
        &self,
        email: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError> {
        self.visible_admin(doc! { "email": email.as_str() })
            .await?
            .map(|doc| doc.to_credentials())
            .transpose()
    }

    async fn update_admin(
        &self,
        id: AdminId,
        update: AdminUpdate,
    ) -> Result<Admin, UpdateAdminError> {
        self.update_admin(id, update).await
    }

    async fn add_admin(
        &self,
        organization: OrganizationId,
        admin: NewAdmin,
    ) -> Result<Admin, AddAdminError> {
        self.add_admin(organization, admin).await
    }

    async fn admins_of(&self, organization: OrganizationId) -> Result<Vec<Admin>, StoreError> {
        self.admins_of(organization).await
    }

    async fn remove_admin(
        &self,
        organization: OrganizationId,
        admin: AdminId,
    ) -> Result<(), ChangeAdminError> {
        self.change_admin_role(organization, admin, AdminChange::Remove)
            .await
            .map(drop)
    }

    async fn set_admin_role(
        &self,
        organization: OrganizationId,
        admin: AdminId,
        role: AdminRole,
    ) -> Result<Admin, ChangeAdminError> {
        self.change_admin_role(organization, admin, AdminChange::SetRole(role))
            .await?
            .ok_or_else(|| {
                StoreError::msg(format!("admin {admin} vanished while its role changed")).into()
            })
    }

    async fn rehash_password(
        &self,
        admin: AdminId,
        current: &PasswordHash,
        rehashed: PasswordHash,
    ) -> Result<bool, StoreError> {
        self.rehash_password(admin, current, rehashed).await
    }

    async fn insert_document(
        &self,
        organization: OrganizationId,
        body: DocumentBody,
    ) -> Result<TenantDocument, DocumentError> {
        self.insert_document(organization, body).await
    }

    async fn find_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
    ) -> Result<TenantDocument, DocumentError> {
        self.find_document(organization, id).await
    }

    async fn list_documents(
        &self,
        organization: OrganizationId,
        query: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError> {
        self.list_documents(organization, query).await
    }

    async fn replace_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        body: DocumentBody,
        expected_revision: Option<u64>,
    ) -> Result<TenantDocument, DocumentError> {
        self.replace_document(organization, id, body, expected_revision)
            .await
    }

    async fn delete_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        expected_revision: Option<u64>,
    ) -> Result<(), DocumentError> {
        self.delete_document(organization, id, expected_revision)
            .await
    }

    async fn reconcile(&self, stale_after: Duration) -> Result<ReconcileReport, StoreError> {
        self.reconcile(stale_after).await
    }

    fn begin_drain(&self, deadline: std::time::Instant) {
        self.leases.drain_at(deadline);
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(drop)
            .map_err(|e| store_error("pinging MongoDB", e))
    }
}

/// Checks MongoDB's rules for database names: 1 to 63 bytes, none of
/// `/\. "$*<>:|?` or NUL.
fn validate_database_name(name: &str) -> Result<(), StoreError> {
    const FORBIDDEN: &[char] = &[
        '/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0',
    ];
    if name.is_empty() || name.len() > 63 || name.contains(FORBIDDEN) {
        return Err(StoreError::msg(format!(
            "{name:?} is not a valid MongoDB database name (1 to 63 bytes, none of /\\. \"$*<>:|? or NUL)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_follow_mongodb_rules() {
        for good in ["orgsvc_master", "a", &"x".repeat(63)] {
            assert!(validate_database_name(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a.b", "a b", "a$b", "a/b", "a\0b", &"x".repeat(64)] {
            assert!(validate_database_name(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn description_and_debug_never_show_credentials() {
        let store = MongoStore::connect(
            "mongodb://user:s3cret@db.example:27017/?authSource=admin",
            "orgsvc_master",
        )
        .await
        .unwrap();
        assert_eq!(store.describe(), "mongodb://db.example:27017/orgsvc_master");
        let debug = format!("{store:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("user"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn connect_rejects_an_invalid_master_database_name() {
        let err = MongoStore::connect("mongodb://localhost:27017", "bad.name")
            .await
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("not a valid MongoDB database name"));
    }
}
