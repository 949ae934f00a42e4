//! The [`OperatorKeyStore`] part of [`MongoStore`]: `operator_keys`, one
//! document per key, `{_id: <key id>, name, scope, hash, created_ms,
//! expires_ms, last_used_ms, revoked_ms}` (migration 0010).
//!
//! Times are Int64 milliseconds (exact on every wire-compatible server);
//! absent times are stored as `null` and matched with `{$in: [null]}`,
//! which matches null and missing alike on every server. The unique index
//! on `name` decides racing creations; every write is one single-document
//! operation, which MongoDB applies atomically.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::doc;
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use orgsvc_domain::{
    CreateOperatorKeyError, OperatorKey, OperatorKeyId, OperatorKeyName, OperatorKeyStore,
    OperatorScope, StoreError, TokenHash,
};
use serde::{Deserialize, Serialize};

use crate::errors::{is_duplicate_key, store_error};
use crate::records::parse_id;
use crate::store::MongoStore;

/// The operator keys collection.
pub(crate) const OPERATOR_KEYS: &str = "operator_keys";

/// The unique index on the hash (see migration 0010): a duplicate there is
/// a store error, not a taken name.
const HASH_INDEX: &str = "operator_key_hash";

/// One key.
#[derive(Debug, Serialize, Deserialize)]
struct KeyDoc {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    scope: String,
    hash: String,
    created_ms: i64,
    expires_ms: Option<i64>,
    last_used_ms: Option<i64>,
    revoked_ms: Option<i64>,
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        StoreError::msg(format!(
            "corrupt record: operator key timestamp {millis} is out of range"
        ))
    })
}

impl KeyDoc {
    fn new(key: &OperatorKey) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name.as_str().to_owned(),
            scope: key.scope.as_str().to_owned(),
            hash: key.hash.as_str().to_owned(),
            created_ms: ms(key.created_at),
            expires_ms: key.expires_at.map(ms),
            last_used_ms: key.last_used_at.map(ms),
            revoked_ms: key.revoked_at.map(ms),
        }
    }

    fn into_key(self) -> Result<OperatorKey, StoreError> {
        Ok(OperatorKey {
            id: parse_id(&self.id, "operator key")?,
            name: OperatorKeyName::parse(&self.name).map_err(|e| {
                StoreError::new(
                    format!(
                        "corrupt record: operator key {} has an invalid name",
                        self.id
                    ),
                    e,
                )
            })?,
            scope: OperatorScope::parse(&self.scope).ok_or_else(|| {
                StoreError::msg(format!(
                    "corrupt record: operator key {} has an unknown scope {:?}",
                    self.id, self.scope
                ))
            })?,
            hash: TokenHash::from_hex(self.hash),
            created_at: time(self.created_ms)?,
            expires_at: self.expires_ms.map(time).transpose()?,
            last_used_at: self.last_used_ms.map(time).transpose()?,
            revoked_at: self.revoked_ms.map(time).transpose()?,
        })
    }
}

impl MongoStore {
    fn operator_key_docs(&self) -> Collection<KeyDoc> {
        self.db().collection(OPERATOR_KEYS)
    }
}

#[async_trait]
impl OperatorKeyStore for MongoStore {
    async fn create_operator_key(&self, key: OperatorKey) -> Result<(), CreateOperatorKeyError> {
        match self.operator_key_docs().insert_one(KeyDoc::new(&key)).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) && !e.to_string().contains(HASH_INDEX) => {
                Err(CreateOperatorKeyError::NameTaken)
            }
            Err(e) => Err(store_error("creating an operator key", e).into()),
        }
    }

    async fn operator_keys(&self) -> Result<Vec<OperatorKey>, StoreError> {
        let docs: Vec<KeyDoc> = self
            .operator_key_docs()
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(|e| store_error("listing operator keys", e))?
            .try_collect()
            .await
            .map_err(|e| store_error("listing operator keys", e))?;
        docs.into_iter().map(KeyDoc::into_key).collect()
    }

    async fn revoke_operator_key(
        &self,
        name: &OperatorKeyName,
        at: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        let revoked = self
            .operator_key_docs()
            .find_one_and_update(
                doc! { "name": name.as_str(), "revoked_ms": { "$in": [null] } },
                doc! { "$set": { "revoked_ms": ms(at) } },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| store_error("revoking an operator key", e))?;
        let found = match revoked {
            Some(found) => Some(found),
            // Revoked before, or unknown.
            None => self
                .operator_key_docs()
                .find_one(doc! { "name": name.as_str() })
                .await
                .map_err(|e| store_error("reading an operator key", e))?,
        };
        found.map(KeyDoc::into_key).transpose()
    }

    async fn operator_key_by_hash(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        let found = self
            .operator_key_docs()
            .find_one(doc! { "hash": hash.as_str() })
            .await
            .map_err(|e| store_error("looking up an operator key", e))?;
        // The rule is checked here rather than in the filter: one indexed
        // lookup, and no reliance on how a server compares nulls.
        Ok(found
            .map(KeyDoc::into_key)
            .transpose()?
            .filter(|key| key.is_usable(now)))
    }

    async fn record_operator_key_use(
        &self,
        id: OperatorKeyId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.operator_key_docs()
            .update_one(
                doc! {
                    "_id": id.to_string(),
                    "$or": [
                        { "last_used_ms": { "$in": [null] } },
                        { "last_used_ms": { "$lt": ms(at) } },
                    ],
                },
                doc! { "$set": { "last_used_ms": ms(at) } },
            )
            .await
            .map_err(|e| store_error("recording an operator key's use", e))?;
        Ok(())
    }
}
