//! The [`OperatorKeyStore`] part of [`SqliteStore`]: the `operator_keys`
//! table (migration 0009). Writes run on the writer connection, one
//! statement each, so each is atomic; the UNIQUE constraint on `name`
//! decides racing creations of one name.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgsvc_domain::{
    CreateOperatorKeyError, OperatorKey, OperatorKeyId, OperatorKeyName, OperatorKeyStore,
    OperatorScope, StoreError, TokenHash,
};
use rusqlite::{ffi, params, Connection, OptionalExtension, Row};

use crate::records::{corrupt, parse_id};
use crate::{rows, SqliteStore};

/// The columns [`KeyRow::read`] expects, in order.
const KEY_COLUMNS: &str = "id, name, scope, hash, created_at, expires_at, last_used_at, revoked_at";

/// Whether `error` is the UNIQUE constraint on `operator_keys.name`.
fn name_taken(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, Some(message))
            if failure.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                && message == "UNIQUE constraint failed: operator_keys.name"
    )
}

fn create(connection: &Connection, key: &OperatorKey) -> Result<(), CreateOperatorKeyError> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO operator_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                key.id.to_string(),
                key.name.as_str(),
                key.scope.as_str(),
                key.hash.as_str(),
                rows::millis(key.created_at),
                key.expires_at.map(rows::millis),
                key.last_used_at.map(rows::millis),
                key.revoked_at.map(rows::millis),
            ])
        })
        .map_err(|e| {
            if name_taken(&e) {
                CreateOperatorKeyError::NameTaken
            } else {
                StoreError::new("creating an operator key", e).into()
            }
        })?;
    Ok(())
}

fn list(connection: &Connection) -> Result<Vec<OperatorKey>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM operator_keys ORDER BY id"
        ))
        .and_then(|mut statement| {
            statement
                .query_map([], KeyRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| StoreError::new("listing operator keys", e))?
        .into_iter()
        .map(KeyRow::into_key)
        .collect()
}

fn revoke(
    connection: &Connection,
    name: &OperatorKeyName,
    at: DateTime<Utc>,
) -> Result<Option<OperatorKey>, StoreError> {
    connection
        .prepare_cached(&format!(
            "UPDATE operator_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE name = ?1 \
             RETURNING {KEY_COLUMNS}"
        ))
        .and_then(|mut statement| {
            statement
                .query_row(params![name.as_str(), rows::millis(at)], KeyRow::read)
                .optional()
        })
        .map_err(|e| StoreError::new("revoking an operator key", e))?
        .map(KeyRow::into_key)
        .transpose()
}

fn by_hash(
    connection: &Connection,
    hash: &TokenHash,
    now: DateTime<Utc>,
) -> Result<Option<OperatorKey>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM operator_keys WHERE hash = ?1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?2)"
        ))
        .and_then(|mut statement| {
            statement
                .query_row(params![hash.as_str(), rows::millis(now)], KeyRow::read)
                .optional()
        })
        .map_err(|e| StoreError::new("looking up an operator key", e))?
        .map(KeyRow::into_key)
        .transpose()
}

fn record_use(
    connection: &Connection,
    id: OperatorKeyId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE operator_keys SET last_used_at = ?2 \
             WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        )
        .and_then(|mut statement| statement.execute(params![id.to_string(), rows::millis(at)]))
        .map_err(|e| StoreError::new("recording an operator key's use", e))?;
    Ok(())
}

/// An `operator_keys` row, as read.
struct KeyRow {
    id: String,
    name: String,
    scope: String,
    hash: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl KeyRow {
    /// Reads a row selected with [`KEY_COLUMNS`].
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            scope: row.get(2)?,
            hash: row.get(3)?,
            created_at: row.get(4)?,
            expires_at: row.get(5)?,
            last_used_at: row.get(6)?,
            revoked_at: row.get(7)?,
        })
    }

    /// The key this row stores.
    fn into_key(self) -> Result<OperatorKey, StoreError> {
        Ok(OperatorKey {
            id: parse_id(&self.id, "operator key id")?,
            name: OperatorKeyName::parse(&self.name)
                .map_err(|e| corrupt("operator key name", e))?,
            scope: OperatorScope::parse(&self.scope).ok_or_else(|| {
                StoreError::msg(format!(
                    "corrupt record: invalid stored operator key scope {:?}",
                    self.scope
                ))
            })?,
            hash: TokenHash::from_hex(self.hash),
            created_at: rows::timestamp(self.created_at)?,
            expires_at: self.expires_at.map(rows::timestamp).transpose()?,
            last_used_at: self.last_used_at.map(rows::timestamp).transpose()?,
            revoked_at: self.revoked_at.map(rows::timestamp).transpose()?,
        })
    }
}

#[async_trait]
impl OperatorKeyStore for SqliteStore {
    async fn create_operator_key(&self, key: OperatorKey) -> Result<(), CreateOperatorKeyError> {
        self.connections()
            .write(move |connection| create(connection, &key))
            .await
    }

    async fn operator_keys(&self) -> Result<Vec<OperatorKey>, StoreError> {
        self.connections().read(list).await
    }

    async fn revoke_operator_key(
        &self,
        name: &OperatorKeyName,
        at: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        let name = name.clone();
        self.connections()
            .write(move |connection| revoke(connection, &name, at))
            .await
    }

    async fn operator_key_by_hash(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorKey>, StoreError> {
        let hash = hash.clone();
        self.connections()
            .read(move |connection| by_hash(connection, &hash, now))
            .await
    }

    async fn record_operator_key_use(
        &self,
        id: OperatorKeyId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connections()
            .write(move |connection| record_use(connection, id, at))
            .await
    }
}
