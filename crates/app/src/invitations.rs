//! Invitations (issue #14): an owner invites an email with a role; the
//! invitee accepts with the token from the email and a password of their
//! own, which creates the admin and signs them in. Owners list, revoke and
//! resend their organization's invitations.
//!
//! The token is 256 random bits ([`OpaqueAccountToken`]); only its hash is
//! stored, together with the email in one write. The rules are the
//! domain's: [`invitation_ttl`] for the lifetime, [`Invitation::status_at`]
//! for the status, the store's [`orgsvc_domain::InvitationStore`] for
//! single use and expiry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use orgsvc_auth::{hash_account_token, OpaqueAccountToken};
use orgsvc_domain::clock::{expiry, now_millis};
use orgsvc_domain::{
    invitation_ttl, Admin, AdminEmail, AdminRole, AuditAction, Invitation, InvitationId,
    InvitationPage, InvitationQuery, InvitationStatus, OrganizationName, OutboxMessage, Password,
    SessionFamilyId, DEFAULT_INVITATION_TTL,
};

use crate::audit::{AuditEntry, RequestOrigin};
use crate::{AppError, Application, Owner, TokenPair};

/// An invitation, as an owner asks for it.
#[derive(Clone, Debug)]
pub struct Invite {
    /// The invitee's email: the new admin's login (unique across
    /// organizations).
    pub email: AdminEmail,
    /// The new admin's role.
    pub role: AdminRole,
    /// How long the invitation lives; `None`: 7 days. At most 30 days
    /// ([`invitation_ttl`]).
    pub expires_in: Option<Duration>,
}

/// What accepting an invitation answers: the new admin, signed in.
#[derive(Debug)]
pub struct Accepted {
    /// The admin the invitation created.
    pub admin: Admin,
    /// A token pair of a new session of that admin, as a login answers.
    pub tokens: TokenPair,
}

impl Application {
    /// Invites `command.email` into the owner's organization and stores
    /// the email carrying the token in the same write.
    ///
    /// # Errors
    /// [`AppError::InvalidInvitationTtl`]; [`AppError::EmailTaken`] when an
    /// admin of any organization has the email; [`AppError::InvalidToken`]
    /// when the organization was deleted meanwhile; store failures.
    pub async fn invite(
        &self,
        origin: &RequestOrigin,
        owner: &Owner,
        command: Invite,
    ) -> Result<Invitation, AppError> {
        let ttl = invitation_ttl(command.expires_in)?;
        let inviter = owner.admin();
        let organization = self.organization_name_of(owner).await?;
        let now = now_millis();
        let invitation = Invitation::new(
            inviter.organization_id,
            command.email,
            command.role,
            inviter.id,
            now,
            ttl,
        );
        let token = OpaqueAccountToken::generate();
        let message =
            self.invitation_email(&invitation, &organization, &inviter.email, &token, now);
        self.store
            .create_invitation(invitation.clone(), token.hash(), message)
            .await
            .map_err(|error| match AppError::from(error) {
                // The organization was deleted since the token was checked.
                AppError::InvitationNotFound => AppError::InvalidToken,
                other => other,
            })?;
        tracing::info!(invitation_id = %invitation.id, role = invitation.role.as_str(), "invitation created");
        let entry = AuditEntry::by(
            inviter,
            AuditAction::InvitationCreated,
            invitation.id.to_string(),
        );
        self.audit(origin, entry).await;
        Ok(invitation)
    }

    /// One page of the owner's organization's invitations, newest first,
    /// whatever their status.
    ///
    /// # Errors
    /// Store failures.
    pub async fn invitations(
        &self,
        owner: &Owner,
        query: InvitationQuery,
    ) -> Result<InvitationPage, AppError> {
        Ok(self
            .store
            .invitations_of(owner.admin().organization_id, query)
            .await?)
    }

    /// Revokes a pending invitation of the owner's organization: its token
    /// stops working at once.
    ///
    /// # Errors
    /// [`AppError::InvitationNotFound`] (also for another organization's);
    /// [`AppError::InvitationNotPending`]; store failures.
    pub async fn revoke_invitation(
        &self,
        origin: &RequestOrigin,
        owner: &Owner,
        id: InvitationId,
    ) -> Result<Invitation, AppError> {
        let owner = owner.admin();
        let invitation = self
            .store
            .revoke_invitation(owner.organization_id, id, now_millis())
            .await?;
        tracing::info!(invitation_id = %invitation.id, "invitation revoked");
        let entry = AuditEntry::by(owner, AuditAction::InvitationRevoked, id.to_string());
        self.audit(origin, entry).await;
        Ok(invitation)
    }

