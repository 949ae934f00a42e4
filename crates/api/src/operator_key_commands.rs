//! `orgsvc operator-keys create|list|revoke` (issue #17): operator API keys
//! managed on the service's host, without a key. The first key must come
//! from here (the API itself needs a key).
//!
//! Like `orgsvc keys`, each command opens the configured store and
//! migrates it first. On the embedded store the service must be stopped
//! (its file is locked while it runs; then manage keys through
//! `/operator/keys`) and the file must exist (`orgsvc migrate` creates it);
//! on MongoDB the commands work while the service runs, and every instance
//! sees their effect at its next request.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use orgsvc_app::operators::{self, CreatedOperatorKey, KeyManager, MAX_OPERATOR_KEY_TTL};
use orgsvc_app::AppError;
use orgsvc_domain::{OperatorKey, OperatorKeyName, OperatorScope, StoreError};

use crate::config::Settings;
use crate::key_commands::open;
use crate::startup::StartupError;

/// Creates a key named `name` of `scope`, expiring `expires_in_secs` from
/// now if given; answers it with its text (to print once).
///
/// # Errors
/// [`StartupError::Usage`] for an invalid name or expiry and a taken
/// name; the store's failures (a locked embedded store among them).
pub async fn create(
    settings: &Settings,
    name: &str,
    scope: OperatorScope,
    expires_in_secs: Option<u64>,
) -> Result<CreatedOperatorKey, StartupError> {
    let name = parse_name(name)?;
    let expires_in = expires_in_secs.map(Duration::from_secs);
    if expires_in.is_some_and(|ttl| ttl.is_zero() || ttl > MAX_OPERATOR_KEY_TTL) {
        return Err(StartupError::Usage(format!(
            "--expires-in must be 1 to {} seconds (10 years); leave it out for a key that never expires",
            MAX_OPERATOR_KEY_TTL.as_secs()
        )));
    }
    let store = open(settings).await?;
    operators::create_operator_key(
        store.as_ref(),
        KeyManager::CommandLine,
        name.clone(),
        scope,
        expires_in,
    )
    .await
    .map_err(|error| command_error(error, &name))
}

/// Every key, revoked ones included, oldest first.
///
/// # Errors
/// The store's failures.
pub async fn list(settings: &Settings) -> Result<Vec<OperatorKey>, StartupError> {
    let store = open(settings).await?;
    operators::list_operator_keys(store.as_ref())
        .await
        .map_err(|error| command_error(error, "(list)"))
}

/// Revokes the key named `name`.
///
/// # Errors
/// [`StartupError::Usage`] when no key has the name; the store's failures.
pub async fn revoke(settings: &Settings, name: &str) -> Result<OperatorKey, StartupError> {
    let name = parse_name(name)?;
    let store = open(settings).await?;
    operators::revoke_operator_key(store.as_ref(), KeyManager::CommandLine, &name)
        .await
        .map_err(|error| command_error(error, &name))
}

fn parse_name(raw: &str) -> Result<OperatorKeyName, StartupError> {
    OperatorKeyName::parse(raw)
        .map_err(|error| StartupError::Usage(format!("invalid key name {raw:?}: {error}")))
}

/// The command's error for a use case's `error` about the key `name`.
fn command_error(error: AppError, name: impl std::fmt::Display) -> StartupError {
    match error {
        AppError::OperatorKeyNameTaken => StartupError::Usage(format!(
            "an operator key named {name} exists (names of revoked keys stay taken); choose another name"
        )),
        AppError::OperatorKeyNotFound => {
            StartupError::Usage(format!("no operator key is named {name}"))
        }
        AppError::InvalidOperatorKeyExpiry => StartupError::Usage(
            "--expires-in must be 1 second to 10 years".to_owned(),
        ),
        AppError::StoreUnavailable(error) => StartupError::Store(error),
        other => StartupError::Store(StoreError::new("managing operator keys", other)),
    }
}

/// The keys as a table, one per line, oldest first (never a key or hash).
pub fn table(keys: &[OperatorKey]) -> String {
    let mut out = format!(
        "{:<24} {:<6} {:<8} {:<20} {:<20} {:<20} revoked\n",
        "name", "scope", "state", "created", "expires", "last used"
    );
    let now = orgsvc_domain::clock::now_millis();
    for key in keys {
        let state = if key.revoked_at.is_some() {
            "revoked"
        } else if key.is_usable(now) {
            "active"
        } else {
            "expired"
        };
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:<8} {:<20} {:<20} {:<20} {}",
            key.name.as_str(),
            key.scope.as_str(),
            state,
            time(Some(key.created_at)),
            time(key.expires_at),
            time(key.last_used_at),
            time(key.revoked_at)
        );
    }
    out
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_state_but_no_secret() {
        let now = orgsvc_domain::clock::now_millis();
        let hash = orgsvc_domain::TokenHash::from_hex("ab".repeat(32));
        let active = OperatorKey::create(
            OperatorKeyName::parse("ci").unwrap_or_else(|e| panic!("{e}")),
            OperatorScope::Write,
            hash.clone(),
            now,
            None,
        );
        let revoked = OperatorKey {
            name: OperatorKeyName::parse("old").unwrap_or_else(|e| panic!("{e}")),
            revoked_at: Some(now),
            ..active.clone()
        };
        let text = table(&[active, revoked]);
        let rows: Vec<_> = text.lines().collect();
        assert!(
            rows[1].starts_with(&format!("{:<24} write  active", "ci")),
            "{text}"
        );
        assert!(text.contains("active"), "{text}");
        assert!(text.contains("revoked"), "{text}");
        assert!(!text.contains(hash.as_str()), "{text}");
    }
}
