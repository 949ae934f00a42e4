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
    /// The token had been used before and its family is live: a replay.
    /// Revoke its family.
    Reused(RefreshToken),
    /// The token had been used before and its family has been revoked
    /// since: the session had already ended (a logout, a refresh refused
    /// for a suspension, a password change, a replay already detected),
    /// so this is no sign of theft and there is nothing left to revoke.
    Ended(RefreshToken),
    /// Unknown, expired, or unused of a revoked family.
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

/// An email's login-throttling state, as the stores keep it (whether or not
/// an admin has the email).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// Attempts counted since the last success or lock.
    pub failures: u32,
    /// Locks since the last success.
    pub lockouts: u32,
    /// When the latest lock ends (millisecond precision).
    pub locked_until: Option<DateTime<Utc>>,
}

impl ThrottleState {
    /// The rule of [`SessionStore::begin_login_attempt`], for the stores to
    /// apply atomically: while a lock runs at `now`, the attempt is
    /// `Locked` and nothing changes (`None`). Otherwise the attempt counts as
    /// a failure in advance; once that makes more than
    /// `throttle.max_failures`, the failures restart at zero and the email
    /// locks from `now` for [`LoginThrottle::lock_duration`] of the locks
    /// since the last success. Returns the answer and the state to store.
    pub fn count_attempt(
        &self,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> (LoginAttempt, Option<ThrottleState>) {
        if let Some(until) = self.locked_until.filter(|&until| until > now) {
            let answer = LoginAttempt::Locked {
                until,
                just_locked: false,
            };
            return (answer, None);
        }
        let mut next = Self {
            failures: self.failures.saturating_add(1),
            ..*self
        };
        if next.failures <= throttle.max_failures {
            return (LoginAttempt::Allowed, Some(next));
        }
        next.failures = 0;
        next.lockouts = next.lockouts.saturating_add(1);
        let length = chrono::TimeDelta::from_std(throttle.lock_duration(next.lockouts))
            .unwrap_or(chrono::TimeDelta::MAX);
        let until = crate::clock::to_millis(
            now.checked_add_signed(length)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        );
        next.locked_until = Some(until);
        let answer = LoginAttempt::Locked {
            until,
            just_locked: true,
        };
        (answer, Some(next))
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
    /// token is `Reused` whatever its expiry, or `Ended` once its family is
    /// revoked; an unused one past `expires_at` (at `now`) or of a revoked
    /// family is `Invalid`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle {
            max_failures: 2,
            base_lock: Duration::from_millis(1_500),
            max_lock: Duration::from_secs(4),
        }
    }

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    #[test]
    fn attempts_lock_after_max_failures_for_doubling_lengths_up_to_the_longest() {
        let mut state = ThrottleState::default();
        let mut locks = Vec::new();
        let mut now = 10_000;
        for _ in 0..9 {
            let (answer, next) = state.count_attempt(at(now), &throttle());
            state = next.expect("an attempt outside a lock is stored");
            if let LoginAttempt::Locked { until, just_locked } = answer {
                assert!(just_locked);
                assert_eq!(state.failures, 0);
                locks.push(until.timestamp_millis() - now);
                now = until.timestamp_millis(); // the next attempt after the lock
            }
        }
        assert_eq!(locks, [1_500, 3_000, 4_000]);
        assert_eq!(state.lockouts, 3);
    }

    #[test]
    fn an_attempt_during_a_lock_is_refused_and_changes_nothing() {
        let locked = ThrottleState {
            failures: 0,
            lockouts: 1,
            locked_until: Some(at(5_000)),
        };
        let (answer, next) = locked.count_attempt(at(4_999), &throttle());
        assert_eq!(
            answer,
            LoginAttempt::Locked {
                until: at(5_000),
                just_locked: false
            }
        );
        assert_eq!(next, None);
        // Once the lock has ended, attempts count again.
        let (answer, next) = locked.count_attempt(at(5_000), &throttle());
        assert_eq!(answer, LoginAttempt::Allowed);
        assert_eq!(next.map(|s| (s.failures, s.lockouts)), Some((1, 1)));
    }

    #[test]
    fn a_lock_ends_on_a_whole_millisecond() {
        let state = ThrottleState {
            failures: 2,
            ..ThrottleState::default()
        };
        let now = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let (answer, _) = state.count_attempt(now, &throttle());
        let LoginAttempt::Locked { until, .. } = answer else {
            panic!("the third failure locks: {answer:?}");
        };
        assert_eq!(until.timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
