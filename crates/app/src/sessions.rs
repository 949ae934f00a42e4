//! Admin sessions: log in, refresh (rotation with reuse detection), log
//! out, and authenticating an access token.
//!
//! A login answers a short-lived access token (JWT) and an opaque refresh
//! token that starts a session ("family"). A refresh uses its token up and
//! answers a new pair in the same family; presenting a used refresh token
//! again revokes the whole family. Failed logins are counted per email in
//! advance and lock it for a growing interval (the rule is
//! [`orgsvc_domain::ThrottleState::count_attempt`]).

use orgsvc_auth::{hash_refresh_token, IssuedToken, OpaqueRefreshToken};
use orgsvc_domain::clock::{expiry, now_millis};
use orgsvc_domain::{
    Admin, AdminCredentials, AdminEmail, AdminId, AuditAction, ErrorChain, LoginAttempt,
    Organization, Password, PasswordHash, RefreshToken, RefreshTokenUse, SessionFamilyId,
};

use crate::audit::{AuditEntry, RequestOrigin};
use crate::{AppError, Application};

/// Issued tokens: a short-lived access token and the refresh token that
/// gets the next one. Holds secrets: never log it.
#[derive(Clone)]
pub struct TokenPair {
    /// The signed access token (JWT).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The opaque refresh token (256 random bits, URL-safe base64).
    pub refresh_token: String,
    /// Seconds until the refresh token expires unless used.
    pub refresh_expires_in: u64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Exchanges an admin's email and password for a token pair (a new
    /// session).
    ///
    /// `email` and `password` are taken as sent: unknown emails, wrong
    /// passwords and malformed values fail alike, in about the same time
    /// (a dummy hash is verified when there is nothing to verify against).
    /// The attempt is counted for a well-formed email first, known or not.
    /// A successful login clears the email's failures and, when the stored
    /// hash uses other argon2 parameters than configured, rehashes the
    /// password in the background.
    ///
    /// # Errors
    /// [`AppError::LoginLocked`] while failed logins lock the email (even for
    /// the right password); [`AppError::InvalidCredentials`]; store and
    /// hashing failures.
    pub async fn log_in(
        &self,
        origin: &RequestOrigin,
        email: &str,
        password: &str,
    ) -> Result<TokenPair, AppError> {
        let parsed_email = AdminEmail::parse(email).ok();
        if let Some(email) = &parsed_email {
            self.count_login_attempt(origin, email).await?;
        }
        let credentials = match &parsed_email {
            Some(email) => self.store.admin_credentials_by_email(email).await?,
            None => None,
        };
        // An out-of-bounds password cannot match any stored hash: verify it
        // against the dummy hash, like an unknown email, to keep the timing.
        let parsed_password = Password::parse(password).ok();
        let hash = credentials
            .as_ref()
            .filter(|_| parsed_password.is_some())
            .map(|credentials| &credentials.password_hash);
        let verified = self.hasher.verify(password, hash).await?;
        let (Some(email), Some(credentials), Some(password), true) =
            (parsed_email, credentials.clone(), parsed_password, verified)
        else {
            if let Some(credentials) = credentials {
                // In the background, so a known email answers as fast as an
                // unknown one.
                let entry = AuditEntry::about(AuditAction::LoginFailed, &credentials.admin);
                self.audit_in_background(origin, entry);
            }
            return Err(AppError::InvalidCredentials);
        };
        self.store.login_succeeded(&email).await?;
        let AdminCredentials {
            admin,
            password_hash,
        } = credentials;
        let organization = self
            .store
            .organization_by_id(admin.organization_id)
            .await?
            .ok_or(AppError::InvalidCredentials)?;
        // Only after the password verified: a suspension is not revealed to
        // someone who does not know it.
        ensure_active(&organization)?;
        if self.hasher.needs_rehash(&password_hash) {
            self.rehash_in_background(admin.id, password_hash, password);
        }
        let tokens = self
            .issue_tokens(&admin, &organization, SessionFamilyId::new())
            .await?;
        let entry = AuditEntry::by(&admin, AuditAction::LoginSucceeded, admin.id.to_string());
        self.audit(origin, entry).await;
        tracing::info!(admin_id = %admin.id, "admin logged in");
        Ok(tokens)
    }

