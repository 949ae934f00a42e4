//! The [`OutboxStore`] and [`AccountTokenStore`] parts of [`SqliteStore`]:
//! the tables `outbox_messages` and `account_tokens` (migration 0006).
//!
//! Every write is one immediate transaction on the writer connection: an
//! issue inserts the token and its message together (both or neither); a
//! use reads the token and marks it used before any other write can read
//! it, so of racing uses exactly one wins; a claim selects the due,
//! unclaimed messages and claims them in the same transaction, so racing
//! claims never share a message.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgsvc_domain::{
    AccountToken, AccountTokenPurpose, AccountTokenStore, AdminEmail, AdminId, OutboxMessage,
    OutboxMessageId, OutboxStore, StoreError, TokenHash,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::connection::{begin, commit};
use crate::records::{corrupt, parse_id};
use crate::{rows, SqliteStore};

/// The columns [`MessageRow::read`] expects, in order.
const MESSAGE_COLUMNS: &str =
    "id, recipient, subject, text_body, html_body, created_at, attempts, next_attempt_at, sent_at";

/// The columns [`TokenRow::read`] expects, in order.
const TOKEN_COLUMNS: &str = "hash, purpose, admin_id, email, created_at, expires_at, used_at";

fn count(changed: usize) -> u64 {
    u64::try_from(changed).unwrap_or(u64::MAX)
}

/// Inserts the message (unclaimed) within the caller's transaction.
pub(crate) fn insert_message(
    connection: &Connection,
    message: &OutboxMessage,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO outbox_messages ({MESSAGE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                message.id.to_string(),
                message.to.as_str(),
                message.subject,
                message.text_body,
                message.html_body,
                rows::millis(message.created_at),
                message.attempts,
                rows::millis(message.next_attempt_at),
                message.sent_at.map(rows::millis),
            ])
        })
        .map_err(|e| StoreError::new("storing an outbox message", e))?;
    Ok(())
}

/// Stores the token and its message in one transaction.
fn issue(
    connection: &mut Connection,
    token: &AccountToken,
    message: &OutboxMessage,
) -> Result<(), StoreError> {
    const WHAT: &str = "issuing an account token";
    let transaction = begin(connection, WHAT)?;
    insert_message(&transaction, message)?;
    transaction
        .prepare_cached(&format!(
            "INSERT INTO account_tokens ({TOKEN_COLUMNS}, message_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                token.hash.as_str(),
                token.purpose.as_str(),
                token.admin_id.to_string(),
                token.email.as_str(),
                rows::millis(token.created_at),
                rows::millis(token.expires_at),
                token.used_at.map(rows::millis),
                message.id.to_string(),
            ])
        })
        .map_err(|e| StoreError::new("storing an account token", e))?;
    commit(transaction, WHAT)
}

/// Uses the token up if [`AccountToken::is_usable`] at `now`.
fn use_token(
    connection: &mut Connection,
    hash: &TokenHash,
    purpose: AccountTokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<AccountToken>, StoreError> {
    const WHAT: &str = "using an account token";
    let transaction = begin(connection, WHAT)?;
    let found = transaction
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM account_tokens WHERE hash = ?1"
        ))
        .and_then(|mut statement| {
            statement
                .query_row([hash.as_str()], TokenRow::read)
                .optional()
        })
        .map_err(|e| StoreError::new("reading an account token", e))?;
    let Some(row) = found else {
        return Ok(None);
    };
    let mut token = row.into_token()?;
    if !token.is_usable(purpose, now) {
        return Ok(None);
    }
    transaction
        .execute(
            "UPDATE account_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL",
            params![hash.as_str(), rows::millis(now)],
        )
        .map_err(|e| StoreError::new("marking an account token used", e))?;
    commit(transaction, WHAT)?;
    token.used_at = Some(now);
    Ok(Some(token))
}

