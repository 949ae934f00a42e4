//! [`TimedStore`]: the store, timing every call.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metrics::{counter, histogram, Histogram};
use orgsvc_domain::{
    AcceptInvitationError, AccountToken, AccountTokenPurpose, AccountTokenStore, AddAdminError,
    Admin, AdminCredentials, AdminEmail, AdminId, AdminRole, AdminUpdate, AuditEvent, AuditLog,
    AuditPage, AuditQuery, ChangeAdminError, CreateOperatorKeyError, CreateOrganizationError,
    DeleteOrganizationError, DocumentBody, DocumentError, DocumentId, DocumentPage, DocumentQuery,
    Invitation, InvitationError, InvitationId, InvitationPage, InvitationQuery, InvitationStore,
    LoginAttempt, LoginThrottle, NewAdmin, NewOrganization, OperatorKey, OperatorKeyId,
    OperatorKeyName, OperatorKeyStore, Organization, OrganizationId, OrganizationName,
    OutboxMessage, OutboxMessageId, OutboxStore, PasswordHash, ReconcileReport, RefreshToken,
    RefreshTokenHash, RefreshTokenUse, RenameOrganizationError, ReplaceKeySetError,
    SessionFamilyId, SessionStore, SigningKey, SigningKeyStore, StoreError, TenantDocument,
    TenantStore, TokenHash, UpdateAdminError, VersionedKeySet,
};

use super::{RECONCILE_REPAIRS, RECONCILE_RUNS, STORE_DURATION};

/// A [`TenantStore`] that delegates every call to the store it wraps and
/// records the call's duration in [`STORE_DURATION`] by operation (the
/// method's name), and reconciliation runs and repairs in
/// [`RECONCILE_RUNS`] and [`RECONCILE_REPAIRS`]. Behaviour is the wrapped
/// store's, unchanged.
#[derive(Clone)]
pub struct TimedStore {
    inner: Arc<dyn TenantStore>,
}

impl std::fmt::Debug for TimedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedStore").finish_non_exhaustive()
    }
}

impl TimedStore {
    /// Times the calls to `inner`.
    pub fn new(inner: Arc<dyn TenantStore>) -> Self {
        Self { inner }
    }
}

/// Awaits `$call`, recording its duration under `$operation`. Each call
/// site keeps its histogram's handle (the recorder is installed once,
/// before any `TimedStore` exists): no key building or registry lookup per
/// call.
macro_rules! timed {
    ($operation:literal, $call:expr) => {{
        static DURATION: OnceLock<Histogram> = OnceLock::new();
        let started = Instant::now();
        let result = $call.await;
        DURATION
            .get_or_init(|| histogram!(STORE_DURATION, "operation" => $operation))
            .record(started.elapsed());
        result
    }};
}

