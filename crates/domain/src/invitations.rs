//! Invitations (issue #14): an organization's admin invites an email with a
//! role; the invitee accepts with the token from the email and a password,
//! which creates the admin. The token (256 random bits) is stored only as
//! its [`TokenHash`], in the same write as the email
//! ([`InvitationStore::create_invitation`]); resending replaces it, so the
//! older link dies. Status is derived from times and flags by
//! [`Invitation::status_at`]; the lifetime rule is [`invitation_ttl`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account_tokens::TokenHash;
use crate::documents::PageSize;
use crate::errors::StoreError;
use crate::ids::{AdminId, InvitationId, OrganizationId};
use crate::model::{Admin, AdminRole};
use crate::outbox::OutboxMessage;
use crate::values::{AdminEmail, PasswordHash};

/// How long an invitation lives when the inviter does not say (issue #14).
pub const DEFAULT_INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest an invitation may live (issue #14).
pub const MAX_INVITATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A requested invitation lifetime outside `(0, 30 days]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an invitation lives more than 0 seconds and at most 30 days")]
pub struct InvitationTtlError;

/// The lifetime of a new invitation: `requested`, or
/// [`DEFAULT_INVITATION_TTL`] when `None`. Zero or more than
/// [`MAX_INVITATION_TTL`] is an error (never silently capped).
pub fn invitation_ttl(requested: Option<Duration>) -> Result<Duration, InvitationTtlError> {
    match requested {
        None => Ok(DEFAULT_INVITATION_TTL),
        Some(ttl) if ttl.is_zero() || ttl > MAX_INVITATION_TTL => Err(InvitationTtlError),
        Some(ttl) => Ok(ttl),
    }
}

/// Where an invitation stands at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvitationStatus {
    /// Waiting for the invitee; its token works.
    Pending,
    /// Accepted: the admin exists.
    Accepted,
    /// Withdrawn by an admin.
    Revoked,
    /// Not accepted before `expires_at`.
    Expired,
}

impl InvitationStatus {
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// An invitation to become an admin of an organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// Its id (time-ordered).
    pub id: InvitationId,
    /// The organization the invitee joins.
    pub organization_id: OrganizationId,
    /// The invited email: the new admin's.
    pub email: AdminEmail,
    /// The new admin's role.
    pub role: AdminRole,
    /// The admin who invited.
    pub invited_by: AdminId,
    /// When it was created (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When its token stops working (millisecond precision).
    pub expires_at: DateTime<Utc>,
    /// When it was accepted, and the admin that created.
    pub accepted: Option<(DateTime<Utc>, AdminId)>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// A pending invitation created at `now` (truncated to the
    /// millisecond) living `ttl` (see [`invitation_ttl`]).
    pub fn new(
        organization_id: OrganizationId,
        email: AdminEmail,
        role: AdminRole,
        invited_by: AdminId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Self {
        let created_at = crate::clock::to_millis(now);
        Self {
            id: InvitationId::new(),
            organization_id,
            email,
            role,
            invited_by,
            created_at,
            expires_at: crate::clock::expiry(created_at, ttl),
            accepted: None,
            revoked_at: None,
        }
    }

    /// Its status at `now`: accepted and revoked are final (whichever
    /// happened); otherwise expired from `expires_at` on, else pending.
    pub fn status_at(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.accepted.is_some() {
            InvitationStatus::Accepted
        } else if self.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if now >= self.expires_at {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        }
    }
}

/// One page of an organization's invitations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationPage {
    /// Newest first (descending id).
    pub invitations: Vec<Invitation>,
    /// The cursor of the next page (the last invitation's id) when older
    /// ones may follow; `None` on the last page.
    pub next: Option<InvitationId>,
}

/// A page request over an organization's invitations, newest first (the
/// audit log's shape).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvitationQuery {
    /// Page size.
    pub limit: PageSize,
    /// Continue with the invitations older than this one.
    pub before: Option<InvitationId>,
}

/// Why an invitation could not be created, revoked or resent.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    /// The email belongs to an admin (of any organization).
    #[error("the email belongs to an admin")]
    EmailTaken,
    /// No such organization, or no such invitation in it.
    #[error("no such invitation")]
    NotFound,
    /// The invitation is no longer pending.
    #[error("the invitation is {}", .0.as_str())]
    NotPending(InvitationStatus),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why accepting an invitation created nothing.
#[derive(Debug, thiserror::Error)]
pub enum AcceptInvitationError {
    /// Unknown, already used, replaced by a resend, revoked or expired.
    #[error("the invitation token is invalid")]
    InvalidToken,
    /// The email now belongs to an admin; the invitation stays pending.
    #[error("the email belongs to an admin")]
    EmailTaken,
    /// The organization no longer exists.
    #[error("the organization no longer exists")]
    OrganizationNotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long an expired (or accepted, or revoked) invitation stays listed
/// after its `expires_at` before maintenance purges it
/// ([`InvitationStore::purge_invitations`]): long enough for the inviter
/// to see that it expired (our choice, issue #14 names none).
pub const INVITATION_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Invitations and their tokens (a supertrait of [`crate::TenantStore`]).
///
/// Rules every implementation MUST follow:
/// - `create_invitation` stores the pending invitation, its token hash and
///   its message in one atomic write (all or nothing): the message reaches
///   [`crate::OutboxStore::claim_due_messages`] only if the invitation was
///   stored. `EmailTaken` when an admin of any organization has the email
///   (checked when it is written; accept checks again), `NotFound` for an
///   unknown organization.
/// - `invitations_of` lists one organization's invitations newest first
///   (descending id) by pages: following `next` visits each exactly once;
///   `invitation` finds one of them by id, never another organization's.
/// - `revoke_invitation` and `replace_invitation_token` act on a pending
///   invitation (at `now`) of that organization only (`NotFound`,
///   `NotPending`). Replacing stores the new hash and message atomically
///   and sets the new `expires_at`; the old token stops working at once.
/// - `accept_invitation(hash, now, password)` finds the invitation whose
///   current token has this hash and that is pending at `now`, and,
///   atomically and once, creates the admin (a new id, the invitation's
///   email and role, token version 0, through the same rules as
///   [`crate::TenantStore::add_admin`]; its email verified, since the
///   token reached that address) and marks the invitation accepted
///   at `now`: of racing accepts exactly one succeeds, the others get
///   `InvalidToken`. When the email belongs to an admin, `EmailTaken`:
///   nothing is created and the invitation stays pending.
/// - Deleting an organization ([`crate::TenantStore::delete_organization`])
///   deletes its invitations and their unsent messages.
/// - `purge_invitations(cutoff)` deletes the invitations whose `expires_at`
///   is before `cutoff`, whatever their status, with their unsent messages.
/// - Times come back at millisecond precision.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores a pending invitation with its token and email.
    async fn create_invitation(
        &self,
        invitation: Invitation,
        token: TokenHash,
        message: OutboxMessage,
    ) -> Result<(), InvitationError>;

    /// One page of the organization's invitations (see above); empty for
    /// an unknown organization.
    async fn invitations_of(
        &self,
        organization: OrganizationId,
        query: InvitationQuery,
    ) -> Result<InvitationPage, StoreError>;

    /// The organization's invitation with this id; `None` when the
    /// organization has none (even if another one does).
    async fn invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, StoreError>;

    /// Revokes a pending invitation at `now`; returns it revoked.
    async fn revoke_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError>;

    /// Resend: a new token (and its email) replaces the old one, and the
    /// invitation lives until `expires_at`; returns it.
    async fn replace_invitation_token(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        token: TokenHash,
        message: OutboxMessage,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError>;

    /// Accepts the invitation: creates its admin with `password_hash`.
    async fn accept_invitation(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
        password_hash: PasswordHash,
    ) -> Result<(Invitation, Admin), AcceptInvitationError>;

    /// Deletes the invitations that expired before `cutoff` (see above);
    /// how many went.
    async fn purge_invitations(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    const DAY: u64 = 24 * 3600;

    #[test]
    fn ttl_defaults_to_seven_days_and_refuses_zero_and_more_than_thirty() {
        assert_eq!(invitation_ttl(None), Ok(Duration::from_secs(7 * DAY)));
        let thirty = Duration::from_secs(30 * DAY);
        assert_eq!(invitation_ttl(Some(thirty)), Ok(thirty));
        assert_eq!(
            invitation_ttl(Some(Duration::from_secs(60))),
            Ok(Duration::from_secs(60))
        );
        let too_long = thirty + Duration::from_secs(1);
        assert_eq!(invitation_ttl(Some(too_long)), Err(InvitationTtlError));
        assert_eq!(
            invitation_ttl(Some(Duration::ZERO)),
            Err(InvitationTtlError)
        );
    }

    #[test]
    fn status_is_pending_until_expiry_and_final_once_accepted_or_revoked() {
        let now = crate::clock::now_millis();
        let invitation = Invitation::new(
            OrganizationId::new(),
            AdminEmail::parse("new@example.com").unwrap(),
            AdminRole::Admin,
            AdminId::new(),
            now,
            DEFAULT_INVITATION_TTL,
        );
        assert_eq!(invitation.expires_at - now, TimeDelta::days(7));
        assert_eq!(invitation.status_at(now), InvitationStatus::Pending);
        let end = invitation.expires_at;
        let before_end = end - TimeDelta::milliseconds(1);
        assert_eq!(invitation.status_at(before_end), InvitationStatus::Pending);
        assert_eq!(invitation.status_at(end), InvitationStatus::Expired);

        let mut revoked = invitation.clone();
        revoked.revoked_at = Some(now);
        assert_eq!(revoked.status_at(now), InvitationStatus::Revoked);
        assert_eq!(revoked.status_at(end), InvitationStatus::Revoked);

        let mut accepted = invitation;
        accepted.accepted = Some((now, AdminId::new()));
        assert_eq!(accepted.status_at(end), InvitationStatus::Accepted);
    }
}
