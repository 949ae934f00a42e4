//! The email outbox and single-use account tokens ([`OutboxStore`],
//! [`AccountTokenStore`]) in one collection, `outbox`:
//!
//! `{_id: <message id>, to, subject, text_body, html_body, created_ms,
//! attempts, next_attempt_ms, claimed_until_ms, sent_ms: <ms> | null,
//! token?: {hash, purpose, admin_id, email, created_ms, expires_ms,
//! used_ms: <ms> | null}}`, times in milliseconds since the epoch (`long`).
//!
//! Without multi-document transactions, "token and message in one write"
//! is one document: the token is embedded in the message that carries it,
//! so an issue is a single `insert_one` (both or neither), and the unique
//! index on `token.hash` refuses a second issue of a hash. Using a token is
//! one conditional update (`used_ms: null` and unexpired → `used_ms: now`):
//! of racing uses exactly one matches. A claim takes each candidate with a
//! conditional update on `claimed_until_ms <= now` (0: never claimed), so
//! racing claims never share a message. Purging expired tokens deletes
//! their documents, messages included; a sent message whose token still
//! lives is kept with it.
//!
//! Absent values are queried with `{$in: [null]}` (null or missing on every
//! wire-compatible server).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use orgsvc_domain::{
    AccountToken, AccountTokenPurpose, AccountTokenStore, AdminEmail, AdminId, OutboxMessage,
    OutboxMessageId, OutboxStore, StoreError, TokenHash,
};
use serde::{Deserialize, Serialize};

use crate::errors::{is_duplicate_key, store_error};
use crate::records::{parse_id, ADMINS};
use crate::store::MongoStore;

/// The outbox collection.
pub(crate) const OUTBOX: &str = "outbox";

/// An outbox document. No `Debug`: its bodies carry a token's link, its
/// token its hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MessageDoc {
    #[serde(rename = "_id")]
    id: String,
    to: String,
    subject: String,
    text_body: String,
    html_body: String,
    created_ms: i64,
    attempts: i64,
    next_attempt_ms: i64,
    /// When the current claim ends; 0 when never claimed or released.
    claimed_until_ms: i64,
    sent_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<TokenDoc>,
    /// The invitation it was sent for (see `invitations.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invitation_id: Option<String>,
}

/// An account token, embedded in the message that carries it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TokenDoc {
    hash: String,
    purpose: String,
    admin_id: String,
    email: String,
    created_ms: i64,
    expires_ms: i64,
    used_ms: Option<i64>,
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| StoreError::msg("corrupt outbox record: a stored time is out of range"))
}

fn email(raw: &str, what: &str) -> Result<AdminEmail, StoreError> {
    AdminEmail::parse(raw).map_err(|e| store_error(format!("corrupt outbox record: {what}"), e))
}

impl MessageDoc {
    /// The document of a message sent for the invitation `invitation`.
    pub(crate) fn for_invitation(message: &OutboxMessage, invitation: &str) -> Self {
        Self {
            invitation_id: Some(invitation.to_owned()),
            ..Self::new(message, None)
        }
    }

    /// Its id (`_id`).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn new(message: &OutboxMessage, token: Option<&AccountToken>) -> Self {
        Self {
            id: message.id.to_string(),
            to: message.to.as_str().to_owned(),
            subject: message.subject.clone(),
            text_body: message.text_body.clone(),
            html_body: message.html_body.clone(),
            created_ms: ms(message.created_at),
            attempts: i64::from(message.attempts),
            next_attempt_ms: ms(message.next_attempt_at),
            claimed_until_ms: 0,
            sent_ms: message.sent_at.map(ms),
            token: token.map(TokenDoc::new),
            invitation_id: None,
        }
    }

    fn into_message(self) -> Result<OutboxMessage, StoreError> {
        Ok(OutboxMessage {
            id: parse_id(&self.id, "outbox message")?,
            to: email(&self.to, "recipient")?,
            subject: self.subject,
            text_body: self.text_body,
            html_body: self.html_body,
            created_at: time(self.created_ms)?,
            attempts: u32::try_from(self.attempts)
                .map_err(|e| store_error("corrupt outbox record: attempts", e))?,
            next_attempt_at: time(self.next_attempt_ms)?,
            sent_at: self.sent_ms.map(time).transpose()?,
        })
    }
}

