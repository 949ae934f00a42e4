//! `orgsvc keys list` and `orgsvc keys rotate`: the operator's view of the
//! stored signing key set (never a private key).
//!
//! Both open the configured store (on the embedded store the service must
//! be stopped: its file is locked while it runs; a missing file is refused)
//! and migrate it first, as `orgsvc migrate` does.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use orgsvc_app::signing_keys::rotate_signing_keys;
use orgsvc_auth::KeyError;
use orgsvc_domain::{KeySetError, KeyState, SigningKey, VersionedKeySet};

use crate::config::{Settings, StoreKind};
use crate::credentials::{stored_key_set, CredentialsError};
use crate::startup::StartupError;
use crate::store_selection::SelectedStore;

/// The stored key set.
///
/// # Errors
/// The store could not be opened, migrated or read.
pub async fn list(settings: &Settings) -> Result<VersionedKeySet, StartupError> {
    let store = open(settings).await?;
    Ok(store.load_signing_keys().await?)
}

/// Adds a `next` key of `auth.signing.algorithm` now; it starts signing
/// `auth.signing.publish_ahead_secs` later. Answers the set afterwards and
/// the new key's `kid`.
///
/// # Errors
/// [`StartupError::Usage`] when `auth.signing.algorithm` is HS256 or
/// `auth.key_encryption_secret` is unset, when a `next` key already waits,
/// or when the secret does not decrypt the stored keys; the store's
/// failures.
pub async fn rotate(settings: &Settings) -> Result<(VersionedKeySet, String), StartupError> {
    let auth = &settings.auth;
    let Some((algorithm, encryption)) = stored_key_set(settings).map_err(CredentialsError::from)?
    else {
        return Err(StartupError::Usage(
            "keys rotate needs an asymmetric auth.signing.algorithm (EdDSA, ES256 or RS256) and auth.key_encryption_secret".into(),
        ));
    };
    let store = open(settings).await?;
    let update = rotate_signing_keys(
        store.as_ref(),
        &auth.rotation_policy(),
        algorithm,
        &encryption,
    )
    .await
    .map_err(|error| match error {
        KeyError::KeySet(KeySetError::NextPending) => StartupError::Usage(
            "not rotated: a next key is already published and waiting to sign (see `orgsvc keys list`); it becomes active auth.signing.publish_ahead_secs after it was added, when a running instance (or this command) next updates the set".into(),
        ),
        KeyError::Open { kid } => StartupError::Usage(format!(
            "not rotated: auth.key_encryption_secret does not decrypt the stored key {kid}; every instance and this command need the secret the keys were stored with"
        )),
        other => CredentialsError::from(other).into(),
    })?;
    let added = update
        .added
        .ok_or_else(|| CredentialsError::from(KeyError::Contended))?;
    Ok((update.keys, added))
}

/// The set as a table, one key per line, oldest first.
pub fn table(set: &VersionedKeySet) -> String {
    let mut out = format!("key set version {}\n", set.version);
    let _ = writeln!(
        out,
        "{:<24} {:<6} {:<8} {:<24} {:<24} retired",
        "kid", "alg", "state", "created", "activated"
    );
    for key in &set.keys {
        let _ = writeln!(out, "{}", row(key));
    }
    out
}

fn row(key: &SigningKey) -> String {
    format!(
        "{:<24} {:<6} {:<8} {:<24} {:<24} {}",
        key.kid,
        key.algorithm.as_str(),
        key.state.as_str(),
        time(Some(key.created_at)),
        time(key.activated_at),
        time(key.retired_at)
    )
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// When the key `kid` of `set`, just added, signs: at once when it is the
/// set's first key, else `auth.signing.publish_ahead_secs` from now.
pub fn when_it_signs(settings: &Settings, set: &VersionedKeySet, kid: &str) -> String {
    let active = set
        .keys
        .iter()
        .any(|key| key.kid == kid && key.state == KeyState::Active);
    if active {
        "the set's first key, signing now".to_owned()
    } else {
        let lead = settings.auth.rotation_policy().publish_ahead.as_secs();
        format!("published now, signs in {lead} s (auth.signing.publish_ahead_secs)")
    }
}

/// The configured store, migrated; on the embedded store, refuses a
/// missing file (a mistyped `store.path`) and, through the store's lock,
/// a file the running service holds.
pub(crate) async fn open(
    settings: &Settings,
) -> Result<std::sync::Arc<dyn orgsvc_domain::TenantStore>, StartupError> {
    // A mistyped store.path must not quietly make a new, empty store.
    let path = &settings.store.path;
    if settings.store.kind == StoreKind::Embedded && !path.exists() {
        return Err(StartupError::Usage(format!(
            "no embedded store at {} (store.path): check the setting, or start the service once to create it",
            path.display()
        )));
    }
    let store = SelectedStore::open(settings).await?;
    store.migrate().await?;
    Ok(store.into_shared())
}
