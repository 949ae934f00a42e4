//! The [`SigningKeyStore`] part of [`MongoStore`]: the whole key set is one
//! document, `signing_keys: {_id: "signing_keys", version, keys: [...]}`,
//! so a load always sees one version and a replace is one conditional
//! single-document write, which MongoDB applies atomically:
//!
//! - from version 0 (nothing stored), an insert: of racing first inserts
//!   the unique `_id` lets one through and the others get a duplicate key
//!   error, a conflict;
//! - from version `n`, a `replaceOne` filtered on `{_id, version: n}`: if
//!   another instance replaced the set meanwhile, nothing matches, a
//!   conflict.
//!
//! Each key is `{kid, alg, state, created_ms, activated_ms?, retired_ms?,
//! public: {kty, crv?, x?, y?, n?, e?}, nonce, sealed}`: times as Int64
//! milliseconds (exact on every wire-compatible server), the nonce and the
//! sealed private key as base64 text (standard alphabet, padded): text
//! survives every wire-compatible server and tool unchanged, where binary
//! inside a replaced document does not (the nx-27017 test stand-in refuses
//! it; real MongoDB would store it).

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mongodb::bson::doc;
use mongodb::Collection;
use orgsvc_domain::{
    KeyState, PublicKeyParameters, ReplaceKeySetError, SealedPrivateKey, SigningAlgorithm,
    SigningKey, SigningKeyStore, StoreError, VersionedKeySet,
};
use serde::{Deserialize, Serialize};

use crate::errors::{is_duplicate_key, store_error};
use crate::store::MongoStore;

/// The collection holding the key set document.
pub(crate) const SIGNING_KEYS: &str = "signing_keys";

/// The `_id` of the one document.
const KEY_SET_ID: &str = "signing_keys";

/// The key set document.
#[derive(Debug, Serialize, Deserialize)]
struct KeySetDoc {
    #[serde(rename = "_id")]
    id: String,
    version: i64,
    keys: Vec<KeyDoc>,
}

/// One key of the set.
#[derive(Debug, Serialize, Deserialize)]
struct KeyDoc {
    kid: String,
    alg: String,
    state: String,
    created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activated_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_ms: Option<i64>,
    public: PublicKeyParameters,
    nonce: String,
    sealed: String,
}

fn bytes(field: &str, text: &str) -> Result<Vec<u8>, StoreError> {
    STANDARD
        .decode(text)
        .map_err(|e| store_error(format!("corrupt signing key: {field} is not base64"), e))
}

fn timestamp(millis: i64) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        StoreError::msg(format!(
            "corrupt signing key: timestamp {millis} is out of range"
        ))
    })
}

impl KeyDoc {
    fn from_key(key: &SigningKey) -> Self {
        Self {
            kid: key.kid.clone(),
            alg: key.algorithm.as_str().to_owned(),
            state: key.state.as_str().to_owned(),
            created_ms: key.created_at.timestamp_millis(),
            activated_ms: key.activated_at.map(|at| at.timestamp_millis()),
            retired_ms: key.retired_at.map(|at| at.timestamp_millis()),
            public: key.public.clone(),
            nonce: STANDARD.encode(&key.private_key.nonce),
            sealed: STANDARD.encode(&key.private_key.ciphertext),
        }
    }

    fn into_key(self) -> Result<SigningKey, StoreError> {
        let algorithm = SigningAlgorithm::parse(&self.alg).ok_or_else(|| {
            StoreError::msg(format!(
                "corrupt signing key: unknown algorithm {:?}",
                self.alg
            ))
        })?;
        let state = KeyState::parse(&self.state).ok_or_else(|| {
            StoreError::msg(format!(
                "corrupt signing key: unknown state {:?}",
                self.state
            ))
        })?;
        Ok(SigningKey {
            kid: self.kid,
            algorithm,
            state,
            created_at: timestamp(self.created_ms)?,
            activated_at: self.activated_ms.map(timestamp).transpose()?,
            retired_at: self.retired_ms.map(timestamp).transpose()?,
            public: self.public,
            private_key: SealedPrivateKey {
                nonce: bytes("nonce", &self.nonce)?,
                ciphertext: bytes("sealed", &self.sealed)?,
            },
        })
    }
}

impl MongoStore {
    fn signing_keys(&self) -> Collection<KeySetDoc> {
        self.db().collection(SIGNING_KEYS)
    }
}

#[async_trait]
impl SigningKeyStore for MongoStore {
    async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError> {
        let found = self
            .signing_keys()
            .find_one(doc! { "_id": KEY_SET_ID })
            .await
            .map_err(|e| store_error("loading the signing keys", e))?;
        let Some(set) = found else {
            return Ok(VersionedKeySet::default());
        };
        let version = u64::try_from(set.version)
            .map_err(|e| store_error("corrupt signing key set: the version is negative", e))?;
        let keys = set
            .keys
            .into_iter()
            .map(KeyDoc::into_key)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VersionedKeySet { version, keys })
    }

    async fn replace_signing_keys(
        &self,
        expected_version: u64,
        keys: Vec<SigningKey>,
    ) -> Result<u64, ReplaceKeySetError> {
        let new_version = expected_version
            .checked_add(1)
            .filter(|&v| i64::try_from(v).is_ok())
            .ok_or_else(|| StoreError::msg("the signing key set's version overflowed"))?;
        let document = KeySetDoc {
            id: KEY_SET_ID.to_owned(),
            version: i64::try_from(new_version).unwrap_or(i64::MAX),
            keys: keys.iter().map(KeyDoc::from_key).collect(),
        };
        if expected_version == 0 {
            return match self.signing_keys().insert_one(document).await {
                Ok(_) => Ok(new_version),
                Err(e) if is_duplicate_key(&e) => Err(ReplaceKeySetError::VersionConflict),
                Err(e) => Err(store_error("storing the first signing keys", e).into()),
            };
        }
        let expected = i64::try_from(expected_version).unwrap_or(i64::MAX);
        let result = self
            .signing_keys()
            .replace_one(doc! { "_id": KEY_SET_ID, "version": expected }, document)
            .await
            .map_err(|e| store_error("replacing the signing keys", e))?;
        if result.matched_count == 1 {
            Ok(new_version)
        } else {
            Err(ReplaceKeySetError::VersionConflict)
        }
    }
}