impl TokenDoc {
    fn new(token: &AccountToken) -> Self {
        Self {
            hash: token.hash.as_str().to_owned(),
            purpose: token.purpose.as_str().to_owned(),
            admin_id: token.admin_id.to_string(),
            email: token.email.as_str().to_owned(),
            created_ms: ms(token.created_at),
            expires_ms: ms(token.expires_at),
            used_ms: token.used_at.map(ms),
        }
    }

    fn into_token(self) -> Result<AccountToken, StoreError> {
        Ok(AccountToken {
            hash: TokenHash::from_hex(self.hash),
            purpose: AccountTokenPurpose::parse(&self.purpose).ok_or_else(|| {
                StoreError::msg(format!(
                    "corrupt outbox record: unknown token purpose {:?}",
                    self.purpose
                ))
            })?,
            admin_id: parse_id(&self.admin_id, "account token admin")?,
            email: email(&self.email, "token email")?,
            created_at: time(self.created_ms)?,
            expires_at: time(self.expires_ms)?,
            used_at: self.used_ms.map(time).transpose()?,
        })
    }
}

/// Unsent: `sent_ms` null or missing.
pub(crate) fn unsent() -> Document {
    doc! { "$in": [null] }
}

impl MongoStore {
    pub(crate) fn outbox(&self) -> Collection<MessageDoc> {
        self.db().collection(OUTBOX)
    }
}

#[async_trait]
impl OutboxStore for MongoStore {
    async fn enqueue_message(&self, message: OutboxMessage) -> Result<(), StoreError> {
        match self
            .outbox()
            .insert_one(MessageDoc::new(&message, None))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::msg(
                "storing a message: its id is already stored",
            )),
            Err(e) => Err(store_error("storing a message", e)),
        }
    }

    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        const WHAT: &str = "claiming outbox messages";
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.relay_invitation_messages().await?;
        let now = ms(now);
        let claimable = doc! {
            "sent_ms": unsent(),
            "next_attempt_ms": { "$lte": now },
            "claimed_until_ms": { "$lte": now },
        };
        let candidates: Vec<MessageDoc> = self
            .outbox()
            .find(claimable.clone())
            .sort(doc! { "next_attempt_ms": 1, "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(|e| store_error(WHAT, e))?
            .try_collect()
            .await
            .map_err(|e| store_error(WHAT, e))?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let mut filter = claimable.clone();
            filter.insert("_id", candidate.id.as_str());
            let taken = self
                .outbox()
                .update_one(
                    filter,
                    doc! { "$set": { "claimed_until_ms": ms(claim_until) } },
                )
                .await
                .map_err(|e| store_error(WHAT, e))?;
            // Another sender took it between the find and the update.
            if taken.matched_count == 1 {
                claimed.push(candidate.into_message()?);
            }
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, id: OutboxMessageId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .outbox()
            .update_one(
                doc! { "_id": id.to_string(), "sent_ms": unsent() },
                doc! { "$set": { "sent_ms": ms(at), "claimed_until_ms": 0_i64 } },
            )
            .await
            .map_err(|e| store_error("marking an outbox message sent", e))?;
        Ok(result.matched_count == 1)
    }

    async fn mark_failed(
        &self,
        id: OutboxMessageId,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .outbox()
            .update_one(
                doc! { "_id": id.to_string(), "sent_ms": unsent() },
                doc! {
                    "$inc": { "attempts": 1_i64 },
                    "$set": { "next_attempt_ms": ms(next_attempt_at), "claimed_until_ms": 0_i64 },
                },
            )
            .await
            .map_err(|e| store_error("marking an outbox message failed", e))?;
        Ok(result.matched_count == 1)
    }

    async fn purge_sent_messages(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        const WHAT: &str = "purging sent outbox messages";
        let cutoff = ms(cutoff);
        let without_token = self
            .outbox()
            .delete_many(doc! { "sent_ms": { "$lt": cutoff }, "token": { "$exists": false } })
            .await
            .map_err(|e| store_error(WHAT, e))?
            .deleted_count;
        let dead_token = self
            .outbox()
            .delete_many(doc! {
                "sent_ms": { "$lt": cutoff },
                "token.expires_ms": { "$lte": cutoff },
            })
            .await
            .map_err(|e| store_error(WHAT, e))?
            .deleted_count;
        Ok(without_token.saturating_add(dead_token))
    }
}

