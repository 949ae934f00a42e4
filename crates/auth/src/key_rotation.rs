//! Keeping the stored key set current: the rules are the domain's
//! ([`plan_maintenance`], [`add_key`]); this runs them against the
//! [`SigningKeyStore`] as a compare-and-swap loop, generating keys when
//! the rules ask for one. Any instance may run it at any time: of instances
//! changing the set at once, one wins, and the others load the winner's set
//! and decide again on it.
//!
//! How a service instance uses this crate's key functions:
//! 1. At startup, derive the [`KeyEncryptionKey`] from
//!    `auth.key_encryption_secret`, run [`maintain_signing_keys`] (the
//!    first run of a deployment stores its first, active key), build a
//!    [`crate::KeyRing`] from the result (with the legacy HS256 secret while
//!    tokens issued before the switch may still be alive) and a
//!    [`crate::TokenService::with_key_ring`].
//! 2. Periodically (well under `publish_ahead`, e.g. every minute), run
//!    [`maintain_signing_keys`] again, or just reload the set; when the
//!    version differs from the installed ring's, build a new ring and
//!    [`crate::TokenService::install_key_ring`] it.
//! 3. Serve [`crate::KeyRing::jwks`] as the JWK Set.

use orgsvc_domain::{
    add_key, clock, plan_maintenance, ReplaceKeySetError, RotationPolicy, SigningAlgorithm,
    SigningKeyStore, VersionedKeySet,
};

use crate::keys::{generate_signing_key, KeyEncryptionKey, KeyError};

/// Loads of the set before giving up on a contended change.
const MAX_TRIES: usize = 5;

/// What a maintenance or rotation run left in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetUpdate {
    /// The set as stored now: build the [`crate::KeyRing`] from it.
    pub keys: VersionedKeySet,
    /// Whether this run stored a change.
    pub changed: bool,
    /// The `kid` of the key this run generated and stored, if any.
    pub added: Option<String>,
}

/// Applies the scheduled moves of the set (promotion of a `next` key that
/// was published long enough, removal of retired keys whose tokens have
/// expired) and adds a key of `algorithm` when the rules ask for one: the
/// first key of an empty set (active at once), or a `next` key when the
/// active one is older than `policy.rotate_every`. Run it at startup and
/// periodically (e.g. every minute), then install the ring of the result.
pub async fn maintain_signing_keys(
    store: &dyn SigningKeyStore,
    policy: &RotationPolicy,
    algorithm: SigningAlgorithm,
    encryption: &KeyEncryptionKey,
) -> Result<KeySetUpdate, KeyError> {
    update(store, policy, algorithm, encryption, false).await
}

/// An operator's rotation: after the scheduled moves, adds a `next` key of
/// `algorithm` now (it becomes active after `policy.publish_ahead`);
/// [`KeyError::KeySet`] with `NextPending` when a `next` key already waits.
pub async fn rotate_signing_keys(
    store: &dyn SigningKeyStore,
    policy: &RotationPolicy,
    algorithm: SigningAlgorithm,
    encryption: &KeyEncryptionKey,
) -> Result<KeySetUpdate, KeyError> {
    update(store, policy, algorithm, encryption, true).await
}