/// Deletes tokens with `expires_at <= now` and their messages.
fn purge_tokens(connection: &mut Connection, now: DateTime<Utc>) -> Result<u64, StoreError> {
    const WHAT: &str = "purging expired account tokens";
    let transaction = begin(connection, WHAT)?;
    let now = rows::millis(now);
    transaction
        .execute(
            "DELETE FROM outbox_messages WHERE id IN \
             (SELECT message_id FROM account_tokens WHERE expires_at <= ?1)",
            [now],
        )
        .map_err(|e| StoreError::new(WHAT, e))?;
    let tokens = transaction
        .execute("DELETE FROM account_tokens WHERE expires_at <= ?1", [now])
        .map_err(|e| StoreError::new(WHAT, e))?;
    commit(transaction, WHAT)?;
    Ok(count(tokens))
}

/// Selects and claims up to `limit` due, unclaimed messages.
fn claim(
    connection: &mut Connection,
    now: DateTime<Utc>,
    claim_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<OutboxMessage>, StoreError> {
    const WHAT: &str = "claiming outbox messages";
    let transaction = begin(connection, WHAT)?;
    let found = transaction
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM outbox_messages \
             WHERE sent_at IS NULL AND next_attempt_at <= ?1 \
             AND (claimed_until IS NULL OR claimed_until <= ?1) \
             ORDER BY next_attempt_at, id LIMIT ?2"
        ))
        .and_then(|mut statement| {
            statement
                .query_map(
                    params![rows::millis(now), i64::from(limit)],
                    MessageRow::read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| StoreError::new(WHAT, e))?;
    let messages = found
        .into_iter()
        .map(MessageRow::into_message)
        .collect::<Result<Vec<_>, _>>()?;
    for message in &messages {
        transaction
            .prepare_cached("UPDATE outbox_messages SET claimed_until = ?2 WHERE id = ?1")
            .and_then(|mut statement| {
                statement.execute(params![message.id.to_string(), rows::millis(claim_until)])
            })
            .map_err(|e| StoreError::new(WHAT, e))?;
    }
    commit(transaction, WHAT)?;
    Ok(messages)
}

fn mark_sent(
    connection: &Connection,
    id: OutboxMessageId,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = connection
        .execute(
            "UPDATE outbox_messages SET sent_at = ?2, claimed_until = NULL \
             WHERE id = ?1 AND sent_at IS NULL",
            params![id.to_string(), rows::millis(at)],
        )
        .map_err(|e| StoreError::new("marking an outbox message sent", e))?;
    Ok(changed == 1)
}

fn mark_failed(
    connection: &Connection,
    id: OutboxMessageId,
    next_attempt_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = connection
        .execute(
            "UPDATE outbox_messages SET attempts = attempts + 1, next_attempt_at = ?2, \
             claimed_until = NULL WHERE id = ?1 AND sent_at IS NULL",
            params![id.to_string(), rows::millis(next_attempt_at)],
        )
        .map_err(|e| StoreError::new("marking an outbox message failed", e))?;
    Ok(changed == 1)
}

/// Deletes messages sent before `cutoff` unless their token expires after
/// it, taking their (expired) tokens along, in one transaction.
fn purge_sent(connection: &mut Connection, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    const WHAT: &str = "purging sent outbox messages";
    let transaction = begin(connection, WHAT)?;
    let cutoff = rows::millis(cutoff);
    transaction
        .execute(
            "DELETE FROM account_tokens WHERE expires_at <= ?1 AND message_id IN \
             (SELECT id FROM outbox_messages WHERE sent_at < ?1)",
            [cutoff],
        )
        .map_err(|e| StoreError::new(WHAT, e))?;
    let deleted = transaction
        .execute(
            "DELETE FROM outbox_messages WHERE sent_at < ?1 AND NOT EXISTS \
             (SELECT 1 FROM account_tokens AS t WHERE t.message_id = outbox_messages.id)",
            [cutoff],
        )
        .map_err(|e| StoreError::new(WHAT, e))?;
    commit(transaction, WHAT)?;
    Ok(count(deleted))
}

/// An `outbox_messages` row, as read.
struct MessageRow {
    id: String,
    recipient: String,
    subject: String,
    text_body: String,
    html_body: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    sent_at: Option<i64>,
}

impl MessageRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            recipient: row.get(1)?,
            subject: row.get(2)?,
            text_body: row.get(3)?,
            html_body: row.get(4)?,
            created_at: row.get(5)?,
            attempts: row.get(6)?,
            next_attempt_at: row.get(7)?,
            sent_at: row.get(8)?,
        })
    }

    fn into_message(self) -> Result<OutboxMessage, StoreError> {
        Ok(OutboxMessage {
            id: parse_id(&self.id, "outbox message id")?,
            to: AdminEmail::parse(&self.recipient).map_err(|e| corrupt("outbox recipient", e))?,
            subject: self.subject,
            text_body: self.text_body,
            html_body: self.html_body,
            created_at: rows::timestamp(self.created_at)?,
            attempts: u32::try_from(self.attempts)
                .map_err(|e| corrupt("outbox message attempts", e))?,
            next_attempt_at: rows::timestamp(self.next_attempt_at)?,
            sent_at: self.sent_at.map(rows::timestamp).transpose()?,
        })
    }
}