#[async_trait]
impl AccountTokenStore for MongoStore {
    async fn issue_account_token(
        &self,
        token: AccountToken,
        message: OutboxMessage,
    ) -> Result<(), StoreError> {
        match self
            .outbox()
            .insert_one(MessageDoc::new(&message, Some(&token)))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::msg(
                "issuing an account token: its hash or its message id is already stored",
            )),
            Err(e) => Err(store_error("issuing an account token", e)),
        }
    }

    async fn use_account_token(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountToken>, StoreError> {
        let found = self
            .outbox()
            .find_one_and_update(
                doc! {
                    "token.hash": hash.as_str(),
                    "token.purpose": purpose.as_str(),
                    "token.used_ms": { "$in": [null] },
                    "token.expires_ms": { "$gt": ms(now) },
                },
                doc! { "$set": { "token.used_ms": ms(now) } },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| store_error("using an account token", e))?;
        let Some(token) = found.and_then(|record| record.token) else {
            return Ok(None);
        };
        let mut token = token.into_token()?;
        // As written, whatever the server echoes back.
        token.used_at = Some(orgsvc_domain::clock::to_millis(now));
        Ok(Some(token))
    }

    async fn purge_account_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self
            .outbox()
            .delete_many(doc! { "token.expires_ms": { "$lte": ms(now) } })
            .await
            .map_err(|e| store_error("purging expired account tokens", e))?
            .deleted_count)
    }

    /// One conditional update on the admin record (id and email), bumping
    /// its revision so that an `update_admin` that read it before retries
    /// instead of writing the old flag back.
    async fn mark_email_verified(
        &self,
        admin: AdminId,
        email: &AdminEmail,
    ) -> Result<bool, StoreError> {
        let result = self
            .db()
            .collection::<Document>(ADMINS)
            .update_one(
                doc! {
                    "_id": admin.to_string(),
                    "email": email.as_str(),
                    "pending_since": { "$exists": false },
                },
                doc! { "$set": { "email_verified": 1 }, "$inc": { "revision": 1_i64 } },
            )
            .await
            .map_err(|e| store_error("marking an admin's email verified", e))?;
        Ok(result.matched_count == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{from_document, to_document, Bson};
    use orgsvc_domain::AdminId;

    #[test]
    fn records_round_trip_with_long_times_and_an_embedded_token() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let to = AdminEmail::parse("a@example.com").unwrap();
        let message = OutboxMessage::new(to.clone(), "Reset", "text", "<p>html</p>", at);
        let token = AccountToken::issue(
            TokenHash::from_hex("cd".repeat(32)),
            AccountTokenPurpose::PasswordReset,
            AdminId::new(),
            to,
            at,
            AccountTokenPurpose::PasswordReset.default_ttl(),
        );
        let stored = to_document(&MessageDoc::new(&message, Some(&token))).unwrap();
        assert_eq!(
            stored.get("created_ms"),
            Some(&Bson::Int64(1_700_000_000_123))
        );
        assert_eq!(stored.get("sent_ms"), Some(&Bson::Null));
        let embedded = stored.get_document("token").unwrap();
        assert_eq!(embedded.get("used_ms"), Some(&Bson::Null));
        let read: MessageDoc = from_document(stored).unwrap();
        assert_eq!(read.token.clone().unwrap().into_token().unwrap(), token);
        assert_eq!(read.into_message().unwrap(), message);

        let plain = to_document(&MessageDoc::new(&message, None)).unwrap();
        assert!(plain.get("token").is_none());
    }
}
