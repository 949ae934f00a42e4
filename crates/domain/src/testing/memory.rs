//! [`InMemoryStore`]: the [`TenantStore`] port (with [`SessionStore`] and
//! [`AuditLog`]) kept in process memory, for tests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::clock::now_millis;
use crate::{
    check_revision, plan_admin_change, AcceptInvitationError, AccountToken, AccountTokenPurpose,
    AccountTokenStore, AddAdminError, Admin, AdminChange, AdminChangePlan, AdminCredentials,
    AdminEmail, AdminId, AdminRole, AdminStanding, AdminUpdate, AuditAction, AuditEvent,
    AuditEventId, AuditLog, AuditPage, AuditQuery, ChangeAdminError, CollectionName,
    CreateOperatorKeyError, CreateOrganizationError, DeleteOrganizationError, DocumentBody,
    DocumentError, DocumentId, DocumentPage, DocumentQuery, FieldFilter, FilterValue, Invitation,
    InvitationError, InvitationId, InvitationPage, InvitationQuery, InvitationStatus,
    InvitationStore, LoginAttempt, LoginThrottle, NewAdmin, NewOrganization, OperatorKey,
    OperatorKeyId, OperatorKeyName, OperatorKeyStore, Organization, OrganizationId,
    OrganizationName, OutboxMessage, OutboxMessageId, OutboxStore, PageCursor, PasswordHash,
    ReconcileReport, RefreshToken, RefreshTokenHash, RefreshTokenUse, RenameOrganizationError,
    ReplaceKeySetError, SessionFamilyId, SessionStore, SigningKey, SigningKeyStore, StoreError,
    TenantDocument, TenantLocation, TenantStore, ThrottleState, TokenHash, UpdateAdminError,
    VersionedKeySet,
};

/// The [`TenantLocation::database`] of every organization in an
/// [`InMemoryStore`].
pub const IN_MEMORY_DATABASE: &str = "memory";

/// A [`TenantStore`] (with its [`SessionStore`] and [`AuditLog`] parts) that
/// keeps everything in process memory. **Not a production store**: nothing
/// survives the process, and nothing is shared between instances.
///
/// It is for tests that need a store without infrastructure: unit tests of
/// use cases (the upcoming `orgsvc-app` crate) and API tests that do not test
/// storage. It follows every rule of the port and passes the whole contract
/// suite ([`tenant_store_contract_tests!`](crate::tenant_store_contract_tests)),
/// with the semantics of the embedded (SQLite) store: names unique by
/// canonical form, emails unique, each organization's documents in its own
/// collection (`org_<canonical name>`, moved by a rename), revisions and
/// cursor pagination, refresh-token families, login throttling, the audit
/// log newest first. The rules themselves are the domain's functions, as
/// the other stores call them: [`ThrottleState::count_attempt`],
/// [`plan_admin_change`], [`check_revision`], [`crate::NewOwner::as_admin`],
/// [`crate::clock`]. Every organization's [`TenantLocation::database`] is
/// [`IN_MEMORY_DATABASE`].
///
/// Every operation runs under one [`Mutex`], never held across an `.await`,
/// so each is atomic: there is never a half-done operation,
/// [`TenantStore::reconcile`] has nothing to repair and `Busy` is never
/// returned. To make operations fail or race, wrap it in
/// [`FaultyStore`](super::FaultyStore).
///
/// ```
/// # use std::sync::Arc;
/// # use orgsvc_domain::{TenantStore, testing::InMemoryStore};
/// let store: Arc<dyn TenantStore> = Arc::new(InMemoryStore::new());
/// ```
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The names of the tenant collections that exist, sorted (one per
    /// organization): lets a test check that a rename moved the collection
    /// and a deletion dropped it.
    pub fn collection_names(&self) -> Vec<CollectionName> {
        let mut names: Vec<_> = self.lock().collections.keys().cloned().collect();
        names.sort();
        names
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held (in a test) cannot leave a half
        // change behind: every operation checks before it changes anything.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryStore")
            .field("organizations", &state.organizations.len())
            .field("admins", &state.admins.len())
            .finish_non_exhaustive()
    }
}

/// Everything the store holds.
#[derive(Default)]
struct State {
    organizations: HashMap<OrganizationId, Organization>,
    /// Canonical name -> organization.
    names: HashMap<String, OrganizationId>,
    admins: HashMap<AdminId, StoredAdmin>,
    emails: HashMap<AdminEmail, AdminId>,
    collections: HashMap<CollectionName, Collection>,
    refresh_tokens: HashMap<RefreshTokenHash, StoredToken>,
    /// Revoked families and when they were first revoked.
    revoked_families: HashMap<SessionFamilyId, DateTime<Utc>>,
    throttles: HashMap<AdminEmail, StoredThrottle>,
    audit: BTreeMap<AuditEventId, AuditEvent>,
    signing_keys: VersionedKeySet,
    outbox: BTreeMap<OutboxMessageId, StoredMessage>,
    /// Account tokens and the id of the message that carried each.
    account_tokens: HashMap<TokenHash, (AccountToken, OutboxMessageId)>,
    /// Operator keys by name.
    operator_keys: BTreeMap<OperatorKeyName, OperatorKey>,
    invitations: BTreeMap<InvitationId, StoredInvitation>,
}