/// An `account_tokens` row, as read.
struct TokenRow {
    hash: String,
    purpose: String,
    admin_id: String,
    email: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TokenRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            hash: row.get(0)?,
            purpose: row.get(1)?,
            admin_id: row.get(2)?,
            email: row.get(3)?,
            created_at: row.get(4)?,
            expires_at: row.get(5)?,
            used_at: row.get(6)?,
        })
    }

    fn into_token(self) -> Result<AccountToken, StoreError> {
        Ok(AccountToken {
            hash: TokenHash::from_hex(self.hash),
            purpose: AccountTokenPurpose::parse(&self.purpose).ok_or_else(|| {
                StoreError::msg(format!(
                    "corrupt record: invalid stored account token purpose {:?}",
                    self.purpose
                ))
            })?,
            admin_id: parse_id(&self.admin_id, "account token admin id")?,
            email: AdminEmail::parse(&self.email).map_err(|e| corrupt("account token email", e))?,
            created_at: rows::timestamp(self.created_at)?,
            expires_at: rows::timestamp(self.expires_at)?,
            used_at: self.used_at.map(rows::timestamp).transpose()?,
        })
    }
}

/// Sets `email_verified` if the admin's email is still `email`.
fn mark_verified(
    connection: &Connection,
    admin: AdminId,
    email: &AdminEmail,
) -> Result<bool, StoreError> {
    let changed = connection
        .execute(
            "UPDATE admins SET email_verified = 1 WHERE id = ?1 AND email = ?2",
            params![admin.to_string(), email.as_str()],
        )
        .map_err(|e| StoreError::new("marking an admin's email verified", e))?;
    Ok(changed == 1)
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_message(&self, message: OutboxMessage) -> Result<(), StoreError> {
        self.connections()
            .write(move |connection| insert_message(connection, &message))
            .await
    }

    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.connections()
            .write(move |connection| claim(connection, now, claim_until, limit))
            .await
    }

    async fn mark_sent(&self, id: OutboxMessageId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.connections()
            .write(move |connection| mark_sent(connection, id, at))
            .await
    }

    async fn mark_failed(
        &self,
        id: OutboxMessageId,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.connections()
            .write(move |connection| mark_failed(connection, id, next_attempt_at))
            .await
    }

    async fn purge_sent_messages(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.connections()
            .write(move |connection| purge_sent(connection, cutoff))
            .await
    }
}

#[async_trait]
impl AccountTokenStore for SqliteStore {
    async fn issue_account_token(
        &self,
        token: AccountToken,
        message: OutboxMessage,
    ) -> Result<(), StoreError> {
        self.connections()
            .write(move |connection| issue(connection, &token, &message))
            .await
    }

    async fn use_account_token(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountToken>, StoreError> {
        let hash = hash.clone();
        self.connections()
            .write(move |connection| use_token(connection, &hash, purpose, now))
            .await
    }

    async fn purge_account_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.connections()
            .write(move |connection| purge_tokens(connection, now))
            .await
    }

    async fn mark_email_verified(
        &self,
        admin: AdminId,
        email: &AdminEmail,
    ) -> Result<bool, StoreError> {
        let email = email.clone();
        self.connections()
            .write(move |connection| mark_verified(connection, admin, &email))
            .await
    }
}
