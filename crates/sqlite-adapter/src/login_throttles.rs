//! Login throttling per email: failures counted before the password is
//! checked, and locks that grow with each lock since the last success.
//!
//! An attempt is one immediate transaction on the writer connection (read,
//! decide, write back), so parallel attempts are counted one after the other
//! and cannot exceed the limit between them.

use chrono::{DateTime, Utc};
use orgsvc_domain::{AdminEmail, LoginAttempt, LoginThrottle, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::connection::{begin, commit};
use crate::records::corrupt;
use crate::rows;

/// An email's throttling state, as stored.
#[derive(Default)]
struct State {
    /// Attempts counted since the last success or lock.
    failures: u32,
    /// Locks since the last success.
    lockouts: u32,
    /// End of the current or last lock (milliseconds).
    locked_until: Option<i64>,
}

/// `Locked` while the email is locked at `now`; otherwise counts a failure
/// in advance and locks the email once that makes more than
/// `throttle.max_failures` (see [`orgsvc_domain::SessionStore`]).
pub(crate) fn begin_attempt(
    connection: &mut Connection,
    email: &AdminEmail,
    now: DateTime<Utc>,
    throttle: &LoginThrottle,
) -> Result<LoginAttempt, StoreError> {
    const WHAT: &str = "counting a login attempt";
    let transaction = begin(connection, WHAT)?;
    let mut state = read(&transaction, email)?.unwrap_or_default();
    let now_ms = rows::millis(now);
    let outcome = match state.locked_until.filter(|&until| until > now_ms) {
        Some(until) => LoginAttempt::Locked {
            until: rows::timestamp(until)?,
            just_locked: false,
        },
        None => {
            state.failures = state.failures.saturating_add(1);
            if state.failures > throttle.max_failures {
                state.failures = 0;
                state.lockouts = state.lockouts.saturating_add(1);
                let until = lock_end(now_ms, throttle, state.lockouts)?;
                state.locked_until = Some(rows::millis(until));
                LoginAttempt::Locked {
                    until,
                    just_locked: true,
                }
            } else {
                LoginAttempt::Allowed
            }
        }
    };
    transaction
        .execute(
            "INSERT INTO login_throttles (email, failures, lockouts, locked_until, \
             last_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (email) DO UPDATE SET failures = excluded.failures, \
             lockouts = excluded.lockouts, locked_until = excluded.locked_until, \
             last_attempt_at = max(last_attempt_at, excluded.last_attempt_at)",
            params![
                email.as_str(),
                state.failures,
                state.lockouts,
                state.locked_until,
                now_ms
            ],
        )
        .map_err(|e| StoreError::new("storing a login attempt", e))?;
    commit(transaction, WHAT)?;
    Ok(outcome)
}

/// Forgets the email's failures and lock history.
pub(crate) fn succeeded(connection: &Connection, email: &AdminEmail) -> Result<(), StoreError> {
    connection
        .execute(
            "DELETE FROM login_throttles WHERE email = ?1",
            [email.as_str()],
        )
        .map_err(|e| StoreError::new("clearing login failures", e))?;
    Ok(())
}

/// Deletes the state of emails with no attempt since `idle_since` and no
/// lock running at `now`; returns how many went.
pub(crate) fn purge(
    connection: &Connection,
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let purged = connection
        .execute(
            "DELETE FROM login_throttles WHERE last_attempt_at < ?1 \
             AND (locked_until IS NULL OR locked_until <= ?2)",
            params![rows::millis(idle_since), rows::millis(now)],
        )
        .map_err(|e| StoreError::new("purging idle login throttling state", e))?;
    Ok(u64::try_from(purged).unwrap_or(u64::MAX))
}

fn read(connection: &Connection, email: &AdminEmail) -> Result<Option<State>, StoreError> {
    let stored: Option<(i64, i64, Option<i64>)> = connection
        .query_row(
            "SELECT failures, lockouts, locked_until FROM login_throttles WHERE email = ?1",
            [email.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(|e| StoreError::new("reading login throttling state", e))?;
    stored
        .map(|(failures, lockouts, locked_until)| {
            Ok(State {
                failures: u32::try_from(failures).map_err(|e| corrupt("login failures", e))?,
                lockouts: u32::try_from(lockouts).map_err(|e| corrupt("login lockouts", e))?,
                locked_until,
            })
        })
        .transpose()
}

/// When the `lockouts`-th lock since the last success, starting at
/// `now_ms`, ends (millisecond precision).
fn lock_end(
    now_ms: i64,
    throttle: &LoginThrottle,
    lockouts: u32,
) -> Result<DateTime<Utc>, StoreError> {
    let length = i64::try_from(throttle.lock_duration(lockouts).as_millis()).unwrap_or(i64::MAX);
    now_ms
        .checked_add(length)
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| StoreError::msg("a login lock would end beyond the representable time"))
}
