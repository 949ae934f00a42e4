//! Password reset (issue #14): an admin who forgot the password asks for a
//! link by email, then sets a new password with the link's token.
//!
//! Asking never says whether the email belongs to an admin: the request is
//! answered before anything is looked up, and the lookup, the token and its
//! email happen in the background. Confirming uses the token up first
//! (single use, decided by the store), so a failure after that (a store
//! outage while the new password is saved) costs the admin a new request,
//! never a second use of one link.

use orgsvc_auth::{hash_account_token, OpaqueAccountToken};
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{
    AccountToken, AccountTokenPurpose, Admin, AdminEmail, AdminUpdate, AuditAction, Password,
};

use crate::audit::{AuditEntry, RequestOrigin};
use crate::{AppError, Application};

impl Application {
    /// Starts a password reset for `email` and returns at once, whether or
    /// not an admin has that email (so neither the answer nor its timing
    /// tells). In the background: when an admin has it, a reset token
    /// valid [`crate::AppSettings::password_reset_ttl`] is stored together
    /// with its email (one write: see
    /// [`orgsvc_domain::AccountTokenStore::issue_account_token`]) and
    /// `password_reset.requested` is audited. A failure there is logged.
    pub fn request_password_reset(&self, origin: &RequestOrigin, email: AdminEmail) {
        let (app, origin) = (self.clone(), origin.clone());
        tokio::spawn(async move {
            if let Err(error) = app.issue_password_reset(&origin, &email).await {
                tracing::error!(
                    error = %orgsvc_domain::ErrorChain(&error),
                    "could not issue a password reset"
                );
            }
        });
    }

    async fn issue_password_reset(
        &self,
        origin: &RequestOrigin,
        email: &AdminEmail,
    ) -> Result<(), AppError> {
        let Some(credentials) = self.store.admin_credentials_by_email(email).await? else {
            tracing::info!("password reset requested for an unknown email");
            return Ok(());
        };
        let admin = credentials.admin;
        self.send_account_link(&admin, AccountTokenPurpose::PasswordReset)
            .await?;
        let entry = AuditEntry::about(AuditAction::PasswordResetRequested, &admin);
        self.audit(origin, entry).await;
        Ok(())
    }

    /// Sets `password` as the password of the admin a reset `token` was
    /// sent to, and answers that admin. Like a password change it revokes
    /// every earlier access and refresh token of the admin; it also clears
    /// a lock from failed logins on the email, and marks the email verified
    /// (the link reached it). Audited as `password_reset.completed`.
    ///
    /// # Errors
    /// [`AppError::AccountTokenUnusable`] when the token is unknown, used,
    /// expired, not a reset token, or its admin is gone or changed email
    /// since; store and hashing failures.
    pub async fn confirm_password_reset(
        &self,
        origin: &RequestOrigin,
        token: &str,
        password: &Password,
    ) -> Result<Admin, AppError> {
        let admin = self
            .use_account_token(token, AccountTokenPurpose::PasswordReset)
            .await?;
        let password_hash = self.hasher.hash(password).await?;
        let update = AdminUpdate {
            email: None,
            password_hash: Some(password_hash),
        };
        let admin = self.store.update_admin(admin.id, update).await?;
        self.store.login_succeeded(&admin.email).await?;
        self.store
            .mark_email_verified(admin.id, &admin.email)
            .await?;
        let entry = AuditEntry::about(AuditAction::PasswordResetCompleted, &admin);
        self.audit(origin, entry).await;
        tracing::info!(admin = %admin.id, "password reset completed");
        Ok(admin)
    }

    /// Emails `admin` a link with a new account token for `purpose` (a
    /// reset or a verification link, valid that purpose's lifetime from
    /// [`crate::AppSettings`]), the token and its email stored in one
    /// write ([`orgsvc_domain::AccountTokenStore::issue_account_token`]).
    ///
    /// # Errors
    /// Store failures.
    pub(crate) async fn send_account_link(
        &self,
        admin: &Admin,
        purpose: AccountTokenPurpose,
    ) -> Result<(), AppError> {
        let token = OpaqueAccountToken::generate();
        let now = now_millis();
        let ttl = match purpose {
            AccountTokenPurpose::PasswordReset => self.settings.password_reset_ttl,
            AccountTokenPurpose::EmailVerification => self.settings.email_verification_ttl,
        };
        let record = AccountToken::issue(
            token.hash(),
            purpose,
            admin.id,
            admin.email.clone(),
            now,
            ttl,
        );
        let links = &self.settings.email_links;
        let (to, expires_at) = (admin.email.clone(), record.expires_at);
        let message = match purpose {
            AccountTokenPurpose::PasswordReset => {
                links.password_reset(to, token.expose(), expires_at, now)
            }
            AccountTokenPurpose::EmailVerification => {
                links.email_verification(to, token.expose(), expires_at, now)
            }
        };
        Ok(self.store.issue_account_token(record, message).await?)
    }

    /// Uses up the account token `presented` for `purpose` and answers its
    /// admin, if the admin still has the email the token was sent to.
    ///
    /// # Errors
    /// [`AppError::AccountTokenUnusable`]; store failures.
    pub(crate) async fn use_account_token(
        &self,
        presented: &str,
        purpose: AccountTokenPurpose,
    ) -> Result<Admin, AppError> {
        let used = self
            .store
            .use_account_token(&hash_account_token(presented), purpose, now_millis())
            .await?
            .ok_or(AppError::AccountTokenUnusable)?;
        self.store
            .admin_by_id(used.admin_id)
            .await?
            .filter(|admin| used.is_for(admin.id, &admin.email))
            .ok_or(AppError::AccountTokenUnusable)
    }
}
