//! Refresh-token sessions and login throttling: the state that keeps
//! admins' sign-ins safe, behind the [`SessionStore`] port.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::errors::StoreError;
use crate::ids::{AdminId, OrganizationId, SessionFamilyId};
use crate::values::AdminEmail;

/// The SHA-256 of a refresh token, hex-encoded. Stores keep only this, never
/// the token itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash(String);

impl RefreshTokenHash {
    /// Wraps a hex digest computed by the auth crate.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RefreshTokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshTokenHash(<redacted>)")
    }
}

/// A stored refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    /// Hash of the opaque token.
    pub hash: RefreshTokenHash,
    /// The login session it belongs to: every rotation stays in the family.
    pub family: SessionFamilyId,
    /// Whose token it is.
    pub admin_id: AdminId,
    /// The admin's organization.
    pub organization_id: OrganizationId,
    /// The admin's token version when issued; a later password change makes
    /// it invalid.
    pub token_version: u32,
    /// When it was issued (millisecond precision).
    pub issued_at: DateTime<Utc>,
    /// When it stops working (millisecond precision).
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshTokenUse {
    /// The token was valid and unused; it is now used up. Issue the next one
    /// in the same family.
    Fresh(RefreshToken),
    /// The token had been used before: a replay. Revoke its family.
    Reused(RefreshToken),
    /// Unknown, expired, or its family was revoked.
    Invalid,
}

/// How failed logins lock an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failed attempts allowed before the account locks.
    pub max_failures: u32,
    /// Length of the first lock; each further lock without a successful
    /// login in between doubles it.
    pub base_lock: Duration,
    /// Longest lock.
    pub max_lock: Duration,
}

impl LoginThrottle {
    /// The lock length after `lockouts` consecutive locks (1 for the first).
    pub fn lock_duration(&self, lockouts: u32) -> Duration {
        let factor = 2_u32.saturating_pow(lockouts.saturating_sub(1).min(31));
        self.base_lock.saturating_mul(factor).min(self.max_lock)
    }
}

/// Whether a login attempt may check the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Counted as a failure in advance: verify the password, and on success
    /// call [`SessionStore::login_succeeded`].
    Allowed,
    /// The account is locked until then: do not verify the password.
    Locked {
        /// When the lock ends (millisecond precision).
        until: DateTime<Utc>,
        /// Whether this very attempt caused the lock.
        just_locked: bool,
    },
}

/// Refresh tokens and login throttling.
///
/// Rules every implementation MUST follow:
/// - `use_refresh_token` is atomic: of several concurrent uses of one token,
///   exactly one gets `Fresh`, the others `Reused`.
/// - After `revoke_family`, no token of the family is ever `Fresh` again,
///   including one saved after the revocation (a rotation racing a logout).
/// - `begin_login_attempt` counts the attempt before the password is
///   checked, atomically, so parallel attempts cannot exceed
///   `max_failures` between them.
/// - Throttling is keyed by email, whether or not an admin has it, so a
///   lock reveals nothing about which emails exist.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a newly issued refresh token.
    async fn save_refresh_token(&self, token: RefreshToken) -> Result<(), StoreError>;

    /// Uses up the token with this hash (see [`RefreshTokenUse`]). A used
    /// token is `Reused` whatever its expiry or family; an unused one past
    /// `expires_at` (at `now`) or of a revoked family is `Invalid`.
    async fn use_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError>;

    /// Revokes every token of the family, present and future (logout, reuse
    /// detected). Idempotent.
    async fn revoke_family(&self, family: SessionFamilyId) -> Result<(), StoreError>;

    /// Before verifying a password: `Locked` while the email is locked;
    /// otherwise counts one failure in advance and, when that makes more
    /// than `max_failures` failures since the last success or lock, locks
    /// the email for [`LoginThrottle::lock_duration`] of the number of locks
    /// since the last success (and answers `Locked { just_locked: true }`).
    async fn begin_login_attempt(
        &self,
        email: &AdminEmail,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError>;

    /// The password was right: clears the email's failures and lock history.
    async fn login_succeeded(&self, email: &AdminEmail) -> Result<(), StoreError>;

    /// Deletes refresh tokens that expired before `now` (with what the
    /// store keeps about their revoked families once none is left) and the
    /// throttling state of emails with no attempt since `idle_since` and no
    /// lock still running at `now`. Returns how many records went.
    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
