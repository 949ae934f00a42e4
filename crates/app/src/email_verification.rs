//! Email verification (issue #14): an admin asks for a link to its address
//! and proves it owns the address by using the link's token. Accepting an
//! invitation or completing a password reset verifies the email too (the
//! link reached it). With `auth.require_verified_email`, unverified admins
//! may do nothing else ([`Application::authenticate`]).

use orgsvc_domain::{AccountTokenPurpose, Admin, AuditAction};

use crate::audit::{AuditEntry, RequestOrigin};
use crate::{AppError, Application};

/// What asking for a verification link did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerificationRequest {
    /// A link valid [`crate::AppSettings::email_verification_ttl`] is on
    /// its way to the admin's email.
    Sent,
    /// The email is verified already: nothing was sent.
    AlreadyVerified,
}

impl Application {
    /// Sends `admin` a link that verifies its current email, unless it is
    /// verified already. The token is stored with its email in one write.
    ///
    /// # Errors
    /// Store failures.
    pub async fn request_email_verification(
        &self,
        admin: &Admin,
    ) -> Result<VerificationRequest, AppError> {
        if admin.email_verified {
            return Ok(VerificationRequest::AlreadyVerified);
        }
        self.send_account_link(admin, AccountTokenPurpose::EmailVerification)
            .await?;
        Ok(VerificationRequest::Sent)
    }

    /// Marks the email a verification `token` was sent to as verified, and
    /// answers its admin. Audited as `email.verified`.
    ///
    /// # Errors
    /// [`AppError::AccountTokenUnusable`] when the token is unknown, used,
    /// expired, not a verification token, or its admin is gone or changed
    /// email since; store failures.
    pub async fn confirm_email_verification(
        &self,
        origin: &RequestOrigin,
        token: &str,
    ) -> Result<Admin, AppError> {
        let admin = self
            .use_account_token(token, AccountTokenPurpose::EmailVerification)
            .await?;
        if !self
            .store
            .mark_email_verified(admin.id, &admin.email)
            .await?
        {
            return Err(AppError::AccountTokenUnusable);
        }
        let entry = AuditEntry::about(AuditAction::EmailVerified, &admin);
        self.audit(origin, entry).await;
        Ok(Admin {
            email_verified: true,
            ..admin
        })
    }
}