struct StoredInvitation {
    invitation: Invitation,
    /// The current token's hash.
    hash: TokenHash,
    /// The messages sent for it (the first, then one per resend).
    messages: Vec<OutboxMessageId>,
}

struct StoredMessage {
    message: OutboxMessage,
    claimed_until: Option<DateTime<Utc>>,
}

struct StoredAdmin {
    admin: Admin,
    password_hash: PasswordHash,
}

struct StoredToken {
    token: RefreshToken,
    used: bool,
}

struct StoredThrottle {
    state: ThrottleState,
    last_attempt_at: DateTime<Utc>,
}

/// One tenant collection: documents in listing order, `(created_at, id)`,
/// and where each one sits in it.
#[derive(Default)]
struct Collection {
    documents: BTreeMap<(DateTime<Utc>, DocumentId), TenantDocument>,
    created_at: HashMap<DocumentId, DateTime<Utc>>,
}

impl Collection {
    fn get(&self, id: DocumentId) -> Option<&TenantDocument> {
        let created_at = self.created_at.get(&id)?;
        self.documents.get(&(*created_at, id))
    }

    fn put(&mut self, document: TenantDocument) {
        self.created_at.insert(document.id, document.created_at);
        self.documents
            .insert((document.created_at, document.id), document);
    }

    fn remove(&mut self, id: DocumentId) {
        if let Some(created_at) = self.created_at.remove(&id) {
            self.documents.remove(&(created_at, id));
        }
    }
}

impl State {
    fn admin_of(&self, id: AdminId) -> Option<&StoredAdmin> {
        self.admins.get(&id)
    }

    /// The organization's admins, longest-standing first (creation time,
    /// then id).
    fn admins_of(&self, organization: OrganizationId) -> Vec<Admin> {
        let mut admins: Vec<Admin> = self
            .admins
            .values()
            .filter(|stored| stored.admin.organization_id == organization)
            .map(|stored| stored.admin.clone())
            .collect();
        admins.sort_by_key(|admin| (admin.created_at, admin.id));
        admins
    }

    fn insert_admin(
        &mut self,
        organization: OrganizationId,
        admin: &NewAdmin,
        now: DateTime<Utc>,
    ) -> Admin {
        let stored = Admin {
            id: admin.id,
            organization_id: organization,
            email: admin.email.clone(),
            role: admin.role,
            token_version: 0,
            email_verified: false,
            created_at: now,
            updated_at: now,
        };
        self.emails.insert(admin.email.clone(), admin.id);
        self.admins.insert(
            admin.id,
            StoredAdmin {
                admin: stored.clone(),
                password_hash: admin.password_hash.clone(),
            },
        );
        stored
    }

    /// Removes the invitations that `doomed` selects, with their unsent
    /// messages; how many went.
    fn remove_invitations(&mut self, doomed: impl Fn(&Invitation) -> bool) -> usize {
        let ids: Vec<InvitationId> = self
            .invitations
            .values()
            .filter(|stored| doomed(&stored.invitation))
            .map(|stored| stored.invitation.id)
            .collect();
        for id in &ids {
            if let Some(stored) = self.invitations.remove(id) {
                for message in stored.messages {
                    if self
                        .outbox
                        .get(&message)
                        .is_some_and(|m| m.message.sent_at.is_none())
                    {
                        self.outbox.remove(&message);
                    }
                }
            }
        }
        ids.len()
    }

