//! Single-use account tokens (issue #14): password reset and email
//! verification. The token itself (256 random bits, made by the auth
//! crate) goes only into the email; stores keep its SHA-256
//! ([`TokenHash`]), store it in the same write as its email
//! ([`AccountTokenStore::issue_account_token`]), enforce its expiry and use
//! it up atomically.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::errors::StoreError;
use crate::ids::AdminId;
use crate::outbox::OutboxMessage;
use crate::values::AdminEmail;

/// The SHA-256 of a single-use token (account tokens, invitations),
/// hex-encoded, as [`crate::RefreshTokenHash`] is for refresh tokens.
/// Stores keep only this. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// Wraps a hex digest computed by the auth crate.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// What an account token is for; a token is used only for its purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountTokenPurpose {
    /// Sets a new password (and verifies the email it was sent to).
    PasswordReset,
    /// Marks the email it was sent to as verified.
    EmailVerification,
}

impl AccountTokenPurpose {
    /// Both purposes.
    pub const ALL: [Self; 2] = [Self::PasswordReset, Self::EmailVerification];

    /// The stored name: `password_reset` or `email_verification`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }

    /// The purpose with this stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    /// How long a token lives unless configured otherwise: 30 minutes for
    /// a password reset (issue #14), 24 hours for an email verification
    /// (our choice: the link is often opened later, and it grants nothing
    /// but the verified mark).
    pub fn default_ttl(self) -> Duration {
        match self {
            Self::PasswordReset => Duration::from_secs(30 * 60),
            Self::EmailVerification => Duration::from_secs(24 * 3600),
        }
    }
}

/// A stored account token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountToken {
    /// Hash of the token.
    pub hash: TokenHash,
    /// What it is for.
    pub purpose: AccountTokenPurpose,
    /// The admin it was issued to.
    pub admin_id: AdminId,
    /// The email it was sent to. The caller refuses a token whose admin's
    /// email changed since ([`AccountToken::is_for`]).
    pub email: AdminEmail,
    /// When it was issued (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When it stops working (millisecond precision).
    pub expires_at: DateTime<Utc>,
    /// When it was used; `None` while unused.
    pub used_at: Option<DateTime<Utc>>,
}

impl AccountToken {
    /// A new, unused token issued at `now` (truncated to the millisecond)
    /// for `ttl`.
    pub fn issue(
        hash: TokenHash,
        purpose: AccountTokenPurpose,
        admin_id: AdminId,
        email: AdminEmail,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Self {
        let created_at = crate::clock::to_millis(now);
        let expires_at = crate::clock::expiry(created_at, ttl);
        Self {
            hash,
            purpose,
            admin_id,
            email,
            created_at,
            expires_at,
            used_at: None,
        }
    }

    /// The rule of [`AccountTokenStore::use_account_token`]: unused, for
    /// `purpose`, and `now < expires_at`.
    pub fn is_usable(&self, purpose: AccountTokenPurpose, now: DateTime<Utc>) -> bool {
        self.used_at.is_none() && self.purpose == purpose && now < self.expires_at
    }

    /// Whether the token still speaks for an admin whose email is now
    /// `current`: an email change makes older tokens useless.
    pub fn is_for(&self, admin: AdminId, current: &AdminEmail) -> bool {
        self.admin_id == admin && &self.email == current
    }
}

/// Password-reset and email-verification tokens, with their emails.
///
/// Rules every implementation MUST follow:
/// - `issue_account_token(token, message)` stores the token and its
///   message in one atomic write: both or neither. Hashes are unique (256
///   random bits); issuing a hash that is already stored fails and stores
///   neither.
/// - `use_account_token(hash, purpose, now)` answers the token, with
///   `used_at = now`, only if it is stored, unused, for `purpose` and
///   `now < expires_at`, and marks it used in the same atomic step: of
///   racing uses exactly one gets it. Otherwise `None` and nothing changes.
/// - `purge_account_tokens(now)` deletes the tokens with
///   `expires_at <= now` together with their messages (sent or not: a link
///   to a dead token is worth nothing) and returns how many tokens went.
#[async_trait]
pub trait AccountTokenStore: Send + Sync {
    /// Stores a token and the email carrying it, atomically.
    async fn issue_account_token(
        &self,
        token: AccountToken,
        message: OutboxMessage,
    ) -> Result<(), StoreError>;

    /// Uses the token up (see above).
    async fn use_account_token(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountToken>, StoreError>;

    /// Deletes expired tokens and their messages; how many tokens went.
    async fn purge_account_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Sets [`crate::Admin::email_verified`] if the admin's email is still
    /// `email` (the one a token was sent to), checked atomically with the
    /// write: an email changed meanwhile stays unverified. Returns whether
    /// the admin exists with that email (already verified counts).
    async fn mark_email_verified(
        &self,
        admin: AdminId,
        email: &AdminEmail,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn token(purpose: AccountTokenPurpose, now: DateTime<Utc>) -> AccountToken {
        AccountToken::issue(
            TokenHash::from_hex("ab".repeat(32)),
            purpose,
            AdminId::new(),
            AdminEmail::parse("a@example.com").unwrap(),
            now,
            purpose.default_ttl(),
        )
    }

    #[test]
    fn a_reset_token_lives_thirty_minutes() {
        let now = crate::clock::now_millis();
        let t = token(AccountTokenPurpose::PasswordReset, now);
        assert_eq!(t.expires_at - t.created_at, TimeDelta::minutes(30));
        let p = AccountTokenPurpose::PasswordReset;
        assert!(t.is_usable(p, now + TimeDelta::minutes(29)));
        assert!(!t.is_usable(p, t.expires_at));
        assert!(!t.is_usable(AccountTokenPurpose::EmailVerification, now));
        let mut used = t.clone();
        used.used_at = Some(now);
        assert!(!used.is_usable(p, now));
    }

    #[test]
    fn a_token_is_for_its_admin_at_the_email_it_was_sent_to() {
        let t = token(
            AccountTokenPurpose::EmailVerification,
            crate::clock::now_millis(),
        );
        assert!(t.is_for(t.admin_id, &t.email));
        assert!(!t.is_for(t.admin_id, &AdminEmail::parse("b@example.com").unwrap()));
        assert!(!t.is_for(AdminId::new(), &t.email));
        assert!(!format!("{t:?}").contains(&"ab".repeat(32)));
    }

    #[test]
    fn purposes_round_trip_their_stored_names() {
        for p in AccountTokenPurpose::ALL {
            assert_eq!(AccountTokenPurpose::parse(p.as_str()), Some(p));
        }
        assert_eq!(AccountTokenPurpose::parse("other"), None);
    }
}
