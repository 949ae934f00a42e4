//! The email outbox (issue #14): messages stored in the same write as the
//! token or invitation they carry, so a crash never leaves a token whose
//! email is lost nor an email whose token was never stored. A background
//! sender claims due messages ([`OutboxStore::claim_due_messages`]),
//! delivers them and marks them sent or failed: delivery is at least once.
//! The retry schedule is a plain function ([`RetryPolicy::next_attempt_at`]);
//! delivery itself goes through the [`MailTransport`] port (SMTP, or the
//! log in development).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::errors::StoreError;
use crate::ids::OutboxMessageId;
use crate::values::AdminEmail;

/// An email waiting in (or delivered from) the outbox.
///
/// `Debug` shows neither body: they carry a token's link.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Its id (time-ordered).
    pub id: OutboxMessageId,
    /// The recipient.
    pub to: AdminEmail,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text_body: String,
    /// The HTML body.
    pub html_body: String,
    /// When it was stored (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// Not claimed before this time (millisecond precision).
    pub next_attempt_at: DateTime<Utc>,
    /// When it was delivered; `None` until then.
    pub sent_at: Option<DateTime<Utc>>,
}

impl OutboxMessage {
    /// A new message, due at once (`next_attempt_at == created_at == now`,
    /// truncated to the millisecond), never attempted.
    pub fn new(
        to: AdminEmail,
        subject: impl Into<String>,
        text_body: impl Into<String>,
        html_body: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let now = crate::clock::to_millis(now);
        Self {
            id: OutboxMessageId::new(),
            to,
            subject: subject.into(),
            text_body: text_body.into(),
            html_body: html_body.into(),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            sent_at: None,
        }
    }

    /// Whether a sender may claim it at `now` (claims aside): unsent and
    /// `next_attempt_at <= now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.sent_at.is_none() && self.next_attempt_at <= now
    }
}

impl std::fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxMessage")
            .field("id", &self.id)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text_body_len", &self.text_body.len())
            .field("html_body_len", &self.html_body.len())
            .field("created_at", &self.created_at)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

/// When a failed delivery is tried again: exponential backoff from `base`,
/// doubling per failed attempt, never longer than `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 30 seconds, doubling up to 1 hour.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed delivery (1 for the first):
    /// `base * 2^(attempts - 1)`, at most `max`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempts.saturating_sub(1).min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// `now` plus [`backoff`](Self::backoff)`(attempts)`, truncated to the
    /// millisecond: the `next_attempt_at` for
    /// [`OutboxStore::mark_failed`].
    pub fn next_attempt_at(&self, attempts: u32, now: DateTime<Utc>) -> DateTime<Utc> {
        crate::clock::expiry(now, self.backoff(attempts))
    }
}

/// The outbox's delivery side. Messages are written only together with
/// what they carry (see [`crate::AccountTokenStore::issue_account_token`]).
///
/// Rules every implementation MUST follow:
/// - `claim_due_messages(now, claim_until, limit)` returns at most `limit`
///   unsent messages with `next_attempt_at <= now` that no unexpired claim
///   holds (a claim holds while `now < claim_until`), oldest
///   `next_attempt_at` first (then by id), and claims them until
///   `claim_until`, atomically: of racing claims, each message goes to at
///   most one. A claim that expired (its sender died) can be taken again.
/// - `mark_sent` and `mark_failed` end the claim. `mark_failed` adds one
///   to `attempts` and sets `next_attempt_at`. Both answer whether an
///   unsent message with this id existed (a sent one stays as it is).
/// - `purge_sent_messages(cutoff)` deletes messages sent before `cutoff`,
///   except those whose token expires after `cutoff` (they go with it, see
///   [`crate::AccountTokenStore::purge_account_tokens`]). A message and its
///   token are always deleted together: a purged message takes its
///   (expired) token along. Returns how many messages went.
/// - `enqueue_message(message)` stores a message that carries no token (a
///   notice), unclaimed; a message id that is already stored fails and
///   stores nothing. It is purged like any sent message.
/// - Times come back at millisecond precision.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Stores a notice (a message without a token), due at its
    /// `next_attempt_at`.
    async fn enqueue_message(&self, message: OutboxMessage) -> Result<(), StoreError>;

    /// Claims up to `limit` due messages until `claim_until` (see above).
    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Records a delivery at `at`; `false` for an unknown or already sent
    /// message.
    async fn mark_sent(&self, id: OutboxMessageId, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Records a failed delivery: `attempts + 1`, due again at
    /// `next_attempt_at` (see [`RetryPolicy::next_attempt_at`]); `false` for
    /// an unknown or already sent message.
    async fn mark_failed(
        &self,
        id: OutboxMessageId,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes delivered messages (see above); how many went.
    async fn purge_sent_messages(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Why a delivery failed, as far as retrying is concerned. The text names
/// the cause (an SMTP reply, a connection error), never a body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later: the server could not be reached, timed
    /// out, or answered a transient negative reply (RFC 5321 §4.2.1:
    /// `4yz`, e.g. 421 service not available, 451 local error).
    #[error("transient delivery failure: {0}")]
    Transient(String),
    /// Trying again will not help: a permanent negative reply (RFC 5321
    /// §4.2.1: `5yz`, e.g. 550 mailbox unavailable, 553 mailbox name not
    /// allowed) or a message the transport cannot even build.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

impl DeliveryError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// `transient` or `permanent` (a metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
        }
    }
}

