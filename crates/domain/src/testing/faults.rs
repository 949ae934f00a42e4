//! [`FaultyStore`]: a decorator around any store that makes chosen
//! operations fail, runs an action before them, and records every call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::InMemoryStore;
use crate::{
    AcceptInvitationError, AccountToken, AccountTokenPurpose, AccountTokenStore, AddAdminError,
    Admin, AdminCredentials, AdminEmail, AdminId, AdminRole, AdminUpdate, AuditEvent, AuditLog,
    AuditPage, AuditQuery, ChangeAdminError, ChangeStateError, CreateOperatorKeyError,
    CreateOrganizationError, DeleteOrganizationError, DocumentBody, DocumentError, DocumentId,
    DocumentPage, DocumentQuery, Invitation, InvitationError, InvitationId, InvitationPage,
    InvitationQuery, InvitationStore, LoginAttempt, LoginThrottle, MoveTenantError, NewAdmin,
    NewOrganization, OperatorKey, OperatorKeyId, OperatorKeyName, OperatorKeyStore, Organization,
    OrganizationId, OrganizationName, OutboxMessage, OutboxMessageId, OutboxStore, PasswordHash,
    ReconcileReport, RefreshToken, RefreshTokenHash, RefreshTokenUse, RenameOrganizationError,
    ReplaceKeySetError, SessionFamilyId, SessionStore, SigningKey, SigningKeyStore, StoreError,
    TenantDocument, TenantStore, TokenHash, UpdateAdminError, UsageError, VersionedKeySet,
};

macro_rules! operations {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// One method of [`TenantStore`] or one of its supertraits:
        /// what a [`FaultyStore`] fails, hooks and records.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )+
        }

        impl Operation {
            /// Every operation.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant),+];

            /// The trait method's name, e.g. `rename_organization`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$variant => $name,)+
                }
            }
        }
    };
}

operations! {
    CreateOrganization => "create_organization",
    OrganizationByName => "organization_by_name",
    OrganizationById => "organization_by_id",
    RenameOrganization => "rename_organization",
    RenameOrganizationFrom => "rename_organization_from",
    DeleteOrganization => "delete_organization",
    ListOrganizations => "list_organizations",
    ChangeOrganizationState => "change_organization_state",
    OrganizationUsage => "organization_usage",
    MoveTenant => "move_tenant",
    AdminById => "admin_by_id",
    AdminCredentialsByEmail => "admin_credentials_by_email",
    UpdateAdmin => "update_admin",
    AddAdmin => "add_admin",
    AdminsOf => "admins_of",
    RemoveAdmin => "remove_admin",
    SetAdminRole => "set_admin_role",
    RehashPassword => "rehash_password",
    InsertDocument => "insert_document",
    FindDocument => "find_document",
    ListDocuments => "list_documents",
    ReplaceDocument => "replace_document",
    DeleteDocument => "delete_document",
    Reconcile => "reconcile",
    Ping => "ping",
    BeginDrain => "begin_drain",
    SaveRefreshToken => "save_refresh_token",
    UseRefreshToken => "use_refresh_token",
    RevokeFamily => "revoke_family",
    BeginLoginAttempt => "begin_login_attempt",
    LoginSucceeded => "login_succeeded",
    PurgeSessions => "purge_sessions",
    Record => "record",
    AuditEvents => "audit_events",
    AllAuditEvents => "all_audit_events",
    PurgeDeletedBefore => "purge_deleted_before",
    LoadSigningKeys => "load_signing_keys",
    ReplaceSigningKeys => "replace_signing_keys",
    EnqueueMessage => "enqueue_message",
    ClaimDueMessages => "claim_due_messages",
    MarkSent => "mark_sent",
    MarkFailed => "mark_failed",
    PurgeSentMessages => "purge_sent_messages",
    IssueAccountToken => "issue_account_token",
    UseAccountToken => "use_account_token",
    PurgeAccountTokens => "purge_account_tokens",
    MarkEmailVerified => "mark_email_verified",
    CreateInvitation => "create_invitation",
    InvitationsOf => "invitations_of",
    FindInvitation => "invitation",
    RevokeInvitation => "revoke_invitation",
    ReplaceInvitationToken => "replace_invitation_token",
    AcceptInvitation => "accept_invitation",
    PurgeInvitations => "purge_invitations",
    CreateOperatorKey => "create_operator_key",
    OperatorKeys => "operator_keys",
    RevokeOperatorKey => "revoke_operator_key",
    OperatorKeyByHash => "operator_key_by_hash",
    RecordOperatorKeyUse => "record_operator_key_use",
}