#[async_trait]
impl TenantStore for TimedStore {
    async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        timed!("create_organization", self.inner.create_organization(new))
    }

    async fn organization_by_name(
        &self,
        name: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError> {
        timed!(
            "organization_by_name",
            self.inner.organization_by_name(name)
        )
    }

    async fn organization_by_id(
        &self,
        id: OrganizationId,
    ) -> Result<Option<Organization>, StoreError> {
        timed!("organization_by_id", self.inner.organization_by_id(id))
    }

    async fn list_organizations(
        &self,
        query: &orgsvc_domain::OrganizationQuery,
    ) -> Result<orgsvc_domain::OrganizationPage, StoreError> {
        timed!("list_organizations", self.inner.list_organizations(query))
    }

    async fn change_organization_state(
        &self,
        id: OrganizationId,
        change: &orgsvc_domain::StateChange,
    ) -> Result<Organization, orgsvc_domain::ChangeStateError> {
        timed!(
            "change_organization_state",
            self.inner.change_organization_state(id, change)
        )
    }

    async fn organization_usage(
        &self,
        id: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<Option<orgsvc_domain::OrganizationUsage>, orgsvc_domain::UsageError> {
        timed!("organization_usage", self.inner.organization_usage(id, now))
    }

    async fn move_tenant(
        &self,
        id: OrganizationId,
        layout: orgsvc_domain::TenantLayout,
    ) -> Result<orgsvc_domain::TenantMove, orgsvc_domain::MoveTenantError> {
        timed!("move_tenant", self.inner.move_tenant(id, layout))
    }

    async fn rename_organization(
        &self,
        id: OrganizationId,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        timed!(
            "rename_organization",
            self.inner.rename_organization(id, new_name)
        )
    }

    async fn rename_organization_from(
        &self,
        id: OrganizationId,
        expected: &OrganizationName,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        timed!(
            "rename_organization",
            self.inner.rename_organization_from(id, expected, new_name)
        )
    }

    async fn delete_organization(&self, id: OrganizationId) -> Result<(), DeleteOrganizationError> {
        timed!("delete_organization", self.inner.delete_organization(id))
    }

    async fn admin_by_id(&self, id: AdminId) -> Result<Option<Admin>, StoreError> {
        timed!("admin_by_id", self.inner.admin_by_id(id))
    }

    async fn admin_credentials_by_email(
        &self,
        email: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError> {
        timed!(
            "admin_credentials_by_email",
            self.inner.admin_credentials_by_email(email)
        )
    }

    async fn update_admin(
        &self,
        id: AdminId,
        update: AdminUpdate,
    ) -> Result<Admin, UpdateAdminError> {
        timed!("update_admin", self.inner.update_admin(id, update))
    }

    async fn add_admin(
        &self,
        organization: OrganizationId,
        admin: NewAdmin,
    ) -> Result<Admin, AddAdminError> {
        timed!("add_admin", self.inner.add_admin(organization, admin))
    }

    async fn admins_of(&self, organization: OrganizationId) -> Result<Vec<Admin>, StoreError> {
        timed!("admins_of", self.inner.admins_of(organization))
    }

    async fn remove_admin(
        &self,
        organization: OrganizationId,
        admin: AdminId,
    ) -> Result<(), ChangeAdminError> {
        timed!("remove_admin", self.inner.remove_admin(organization, admin))
    }

    async fn set_admin_role(
        &self,
        organization: OrganizationId,
        admin: AdminId,
        role: AdminRole,
    ) -> Result<Admin, ChangeAdminError> {
        timed!(
            "set_admin_role",
            self.inner.set_admin_role(organization, admin, role)
        )
    }

    async fn rehash_password(
        &self,
        admin: AdminId,
        current: &PasswordHash,
        rehashed: PasswordHash,
    ) -> Result<bool, StoreError> {
        timed!(
            "rehash_password",
            self.inner.rehash_password(admin, current, rehashed)
        )
    }

    async fn insert_document(
        &self,
        organization: OrganizationId,
        body: DocumentBody,
    ) -> Result<TenantDocument, DocumentError> {
        timed!(
            "insert_document",
            self.inner.insert_document(organization, body)
        )
    }

    async fn find_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
    ) -> Result<TenantDocument, DocumentError> {
        timed!("find_document", self.inner.find_document(organization, id))
    }

    async fn list_documents(
        &self,
        organization: OrganizationId,
        query: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError> {
        timed!(
            "list_documents",
            self.inner.list_documents(organization, query)
        )
    }

    async fn replace_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        body: DocumentBody,
        expected_revision: Option<u64>,
    ) -> Result<TenantDocument, DocumentError> {
        timed!(
            "replace_document",
            self.inner
                .replace_document(organization, id, body, expected_revision)
        )
    }

    async fn delete_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        expected_revision: Option<u64>,
    ) -> Result<(), DocumentError> {
        timed!(
            "delete_document",
            self.inner
                .delete_document(organization, id, expected_revision)
        )
    }

    async fn reconcile(&self, lease_timeout: Duration) -> Result<ReconcileReport, StoreError> {
        let report = timed!("reconcile", self.inner.reconcile(lease_timeout));
        match &report {
            Ok(report) => {
                // Repairs first: a scrape that sees the run counted sees
                // its repairs too.
                counter!(RECONCILE_REPAIRS, "repair" => "completed")
                    .increment(report.completed.into());
                counter!(RECONCILE_REPAIRS, "repair" => "rolled_back")
                    .increment(report.rolled_back.into());
                counter!(RECONCILE_RUNS, "result" => "ok").increment(1);
            }
            Err(_) => counter!(RECONCILE_RUNS, "result" => "error").increment(1),
        }
        report
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed!("ping", self.inner.ping())
    }

    fn begin_drain(&self, deadline: std::time::Instant) {
        self.inner.begin_drain(deadline);
    }
}

#[async_trait]
impl SessionStore for TimedStore {
    async fn save_refresh_token(&self, token: RefreshToken) -> Result<(), StoreError> {
        timed!("save_refresh_token", self.inner.save_refresh_token(token))
    }

    async fn use_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError> {
        timed!("use_refresh_token", self.inner.use_refresh_token(hash, now))
    }

    async fn revoke_family(&self, family: SessionFamilyId) -> Result<(), StoreError> {
        timed!("revoke_family", self.inner.revoke_family(family))
    }

    async fn begin_login_attempt(
        &self,
        email: &AdminEmail,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        timed!(
            "begin_login_attempt",
            self.inner.begin_login_attempt(email, now, throttle)
        )
    }

    async fn login_succeeded(&self, email: &AdminEmail) -> Result<(), StoreError> {
        timed!("login_succeeded", self.inner.login_succeeded(email))
    }

    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        timed!("purge_sessions", self.inner.purge_sessions(now, idle_since))
    }
}

