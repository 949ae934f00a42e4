//! Refresh tokens: stored by hash, used up atomically, revoked by family.
//!
//! - `refresh_tokens`: `{_id: <SHA-256 hex of the token>, family, admin_id,
//!   organization_id, token_version, issued_at, expires_at, used: 0 | 1}`.
//! - `revoked_session_families`: `{_id: <family id>, revoked_at}`. A family
//!   is revoked by the existence of its record, which therefore also covers
//!   tokens saved after the revocation (a rotation racing a logout).
//!
//! Using a token reads it (unknown → `Invalid`, used → `Reused`, expired or
//! of a revoked family → `Invalid`), then uses it up with one conditional
//! update (`{_id, used: 0}` → `used: 1`): of racing callers exactly one
//! modifies the record and the others answer `Reused`. The winner then looks
//! at its family's revocation again: a revocation that completed before that
//! look makes the answer `Invalid` (the token stays used up), so no token is
//! `Fresh` once `revoke_family` has returned.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, Document};
use mongodb::Collection;
use orgsvc_domain::{RefreshToken, RefreshTokenHash, RefreshTokenUse, SessionFamilyId, StoreError};
use serde::{Deserialize, Serialize};

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::records::{parse_id, to_bson_time, to_chrono};
use crate::store::MongoStore;

/// Refresh tokens, one record each, keyed by hash.
pub(crate) const REFRESH_TOKENS: &str = "refresh_tokens";
/// Revoked session families, one record each, keyed by family id.
pub(crate) const REVOKED_FAMILIES: &str = "revoked_session_families";

/// A refresh token record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TokenDoc {
    /// The token's hash.
    #[serde(rename = "_id")]
    hash: String,
    family: String,
    admin_id: String,
    organization_id: String,
    token_version: i64,
    issued_at: bson::DateTime,
    expires_at: bson::DateTime,
    /// 1 once used up (an integer: booleans are not stored alike by every
    /// MongoDB-compatible server).
    used: i32,
}

impl TokenDoc {
    fn new(token: &RefreshToken) -> Self {
        Self {
            hash: token.hash.as_str().to_owned(),
            family: token.family.to_string(),
            admin_id: token.admin_id.to_string(),
            organization_id: token.organization_id.to_string(),
            token_version: i64::from(token.token_version),
            issued_at: to_bson_time(token.issued_at),
            expires_at: to_bson_time(token.expires_at),
            used: 0,
        }
    }

    fn to_token(&self) -> Result<RefreshToken, StoreError> {
        Ok(RefreshToken {
            hash: RefreshTokenHash::from_hex(self.hash.clone()),
            family: parse_id(&self.family, "session family")?,
            admin_id: parse_id(&self.admin_id, "admin")?,
            organization_id: parse_id(&self.organization_id, "organization")?,
            token_version: u32::try_from(self.token_version).map_err(|e| {
                store_error("a stored refresh token has an invalid token_version", e)
            })?,
            issued_at: to_chrono(self.issued_at)?,
            expires_at: to_chrono(self.expires_at)?,
        })
    }
}

/// A revoked family's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RevokedFamilyDoc {
    #[serde(rename = "_id")]
    family: String,
    revoked_at: bson::DateTime,
}

impl MongoStore {
    fn refresh_tokens(&self) -> Collection<TokenDoc> {
        self.db().collection(REFRESH_TOKENS)
    }

    fn revoked_families(&self) -> Collection<RevokedFamilyDoc> {
        self.db().collection(REVOKED_FAMILIES)
    }

    /// Stores a new token; saving the same token again changes nothing.
    pub(crate) async fn save_refresh_token(&self, token: RefreshToken) -> Result<(), StoreError> {
        match self
            .refresh_tokens()
            .insert_one(TokenDoc::new(&token))
            .await
        {
            Ok(_) => Ok(()),
            // Same hash: the same token (SHA-256 of random tokens), saved
            // by a retry.
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(store_error("saving a refresh token", e)),
        }
    }

