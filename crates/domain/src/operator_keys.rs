//! Operator API keys (issue #17): the identity of the people and machines
//! that run the service itself (the `/operator/*` routes), as opposed to the
//! admins of one organization.
//!
//! The key text (`osk_` followed by 256 random bits, made by the auth
//! crate) is shown once, when the key is created; stores keep only its
//! SHA-256 ([`TokenHash`]). Keys live in the store, so every instance of the
//! service sees the same keys, their revocation and their last use.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::account_tokens::TokenHash;
use crate::errors::StoreError;
use crate::ids::OperatorKeyId;
use crate::values::ValueError;

/// An operator key's name: how operators tell keys apart, and what the
/// audit log records as the actor of an operator action.
///
/// Rules (those of a URL slug): 2 to 64 characters; lowercase ASCII
/// letters, digits and hyphens; starts and ends with a letter or digit;
/// no two hyphens in a row. Names are unique among all keys, revoked ones
/// included, so an audit entry always names one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorKeyName(String);

impl OperatorKeyName {
    /// Smallest accepted length, in characters.
    pub const MIN_LEN: usize = 2;
    /// Largest accepted length, in characters.
    pub const MAX_LEN: usize = 64;

    /// Parses a raw name (see the type's rules); surrounding whitespace is
    /// not accepted.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ValueError::Length {
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
            });
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ValueError::Format(
                "may contain only lowercase ASCII letters, digits and hyphens",
            ));
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(ValueError::Format(
                "must start and end with a letter or digit",
            ));
        }
        if raw.contains("--") {
            return Err(ValueError::Format("must not contain two hyphens in a row"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperatorKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an operator key may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperatorScope {
    /// Read-only routes (`GET`); the default (least privilege).
    #[default]
    Read,
    /// Every operator route, including key management.
    Write,
}

impl OperatorScope {
    /// Both scopes.
    pub const ALL: [Self; 2] = [Self::Read, Self::Write];

    /// The stored and displayed name: `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// The scope with this name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == raw)
    }

    /// Whether a key of this scope may do what needs `required`: `write`
    /// covers `read`, `read` covers only `read`.
    pub fn allows(self, required: Self) -> bool {
        self >= required
    }
}

impl fmt::Display for OperatorScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often the last use of a key is written at most: once per minute
/// (issue #17 asks for a cheap record; a minute is precise enough to tell an
/// unused key from one in use).
pub const LAST_USE_RESOLUTION: Duration = Duration::from_secs(60);

/// Whether a use at `now` should be written as the key's last use, given
/// the one stored: when none is stored, or the stored one is
/// [`LAST_USE_RESOLUTION`] or more before `now`.
pub fn last_use_due(last_used_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let resolution = TimeDelta::from_std(LAST_USE_RESOLUTION).unwrap_or(TimeDelta::MAX);
    last_used_at.is_none_or(|last| now.signed_duration_since(last) >= resolution)
}

/// A stored operator key. `Debug` never shows the hash ([`TokenHash`]
/// redacts itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorKey {
    /// Time-ordered id.
    pub id: OperatorKeyId,
    /// Unique name.
    pub name: OperatorKeyName,
    /// What it may do.
    pub scope: OperatorScope,
    /// SHA-256 of the key text.
    pub hash: TokenHash,
    /// When it was created (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (written at most once per
    /// [`LAST_USE_RESOLUTION`]); `None`: never used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; `None` while not revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl OperatorKey {
    /// A new key created at `now` (truncated to the millisecond), expiring
    /// `expires_in` later if given.
    pub fn create(
        name: OperatorKeyName,
        scope: OperatorScope,
        hash: TokenHash,
        now: DateTime<Utc>,
        expires_in: Option<Duration>,
    ) -> Self {
        let created_at = crate::clock::to_millis(now);
        let expires_at = expires_in.map(|ttl| {
            crate::clock::to_millis(
                created_at
                    .checked_add_signed(TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            )
        });
        Self {
            id: OperatorKeyId::new(),
            name,
            scope,
            hash,
            created_at,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        }
    }

    /// The rule of [`OperatorKeyStore::operator_key_by_hash`]: not revoked
    /// and, if it expires, `now < expires_at`.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| now < expires)
    }
}

/// Why an operator key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateOperatorKeyError {
    /// A key (revoked or not) has this name; nothing was stored.
    #[error("an operator key with this name exists")]
    NameTaken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operator keys port.
///
/// Rules every implementation MUST follow:
/// - Names are unique among all stored keys, revoked ones included: of two
///   creations racing for one name exactly one wins, the other gets
///   [`CreateOperatorKeyError::NameTaken`] and stores nothing. Hashes are
///   unique too (256 random bits): a taken hash fails with a store error.
/// - Keys are never deleted: a revoked key stays listed with its
///   `revoked_at`, and its name stays taken.
/// - Timestamps have millisecond precision (read back equal).
#[async_trait]
pub trait OperatorKeyStore: Send + Sync + 'static {
    /// Stores a new key.
    async fn create_operator_key(&self, key: OperatorKey) -> Result<(), CreateOperatorKeyError>;

    /// Every key, revoked ones included, oldest first.
    async fn operator_keys(&self) -> Result<Vec<OperatorKey>, StoreError>;

    /// Revokes the key named `name` at `at` and answers it; a key revoked
    /// before keeps its first `revoked_at`. `None` when no key has the name.
    async fn revoke_operator_key(
        &self,
        name: &OperatorKeyName,
        at: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError>;

    /// The key with this hash, only if it is usable at `now`
    /// ([`OperatorKey::is_usable`]: not revoked, not expired); `None`
    /// otherwise, as for an unknown hash. Revocation takes effect for the
    /// next lookup, on every instance.
    async fn operator_key_by_hash(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError>;

    /// Sets the key's `last_used_at` to `at`, unless it is already `at` or
    /// later (uses recorded out of order never move it back). An unknown id
    /// changes nothing. Callers decide when to call it with
    /// [`last_use_due`].
    async fn record_operator_key_use(
        &self,
        id: OperatorKeyId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_slugs() {
        for good in ["ci", "deploy-bot", "a1", "ops-2026-01"] {
            assert_eq!(OperatorKeyName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "", "a", "-ci", "ci-", "c--i", "CI", "ci bot", "ci_bot", " ci", "ci/x", "ké",
        ] {
            assert!(OperatorKeyName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(OperatorKeyName::parse(&"a".repeat(64)).is_ok());
        assert!(OperatorKeyName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn write_covers_read_but_not_the_reverse() {
        assert!(OperatorScope::Write.allows(OperatorScope::Read));
        assert!(OperatorScope::Write.allows(OperatorScope::Write));
        assert!(OperatorScope::Read.allows(OperatorScope::Read));
        assert!(!OperatorScope::Read.allows(OperatorScope::Write));
        for scope in OperatorScope::ALL {
            assert_eq!(OperatorScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(OperatorScope::parse("admin"), None);
    }

    #[test]
    fn last_use_is_written_at_most_once_a_minute() {
        let now = crate::clock::now_millis();
        assert!(last_use_due(None, now));
        assert!(!last_use_due(Some(now), now));
        assert!(!last_use_due(Some(now - TimeDelta::seconds(59)), now));
        assert!(last_use_due(Some(now - TimeDelta::seconds(60)), now));
        // A clock that went back does not write.
        assert!(!last_use_due(Some(now + TimeDelta::seconds(5)), now));
    }

    #[test]
    fn revoked_and_expired_keys_are_unusable() {
        let now = crate::clock::now_millis();
        let name = OperatorKeyName::parse("ci").unwrap();
        let hash = TokenHash::from_hex("00".repeat(32));
        let key = OperatorKey::create(
            name,
            OperatorScope::Read,
            hash,
            now,
            Some(Duration::from_secs(10)),
        );
        assert!(key.is_usable(now));
        assert!(!key.is_usable(now + TimeDelta::seconds(10)));
        let forever = OperatorKey {
            expires_at: None,
            ..key.clone()
        };
        assert!(forever.is_usable(now + TimeDelta::days(10_000)));
        let revoked = OperatorKey {
            revoked_at: Some(now),
            ..forever
        };
        assert!(!revoked.is_usable(now));
        assert!(!format!("{key:?}").contains(&"00".repeat(32)));
    }
}
