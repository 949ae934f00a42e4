//! Refresh tokens, stored by hash, and revoked token families.
//!
//! A use is one immediate transaction on the writer connection: it reads the
//! token, decides, and marks it used before any other use can read it, so of
//! concurrent uses exactly one finds it unused. A revocation is recorded in
//! `revoked_families` rather than on the tokens, so it also covers a token of
//! the family saved afterwards (a rotation racing a logout).

use chrono::{DateTime, Utc};
use orgsvc_domain::{RefreshToken, RefreshTokenHash, RefreshTokenUse, SessionFamilyId, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::connection::{begin, commit};
use crate::records::{corrupt, parse_id};
use crate::rows;

/// Stores a newly issued token, unused.
pub(crate) fn save(connection: &Connection, token: &RefreshToken) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO refresh_tokens (hash, family, admin_id, organization_id, token_version, \
             issued_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                token.hash.as_str(),
                token.family.to_string(),
                token.admin_id.to_string(),
                token.organization_id.to_string(),
                token.token_version,
                rows::millis(token.issued_at),
                rows::millis(token.expires_at),
            ])
        })
        .map_err(|e| StoreError::new("saving a refresh token", e))?;
    Ok(())
}

/// Uses up the token with this hash: `Reused` if it was used before,
/// `Invalid` if unknown, expired at `now` or of a revoked family, otherwise
/// marks it used and answers `Fresh`.
pub(crate) fn use_token(
    connection: &mut Connection,
    hash: &RefreshTokenHash,
    now: DateTime<Utc>,
) -> Result<RefreshTokenUse, StoreError> {
    const WHAT: &str = "using a refresh token";
    let transaction = begin(connection, WHAT)?;
    let found = transaction
        .prepare_cached(
            "SELECT t.hash, t.family, t.admin_id, t.organization_id, t.token_version, \
             t.issued_at, t.expires_at, t.used_at IS NOT NULL, \
             EXISTS (SELECT 1 FROM revoked_families AS r WHERE r.family = t.family) \
             FROM refresh_tokens AS t WHERE t.hash = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([hash.as_str()], StoredToken::read)
                .optional()
        })
        .map_err(|e| StoreError::new("reading a refresh token", e))?;
    let Some(stored) = found else {
        return Ok(RefreshTokenUse::Invalid);
    };
    let (used, revoked) = (stored.used, stored.revoked);
    let token = stored.into_token()?;
    let outcome = if used && revoked {
        RefreshTokenUse::Ended(token)
    } else if used {
        RefreshTokenUse::Reused(token)
    } else if revoked || now >= token.expires_at {
        RefreshTokenUse::Invalid
    } else {
        transaction
            .execute(
                "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1",
                params![hash.as_str(), rows::millis(now)],
            )
            .map_err(|e| StoreError::new("marking a refresh token used", e))?;
        RefreshTokenUse::Fresh(token)
    };
    commit(transaction, WHAT)?;
    Ok(outcome)
}

/// Records the family as revoked (idempotent: the first revocation time
/// stays).
pub(crate) fn revoke_family(
    connection: &Connection,
    family: SessionFamilyId,
) -> Result<(), StoreError> {
    connection
        .execute(
            "INSERT INTO revoked_families (family, revoked_at) VALUES (?1, ?2) \
             ON CONFLICT (family) DO NOTHING",
            params![family.to_string(), rows::millis(rows::now())],
        )
        .map_err(|e| StoreError::new("revoking a refresh token family", e))?;
    Ok(())
}

/// Deletes the tokens that expired before `now`, then the revoked families
/// left without a token; returns how many rows went. A family revoked after
/// `now` (while the purge was starting) is kept: a token of it may still be
/// on its way to be saved.
pub(crate) fn purge(connection: &Connection, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let tokens = connection
        .execute(
            "DELETE FROM refresh_tokens WHERE expires_at < ?1",
            [rows::millis(now)],
        )
        .map_err(|e| StoreError::new("purging expired refresh tokens", e))?;
    let families = connection
        .execute(
            "DELETE FROM revoked_families WHERE revoked_at <= ?1 AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens AS t WHERE t.family = revoked_families.family)",
            [rows::millis(now)],
        )
        .map_err(|e| StoreError::new("purging revoked refresh token families", e))?;
    Ok(u64::try_from(tokens.saturating_add(families)).unwrap_or(u64::MAX))
}

/// A `refresh_tokens` row with what its use depends on, as read.
struct StoredToken {
    hash: String,
    family: String,
    admin_id: String,
    organization_id: String,
    token_version: i64,
    issued_at: i64,
    expires_at: i64,
    used: bool,
    revoked: bool,
}

impl StoredToken {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            hash: row.get(0)?,
            family: row.get(1)?,
            admin_id: row.get(2)?,
            organization_id: row.get(3)?,
            token_version: row.get(4)?,
            issued_at: row.get(5)?,
            expires_at: row.get(6)?,
            used: row.get(7)?,
            revoked: row.get(8)?,
        })
    }

    fn into_token(self) -> Result<RefreshToken, StoreError> {
        Ok(RefreshToken {
            hash: RefreshTokenHash::from_hex(self.hash),
            family: parse_id(&self.family, "refresh token family")?,
            admin_id: parse_id(&self.admin_id, "refresh token admin id")?,
            organization_id: parse_id(&self.organization_id, "refresh token organization id")?,
            token_version: u32::try_from(self.token_version)
                .map_err(|e| corrupt("refresh token version", e))?,
            issued_at: rows::timestamp(self.issued_at)?,
            expires_at: rows::timestamp(self.expires_at)?,
        })
    }
}
