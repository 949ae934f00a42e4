//! The audit log: who changed what, when, from where.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::documents::PageSize;
use crate::errors::StoreError;
use crate::ids::{AdminId, AuditEventId, OrganizationId};
use crate::operator_keys::OperatorKeyName;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// An organization was registered.
    OrganizationCreated,
    /// An organization was renamed.
    OrganizationRenamed,
    /// An organization was deleted.
    OrganizationDeleted,
    /// An admin was added to an organization.
    AdminAdded,
    /// An admin was removed from an organization.
    AdminRemoved,
    /// An admin's role changed.
    AdminRoleChanged,
    /// An admin's email or password changed.
    AdminCredentialsChanged,
    /// A login succeeded.
    LoginSucceeded,
    /// A login failed (wrong password).
    LoginFailed,
    /// Failed logins locked an account.
    LoginLocked,
    /// A used refresh token was presented again; its family was revoked.
    RefreshTokenReuseDetected,
    /// An owner invited an email (target: the invitation id).
    InvitationCreated,
    /// An invitee accepted (actor: the new admin; target: the invitation id).
    InvitationAccepted,
    /// An owner revoked an invitation (target: the invitation id).
    InvitationRevoked,
    /// An owner sent an invitation again with a new token (target: the
    /// invitation id).
    InvitationResent,
    /// A password-reset link was sent to an admin.
    PasswordResetRequested,
    /// An admin set a new password with a reset link.
    PasswordResetCompleted,
    /// An admin verified its email with a verification link.
    EmailVerified,
    /// An operator suspended the organization (target: its name).
    OrganizationSuspended,
    /// An operator resumed the organization (target: its name).
    OrganizationResumed,
}

impl AuditAction {
    /// Every action, for parsing and documentation.
    pub const ALL: [Self; 20] = [
        Self::OrganizationCreated,
        Self::OrganizationRenamed,
        Self::OrganizationDeleted,
        Self::AdminAdded,
        Self::AdminRemoved,
        Self::AdminRoleChanged,
        Self::AdminCredentialsChanged,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginLocked,
        Self::RefreshTokenReuseDetected,
        Self::InvitationCreated,
        Self::InvitationAccepted,
        Self::InvitationRevoked,
        Self::InvitationResent,
        Self::PasswordResetRequested,
        Self::PasswordResetCompleted,
        Self::EmailVerified,
        Self::OrganizationSuspended,
        Self::OrganizationResumed,
    ];

    /// The stable name, e.g. `organization.renamed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrganizationCreated => "organization.created",
            Self::OrganizationRenamed => "organization.renamed",
            Self::OrganizationDeleted => "organization.deleted",
            Self::AdminAdded => "admin.added",
            Self::AdminRemoved => "admin.removed",
            Self::AdminRoleChanged => "admin.role_changed",
            Self::AdminCredentialsChanged => "admin.credentials_changed",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::LoginLocked => "login.locked",
            Self::RefreshTokenReuseDetected => "refresh_token.reuse_detected",
            Self::InvitationCreated => "invitation.created",
            Self::InvitationAccepted => "invitation.accepted",
            Self::InvitationRevoked => "invitation.revoked",
            Self::InvitationResent => "invitation.resent",
            Self::PasswordResetRequested => "password_reset.requested",
            Self::PasswordResetCompleted => "password_reset.completed",
            Self::EmailVerified => "email.verified",
            Self::OrganizationSuspended => "organization.suspended",
            Self::OrganizationResumed => "organization.resumed",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == name)
    }
}

/// One audit log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Time-ordered id.
    pub id: AuditEventId,
    /// The organization it concerns.
    pub organization_id: OrganizationId,
    /// The admin who acted; `None` when nobody was signed in (a failed or
    /// locked login names the targeted admin in `target` instead) and for
    /// an operator action.
    pub actor: Option<AdminId>,
    /// The operator key that acted (issue #17), for an action through the
    /// operator API; `None` otherwise, and for every entry recorded before
    /// operators existed.
    pub operator: Option<OperatorKeyName>,
    /// What happened.
    pub action: AuditAction,
    /// What it happened to: an admin id, or an organization name (for a
    /// rename, `old name -> new name`).
    pub target: String,
    /// When (millisecond precision).
    pub at: DateTime<Utc>,
    /// The request's id (the `x-request-id` the service answered with).
    pub request_id: Option<String>,
    /// The client's IP address.
    pub client_ip: Option<String>,
}

/// A page request over an organization's audit log, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Page size.
    pub limit: PageSize,
    /// Continue with the events older than this one.
    pub before: Option<AuditEventId>,
}

/// A page request over the audit log of every organization, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this organization's events.
    pub organization: Option<OrganizationId>,
    /// Only events of this action.
    pub action: Option<AuditAction>,
    /// Page size.
    pub limit: PageSize,
    /// Continue with the events older than this one.
    pub before: Option<AuditEventId>,
}

/// One page of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPage {
    /// Events, newest first (descending id).
    pub events: Vec<AuditEvent>,
    /// The `before` of the next page (the last event's id) when older events
    /// may follow; `None` on the last page.
    pub next: Option<AuditEventId>,
}

/// The audit log port: append-only, listed per organization.
///
/// Entries outlive their organization: after an `organization.deleted`
/// entry they are kept until [`AuditLog::purge_deleted_before`] removes them.
/// Entries are ordered by id (UUIDv7, generated by the caller).
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends an entry.
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError>;

    /// One page of an organization's entries, newest first. Entries recorded
    /// while a client pages through appear on an earlier page, never twice.
    async fn audit_events(
        &self,
        organization: OrganizationId,
        query: AuditQuery,
    ) -> Result<AuditPage, StoreError>;

    /// One page of the entries of every organization (deleted ones too)
    /// that meet the filter, newest first (descending id), older than
    /// `filter.before`; the paging rule of [`AuditLog::audit_events`].
    async fn all_audit_events(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError>;

    /// Deletes every entry of each organization whose `organization.deleted`
    /// entry is dated before `cutoff`; returns how many entries went.
    /// Entries of organizations that still exist are never purged.
    async fn purge_deleted_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
}