    /// Uses the token up (see the module documentation).
    pub(crate) async fn use_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError> {
        let Some(stored) = self
            .refresh_tokens()
            .find_one(doc! { "_id": hash.as_str() })
            .await
            .map_err(|e| store_error("reading a refresh token", e))?
        else {
            return Ok(RefreshTokenUse::Invalid);
        };
        let token = stored.to_token()?;
        if stored.used != 0 {
            return self.replayed(token).await;
        }
        if now >= token.expires_at || self.family_is_revoked(&stored.family).await? {
            return Ok(RefreshTokenUse::Invalid);
        }
        let taken = self
            .refresh_tokens()
            .update_one(
                doc! { "_id": &stored.hash, "used": 0 },
                doc! { "$set": { "used": 1 } },
            )
            .await
            .map_err(|e| store_error("using up a refresh token", e))?;
        if taken.modified_count != 1 {
            return self.replayed(token).await;
        }
        if self.family_is_revoked(&stored.family).await? {
            return Ok(RefreshTokenUse::Invalid);
        }
        Ok(RefreshTokenUse::Fresh(token))
    }

    /// A used `token` presented again: `Ended` when its family is revoked,
    /// else `Reused`.
    async fn replayed(&self, token: RefreshToken) -> Result<RefreshTokenUse, StoreError> {
        if self.family_is_revoked(&token.family.to_string()).await? {
            Ok(RefreshTokenUse::Ended(token))
        } else {
            Ok(RefreshTokenUse::Reused(token))
        }
    }

    /// Revokes the family, present and future tokens; idempotent.
    pub(crate) async fn revoke_family(&self, family: SessionFamilyId) -> Result<(), StoreError> {
        let record = RevokedFamilyDoc {
            family: family.to_string(),
            revoked_at: crate::records::now(),
        };
        match self.revoked_families().insert_one(record).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(store_error("revoking a session family", e)),
        }
    }

    async fn family_is_revoked(&self, family: &str) -> Result<bool, StoreError> {
        Ok(self
            .revoked_families()
            .find_one(doc! { "_id": family })
            .await
            .map_err(|e| store_error("reading a session family's revocation", e))?
            .is_some())
    }

    /// Deletes the tokens that expired before `now`, then the revocations of
    /// families with no token left; returns how many records went.
    ///
    /// A family keeps a token as long as one of its tokens can still be
    /// used (tokens are deleted only once expired), so a rotation that saves
    /// a new token of a revoked family always finds the revocation kept.
    pub(crate) async fn purge_refresh_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let tokens = self
            .refresh_tokens()
            .delete_many(doc! { "expires_at": { "$lt": to_bson_time(now) } })
            .await
            .map_err(|e| store_error("purging expired refresh tokens", e))?
            .deleted_count;
        let revoked: Vec<Document> = self
            .db()
            .collection::<Document>(REVOKED_FAMILIES)
            .find(doc! {})
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| store_error("listing revoked session families", e))?
            .try_collect()
            .await
            .map_err(|e| store_error("listing revoked session families", e))?;
        let mut families = 0;
        for record in revoked {
            let Ok(family) = record.get_str("_id") else {
                continue;
            };
            let left = self
                .refresh_tokens()
                .count_documents(doc! { "family": family })
                .limit(1)
                .await
                .map_err(|e| store_error("counting a session family's tokens", e))?;
            if left == 0 {
                families += self
                    .revoked_families()
                    .delete_one(doc! { "_id": family })
                    .await
                    .map_err(|e| store_error("purging a session family's revocation", e))?
                    .deleted_count;
            }
        }
        Ok(tokens + families)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{from_document, to_document, Bson};
    use orgsvc_domain::{AdminId, OrganizationId};

    #[test]
    fn token_records_round_trip_with_dates_and_an_integer_flag() {
        let issued_at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let token = RefreshToken {
            hash: RefreshTokenHash::from_hex("ab".repeat(32)),
            family: SessionFamilyId::new(),
            admin_id: AdminId::new(),
            organization_id: OrganizationId::new(),
            token_version: 7,
            issued_at,
            expires_at: issued_at + chrono::TimeDelta::days(30),
        };
        let stored = to_document(&TokenDoc::new(&token)).unwrap();
        assert_eq!(stored.get("_id"), Some(&Bson::String("ab".repeat(32))));
        assert!(matches!(stored.get("expires_at"), Some(Bson::DateTime(_))));
        assert_eq!(stored.get("used"), Some(&Bson::Int32(0)));
        let read: TokenDoc = from_document(stored).unwrap();
        assert_eq!(read.to_token().unwrap(), token);
    }
}