impl Operation {
    /// The operation whose trait method is named `name`
    /// (e.g. `"update_admin"`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|op| op.as_str() == name)
    }

    /// Whether the operation can be made to fail with `failure`: every one
    /// but `begin_drain` (which returns nothing) with a store error, and
    /// those whose error type has it with a domain error.
    pub fn can_fail_with(self, failure: &Failure) -> bool {
        use Operation as O;
        match self {
            O::BeginDrain => false,
            O::CreateOrganization => CreateOrganizationError::inject(failure).is_some(),
            O::RenameOrganization | O::RenameOrganizationFrom => {
                RenameOrganizationError::inject(failure).is_some()
            }
            O::DeleteOrganization => DeleteOrganizationError::inject(failure).is_some(),
            O::MoveTenant => crate::MoveTenantError::inject(failure).is_some(),
            O::OrganizationUsage => crate::UsageError::inject(failure).is_some(),
            O::ChangeOrganizationState => crate::ChangeStateError::inject(failure).is_some(),
            O::UpdateAdmin => UpdateAdminError::inject(failure).is_some(),
            O::AddAdmin => AddAdminError::inject(failure).is_some(),
            O::RemoveAdmin | O::SetAdminRole => ChangeAdminError::inject(failure).is_some(),
            O::ReplaceSigningKeys => ReplaceKeySetError::inject(failure).is_some(),
            O::CreateInvitation | O::RevokeInvitation | O::ReplaceInvitationToken => {
                InvitationError::inject(failure).is_some()
            }
            O::AcceptInvitation => AcceptInvitationError::inject(failure).is_some(),
            O::CreateOperatorKey => CreateOperatorKeyError::inject(failure).is_some(),
            O::InsertDocument
            | O::FindDocument
            | O::ListDocuments
            | O::ReplaceDocument
            | O::DeleteDocument => DocumentError::inject(failure).is_some(),
            _ => StoreError::inject(failure).is_some(),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error an injected failure answers with. Domain errors apply to the
/// operations whose error type has them (see [`Operation::can_fail_with`]).
#[derive(Clone)]
pub enum Failure {
    /// A [`StoreError`], made afresh for each failing call.
    Store(Arc<dyn Fn() -> StoreError + Send + Sync>),
    /// `NameTaken` (create, rename, `create_operator_key`).
    NameTaken,
    /// `EmailTaken` (create, `update_admin`, `add_admin`, invitations and
    /// their acceptance).
    EmailTaken,
    /// `NotFound` (rename, delete, `move_tenant`, `update_admin`, admin changes, documents,
    /// invitations).
    NotFound,
    /// `OrganizationNotFound` (`add_admin`, documents,
    /// `accept_invitation`).
    OrganizationNotFound,
    /// `Busy` (create, rename, delete, `move_tenant`, documents).
    Busy,
    /// `VersionConflict` (`replace_signing_keys`).
    VersionConflict,
    /// `RenameOrganizationError::NameChanged` (renames).
    NameChanged,
    /// `ChangeAdminError::LastOwner` (`remove_admin`, `set_admin_role`).
    LastOwner,
    /// `DocumentError::RevisionMismatch` (documents).
    RevisionMismatch {
        /// The revision reported as current.
        current: u64,
    },
}

impl Failure {
    /// A store error made by `make` (called once per failing call).
    pub fn store(make: impl Fn() -> StoreError + Send + Sync + 'static) -> Self {
        Self::Store(Arc::new(make))
    }

    /// A store error with this context ([`StoreError::msg`]).
    pub fn store_msg(context: &str) -> Self {
        let context = context.to_owned();
        Self::store(move || StoreError::msg(context.clone()))
    }

    /// A store that did not answer ([`StoreError::unavailable`]).
    pub fn unavailable(context: &str) -> Self {
        let context = context.to_owned();
        Self::store(move || {
            StoreError::unavailable(context.clone(), std::io::Error::other("injected failure"))
        })
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(make) => write!(f, "Store({})", make()),
            Self::NameTaken => f.write_str("NameTaken"),
            Self::EmailTaken => f.write_str("EmailTaken"),
            Self::NotFound => f.write_str("NotFound"),
            Self::OrganizationNotFound => f.write_str("OrganizationNotFound"),
            Self::Busy => f.write_str("Busy"),
            Self::VersionConflict => f.write_str("VersionConflict"),
            Self::NameChanged => f.write_str("NameChanged"),
            Self::LastOwner => f.write_str("LastOwner"),
            Self::RevisionMismatch { current } => write!(f, "RevisionMismatch({current})"),
        }
    }
}

/// An operation's error type, as a [`Failure`] makes it.
trait Inject: Sized + From<StoreError> {
    /// The error for `failure`; `None` when this type has no such case.
    fn inject(failure: &Failure) -> Option<Self>;
}

impl Inject for StoreError {
    fn inject(failure: &Failure) -> Option<Self> {
        match failure {
            Failure::Store(make) => Some(make()),
            _ => None,
        }
    }
}

macro_rules! inject {
    ($error:ident { $($failure:pat => $made:expr),* $(,)? }) => {
        impl Inject for $error {
            fn inject(failure: &Failure) -> Option<Self> {
                match failure {
                    Failure::Store(make) => Some(Self::Store(make())),
                    $($failure => Some($made),)*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    };
}

inject!(CreateOrganizationError {
    Failure::NameTaken => Self::NameTaken,
    Failure::EmailTaken => Self::EmailTaken,
    Failure::Busy => Self::Busy,
});
inject!(RenameOrganizationError {
    Failure::NotFound => Self::NotFound,
    Failure::NameTaken => Self::NameTaken,
    Failure::Busy => Self::Busy,
    Failure::NameChanged => Self::NameChanged,
});
inject!(DeleteOrganizationError {
    Failure::NotFound => Self::NotFound,
    Failure::Busy => Self::Busy,
});
inject!(MoveTenantError {
    Failure::NotFound => Self::NotFound,
    Failure::Busy => Self::Busy,
});
inject!(UsageError {
    Failure::Busy => Self::Busy,
});
inject!(ChangeStateError {
    Failure::NotFound => Self::NotFound,
});
inject!(UpdateAdminError {
    Failure::NotFound => Self::NotFound,
    Failure::EmailTaken => Self::EmailTaken,
});
inject!(AddAdminError {
    Failure::OrganizationNotFound => Self::OrganizationNotFound,
    Failure::EmailTaken => Self::EmailTaken,
});
inject!(ReplaceKeySetError {
    Failure::VersionConflict => Self::VersionConflict,
});
inject!(CreateOperatorKeyError {
    Failure::NameTaken => Self::NameTaken,
});
inject!(ChangeAdminError {
    Failure::NotFound => Self::NotFound,
    Failure::LastOwner => Self::LastOwner,
});
inject!(InvitationError {
    Failure::NotFound => Self::NotFound,
    Failure::EmailTaken => Self::EmailTaken,
});
inject!(AcceptInvitationError {
    Failure::OrganizationNotFound => Self::OrganizationNotFound,
    Failure::EmailTaken => Self::EmailTaken,
});
inject!(DocumentError {
    Failure::OrganizationNotFound => Self::OrganizationNotFound,
    Failure::NotFound => Self::NotFound,
    Failure::RevisionMismatch { current } => Self::RevisionMismatch { current: *current },
    Failure::Busy => Self::Busy,
});

/// How many calls a fault or a hook applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    /// The next call only.
    Once,
    /// The next `n` calls.
    N(u32),
    /// Every call from now on.
    Always,
}

impl Times {
    fn remaining(self) -> Option<u32> {
        match self {
            Self::Once => Some(1),
            Self::N(n) => Some(n),
            Self::Always => None,
        }
    }
}

/// What a hook runs: an async action given the decorated (inner) store.
type Action =
    Arc<dyn Fn(Arc<dyn TenantStore>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Rule<T> {
    operation: Operation,
    /// `None`: always.
    remaining: Option<u32>,
    what: T,
}

/// Takes the first rule for `operation` that still applies, counting the
/// use, and forgets the rules used up.
fn take<T: Clone>(rules: &mut Vec<Rule<T>>, operation: Operation) -> Option<T> {
    let rule = rules
        .iter_mut()
        .find(|rule| rule.operation == operation && rule.remaining != Some(0))?;
    if let Some(left) = rule.remaining.as_mut() {
        *left -= 1;
    }
    let what = rule.what.clone();
    rules.retain(|rule| rule.remaining != Some(0));
    Some(what)
}

#[derive(Default)]
struct Rules {
    faults: Vec<Rule<Failure>>,
    hooks: Vec<Rule<Action>>,
    calls: Vec<Operation>,
    drains: Vec<Instant>,
    reconcile_report: Option<ReconcileReport>,
}

/// A decorator around any store (`Arc<dyn TenantStore>`) for tests of code
/// that uses a store: it forwards every call to the inner store, except
/// that a test can
/// - make chosen operations fail ([`FaultyStore::fail`]) with a
///   [`StoreError`] or, where the operation's error type has it, a domain
///   error such as `RenameOrganizationError::NameChanged`, once, `n` times
///   or always;
/// - run an async action right before an operation ([`FaultyStore::before`]),
///   to stage a race deterministically (another client's write right before
///   ours), or to make it hang;
/// - see which operations were called ([`FaultyStore::calls`]), and the
///   deadlines given to `begin_drain` ([`FaultyStore::drains`]).
///
/// A call is recorded first, then its hooks run, then it fails if a fault
/// applies, else the inner store answers. Rules for one operation apply in
/// the order they were added.
///
/// ```
/// # use std::sync::Arc;
/// # use orgsvc_domain::testing::{Failure, FaultyStore, Operation, Times};
/// let store = Arc::new(FaultyStore::in_memory());
/// store.fail(Operation::RenameOrganizationFrom, Times::Once, Failure::NameChanged);
/// store.fail(Operation::Ping, Times::Always, Failure::unavailable("down"));
/// ```
pub struct FaultyStore {
    inner: Arc<dyn TenantStore>,
    rules: Mutex<Rules>,
}

impl FaultyStore {
    /// Decorates `inner`; until told otherwise, it only forwards (and
    /// records).
    pub fn new(inner: Arc<dyn TenantStore>) -> Self {
        Self {
            inner,
            rules: Mutex::default(),
        }
    }

    /// Decorates a fresh [`InMemoryStore`].
    pub fn in_memory() -> Self {
        Self::new(Arc::new(InMemoryStore::new()))
    }

    /// The decorated store (calls to it are neither failed nor recorded).
    pub fn inner(&self) -> Arc<dyn TenantStore> {
        self.inner.clone()
    }

    /// Makes `operation` fail with `failure` for the next call(s) (`times`).
    ///
    /// # Panics
    /// When the operation cannot fail that way (see
    /// [`Operation::can_fail_with`]): a mistake in the test.
    pub fn fail(&self, operation: Operation, times: Times, failure: Failure) -> &Self {
        assert!(
            operation.can_fail_with(&failure),
            "{operation} cannot fail with {failure:?}"
        );
        self.rules().faults.push(Rule {
            operation,
            remaining: times.remaining(),
            what: failure,
        });
        self
    }

    /// Makes every operation that can fail with a store error (all but
    /// `begin_drain`) fail with `failure`, each for its next call(s)
    /// (`times`): a broken store.
    ///
    /// # Panics
    /// When `failure` is not a [`Failure::Store`].
    pub fn fail_every(&self, times: Times, failure: Failure) -> &Self {
        for &operation in Operation::ALL {
            if operation != Operation::BeginDrain {
                self.fail(operation, times, failure.clone());
            }
        }
        self
    }

    /// Forgets the faults (not the hooks) still pending for `operation`.
    pub fn heal(&self, operation: Operation) -> &Self {
        self.rules()
            .faults
            .retain(|rule| rule.operation != operation);
        self
    }

    /// Runs `action` (given the inner store) right before the next call(s)
    /// (`times`) of `operation` goes on; the call waits for it. An action
    /// that never completes makes the operation hang.
    pub fn before<F, Fut>(&self, operation: Operation, times: Times, action: F) -> &Self
    where
        F: Fn(Arc<dyn TenantStore>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let action: Action = Arc::new(move |store| Box::pin(action(store)));
        self.rules().hooks.push(Rule {
            operation,
            remaining: times.remaining(),
            what: action,
        });
        self
    }

    /// Makes `reconcile` answer `report` (a store that repaired something)
    /// instead of asking the inner store, unless a fault applies.
    pub fn reconcile_reports(&self, report: ReconcileReport) -> &Self {
        self.rules().reconcile_report = Some(report);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Operation> {
        self.rules().calls.clone()
    }

    /// How many times `operation` was called so far.
    pub fn calls_to(&self, operation: Operation) -> usize {
        self.rules()
            .calls
            .iter()
            .filter(|&&call| call == operation)
            .count()
    }

    /// The deadlines `begin_drain` was given, in order.
    pub fn drains(&self) -> Vec<Instant> {
        self.rules().drains.clone()
    }

    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the call, runs its hooks, and answers its fault if one
    /// applies (as the operation's error type, by `?`).
    async fn enter(&self, operation: Operation) -> Result<(), Injected> {
        let hook = {
            let mut rules = self.rules();
            rules.calls.push(operation);
            take(&mut rules.hooks, operation)
        };
        if let Some(action) = hook {
            action(self.inner.clone()).await;
        }
        let fault = take(&mut self.rules().faults, operation);
        match fault {
            None => Ok(()),
            Some(failure) => Err(Injected { operation, failure }),
        }
    }
}

/// A fault that applies to a call, turned into the operation's error type
/// by `?`.
struct Injected {
    operation: Operation,
    failure: Failure,
}

impl Injected {
    fn into_error<E: Inject>(self) -> E {
        E::inject(&self.failure).unwrap_or_else(|| {
            // `fail` refuses such rules; kept total all the same.
            StoreError::msg(format!(
                "{} cannot fail with {:?}",
                self.operation, self.failure
            ))
            .into()
        })
    }
}

macro_rules! from_injected {
    ($($error:ty),+) => {
        $(
            impl From<Injected> for $error {
                fn from(injected: Injected) -> Self {
                    injected.into_error()
                }
            }
        )+
    };
}

from_injected!(
    StoreError,
    CreateOrganizationError,
    RenameOrganizationError,
    DeleteOrganizationError,
    UpdateAdminError,
    AddAdminError,
    ChangeAdminError,
    DocumentError,
    ReplaceKeySetError,
    InvitationError,
    AcceptInvitationError,
    ChangeStateError,
    MoveTenantError,
    UsageError,
    CreateOperatorKeyError
);

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = self.rules();
        f.debug_struct("FaultyStore")
            .field("faults", &rules.faults.len())
            .field("hooks", &rules.hooks.len())
            .field("calls", &rules.calls.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TenantStore for FaultyStore {
    async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        self.enter(Operation::CreateOrganization).await?;
        self.inner.create_organization(new).await
    }

    async fn organization_by_name(
        &self,
        name: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError> {
        self.enter(Operation::OrganizationByName).await?;
        self.inner.organization_by_name(name).await
    }

    async fn organization_by_id(
        &self,
        id: OrganizationId,
    ) -> Result<Option<Organization>, StoreError> {
        self.enter(Operation::OrganizationById).await?;
        self.inner.organization_by_id(id).await
    }

    async fn list_organizations(
        &self,
        query: &crate::OrganizationQuery,
    ) -> Result<crate::OrganizationPage, StoreError> {
        self.enter(Operation::ListOrganizations).await?;
        self.inner.list_organizations(query).await
    }

    async fn change_organization_state(
        &self,
        id: OrganizationId,
        change: &crate::StateChange,
    ) -> Result<Organization, crate::ChangeStateError> {
        self.enter(Operation::ChangeOrganizationState).await?;
        self.inner.change_organization_state(id, change).await
    }

    async fn organization_usage(
        &self,
        id: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::OrganizationUsage>, UsageError> {
        self.enter(Operation::OrganizationUsage).await?;
        self.inner.organization_usage(id, now).await
    }

    async fn move_tenant(
        &self,
        id: OrganizationId,
        layout: crate::TenantLayout,
    ) -> Result<crate::TenantMove, crate::MoveTenantError> {
        self.enter(Operation::MoveTenant).await?;
        self.inner.move_tenant(id, layout).await
    }

    async fn rename_organization(
        &self,
        id: OrganizationId,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.enter(Operation::RenameOrganization).await?;
        self.inner.rename_organization(id, new_name).await
    }

    async fn rename_organization_from(
        &self,
        id: OrganizationId,
        expected: &OrganizationName,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.enter(Operation::RenameOrganizationFrom).await?;
        self.inner
            .rename_organization_from(id, expected, new_name)
            .await
    }

    async fn delete_organization(&self, id: OrganizationId) -> Result<(), DeleteOrganizationError> {
        self.enter(Operation::DeleteOrganization).await?;
        self.inner.delete_organization(id).await
    }

    async fn admin_by_id(&self, id: AdminId) -> Result<Option<Admin>, StoreError> {
        self.enter(Operation::AdminById).await?;
        self.inner.admin_by_id(id).await
    }

    async fn admin_credentials_by_email(
        &self,
        email: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError> {
        self.enter(Operation::AdminCredentialsByEmail).await?;
        self.inner.admin_credentials_by_email(email).await
    }

    async fn update_admin(
        &self,
        id: AdminId,
        update: AdminUpdate,
    ) -> Result<Admin, UpdateAdminError> {
        self.enter(Operation::UpdateAdmin).await?;
        self.inner.update_admin(id, update).await
    }

    async fn add_admin(
        &self,
        organization: OrganizationId,
        admin: NewAdmin,
    ) -> Result<Admin, AddAdminError> {
        self.enter(Operation::AddAdmin).await?;
        self.inner.add_admin(organization, admin).await
    }

    async fn admins_of(&self, organization: OrganizationId) -> Result<Vec<Admin>, StoreError> {
        self.enter(Operation::AdminsOf).await?;
        self.inner.admins_of(organization).await
    }

    async fn remove_admin(
        &self,
        organization: OrganizationId,
        admin: AdminId,
    ) -> Result<(), ChangeAdminError> {
        self.enter(Operation::RemoveAdmin).await?;
        self.inner.remove_admin(organization, admin).await
    }

    async fn set_admin_role(
        &self,
        organization: OrganizationId,
        admin: AdminId,
        role: AdminRole,
    ) -> Result<Admin, ChangeAdminError> {
        self.enter(Operation::SetAdminRole).await?;
        self.inner.set_admin_role(organization, admin, role).await
    }

    async fn rehash_password(
        &self,
        admin: AdminId,
        current: &PasswordHash,
        rehashed: PasswordHash,
    ) -> Result<bool, StoreError> {
        self.enter(Operation::RehashPassword).await?;
        self.inner.rehash_password(admin, current, rehashed).await
    }

    async fn insert_document(
        &self,
        organization: OrganizationId,
        body: DocumentBody,
    ) -> Result<TenantDocument, DocumentError> {
        self.enter(Operation::InsertDocument).await?;
        self.inner.insert_document(organization, body).await
    }

    async fn find_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
    ) -> Result<TenantDocument, DocumentError> {
        self.enter(Operation::FindDocument).await?;
        self.inner.find_document(organization, id).await
    }

    async fn list_documents(
        &self,
        organization: OrganizationId,
        query: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError> {
        self.enter(Operation::ListDocuments).await?;
        self.inner.list_documents(organization, query).await
    }

    async fn replace_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        body: DocumentBody,
        expected_revision: Option<u64>,
    ) -> Result<TenantDocument, DocumentError> {
        self.enter(Operation::ReplaceDocument).await?;
        self.inner
            .replace_document(organization, id, body, expected_revision)
            .await
    }

    async fn delete_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        expected_revision: Option<u64>,
    ) -> Result<(), DocumentError> {
        self.enter(Operation::DeleteDocument).await?;
        self.inner
            .delete_document(organization, id, expected_revision)
            .await
    }

    async fn reconcile(&self, lease_timeout: Duration) -> Result<ReconcileReport, StoreError> {
        self.enter(Operation::Reconcile).await?;
        let report = self.rules().reconcile_report;
        match report {
            Some(report) => Ok(report),
            None => self.inner.reconcile(lease_timeout).await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.enter(Operation::Ping).await?;
        self.inner.ping().await
    }

    fn begin_drain(&self, deadline: Instant) {
        {
            let mut rules = self.rules();
            rules.calls.push(Operation::BeginDrain);
            rules.drains.push(deadline);
        }
        self.inner.begin_drain(deadline);
    }
}

#[async_trait]
impl SessionStore for FaultyStore {
    async fn save_refresh_token(&self, token: RefreshToken) -> Result<(), StoreError> {
        self.enter(Operation::SaveRefreshToken).await?;
        self.inner.save_refresh_token(token).await
    }

    async fn use_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError> {
        self.enter(Operation::UseRefreshToken).await?;
        self.inner.use_refresh_token(hash, now).await
    }

    async fn revoke_family(&self, family: SessionFamilyId) -> Result<(), StoreError> {
        self.enter(Operation::RevokeFamily).await?;
        self.inner.revoke_family(family).await
    }

    async fn begin_login_attempt(
        &self,
        email: &AdminEmail,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        self.enter(Operation::BeginLoginAttempt).await?;
        self.inner.begin_login_attempt(email, now, throttle).await
    }

    async fn login_succeeded(&self, email: &AdminEmail) -> Result<(), StoreError> {
        self.enter(Operation::LoginSucceeded).await?;
        self.inner.login_succeeded(email).await
    }

    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.enter(Operation::PurgeSessions).await?;
        self.inner.purge_sessions(now, idle_since).await
    }
}

#[async_trait]
impl AuditLog for FaultyStore {
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.enter(Operation::Record).await?;
        self.inner.record(event).await
    }

    async fn audit_events(
        &self,
        organization: OrganizationId,
        query: AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        self.enter(Operation::AuditEvents).await?;
        self.inner.audit_events(organization, query).await
    }

    async fn all_audit_events(&self, filter: &crate::AuditFilter) -> Result<AuditPage, StoreError> {
        self.enter(Operation::AllAuditEvents).await?;
        self.inner.all_audit_events(filter).await
    }

    async fn purge_deleted_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.enter(Operation::PurgeDeletedBefore).await?;
        self.inner.purge_deleted_before(cutoff).await
    }
}

#[async_trait]
impl SigningKeyStore for FaultyStore {
    async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError> {
        self.enter(Operation::LoadSigningKeys).await?;
        self.inner.load_signing_keys().await
    }

    async fn replace_signing_keys(
        &self,
        expected_version: u64,
        keys: Vec<SigningKey>,
    ) -> Result<u64, ReplaceKeySetError> {
        self.enter(Operation::ReplaceSigningKeys).await?;
        self.inner
            .replace_signing_keys(expected_version, keys)
            .await
    }
}

#[async_trait]
impl OutboxStore for FaultyStore {
    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.enter(Operation::ClaimDueMessages).await?;
        self.inner.claim_due_messages(now, claim_until, limit).await
    }

    async fn enqueue_message(&self, message: OutboxMessage) -> Result<(), StoreError> {
        self.enter(Operation::EnqueueMessage).await?;
        self.inner.enqueue_message(message).await
    }

    async fn mark_sent(&self, id: OutboxMessageId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.enter(Operation::MarkSent).await?;
        self.inner.mark_sent(id, at).await
    }

    async fn mark_failed(
        &self,
        id: OutboxMessageId,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.enter(Operation::MarkFailed).await?;
        self.inner.mark_failed(id, next_attempt_at).await
    }

    async fn purge_sent_messages(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.enter(Operation::PurgeSentMessages).await?;
        self.inner.purge_sent_messages(cutoff).await
    }
}

#[async_trait]
impl AccountTokenStore for FaultyStore {
    async fn issue_account_token(
        &self,
        token: AccountToken,
        message: OutboxMessage,
    ) -> Result<(), StoreError> {
        self.enter(Operation::IssueAccountToken).await?;
        self.inner.issue_account_token(token, message).await
    }

    async fn use_account_token(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountToken>, StoreError> {
        self.enter(Operation::UseAccountToken).await?;
        self.inner.use_account_token(hash, purpose, now).await
    }

    async fn purge_account_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.enter(Operation::PurgeAccountTokens).await?;
        self.inner.purge_account_tokens(now).await
    }

    async fn mark_email_verified(
        &self,
        admin: AdminId,
        email: &AdminEmail,
    ) -> Result<bool, StoreError> {
        self.enter(Operation::MarkEmailVerified).await?;
        self.inner.mark_email_verified(admin, email).await
    }
}

#[async_trait]
impl InvitationStore for FaultyStore {
    async fn create_invitation(
        &self,
        invitation: Invitation,
        token: TokenHash,
        message: OutboxMessage,
    ) -> Result<(), InvitationError> {
        self.enter(Operation::CreateInvitation).await?;
        self.inner
            .create_invitation(invitation, token, message)
            .await
    }

    async fn invitations_of(
        &self,
        organization: OrganizationId,
        query: InvitationQuery,
    ) -> Result<InvitationPage, StoreError> {
        self.enter(Operation::InvitationsOf).await?;
        self.inner.invitations_of(organization, query).await
    }

    async fn invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, StoreError> {
        self.enter(Operation::FindInvitation).await?;
        self.inner.invitation(organization, id).await
    }

    async fn revoke_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError> {
        self.enter(Operation::RevokeInvitation).await?;
        self.inner.revoke_invitation(organization, id, now).await
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
        self.enter(Operation::ReplaceInvitationToken).await?;
        self.inner
            .replace_invitation_token(organization, id, token, message, expires_at, now)
            .await
    }

    async fn accept_invitation(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
        password_hash: PasswordHash,
    ) -> Result<(Invitation, Admin), AcceptInvitationError> {
        self.enter(Operation::AcceptInvitation).await?;
        self.inner
            .accept_invitation(token, now, password_hash)
            .await
    }

    async fn purge_invitations(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.enter(Operation::PurgeInvitations).await?;
        self.inner.purge_invitations(cutoff).await
    }
}

#[async_trait]
impl OperatorKeyStore for FaultyStore {
    async fn create_operator_key(&self, key: OperatorKey) -> Result<(), CreateOperatorKeyError> {
        self.enter(Operation::CreateOperatorKey).await?;
        self.inner.create_operator_key(key).await
    }

    async fn operator_keys(&self) -> Result<Vec<OperatorKey>, StoreError> {
        self.enter(Operation::OperatorKeys).await?;
        self.inner.operator_keys().await
    }

    async fn revoke_operator_key(
        &self,
        name: &OperatorKeyName,
        at: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        self.enter(Operation::RevokeOperatorKey).await?;
        self.inner.revoke_operator_key(name, at).await
    }

    async fn operator_key_by_hash(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        self.enter(Operation::OperatorKeyByHash).await?;
        self.inner.operator_key_by_hash(hash, now).await
    }

    async fn record_operator_key_use(
        &self,
        id: OperatorKeyId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.enter(Operation::RecordOperatorKeyUse).await?;
        self.inner.record_operator_key_use(id, at).await
    }
}
