//! Login throttling per email, counted atomically.
//!
//! `login_throttles`: `{_id: <email>, version, failures, lockouts,
//! locked_until?, last_attempt_at}`, whether or not an admin has the email.
//! `failures` counts attempts since the last success or lock, `lockouts` the
//! locks since the last success.
//!
//! An attempt reads the record and applies the domain's rule
//! ([`ThrottleState::count_attempt`]): while a lock runs it is refused
//! without writing. Otherwise it writes the counted record by
//! compare-and-swap on `version` (an insert for a new email, which the
//! unique `_id` arbitrates), and reads again whenever another attempt won:
//! every allowed attempt and every lock is thus one successful swap from
//! the state all others saw, so parallel attempts can never be allowed more
//! than `max_failures` times, and exactly one of them locks.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc};
use mongodb::Collection;
use orgsvc_domain::{AdminEmail, LoginAttempt, LoginThrottle, StoreError, ThrottleState};
use serde::{Deserialize, Serialize};

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::records::{to_bson_time, to_chrono};
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

    /// The domain view of the record.
    fn state(&self) -> Result<ThrottleState, StoreError> {
        let count = |n: i64| {
            u32::try_from(n).map_err(|_| StoreError::msg("a login throttle count is out of range"))
        };
        Ok(ThrottleState {
            failures: count(self.failures)?,
            lockouts: count(self.lockouts)?,
            locked_until: self.locked_until.map(to_chrono).transpose()?,
        })
    }

    /// The record after an attempt at `now` that left `next`: one version
    /// later, and its latest attempt never earlier than before.
    fn counted(&self, next: ThrottleState, now: bson::DateTime) -> Self {
        Self {
            version: self.version + 1,
            failures: i64::from(next.failures),
            lockouts: i64::from(next.lockouts),
            locked_until: next.locked_until.map(to_bson_time),
            last_attempt_at: self.last_attempt_at.max(now),
            ..self.clone()
        }
    }
}

impl MongoStore {
    fn login_throttles(&self) -> Collection<ThrottleDoc> {
        self.db().collection(LOGIN_THROTTLES)
    }

    /// Counts an attempt (see the module documentation).
    pub(crate) async fn begin_login_attempt(
        &self,
        email: &AdminEmail,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        let bson_now = to_bson_time(now);
        for _ in 0..COUNT_ATTEMPTS {
            let current = self
                .login_throttles()
                .find_one(doc! { "_id": email.as_str() })
                .await
                .map_err(|e| store_error("reading a login throttle", e))?;
            let base = current
                .clone()
                .unwrap_or_else(|| ThrottleDoc::fresh(email, bson_now));
            let (answer, next) = base.state()?.count_attempt(now, throttle);
            let Some(next) = next else {
                return Ok(answer); // locked: nothing to write
            };
            let next = base.counted(next, bson_now);
            let written = match &current {
                None => match self.login_throttles().insert_one(&next).await {
                    Ok(_) => true,
                    Err(e) if is_duplicate_key(&e) => false,
                    Err(e) => return Err(store_error("counting a login attempt", e)),
                },
                Some(current) => {
                    self.login_throttles()
                        .replace_one(
                            doc! { "_id": &current.email, "version": current.version },
                            &next,
                        )
                        .await
                        .map_err(|e| store_error("counting a login attempt", e))?
                        .matched_count
                        == 1
                }
            };
            if written {
                return Ok(answer);
            }
        }
        Err(StoreError::msg(
            "counting a login attempt: the email's throttle kept changing",
        ))
    }

    /// Forgets the email's failures and locks.
    pub(crate) async fn login_succeeded(&self, email: &AdminEmail) -> Result<(), StoreError> {
        self.login_throttles()
            .delete_one(doc! { "_id": email.as_str() })
            .await
            .map(drop)
            .map_err(|e| store_error("clearing a login throttle", e))
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
            .map_err(|e| store_error("purging idle login throttles", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_attempt_time_never_goes_back() {
        let email = AdminEmail::parse("a@b.example").unwrap();
        let record = ThrottleDoc::fresh(&email, bson::DateTime::from_millis(5_000));
        let next = record.counted(ThrottleState::default(), bson::DateTime::from_millis(4_000));
        assert_eq!(next.last_attempt_at.timestamp_millis(), 5_000);
        assert_eq!(next.version, record.version + 1);
    }
}