/// Hands an outbox message to the outside world (an SMTP relay, the log).
///
/// An implementation answers `Ok` only once the message was accepted (for
/// SMTP: the server's `250` after the data); any error may still mean the
/// message went out (e.g. the connection broke after the data was sent),
/// which is why delivery is at least once.
#[async_trait]
pub trait MailTransport: Send + Sync {
    /// Delivers `message` to its recipient.
    ///
    /// # Errors
    /// [`DeliveryError::Transient`] when a later attempt may succeed,
    /// [`DeliveryError::Permanent`] when it will not.
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), DeliveryError>;
}

/// The `next_attempt_at` of a message the sender gave up on (a permanent
/// failure, or too many attempts): 9999-12-31T23:59:59.999Z, so that it is
/// never due again. It stays stored, unsent, until its token is purged
/// ([`crate::AccountTokenStore::purge_account_tokens`]).
pub fn given_up_at() -> DateTime<Utc> {
    // 253402300799999 ms after the epoch is 9999-12-31T23:59:59.999Z.
    DateTime::from_timestamp_millis(253_402_300_799_999).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn backoff_doubles_from_base_up_to_max() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (1..=5).map(|n| policy.backoff(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
        assert_eq!(policy.backoff(0).as_secs(), 10);
        assert_eq!(policy.backoff(u32::MAX).as_secs(), 60);
    }

    #[test]
    fn next_attempt_is_now_plus_the_backoff_in_milliseconds() {
        let now = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap()
            + TimeDelta::nanoseconds(456);
        let at = RetryPolicy::default().next_attempt_at(2, now);
        assert_eq!(at.timestamp_millis(), 1_700_000_060_123);
        let far = RetryPolicy::default().next_attempt_at(9, DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            far.timestamp_millis(),
            DateTime::<Utc>::MAX_UTC.timestamp_millis()
        );
    }

    #[test]
    fn a_message_given_up_on_is_never_due_again() {
        let at = given_up_at();
        assert_eq!(at.to_rfc3339(), "9999-12-31T23:59:59.999+00:00");
        let email = AdminEmail::parse("a@example.com").unwrap();
        let mut message = OutboxMessage::new(email, "s", "t", "h", crate::clock::now_millis());
        message.next_attempt_at = at;
        assert!(!message.is_due(crate::clock::now_millis()));
        assert!(DeliveryError::Transient("x".into()).is_transient());
        assert_eq!(DeliveryError::Permanent("x".into()).kind(), "permanent");
    }

    #[test]
    fn a_message_is_due_from_its_next_attempt_until_sent() {
        let now = crate::clock::now_millis();
        let email = AdminEmail::parse("a@example.com").unwrap();
        let mut message = OutboxMessage::new(email, "s", "secret-link", "<p>secret-link</p>", now);
        assert!(message.is_due(now));
        assert!(!message.is_due(now - TimeDelta::milliseconds(1)));
        assert!(!format!("{message:?}").contains("secret-link"));
        message.sent_at = Some(now);
        assert!(!message.is_due(now));
    }
}