    /// Counts a login attempt for `email` in advance; [`AppError::LoginLocked`]
    /// while it is locked (recording `login.locked` when this attempt locked
    /// the email of an admin, in the background: known and unknown emails
    /// answer alike).
    async fn count_login_attempt(
        &self,
        origin: &RequestOrigin,
        email: &AdminEmail,
    ) -> Result<(), AppError> {
        let now = now_millis();
        let throttle = &self.settings.login_throttle;
        let LoginAttempt::Locked { until, just_locked } =
            self.store.begin_login_attempt(email, now, throttle).await?
        else {
            return Ok(());
        };
        if just_locked {
            tracing::warn!("failed logins locked an email");
            let (app, origin, email) = (self.clone(), origin.clone(), email.clone());
            tokio::spawn(async move {
                match app.store.admin_credentials_by_email(&email).await {
                    Ok(Some(credentials)) => {
                        let entry = AuditEntry::about(AuditAction::LoginLocked, &credentials.admin);
                        app.audit(&origin, entry).await;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::error!(
                        error = %ErrorChain(&error),
                        "could not look up the admin of a locked email for the audit log"
                    ),
                }
            });
        }
        Err(AppError::LoginLocked {
            retry_after: (until - now).to_std().unwrap_or_default(),
        })
    }

    /// Uses `presented` (a refresh token) up and answers a new pair of the
    /// same session.
    ///
    /// # Errors
    /// [`AppError::RefreshTokenReused`] when the token was used before in a
    /// live session (the whole session is then revoked and the reuse
    /// audited); [`AppError::InvalidRefreshToken`] for an unknown, expired or
    /// revoked token, a used one of a session that had ended (logout,
    /// suspension, ...: nothing to revoke, no reuse reported), or one whose
    /// admin changed password, was removed or lost its organization since
    /// (the session is then revoked); store failures.
    pub async fn refresh(
        &self,
        origin: &RequestOrigin,
        presented: &str,
    ) -> Result<TokenPair, AppError> {
        let hash = hash_refresh_token(presented);
        let token = match self.store.use_refresh_token(&hash, now_millis()).await? {
            RefreshTokenUse::Fresh(token) => token,
            RefreshTokenUse::Reused(token) => {
                self.store.revoke_family(token.family).await?;
                tracing::warn!(
                    admin_id = %token.admin_id,
                    family = %token.family,
                    "a used refresh token was presented again: session revoked"
                );
                let entry = AuditEntry {
                    organization: token.organization_id,
                    actor: None,
                    operator: None,
                    action: AuditAction::RefreshTokenReuseDetected,
                    target: token.admin_id.to_string(),
                };
                self.audit(origin, entry).await;
                return Err(AppError::RefreshTokenReused);
            }
            // The session had ended already: refused, not theft.
            RefreshTokenUse::Ended(_) | RefreshTokenUse::Invalid => {
                return Err(AppError::InvalidRefreshToken)
            }
        };
        let Some((admin, organization)) = self.session_holder(&token).await? else {
            self.store.revoke_family(token.family).await?;
            return Err(AppError::InvalidRefreshToken);
        };
        if let Err(suspended) = ensure_active(&organization) {
            // The token is used up: its session ends, and a new login is
            // needed once the organization is resumed.
            self.store.revoke_family(token.family).await?;
            return Err(suspended);
        }
        self.issue_tokens(&admin, &organization, token.family).await
    }

    /// The admin and organization of a fresh refresh token, when the admin
    /// still exists in that organization under the same token version (no
    /// password change, removal or deletion since it was issued).
    async fn session_holder(
        &self,
        token: &RefreshToken,
    ) -> Result<Option<(Admin, Organization)>, AppError> {
        let admin = self
            .store
            .admin_by_id(token.admin_id)
            .await?
            .filter(|admin| admin.accepts_credential(token.organization_id, token.token_version));
        let Some(admin) = admin else {
            return Ok(None);
        };
        let organization = self.store.organization_by_id(admin.organization_id).await?;
        Ok(organization.map(|organization| (admin, organization)))
    }

    /// Revokes the session of `presented` (a refresh token): it and every
    /// refresh token of the same login stop working. Succeeds whether or
    /// not the token was known, so it reveals nothing and can be repeated.
    ///
    /// # Errors
    /// Store failures.
    pub async fn log_out(&self, presented: &str) -> Result<(), AppError> {
        let hash = hash_refresh_token(presented);
        // The port has no lookup that leaves a token unused, but the family
        // is revoked anyway; a used token here is a logout, not a replay.
        match self.store.use_refresh_token(&hash, now_millis()).await? {
            RefreshTokenUse::Fresh(token)
            | RefreshTokenUse::Reused(token)
            | RefreshTokenUse::Ended(token) => {
                self.store.revoke_family(token.family).await?;
                tracing::info!(admin_id = %token.admin_id, "admin logged out");
            }
            RefreshTokenUse::Invalid => {}
        }
        Ok(())
    }

    /// The admin an access token names, if it still holds: the signature
    /// and claims verify, and the admin still exists in the token's
    /// organization under the token's version (a password change, removal
    /// or the organization's deletion revokes earlier tokens at once:
    /// nothing is cached), and that organization is not suspended (refused
    /// at once with [`AppError::OrganizationSuspended`], for every route an
    /// access token opens).
    ///
    /// With `auth.require_verified_email`, an admin whose email is not
    /// verified is refused ([`Application::authenticate_unverified`] is for
    /// the routes that stay open to it).
    ///
    /// # Errors
    /// [`AppError::TokenExpired`], [`AppError::InvalidToken`],
    /// [`AppError::OrganizationSuspended`], [`AppError::EmailUnverified`];
    /// store failures.
    pub async fn authenticate(&self, access_token: &str) -> Result<Admin, AppError> {
        let admin = self.authenticate_unverified(access_token).await?;
        if self.settings.require_verified_email && !admin.email_verified {
            return Err(AppError::EmailUnverified);
        }
        Ok(admin)
    }

    /// [`Application::authenticate`] without the verified-email rule: for
    /// asking for a verification link while the email is unverified.
    ///
    /// The organization's state is a second lookup after the admin's (the
    /// embedded store answers both from its in-process cache; MongoDB reads
    /// the organization record by `_id`).
    ///
    /// # Errors
    /// [`AppError::TokenExpired`], [`AppError::InvalidToken`],
    /// [`AppError::OrganizationSuspended`]; store failures.
    pub async fn authenticate_unverified(&self, access_token: &str) -> Result<Admin, AppError> {
        let claims = self.tokens.verify(access_token)?;
        let admin = self
            .store
            .admin_by_id(claims.sub)
            .await?
            .filter(|admin| admin.accepts_credential(claims.org_id, claims.ver))
            .ok_or(AppError::InvalidToken)?;
        let organization = self
            .store
            .organization_by_id(admin.organization_id)
            .await?
            .ok_or(AppError::InvalidToken)?;
        ensure_active(&organization)?;
        Ok(admin)
    }

    /// Issues an access token and a refresh token of `family` for `admin`,
    /// and stores the refresh token's hash.
    pub(crate) async fn issue_tokens(
        &self,
        admin: &Admin,
        organization: &Organization,
        family: SessionFamilyId,
    ) -> Result<TokenPair, AppError> {
        let IssuedToken {
            access_token,
            expires_in,
        } = self.tokens.issue(admin, organization)?;
        let refresh_token = OpaqueRefreshToken::generate();
        let issued_at = now_millis();
        let ttl = self.settings.refresh_token_ttl;
        self.store
            .save_refresh_token(RefreshToken {
                hash: refresh_token.hash(),
                family,
                admin_id: admin.id,
                organization_id: organization.id,
                token_version: admin.token_version,
                issued_at,
                expires_at: expiry(issued_at, ttl),
            })
            .await?;
        Ok(TokenPair {
            access_token,
            expires_in,
            refresh_token: refresh_token.into_exposed(),
            refresh_expires_in: ttl.as_secs(),
        })
    }

    /// Replaces `current` with a hash of `password` under the configured
    /// argon2 parameters, in the background (the login does not wait).
    /// Failures are logged; the password never is.
    fn rehash_in_background(&self, admin: AdminId, current: PasswordHash, password: Password) {
        let app = self.clone();
        tokio::spawn(async move {
            let rehashed = match app.hasher.hash(&password).await {
                Ok(rehashed) => rehashed,
                Err(error) => {
                    tracing::error!(admin_id = %admin, error = %ErrorChain(&error), "rehashing a password failed");
                    return;
                }
            };
            match app.store.rehash_password(admin, &current, rehashed).await {
                Ok(true) => {
                    tracing::info!(admin_id = %admin, "password rehashed with the configured argon2 parameters")
                }
                Ok(false) => {
                    tracing::info!(admin_id = %admin, "password changed meanwhile: not rehashed")
                }
                Err(error) => {
                    tracing::error!(admin_id = %admin, error = %ErrorChain(&error), "storing a rehashed password failed")
                }
            }
        });
    }
}

/// The suspension rule of every admin credential (issue #17), written once:
/// [`AppError::OrganizationSuspended`] while an operator has the
/// organization suspended.
pub(crate) fn ensure_active(organization: &Organization) -> Result<(), AppError> {
    if organization.state.is_suspended() {
        Err(AppError::OrganizationSuspended)
    } else {
        Ok(())
    }
}
