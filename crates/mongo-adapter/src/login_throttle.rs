//! Login throttling per email, counted atomically.
//!
//! `login_throttles`: `{_id: <email>, version, failures, lockouts,
//! locked_until?, last_attempt_at}`, whether or not an admin has the email.
//! `failures` counts attempts since the last success or lock, `lockouts` the
//! locks since the last success.
//!
//! An attempt reads the record; while `locked_until` is after `now` it is
//! refused without writing. Otherwise it writes the counted record by
//! compare-and-swap on `version` (an insert for a new email, which the
//! unique `_id` arbitrates), and reads again whenever another attempt won:
//! every allowed attempt and every lock is thus one successful swap from
//! the state all others saw, so parallel attempts can never be allowed more
//! than `max_failures` times, and exactly one of them locks.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc};
use mongodb::Collection;
use orgsvc_domain::{AdminEmail, LoginAttempt, LoginThrottle, StoreError};
use serde::{Deserialize, Serialize};

use crate::documents::{to_bson_time, to_chrono};
use crate::errors::is_duplicate_key;
use crate::store::MongoStore;

/// Login throttling state, one record per email.
pub(crate) const LOGIN_THROTTLES: &str = "login_throttles";

/// How often an attempt reads again after another attempt on the same email
/// won the swap. Every round has a winner and a lock ends the contention
/// (locked attempts do not write), so this bounds only pathological
/// contention.
const COUNT_ATTEMPTS: usize = 64;

/// An email's throttling record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ThrottleDoc {
    #[serde(rename = "_id")]
    email: String,
    /// Bumped by every write (compare-and-swap).
    version: i64,
    /// Failed (or not yet verified) attempts since the last success or lock.
    failures: i64,
    /// Locks since the last success.
    lockouts: i64,
    /// When the latest lock ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locked_until: Option<bson::DateTime>,
    /// The latest counted attempt.
    last_attempt_at: bson::DateTime,
}

impl ThrottleDoc {
    fn fresh(email: &AdminEmail, now: bson::DateTime) -> Self {
        Self {
            email: email.as_str().to_owned(),
            version: 0,
            failures: 0,
            lockouts: 0,
            locked_until: None,
            last_attempt_at: now,
        }
    }

    /// The record after counting one more attempt at `now`, and the answer.
    fn count(&self, now: bson::DateTime, throttle: &LoginThrottle) -> (Self, LockDecision) {
        let mut next = Self {
            version: self.version + 1,
            failures: self.failures + 1,
            last_attempt_at: self.last_attempt_at.max(now),
            ..self.clone()
        };
        if next.failures <= i64::from(throttle.max_failures) {
            return (next, LockDecision::Allowed);
        }
        next.failures = 0;
        next.lockouts += 1;
        let lockouts = u32::try_from(next.lockouts).unwrap_or(u32::MAX);
        let length =
            i64::try_from(throttle.lock_duration(lockouts).as_millis()).unwrap_or(i64::MAX);
        let until = bson::DateTime::from_millis(now.timestamp_millis().saturating_add(length));
        next.locked_until = Some(until);
        (next, LockDecision::Locked(until))
    }
}

/// What counting an attempt decided.
enum LockDecision {
    Allowed,
    Locked(bson::DateTime),
}

impl MongoStore {
    fn login_throttles(&self) -> Collection<ThrottleDoc> {
        self.db().collection(LOGIN_THROTTLES)
    }

    /// Counts an attempt (see the module documentation).
    pub(crate) async fn count_login_attempt(
        &self,
        email: &AdminEmail,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        let now = to_bson_time(now);
        for _ in 0..COUNT_ATTEMPTS {
            let current = self
                .login_throttles()
                .find_one(doc! { "_id": email.as_str() })
                .await
                .map_err(|e| StoreError::new("reading a login throttle", e))?;
            if let Some(until) = current.as_ref().and_then(|c| c.locked_until) {
                if until > now {
                    return Ok(LoginAttempt::Locked {
                        until: to_chrono(until)?,
                        just_locked: false,
                    });
                }
            }
            let base = current
                .clone()
                .unwrap_or_else(|| ThrottleDoc::fresh(email, now));
            let (next, decision) = base.count(now, throttle);
            let written = match &current {
                None => match self.login_throttles().insert_one(&next).await {
                    Ok(_) => true,
                    Err(e) if is_duplicate_key(&e) => false,
                    Err(e) => return Err(StoreError::new("counting a login attempt", e)),
                },
                Some(current) => {
                    self.login_throttles()
                        .replace_one(
                            doc! { "_id": &current.email, "version": current.version },
                            &next,
                        )
                        .await
                        .map_err(|e| StoreError::new("counting a login attempt", e))?
                        .matched_count
                        == 1
                }
            };
            if written {
                return Ok(match decision {
                    LockDecision::Allowed => LoginAttempt::Allowed,
                    LockDecision::Locked(until) => LoginAttempt::Locked {
                        until: to_chrono(until)?,
                        just_locked: true,
                    },
                });
            }
        }
        Err(StoreError::msg(
            "counting a login attempt: the email's throttle kept changing",
        ))
    }

    /// Forgets the email's failures and locks.
    pub(crate) async fn clear_login_throttle(&self, email: &AdminEmail) -> Result<(), StoreError> {
        self.login_throttles()
            .delete_one(doc! { "_id": email.as_str() })
            .await
            .map(drop)
            .map_err(|e| StoreError::new("clearing a login throttle", e))
    }

    /// Deletes the records of emails with no attempt since `idle_since` and
    /// no lock running at `now`; returns how many went.
    pub(crate) async fn purge_login_throttles(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let filter = doc! {
            "last_attempt_at": { "$lt": to_bson_time(idle_since) },
            "$or": [
                { "locked_until": { "$exists": false } },
                { "locked_until": { "$lte": to_bson_time(now) } },
            ],
        };
        self.login_throttles()
            .delete_many(filter)
            .await
            .map(|result| result.deleted_count)
            .map_err(|e| StoreError::new("purging idle login throttles", e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle {
            max_failures: 2,
            base_lock: Duration::from_millis(1_500),
            max_lock: Duration::from_secs(4),
        }
    }

    #[test]
    fn counting_locks_after_max_failures_for_doubling_lengths() {
        let email = AdminEmail::parse("a@b.example").unwrap();
        let at = bson::DateTime::from_millis(10_000);
        let mut record = ThrottleDoc::fresh(&email, at);
        let mut locks = Vec::new();
        for _ in 0..9 {
            let (next, decision) = record.count(at, &throttle());
            if let LockDecision::Locked(until) = decision {
                locks.push(until.timestamp_millis() - 10_000);
                assert_eq!(next.failures, 0);
            }
            assert_eq!(next.version, record.version + 1);
            record = next;
        }
        assert_eq!(locks, [1_500, 3_000, 4_000]);
        assert_eq!(record.lockouts, 3);
    }

    #[test]
    fn the_latest_attempt_time_never_goes_back() {
        let email = AdminEmail::parse("a@b.example").unwrap();
        let record = ThrottleDoc::fresh(&email, bson::DateTime::from_millis(5_000));
        let (next, _) = record.count(bson::DateTime::from_millis(4_000), &throttle());
        assert_eq!(next.last_attempt_at.timestamp_millis(), 5_000);
    }
}