#[async_trait]
impl AuditLog for TimedStore {
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        timed!("record_audit_event", self.inner.record(event))
    }

    async fn audit_events(
        &self,
        organization: OrganizationId,
        query: AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        timed!("audit_events", self.inner.audit_events(organization, query))
    }

    async fn all_audit_events(
        &self,
        filter: &orgsvc_domain::AuditFilter,
    ) -> Result<AuditPage, StoreError> {
        timed!("all_audit_events", self.inner.all_audit_events(filter))
    }

    async fn purge_deleted_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        timed!(
            "purge_deleted_before",
            self.inner.purge_deleted_before(cutoff)
        )
    }
}

#[async_trait]
impl SigningKeyStore for TimedStore {
    async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError> {
        timed!("load_signing_keys", self.inner.load_signing_keys())
    }

    async fn replace_signing_keys(
        &self,
        expected_version: u64,
        keys: Vec<SigningKey>,
    ) -> Result<u64, ReplaceKeySetError> {
        timed!(
            "replace_signing_keys",
            self.inner.replace_signing_keys(expected_version, keys)
        )
    }
}

#[async_trait]
impl OutboxStore for TimedStore {
    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        timed!(
            "claim_due_messages",
            self.inner.claim_due_messages(now, claim_until, limit)
        )
    }

    async fn mark_sent(&self, id: OutboxMessageId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        timed!("mark_sent", self.inner.mark_sent(id, at))
    }

    async fn enqueue_message(&self, message: OutboxMessage) -> Result<(), StoreError> {
        timed!("enqueue_message", self.inner.enqueue_message(message))
    }

    async fn mark_failed(
        &self,
        id: OutboxMessageId,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        timed!("mark_failed", self.inner.mark_failed(id, next_attempt_at))
    }

    async fn purge_sent_messages(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        timed!(
            "purge_sent_messages",
            self.inner.purge_sent_messages(cutoff)
        )
    }
}

#[async_trait]
impl AccountTokenStore for TimedStore {
    async fn issue_account_token(
        &self,
        token: AccountToken,
        message: OutboxMessage,
    ) -> Result<(), StoreError> {
        timed!(
            "issue_account_token",
            self.inner.issue_account_token(token, message)
        )
    }

    async fn use_account_token(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountToken>, StoreError> {
        timed!(
            "use_account_token",
            self.inner.use_account_token(hash, purpose, now)
        )
    }

    async fn purge_account_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        timed!("purge_account_tokens", self.inner.purge_account_tokens(now))
    }

    async fn mark_email_verified(
        &self,
        admin: AdminId,
        email: &AdminEmail,
    ) -> Result<bool, StoreError> {
        timed!(
            "mark_email_verified",
            self.inner.mark_email_verified(admin, email)
        )
    }
}

#[async_trait]
impl InvitationStore for TimedStore {
    async fn create_invitation(
        &self,
        invitation: Invitation,
        token: TokenHash,
        message: OutboxMessage,
    ) -> Result<(), InvitationError> {
        timed!(
            "create_invitation",
            self.inner.create_invitation(invitation, token, message)
        )
    }

    async fn invitations_of(
        &self,
        organization: OrganizationId,
        query: InvitationQuery,
    ) -> Result<InvitationPage, StoreError> {
        timed!(
            "invitations_of",
            self.inner.invitations_of(organization, query)
        )
    }

    async fn invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, StoreError> {
        timed!("invitation", self.inner.invitation(organization, id))
    }

    async fn revoke_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError> {
        timed!(
            "revoke_invitation",
            self.inner.revoke_invitation(organization, id, now)
        )
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
        timed!(
            "replace_invitation_token",
            self.inner
                .replace_invitation_token(organization, id, token, message, expires_at, now)
        )
    }

    async fn accept_invitation(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
        password_hash: PasswordHash,
    ) -> Result<(Invitation, Admin), AcceptInvitationError> {
        timed!(
            "accept_invitation",
            self.inner.accept_invitation(token, now, password_hash)
        )
    }

    async fn purge_invitations(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        timed!("purge_invitations", self.inner.purge_invitations(cutoff))
    }
}

#[async_trait]
impl OperatorKeyStore for TimedStore {
    async fn create_operator_key(&self, key: OperatorKey) -> Result<(), CreateOperatorKeyError> {
        timed!("create_operator_key", self.inner.create_operator_key(key))
    }

    async fn operator_keys(&self) -> Result<Vec<OperatorKey>, StoreError> {
        timed!("operator_keys", self.inner.operator_keys())
    }

    async fn revoke_operator_key(
        &self,
        name: &OperatorKeyName,
        at: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        timed!(
            "revoke_operator_key",
            self.inner.revoke_operator_key(name, at)
        )
    }

    async fn operator_key_by_hash(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        timed!(
            "operator_key_by_hash",
            self.inner.operator_key_by_hash(hash, now)
        )
    }

    async fn record_operator_key_use(
        &self,
        id: OperatorKeyId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        timed!(
            "record_operator_key_use",
            self.inner.record_operator_key_use(id, at)
        )
    }
}