    /// Sends a pending invitation again with a new token: the older link
    /// stops working at once, and the invitation lives
    /// [`DEFAULT_INVITATION_TTL`] from now.
    ///
    /// # Errors
    /// [`AppError::InvitationNotFound`] (also for another organization's);
    /// [`AppError::InvitationNotPending`]; store failures.
    pub async fn resend_invitation(
        &self,
        origin: &RequestOrigin,
        owner: &Owner,
        id: InvitationId,
    ) -> Result<Invitation, AppError> {
        let inviter = owner.admin();
        let now = now_millis();
        let mut invitation = self
            .store
            .invitation(inviter.organization_id, id)
            .await?
            .ok_or(AppError::InvitationNotFound)?;
        match invitation.status_at(now) {
            InvitationStatus::Pending => {}
            status => return Err(AppError::InvitationNotPending(status)),
        }
        let organization = self.organization_name_of(owner).await?;
        invitation.expires_at = expiry(now, DEFAULT_INVITATION_TTL);
        let token = OpaqueAccountToken::generate();
        let message =
            self.invitation_email(&invitation, &organization, &inviter.email, &token, now);
        let resent = self
            .store
            .replace_invitation_token(
                inviter.organization_id,
                id,
                token.hash(),
                message,
                invitation.expires_at,
                now,
            )
            .await?;
        tracing::info!(invitation_id = %resent.id, "invitation resent");
        let entry = AuditEntry::by(inviter, AuditAction::InvitationResent, id.to_string());
        self.audit(origin, entry).await;
        Ok(resent)
    }

    /// Accepts the invitation whose email carried `token`: creates the
    /// invited admin (the invitation's email and role; the email counts as
    /// verified, since the link reached it) with `password` and signs it
    /// in.
    ///
    /// # Errors
    /// [`AppError::InvitationUnusable`] for a token that is unknown, used,
    /// replaced, revoked or expired (one answer for all);
    /// [`AppError::EmailTaken`] when the email became an admin's since the
    /// invitation (nothing is created); [`AppError::AcceptedWhileSuspended`]
    /// when the organization is suspended (the admin is created, nobody is
    /// signed in); store and hashing failures.
    pub async fn accept_invitation(
        &self,
        origin: &RequestOrigin,
        token: &str,
        password: Password,
    ) -> Result<Accepted, AppError> {
        // Hashed whatever the token: an unknown one costs the same time.
        let password_hash = self.hasher.hash(&password).await?;
        let (invitation, admin) = self
            .store
            .accept_invitation(&hash_account_token(token), now_millis(), password_hash)
            .await?;
        tracing::info!(invitation_id = %invitation.id, admin_id = %admin.id, "invitation accepted");
        let entry = AuditEntry::by(
            &admin,
            AuditAction::InvitationAccepted,
            invitation.id.to_string(),
        );
        self.audit(origin, entry).await;
        let organization = self
            .store
            .organization_by_id(admin.organization_id)
            .await?
            .ok_or(AppError::InvitationUnusable)?;
        // The invitee is an admin now, but signs in only once the
        // organization is resumed.
        crate::sessions::ensure_active(&organization)
            .map_err(|_| AppError::AcceptedWhileSuspended)?;
        let tokens = self
            .issue_tokens(&admin, &organization, SessionFamilyId::new())
            .await?;
        Ok(Accepted { admin, tokens })
    }

    /// The name of the owner's organization, for the email.
    async fn organization_name_of(&self, owner: &Owner) -> Result<OrganizationName, AppError> {
        Ok(self
            .store
            .organization_by_id(owner.admin().organization_id)
            .await?
            .ok_or(AppError::InvalidToken)?
            .name)
    }

    /// The invitation's email, from the repository's template, with the
    /// link `email.invitation_url` makes of `token` (its only secret).
    fn invitation_email(
        &self,
        invitation: &Invitation,
        organization: &OrganizationName,
        inviter: &AdminEmail,
        token: &OpaqueAccountToken,
        now: DateTime<Utc>,
    ) -> OutboxMessage {
        self.settings
            .email_links
            .invitation(invitation, organization, inviter, token.expose(), now)
    }
}