async fn update(
    store: &dyn SigningKeyStore,
    policy: &RotationPolicy,
    algorithm: SigningAlgorithm,
    encryption: &KeyEncryptionKey,
    force_new_key: bool,
) -> Result<KeySetUpdate, KeyError> {
    for _ in 0..MAX_TRIES {
        let current = store.load_signing_keys().await.map_err(KeyError::Store)?;
        let now = clock::now_millis();
        let plan = plan_maintenance(&current.keys, policy, now);
        let mut keys = plan.keys;
        let mut added = None;
        if plan.needs_new_key || force_new_key {
            let encryption = encryption.clone();
            let new =
                tokio::task::spawn_blocking(move || generate_signing_key(algorithm, &encryption))
                    .await
                    .map_err(|e| KeyError::Generation {
                        algorithm,
                        reason: e.to_string(),
                    })??;
            added = Some(new.kid.clone());
            keys = add_key(&keys, new, now)?;
        }
        if !plan.changed && added.is_none() {
            return Ok(KeySetUpdate {
                keys: current,
                changed: false,
                added,
            });
        }
        match store
            .replace_signing_keys(current.version, keys.clone())
            .await
        {
            Ok(version) => {
                tracing::info!(
                    version,
                    added = added.as_deref(),
                    "stored a new signing key set"
                );
                return Ok(KeySetUpdate {
                    keys: VersionedKeySet { version, keys },
                    changed: true,
                    added,
                });
            }
            Err(ReplaceKeySetError::VersionConflict) => {
                tracing::debug!("the signing key set changed meanwhile; deciding again");
            }
            Err(ReplaceKeySetError::Store(e)) => return Err(KeyError::Store(e)),
        }
    }
    Err(KeyError::Contended)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;
    use orgsvc_domain::{KeySetError, KeyState, SigningKey, StoreError};

    use super::*;
    use crate::KeyRing;

    /// An in-memory key store with the port's compare-and-swap; with
    /// `interfere`, another instance changes the set right after each load
    /// (until the counter runs out).
    #[derive(Default)]
    struct MemoryKeys {
        set: Mutex<VersionedKeySet>,
        interfere: Mutex<usize>,
    }

    #[async_trait]
    impl SigningKeyStore for MemoryKeys {
        async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError> {
            let loaded = self.set.lock().unwrap().clone();
            let mut interfere = self.interfere.lock().unwrap();
            if *interfere > 0 {
                *interfere -= 1;
                self.set.lock().unwrap().version += 1;
            }
            Ok(loaded)
        }

        async fn replace_signing_keys(
            &self,
            expected_version: u64,
            keys: Vec<SigningKey>,
        ) -> Result<u64, ReplaceKeySetError> {
            let mut set = self.set.lock().unwrap();
            if set.version != expected_version {
                return Err(ReplaceKeySetError::VersionConflict);
            }
            *set = VersionedKeySet {
                version: expected_version + 1,
                keys,
            };
            Ok(set.version)
        }
    }

    fn encryption() -> KeyEncryptionKey {
        KeyEncryptionKey::derive(&b"a-key-encryption-secret-of-32-bytes!".to_vec().into()).unwrap()
    }

    fn policy() -> RotationPolicy {
        RotationPolicy::new(Duration::from_secs(900))
    }

    #[tokio::test]
    async fn the_first_run_stores_an_active_key_and_later_runs_change_nothing() {
        let store = MemoryKeys::default();
        let first =
            maintain_signing_keys(&store, &policy(), SigningAlgorithm::EdDsa, &encryption())
                .await
                .unwrap();
        assert!(first.changed);
        assert_eq!(first.keys.version, 1);
        assert_eq!(first.keys.keys.len(), 1);
        assert_eq!(first.keys.keys[0].state, KeyState::Active);
        assert_eq!(
            first.added.as_deref(),
            Some(first.keys.keys[0].kid.as_str())
        );
        let ring = KeyRing::new(&first.keys.keys, Some(&encryption()), None).unwrap();
        assert_eq!(ring.signing_kid(), first.added.as_deref());

        let again =
            maintain_signing_keys(&store, &policy(), SigningAlgorithm::EdDsa, &encryption())
                .await
                .unwrap();
        assert!(!again.changed);
        assert_eq!(again.keys, first.keys);
    }

    #[tokio::test]
    async fn a_rotation_adds_one_next_key_and_refuses_a_second() {
        let store = MemoryKeys::default();
        let enc = encryption();
        maintain_signing_keys(&store, &policy(), SigningAlgorithm::EdDsa, &enc)
            .await
            .unwrap();
        let rotated = rotate_signing_keys(&store, &policy(), SigningAlgorithm::Es256, &enc)
            .await
            .unwrap();
        let states: Vec<_> = rotated
            .keys
            .keys
            .iter()
            .map(|k| (k.state, k.algorithm))
            .collect();
        assert_eq!(
            states,
            [
                (KeyState::Active, SigningAlgorithm::EdDsa),
                (KeyState::Next, SigningAlgorithm::Es256)
            ]
        );
        let again = rotate_signing_keys(&store, &policy(), SigningAlgorithm::Es256, &enc).await;
        assert!(
            matches!(again, Err(KeyError::KeySet(KeySetError::NextPending))),
            "{again:?}"
        );
        assert_eq!(store.load_signing_keys().await.unwrap(), rotated.keys);
    }

    #[tokio::test]
    async fn a_lost_race_is_decided_again_on_the_winners_set() {
        let store = MemoryKeys::default();
        *store.interfere.lock().unwrap() = 2;
        let done = maintain_signing_keys(&store, &policy(), SigningAlgorithm::EdDsa, &encryption())
            .await
            .unwrap();
        assert_eq!(done.keys.version, 3);
        assert_eq!(store.load_signing_keys().await.unwrap(), done.keys);

        let contended = MemoryKeys::default();
        *contended.interfere.lock().unwrap() = usize::MAX;
        let gave_up = maintain_signing_keys(
            &contended,
            &policy(),
            SigningAlgorithm::EdDsa,
            &encryption(),
        )
        .await;
        assert!(matches!(gave_up, Err(KeyError::Contended)), "{gave_up:?}");
    }
}
