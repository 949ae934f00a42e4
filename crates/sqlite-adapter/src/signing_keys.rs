//! The [`SigningKeyStore`] part of [`SqliteStore`]: the tables
//! `signing_key_set` (the version) and `signing_keys` (one row per key).
//!
//! A replace is one immediate transaction on the writer connection: it
//! reads the version, refuses a stale one, rewrites every key row and the
//! version, and commits; so of racing replaces from one version exactly one
//! wins. A load reads the version and the keys in one read transaction, so
//! it never mixes two versions.

use async_trait::async_trait;
use orgsvc_domain::{
    KeyState, PublicKeyParameters, ReplaceKeySetError, SealedPrivateKey, SigningAlgorithm,
    SigningKey, SigningKeyStore, StoreError, VersionedKeySet,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::connection::{begin, begin_read, commit};
use crate::records::corrupt;
use crate::{rows, SqliteStore};

/// The columns [`KeyRow::read`] expects, in order.
const KEY_COLUMNS: &str = "kid, algorithm, state, created_at, activated_at, retired_at, \
                           public_jwk, private_key_nonce, private_key_sealed";

/// The stored version; 0 when nothing was stored yet.
fn version(connection: &Connection) -> Result<u64, StoreError> {
    let stored: Option<i64> = connection
        .prepare_cached("SELECT version FROM signing_key_set WHERE singleton = 1")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)).optional())
        .map_err(|e| StoreError::new("reading the signing key set's version", e))?;
    match stored {
        None => Ok(0),
        Some(raw) => u64::try_from(raw).map_err(|e| corrupt("signing key set version", e)),
    }
}

/// The key set, in one snapshot.
pub(crate) fn load(connection: &Connection) -> Result<VersionedKeySet, StoreError> {
    const WHAT: &str = "loading the signing keys";
    let transaction = begin_read(connection, WHAT)?;
    let version = version(&transaction)?;
    let rows = transaction
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY position"
        ))
        .and_then(|mut statement| {
            statement
                .query_map([], KeyRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| StoreError::new(WHAT, e))?;
    drop(transaction);
    let keys = rows
        .into_iter()
        .map(KeyRow::into_key)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VersionedKeySet { version, keys })
}

/// Replaces the set if its version is still `expected`; the new version.
pub(crate) fn replace(
    connection: &mut Connection,
    expected: u64,
    keys: &[SigningKey],
) -> Result<u64, ReplaceKeySetError> {
    const WHAT: &str = "replacing the signing keys";
    let transaction = begin(connection, WHAT)?;
    if version(&transaction)? != expected {
        return Err(ReplaceKeySetError::VersionConflict);
    }
    let new_version = expected
        .checked_add(1)
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| StoreError::msg("the signing key set's version overflowed"))?;
    transaction
        .execute("DELETE FROM signing_keys", [])
        .map_err(|e| StoreError::new(WHAT, e))?;
    for (position, key) in keys.iter().enumerate() {
        let public = serde_json::to_string(&key.public)
            .map_err(|e| StoreError::new("encoding a public key", e))?;
        transaction
            .prepare_cached(&format!(
                "INSERT INTO signing_keys (position, {KEY_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))
            .and_then(|mut statement| {
                statement.execute(params![
                    i64::try_from(position).unwrap_or(i64::MAX),
                    key.kid,
                    key.algorithm.as_str(),
                    key.state.as_str(),
                    rows::millis(key.created_at),
                    key.activated_at.map(rows::millis),
                    key.retired_at.map(rows::millis),
                    public,
                    key.private_key.nonce,
                    key.private_key.ciphertext,
                ])
            })
            .map_err(|e| StoreError::new(format!("{WHAT}: storing key {}", key.kid), e))?;
    }
    transaction
        .execute(
            "INSERT INTO signing_key_set (singleton, version) VALUES (1, ?1) \
             ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
            [new_version],
        )
        .map_err(|e| StoreError::new(WHAT, e))?;
    commit(transaction, WHAT)?;
    Ok(expected.saturating_add(1))
}

/// A `signing_keys` row as stored.
struct KeyRow {
    kid: String,
    algorithm: String,
    state: String,
    created_at: i64,
    activated_at: Option<i64>,
    retired_at: Option<i64>,
    public_jwk: String,
    nonce: Vec<u8>,
    sealed: Vec<u8>,
}

impl KeyRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            kid: row.get(0)?,
            algorithm: row.get(1)?,
            state: row.get(2)?,
            created_at: row.get(3)?,
            activated_at: row.get(4)?,
            retired_at: row.get(5)?,
            public_jwk: row.get(6)?,
            nonce: row.get(7)?,
            sealed: row.get(8)?,
        })
    }

    fn into_key(self) -> Result<SigningKey, StoreError> {
        let algorithm = SigningAlgorithm::parse(&self.algorithm).ok_or_else(|| {
            StoreError::msg(format!(
                "corrupt record: unknown signing algorithm {:?}",
                self.algorithm
            ))
        })?;
        let state = KeyState::parse(&self.state).ok_or_else(|| {
            StoreError::msg(format!(
                "corrupt record: unknown signing key state {:?}",
                self.state
            ))
        })?;
        let public: PublicKeyParameters =
            serde_json::from_str(&self.public_jwk).map_err(|e| corrupt("public key", e))?;
        Ok(SigningKey {
            kid: self.kid,
            algorithm,
            state,
            created_at: rows::timestamp(self.created_at)?,
            activated_at: self.activated_at.map(rows::timestamp).transpose()?,
            retired_at: self.retired_at.map(rows::timestamp).transpose()?,
            public,
            private_key: SealedPrivateKey {
                nonce: self.nonce,
                ciphertext: self.sealed,
            },
        })
    }
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError> {
        self.connections().read(load).await
    }

    async fn replace_signing_keys(
        &self,
        expected_version: u64,
        keys: Vec<SigningKey>,
    ) -> Result<u64, ReplaceKeySetError> {
        self.connections()
            .write(move |connection| replace(connection, expected_version, &keys))
            .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::migrations::{self, MIGRATIONS};

    fn key(kid: &str, state: KeyState) -> SigningKey {
        let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_123).unwrap();
        SigningKey {
            kid: kid.into(),
            algorithm: SigningAlgorithm::EdDsa,
            state,
            created_at: at,
            activated_at: (state != KeyState::Next).then_some(at),
            retired_at: (state == KeyState::Retired).then_some(at),
            public: PublicKeyParameters::Okp {
                crv: "Ed25519".into(),
                x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
            },
            private_key: SealedPrivateKey {
                nonce: vec![1; 24],
                ciphertext: vec![0, 2, 0],
            },
        }
    }

    /// The schema itself refuses two active or two next keys (a set that
    /// the domain's rules would never produce), and the failed replace
    /// changes nothing.
    #[test]
    fn the_schema_refuses_two_active_or_two_next_keys() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrations::apply(&mut connection, MIGRATIONS).unwrap();
        let valid = vec![key("a", KeyState::Active)];
        assert_eq!(replace(&mut connection, 0, &valid).unwrap(), 1);
        for broken in [
            vec![key("a", KeyState::Active), key("b", KeyState::Active)],
            vec![
                key("a", KeyState::Active),
                key("b", KeyState::Next),
                key("c", KeyState::Next),
            ],
        ] {
            let result = replace(&mut connection, 1, &broken);
            assert!(
                matches!(result, Err(ReplaceKeySetError::Store(_))),
                "{result:?}"
            );
        }
        let loaded = load(&connection).unwrap();
        assert_eq!((loaded.version, loaded.keys), (1, valid));
    }
}
