//! Login throttling per email: failures counted before the password is
//! checked, and locks that grow with each lock since the last success.
//!
//! An attempt is one immediate transaction on the writer connection (read,
//! decide, write back), so parallel attempts are counted one after the other
//! and cannot exceed the limit between them.

use chrono::{DateTime, Utc};
use orgsvc_domain::{AdminEmail, LoginAttempt, LoginThrottle, StoreError, ThrottleState};
use rusqlite::{params, Connection, OptionalExtension};

use crate::connection::{begin, commit};
use crate::records::corrupt;
use crate::rows;

/// Applies [`ThrottleState::count_attempt`] to the email's stored state in
/// one transaction.
pub(crate) fn begin_attempt(
    connection: &mut Connection,
    email: &AdminEmail,
    now: DateTime<Utc>,
    throttle: &LoginThrottle,
) -> Result<LoginAttempt, StoreError> {
    const WHAT: &str = "counting a login attempt";
    let transaction = begin(connection, WHAT)?;
    let state = read(&transaction, email)?.unwrap_or_default();
    let (outcome, next) = state.count_attempt(now, throttle);
    let Some(next) = next else {
        return Ok(outcome); // locked: nothing to store
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
                next.failures,
                next.lockouts,
                next.locked_until.map(rows::millis),
                rows::millis(now)
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

fn read(connection: &Connection, email: &AdminEmail) -> Result<Option<ThrottleState>, StoreError> {
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
            Ok(ThrottleState {
                failures: u32::try_from(failures).map_err(|e| corrupt("login failures", e))?,
                lockouts: u32::try_from(lockouts).map_err(|e| corrupt("login lockouts", e))?,
                locked_until: locked_until.map(rows::timestamp).transpose()?,
            })
        })
        .transpose()
}