    /// The organization's invitation `id` if it is pending at `now`.
    fn pending_invitation(
        &mut self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> Result<&mut StoredInvitation, InvitationError> {
        let stored = self
            .invitations
            .get_mut(&id)
            .filter(|stored| stored.invitation.organization_id == organization)
            .ok_or(InvitationError::NotFound)?;
        match stored.invitation.status_at(now) {
            InvitationStatus::Pending => Ok(stored),
            status => Err(InvitationError::NotPending(status)),
        }
    }

    fn queue(&mut self, message: OutboxMessage) {
        self.outbox.insert(
            message.id,
            StoredMessage {
                message,
                claimed_until: None,
            },
        );
    }

    fn remove_admin(&mut self, id: AdminId) {
        if let Some(stored) = self.admins.remove(&id) {
            self.emails.remove(&stored.admin.email);
        }
    }

    /// The organization's collection, for a document operation.
    fn collection_of(&self, organization: OrganizationId) -> Result<&Collection, DocumentError> {
        let name = self.collection_name_of(organization)?;
        self.collections
            .get(&name)
            .ok_or_else(|| missing_collection(&name).into())
    }

    fn collection_of_mut(
        &mut self,
        organization: OrganizationId,
    ) -> Result<&mut Collection, DocumentError> {
        let name = self.collection_name_of(organization)?;
        self.collections
            .get_mut(&name)
            .ok_or_else(|| missing_collection(&name).into())
    }

    fn collection_name_of(
        &self,
        organization: OrganizationId,
    ) -> Result<CollectionName, DocumentError> {
        self.organizations
            .get(&organization)
            .map(|org| org.location.collection.clone())
            .ok_or(DocumentError::OrganizationNotFound)
    }

    /// Plans an admin change with [`plan_admin_change`] and applies it:
    /// `apply` changes the admin, then the primary admin is handed over.
    fn change_admin(
        &mut self,
        organization: OrganizationId,
        admin: AdminId,
        change: AdminChange,
    ) -> Result<(), ChangeAdminError> {
        let primary = self
            .organizations
            .get(&organization)
            .map(|org| org.admin_id)
            .ok_or(ChangeAdminError::NotFound)?;
        let standings: Vec<AdminStanding> = self
            .admins_of(organization)
            .iter()
            .map(|admin| AdminStanding {
                id: admin.id,
                role: admin.role,
            })
            .collect();
        let AdminChangePlan::Apply { primary: next } =
            plan_admin_change(&standings, primary, admin, change)?
        else {
            return Ok(());
        };
        match change.new_role() {
            None => self.remove_admin(admin),
            Some(role) => {
                if let Some(stored) = self.admins.get_mut(&admin) {
                    stored.admin.role = role;
                }
            }
        }
        if let Some(org) = self.organizations.get_mut(&organization) {
            org.admin_id = next;
        }
        Ok(())
    }

    fn rename(
        &mut self,
        id: OrganizationId,
        expected: Option<&OrganizationName>,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        let current = self
            .organizations
            .get(&id)
            .cloned()
            .ok_or(RenameOrganizationError::NotFound)?;
        if expected.is_some_and(|expected| expected.canonical() != current.name.canonical()) {
            return Err(RenameOrganizationError::NameChanged);
        }
        let now = now_millis();
        let mut renamed = Organization {
            name: new_name.clone(),
            updated_at: now,
            ..current.clone()
        };
        if current.name.canonical() != new_name.canonical() {
            if self.names.contains_key(new_name.canonical()) {
                return Err(RenameOrganizationError::NameTaken);
            }
            let old = &current.location.collection;
            let collection = self
                .collections
                .remove(old)
                .ok_or_else(|| missing_collection(old))?;
            let new_collection = new_name.collection_name();
            self.collections.insert(new_collection.clone(), collection);
            self.names.remove(current.name.canonical());
            self.names.insert(new_name.canonical().to_owned(), id);
            renamed.location.collection = new_collection;
        }
        self.organizations.insert(id, renamed.clone());
        Ok(renamed)
    }
}

fn duplicate_id(what: &str) -> StoreError {
    StoreError::msg(format!("{what}: a record with this id exists"))
}

fn missing_collection(name: &CollectionName) -> StoreError {
    StoreError::msg(format!(
        "broken invariant: the tenant collection {name} is missing"
    ))
}

/// Whether `body` meets `filter`, with MongoDB's equality on a top-level
/// field (as the other stores): numbers compare numerically (`30` = `30.0`),
/// never with strings or booleans; `null` matches `null` or a missing field;
/// arrays and objects never match.
fn meets(body: &Map<String, Value>, filter: &FieldFilter) -> bool {
    let value = body.get(&filter.field);
    match (&filter.value, value) {
        (FilterValue::String(wanted), Some(Value::String(found))) => wanted == found,
        (FilterValue::Number(wanted), Some(Value::Number(found))) => {
            match (wanted.as_i64(), found.as_i64()) {
                (Some(wanted), Some(found)) => wanted == found,
                _ => wanted.as_f64().is_some() && wanted.as_f64() == found.as_f64(),
            }
        }
        (FilterValue::Bool(wanted), Some(Value::Bool(found))) => wanted == found,
        (FilterValue::Null, None | Some(Value::Null)) => true,
        _ => false,
    }
}

#[async_trait]
impl TenantStore for InMemoryStore {
    async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        let mut state = self.lock();
        if state.names.contains_key(new.name.canonical()) {
            return Err(CreateOrganizationError::NameTaken);
        }
        if state.emails.contains_key(&new.owner.email) {
            return Err(CreateOrganizationError::EmailTaken);
        }
        if state.organizations.contains_key(&new.id) || state.admins.contains_key(&new.owner.id) {
            // A primary key violation in the other stores: not a taken name.
            return Err(duplicate_id("creating an organization").into());
        }
        let now = now_millis();
        let collection = new.name.collection_name();
        let organization = Organization {
            id: new.id,
            name: new.name.clone(),
            location: TenantLocation {
                database: IN_MEMORY_DATABASE.to_owned(),
                collection: collection.clone(),
                layout: crate::TenantLayout::Collection,
            },
            admin_id: new.owner.id,
            created_at: now,
            updated_at: now,
            state: crate::OrganizationState::Active,
        };
        state.insert_admin(new.id, &new.owner.as_admin(), now);
        state.names.insert(new.name.canonical().to_owned(), new.id);
        state.organizations.insert(new.id, organization.clone());
        state.collections.insert(collection, Collection::default());
        Ok(organization)
    }

    async fn organization_by_name(
        &self,
        name: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError> {
        let state = self.lock();
        Ok(state
            .names
            .get(name.canonical())
            .and_then(|id| state.organizations.get(id))
            .cloned())
    }

    async fn organization_by_id(
        &self,
        id: OrganizationId,
    ) -> Result<Option<Organization>, StoreError> {
        Ok(self.lock().organizations.get(&id).cloned())
    }

    async fn rename_organization(
        &self,
        id: OrganizationId,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.lock().rename(id, None, new_name)
    }

    async fn rename_organization_from(
        &self,
        id: OrganizationId,
        expected: &OrganizationName,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.lock().rename(id, Some(expected), new_name)
    }

    async fn delete_organization(&self, id: OrganizationId) -> Result<(), DeleteOrganizationError> {
        let mut state = self.lock();
        let organization = state
            .organizations
            .remove(&id)
            .ok_or(DeleteOrganizationError::NotFound)?;
        state.names.remove(organization.name.canonical());
        let admins: Vec<AdminId> = state.admins_of(id).iter().map(|admin| admin.id).collect();
        for admin in admins {
            state.remove_admin(admin);
        }
        state.collections.remove(&organization.location.collection);
        state.remove_invitations(|invitation| invitation.organization_id == id);
        Ok(())
    }

    async fn list_organizations(
        &self,
        query: &crate::OrganizationQuery,
    ) -> Result<crate::OrganizationPage, StoreError> {
        let state = self.lock();
        let mut matching: Vec<Organization> = state
            .organizations
            .values()
            .filter(|organization| query.admits(organization))
            .cloned()
            .collect();
        matching.sort_by(|a, b| a.name.canonical().cmp(b.name.canonical()));
        matching.truncate(query.limit.get().saturating_add(1));
        Ok(query.page(matching))
    }

    async fn change_organization_state(
        &self,
        id: OrganizationId,
        change: &crate::StateChange,
    ) -> Result<Organization, crate::ChangeStateError> {
        let mut state = self.lock();
        let organization = state
            .organizations
            .get_mut(&id)
            .ok_or(crate::ChangeStateError::NotFound)?;
        if let Some(next) = change.apply(&organization.state) {
            organization.state = next;
        }
        Ok(organization.clone())
    }

    async fn move_tenant(
        &self,
        id: OrganizationId,
        layout: crate::TenantLayout,
    ) -> Result<crate::TenantMove, crate::MoveTenantError> {
        // Documents stay where they are (one map per organization): a move
        // only changes the layout the organization reports.
        let mut state = self.lock();
        let current = state
            .organizations
            .get(&id)
            .cloned()
            .ok_or(crate::MoveTenantError::NotFound)?;
        if current.location.layout == layout {
            return Ok(crate::TenantMove {
                organization: current,
                moved: false,
                documents: 0,
            });
        }
        let documents = state
            .collections
            .get(&current.location.collection)
            .map_or(0, |c| c.documents.len());
        let mut moved = current;
        moved.location.layout = layout;
        state.organizations.insert(id, moved.clone());
        Ok(crate::TenantMove {
            organization: moved,
            moved: true,
            documents: u64::try_from(documents).unwrap_or(u64::MAX),
        })
    }

    async fn organization_usage(
        &self,
        id: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::OrganizationUsage>, crate::UsageError> {
        let state = self.lock();
        let Some(organization) = state.organizations.get(&id) else {
            return Ok(None);
        };
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let collection = state.collections.get(&organization.location.collection);
        Ok(Some(crate::OrganizationUsage {
            admins: count(state.admins_of(id).len()),
            pending_invitations: count(
                state
                    .invitations
                    .values()
                    .filter(|stored| {
                        stored.invitation.organization_id == id
                            && stored.invitation.status_at(now) == InvitationStatus::Pending
                    })
                    .count(),
            ),
            documents: count(collection.map_or(0, |c| c.documents.len())),
            bytes: collection.map_or(0, |c| {
                c.documents
                    .values()
                    .map(|document| document.body.json_len())
                    .sum()
            }),
        }))
    }

    async fn admin_by_id(&self, id: AdminId) -> Result<Option<Admin>, StoreError> {
        Ok(self.lock().admin_of(id).map(|stored| stored.admin.clone()))
    }

    async fn admin_credentials_by_email(
        &self,
        email: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError> {
        let state = self.lock();
        Ok(state
            .emails
            .get(email)
            .and_then(|id| state.admin_of(*id))
            .map(|stored| AdminCredentials {
                admin: stored.admin.clone(),
                password_hash: stored.password_hash.clone(),
            }))
    }

    async fn update_admin(
        &self,
        id: AdminId,
        update: AdminUpdate,
    ) -> Result<Admin, UpdateAdminError> {
        let mut state = self.lock();
        let current = state
            .admin_of(id)
            .map(|stored| stored.admin.clone())
            .ok_or(UpdateAdminError::NotFound)?;
        if update.is_empty() {
            return Ok(current);
        }
        if let Some(email) = &update.email {
            if state.emails.get(email).is_some_and(|owner| *owner != id) {
                return Err(UpdateAdminError::EmailTaken);
            }
        }
        let token_version = if update.password_hash.is_some() {
            current
                .token_version
                .checked_add(1)
                .ok_or_else(|| StoreError::msg("token version overflow"))?
        } else {
            current.token_version
        };
        if let Some(email) = &update.email {
            state.emails.remove(&current.email);
            state.emails.insert(email.clone(), id);
        }
        let stored = state
            .admins
            .get_mut(&id)
            .ok_or(UpdateAdminError::NotFound)?;
        if let Some(email) = update.email {
            if email != stored.admin.email {
                stored.admin.email_verified = false;
            }
            stored.admin.email = email;
        }
        if let Some(hash) = update.password_hash {
            stored.password_hash = hash;
        }
        stored.admin.token_version = token_version;
        stored.admin.updated_at = now_millis();
        Ok(stored.admin.clone())
    }

    async fn add_admin(
        &self,
        organization: OrganizationId,
        admin: NewAdmin,
    ) -> Result<Admin, AddAdminError> {
        let mut state = self.lock();
        if !state.organizations.contains_key(&organization) {
            return Err(AddAdminError::OrganizationNotFound);
        }
        if state.emails.contains_key(&admin.email) {
            return Err(AddAdminError::EmailTaken);
        }
        if state.admins.contains_key(&admin.id) {
            return Err(duplicate_id("adding an admin").into());
        }
        Ok(state.insert_admin(organization, &admin, now_millis()))
    }

    async fn admins_of(&self, organization: OrganizationId) -> Result<Vec<Admin>, StoreError> {
        Ok(self.lock().admins_of(organization))
    }

    async fn remove_admin(
        &self,
        organization: OrganizationId,
        admin: AdminId,
    ) -> Result<(), ChangeAdminError> {
        self.lock()
            .change_admin(organization, admin, AdminChange::Remove)
    }

    async fn set_admin_role(
        &self,
        organization: OrganizationId,
        admin: AdminId,
        role: AdminRole,
    ) -> Result<Admin, ChangeAdminError> {
        let mut state = self.lock();
        state.change_admin(organization, admin, AdminChange::SetRole(role))?;
        state
            .admin_of(admin)
            .map(|stored| stored.admin.clone())
            .ok_or_else(|| StoreError::msg("an admin vanished while its role changed").into())
    }

    async fn rehash_password(
        &self,
        admin: AdminId,
        current: &PasswordHash,
        rehashed: PasswordHash,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.admins.get_mut(&admin) {
            Some(stored) if stored.password_hash == *current => {
                stored.password_hash = rehashed;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn insert_document(
        &self,
        organization: OrganizationId,
        body: DocumentBody,
    ) -> Result<TenantDocument, DocumentError> {
        let mut state = self.lock();
        let collection = state.collection_of_mut(organization)?;
        let now = now_millis();
        let document = TenantDocument {
            id: DocumentId::new(),
            body,
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        collection.put(document.clone());
        Ok(document)
    }

    async fn find_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
    ) -> Result<TenantDocument, DocumentError> {
        self.lock()
            .collection_of(organization)?
            .get(id)
            .cloned()
            .ok_or(DocumentError::NotFound)
    }

    async fn list_documents(
        &self,
        organization: OrganizationId,
        query: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError> {
        let state = self.lock();
        let collection = state.collection_of(organization)?;
        let start = match &query.after {
            Some(after) => Bound::Excluded((after.created_at, after.id)),
            None => Bound::Unbounded,
        };
        let limit = query.limit.get();
        let mut found: Vec<TenantDocument> = collection
            .documents
            .range((start, Bound::Unbounded))
            .map(|(_, document)| document)
            .filter(|document| {
                query
                    .filters
                    .iter()
                    .all(|filter| meets(document.body.as_map(), filter))
            })
            .take(limit.saturating_add(1))
            .cloned()
            .collect();
        let more = found.len() > limit;
        found.truncate(limit);
        let next = if more {
            found.last().map(PageCursor::after)
        } else {
            None
        };
        Ok(DocumentPage {
            documents: found,
            next,
        })
    }

    async fn replace_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        body: DocumentBody,
        expected_revision: Option<u64>,
    ) -> Result<TenantDocument, DocumentError> {
        let mut state = self.lock();
        let collection = state.collection_of_mut(organization)?;
        let current = collection.get(id).ok_or(DocumentError::NotFound)?;
        check_revision(expected_revision, current.revision)?;
        let revision = current
            .revision
            .checked_add(1)
            .ok_or_else(|| StoreError::msg("document revision overflow"))?;
        let replaced = TenantDocument {
            id,
            body,
            revision,
            created_at: current.created_at,
            updated_at: now_millis().max(current.updated_at),
        };
        collection.put(replaced.clone());
        Ok(replaced)
    }

    async fn delete_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        expected_revision: Option<u64>,
    ) -> Result<(), DocumentError> {
        let mut state = self.lock();
        let collection = state.collection_of_mut(organization)?;
        let current = collection.get(id).ok_or(DocumentError::NotFound)?;
        check_revision(expected_revision, current.revision)?;
        collection.remove(id);
        Ok(())
    }

    /// Every operation is atomic: there is never anything to repair.
    async fn reconcile(&self, _lease_timeout: Duration) -> Result<ReconcileReport, StoreError> {
        Ok(ReconcileReport::default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl SessionStore for InMemoryStore {
    async fn save_refresh_token(&self, token: RefreshToken) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.refresh_tokens.contains_key(&token.hash) {
            return Err(StoreError::msg(
                "saving a refresh token: a token with this hash exists",
            ));
        }
        state
            .refresh_tokens
            .insert(token.hash.clone(), StoredToken { token, used: false });
        Ok(())
    }

    async fn use_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError> {
        let mut state = self.lock();
        let revoked = |family| state.revoked_families.contains_key(&family);
        let Some(stored) = state.refresh_tokens.get(hash) else {
            return Ok(RefreshTokenUse::Invalid);
        };
        let token = stored.token.clone();
        if stored.used {
            return Ok(if revoked(token.family) {
                RefreshTokenUse::Ended(token)
            } else {
                RefreshTokenUse::Reused(token)
            });
        }
        if revoked(token.family) || now >= token.expires_at {
            return Ok(RefreshTokenUse::Invalid);
        }
        if let Some(stored) = state.refresh_tokens.get_mut(hash) {
            stored.used = true;
        }
        Ok(RefreshTokenUse::Fresh(token))
    }

    async fn revoke_family(&self, family: SessionFamilyId) -> Result<(), StoreError> {
        self.lock()
            .revoked_families
            .entry(family)
            .or_insert_with(now_millis);
        Ok(())
    }

    async fn begin_login_attempt(
        &self,
        email: &AdminEmail,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        let mut state = self.lock();
        let stored = state.throttles.get(email);
        let current = stored.map(|stored| stored.state).unwrap_or_default();
        let last_attempt_at = stored.map_or(now, |stored| stored.last_attempt_at.max(now));
        let (answer, next) = current.count_attempt(now, throttle);
        if let Some(next) = next {
            state.throttles.insert(
                email.clone(),
                StoredThrottle {
                    state: next,
                    last_attempt_at,
                },
            );
        }
        Ok(answer)
    }

    async fn login_succeeded(&self, email: &AdminEmail) -> Result<(), StoreError> {
        self.lock().throttles.remove(email);
        Ok(())
    }

    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let before = state.refresh_tokens.len() + state.revoked_families.len();
        state
            .refresh_tokens
            .retain(|_, stored| stored.token.expires_at >= now);
        let families: std::collections::HashSet<SessionFamilyId> = state
            .refresh_tokens
            .values()
            .map(|stored| stored.token.family)
            .collect();
        state
            .revoked_families
            .retain(|family, revoked_at| *revoked_at > now || families.contains(family));
        let after = state.refresh_tokens.len() + state.revoked_families.len();
        let throttles_before = state.throttles.len();
        state.throttles.retain(|_, stored| {
            stored.last_attempt_at >= idle_since
                || stored.state.locked_until.is_some_and(|until| until > now)
        });
        let purged = (before - after) + (throttles_before - state.throttles.len());
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl AuditLog for InMemoryStore {
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.audit.contains_key(&event.id) {
            return Err(StoreError::msg(
                "recording an audit event: an event with this id exists",
            ));
        }
        state.audit.insert(event.id, event);
        Ok(())
    }

    async fn audit_events(
        &self,
        organization: OrganizationId,
        query: AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        let state = self.lock();
        let (events, next) = newest_first(&state.audit, query.before, query.limit, |event| {
            (event.organization_id == organization).then(|| event.clone())
        });
        Ok(AuditPage { events, next })
    }

    async fn all_audit_events(&self, filter: &crate::AuditFilter) -> Result<AuditPage, StoreError> {
        let state = self.lock();
        let (events, next) = newest_first(&state.audit, filter.before, filter.limit, |event| {
            let wanted = filter
                .organization
                .is_none_or(|id| event.organization_id == id)
                && filter.action.is_none_or(|action| event.action == action);
            wanted.then(|| event.clone())
        });
        Ok(AuditPage { events, next })
    }

    async fn purge_deleted_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let gone: std::collections::HashSet<OrganizationId> = state
            .audit
            .values()
            .filter(|event| {
                event.action == AuditAction::OrganizationDeleted
                    && event.at < cutoff
                    && !state.organizations.contains_key(&event.organization_id)
            })
            .map(|event| event.organization_id)
            .collect();
        let before = state.audit.len();
        state
            .audit
            .retain(|_, event| !gone.contains(&event.organization_id));
        Ok(u64::try_from(before - state.audit.len()).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl SigningKeyStore for InMemoryStore {
    async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError> {
        Ok(self.lock().signing_keys.clone())
    }

    async fn replace_signing_keys(
        &self,
        expected_version: u64,
        keys: Vec<SigningKey>,
    ) -> Result<u64, ReplaceKeySetError> {
        let mut state = self.lock();
        if state.signing_keys.version != expected_version {
            return Err(ReplaceKeySetError::VersionConflict);
        }
        let version = expected_version + 1;
        state.signing_keys = VersionedKeySet { version, keys };
        Ok(version)
    }
}

#[async_trait]
impl OutboxStore for InMemoryStore {
    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut state = self.lock();
        let mut due: Vec<&mut StoredMessage> = state
            .outbox
            .values_mut()
            .filter(|m| m.message.is_due(now) && m.claimed_until.is_none_or(|until| until <= now))
            .collect();
        due.sort_by_key(|m| (m.message.next_attempt_at, m.message.id));
        Ok(due
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|m| {
                m.claimed_until = Some(claim_until);
                m.message.clone()
            })
            .collect())
    }

    async fn enqueue_message(&self, message: OutboxMessage) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.outbox.contains_key(&message.id) {
            return Err(StoreError::msg("storing a message: its id is taken"));
        }
        state.outbox.insert(
            message.id,
            StoredMessage {
                message,
                claimed_until: None,
            },
        );
        Ok(())
    }

    async fn mark_sent(&self, id: OutboxMessageId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.outbox.get_mut(&id) {
            Some(stored) if stored.message.sent_at.is_none() => {
                stored.message.sent_at = Some(at);
                stored.claimed_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn mark_failed(
        &self,
        id: OutboxMessageId,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.outbox.get_mut(&id) {
            Some(stored) if stored.message.sent_at.is_none() => {
                stored.message.attempts = stored.message.attempts.saturating_add(1);
                stored.message.next_attempt_at = next_attempt_at;
                stored.claimed_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn purge_sent_messages(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let State {
            outbox,
            account_tokens,
            ..
        } = &mut *state;
        let before = outbox.len();
        outbox.retain(|id, stored| {
            let sent_before = stored.message.sent_at.is_some_and(|at| at < cutoff);
            let token_lives = account_tokens
                .values()
                .any(|(token, message)| message == id && token.expires_at > cutoff);
            !sent_before || token_lives
        });
        account_tokens.retain(|_, (_, message)| outbox.contains_key(message));
        Ok(u64::try_from(before - outbox.len()).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl AccountTokenStore for InMemoryStore {
    async fn issue_account_token(
        &self,
        token: AccountToken,
        message: OutboxMessage,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.account_tokens.contains_key(&token.hash) || state.outbox.contains_key(&message.id)
        {
            return Err(StoreError::msg(
                "issuing an account token: the hash is taken",
            ));
        }
        state
            .account_tokens
            .insert(token.hash.clone(), (token, message.id));
        state.outbox.insert(
            message.id,
            StoredMessage {
                message,
                claimed_until: None,
            },
        );
        Ok(())
    }

    async fn use_account_token(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountToken>, StoreError> {
        let mut state = self.lock();
        match state.account_tokens.get_mut(hash) {
            Some((token, _)) if token.is_usable(purpose, now) => {
                token.used_at = Some(now);
                Ok(Some(token.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn purge_account_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let expired: Vec<(TokenHash, OutboxMessageId)> = state
            .account_tokens
            .iter()
            .filter(|(_, (token, _))| token.expires_at <= now)
            .map(|(hash, (_, message))| (hash.clone(), *message))
            .collect();
        for (hash, message) in &expired {
            state.account_tokens.remove(hash);
            state.outbox.remove(message);
        }
        Ok(u64::try_from(expired.len()).unwrap_or(u64::MAX))
    }

    async fn mark_email_verified(
        &self,
        admin: AdminId,
        email: &AdminEmail,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.admins.get_mut(&admin) {
            Some(stored) if &stored.admin.email == email => {
                stored.admin.email_verified = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl InvitationStore for InMemoryStore {
    async fn create_invitation(
        &self,
        invitation: Invitation,
        token: TokenHash,
        message: OutboxMessage,
    ) -> Result<(), InvitationError> {
        let mut state = self.lock();
        if !state
            .organizations
            .contains_key(&invitation.organization_id)
        {
            return Err(InvitationError::NotFound);
        }
        if state.emails.contains_key(&invitation.email) {
            return Err(InvitationError::EmailTaken);
        }
        let hash_taken = state
            .invitations
            .values()
            .any(|stored| stored.hash == token);
        if hash_taken
            || state.invitations.contains_key(&invitation.id)
            || state.outbox.contains_key(&message.id)
        {
            return Err(duplicate_id("creating an invitation").into());
        }
        let messages = vec![message.id];
        state.queue(message);
        state.invitations.insert(
            invitation.id,
            StoredInvitation {
                invitation,
                hash: token,
                messages,
            },
        );
        Ok(())
    }

    async fn invitations_of(
        &self,
        organization: OrganizationId,
        query: InvitationQuery,
    ) -> Result<InvitationPage, StoreError> {
        let state = self.lock();
        let (invitations, next) =
            newest_first(&state.invitations, query.before, query.limit, |stored| {
                (stored.invitation.organization_id == organization)
                    .then(|| stored.invitation.clone())
            });
        Ok(InvitationPage { invitations, next })
    }

    async fn invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, StoreError> {
        Ok(self
            .lock()
            .invitations
            .get(&id)
            .map(|stored| stored.invitation.clone())
            .filter(|invitation| invitation.organization_id == organization))
    }

    async fn revoke_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError> {
        let mut state = self.lock();
        let stored = state.pending_invitation(organization, id, now)?;
        stored.invitation.revoked_at = Some(now);
        Ok(stored.invitation.clone())
    }

    async fn replace_invitation_token(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        token: TokenHash,
        message: OutboxMessage,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError> {
        let mut state = self.lock();
        let hash_taken = state
            .invitations
            .values()
            .any(|stored| stored.hash == token);
        if hash_taken || state.outbox.contains_key(&message.id) {
            return Err(duplicate_id("resending an invitation").into());
        }
        let message_id = message.id;
        let stored = state.pending_invitation(organization, id, now)?;
        stored.hash = token;
        stored.messages.push(message_id);
        stored.invitation.expires_at = expires_at;
        let invitation = stored.invitation.clone();
        state.queue(message);
        Ok(invitation)
    }

    async fn accept_invitation(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
        password_hash: PasswordHash,
    ) -> Result<(Invitation, Admin), AcceptInvitationError> {
        let mut state = self.lock();
        let invitation = state
            .invitations
            .values()
            .find(|stored| &stored.hash == token)
            .map(|stored| stored.invitation.clone())
            .filter(|invitation| invitation.status_at(now) == InvitationStatus::Pending)
            .ok_or(AcceptInvitationError::InvalidToken)?;
        if !state
            .organizations
            .contains_key(&invitation.organization_id)
        {
            return Err(AcceptInvitationError::OrganizationNotFound);
        }
        if state.emails.contains_key(&invitation.email) {
            return Err(AcceptInvitationError::EmailTaken);
        }
        let new = NewAdmin::new(invitation.email.clone(), invitation.role, password_hash);
        let mut admin = state.insert_admin(invitation.organization_id, &new, now_millis());
        admin.email_verified = true;
        if let Some(stored) = state.admins.get_mut(&admin.id) {
            stored.admin.email_verified = true;
        }
        let stored = state
            .invitations
            .get_mut(&invitation.id)
            .ok_or_else(|| StoreError::msg("accepting an invitation: it vanished"))?;
        stored.invitation.accepted = Some((now, admin.id));
        Ok((stored.invitation.clone(), admin))
    }

    async fn purge_invitations(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let purged = self
            .lock()
            .remove_invitations(|invitation| invitation.expires_at < cutoff);
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl OperatorKeyStore for InMemoryStore {
    async fn create_operator_key(&self, key: OperatorKey) -> Result<(), CreateOperatorKeyError> {
        let mut state = self.lock();
        if state.operator_keys.contains_key(&key.name) {
            return Err(CreateOperatorKeyError::NameTaken);
        }
        if state
            .operator_keys
            .values()
            .any(|stored| stored.hash == key.hash || stored.id == key.id)
        {
            return Err(
                StoreError::msg("creating an operator key: its hash or id is taken").into(),
            );
        }
        state.operator_keys.insert(key.name.clone(), key);
        Ok(())
    }

    async fn operator_keys(&self) -> Result<Vec<OperatorKey>, StoreError> {
        let mut keys: Vec<OperatorKey> = self.lock().operator_keys.values().cloned().collect();
        keys.sort_by_key(|key| key.id);
        Ok(keys)
    }

    async fn revoke_operator_key(
        &self,
        name: &OperatorKeyName,
        at: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        let mut state = self.lock();
        Ok(state.operator_keys.get_mut(name).map(|key| {
            key.revoked_at.get_or_insert(at);
            key.clone()
        }))
    }

    async fn operator_key_by_hash(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        Ok(self
            .lock()
            .operator_keys
            .values()
            .find(|key| &key.hash == hash && key.is_usable(now))
            .cloned())
    }

    async fn record_operator_key_use(
        &self,
        id: OperatorKeyId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(key) = state.operator_keys.values_mut().find(|key| key.id == id) {
            if key.last_used_at.is_none_or(|last| last < at) {
                key.last_used_at = Some(at);
            }
        }
        Ok(())
    }
}

/// One newest-first page of `map` (keyed by time-ordered ids): the values
/// `pick` keeps among those older than `before`, at most `limit`, and the
/// `next` cursor (the last id) when more may follow.
fn newest_first<K: Ord + Copy, V, T>(
    map: &BTreeMap<K, V>,
    before: Option<K>,
    limit: crate::PageSize,
    pick: impl Fn(&V) -> Option<T>,
) -> (Vec<T>, Option<K>) {
    let end = before.map_or(Bound::Unbounded, Bound::Excluded);
    let limit = limit.get();
    let mut page: Vec<(K, T)> = map
        .range((Bound::Unbounded, end))
        .rev()
        .filter_map(|(id, value)| pick(value).map(|picked| (*id, picked)))
        .take(limit.saturating_add(1))
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next = if more {
        page.last().map(|(id, _)| *id)
    } else {
        None
    };
    (page.into_iter().map(|(_, picked)| picked).collect(), next)
}
