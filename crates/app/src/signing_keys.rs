//! Keeping the stored key set current: the rules are the domain's
//! ([`plan_maintenance`], [`add_key`]); this runs them against the
//! [`SigningKeyStore`] as a compare-and-swap loop, generating keys when
//! the rules ask for one. Any instance may run it at any time: of instances
//! changing the set at once, one wins, and the others load the winner's set
//! and decide again on it.
//!
//! A service instance keeps its [`TokenService`] on the stored set with
//! [`SigningKeys`]: at startup it runs [`maintain_signing_keys`] (the first
//! run of a deployment stores its first, active key) and builds a
//! [`KeyRing`] from the result (with the legacy HS256 secret while tokens
//! issued before the switch may still be alive); then, every
//! [`SigningKeys::refresh_interval`] (well under `publish_ahead`), it runs
//! it again and installs a new ring when the set's version moved
//! ([`TokenService::install_key_ring`]: every clone switches at once). An
//! operator's rotation ([`rotate_signing_keys`], `orgsvc keys rotate`)
//! adds a `next` key that every instance publishes before any signs with
//! it.

use orgsvc_domain::{
    add_key, clock, plan_maintenance, ReplaceKeySetError, RotationPolicy, SigningAlgorithm,
    SigningKeyStore, VersionedKeySet,
};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orgsvc_auth::{generate_signing_key, KeyEncryptionKey, KeyError, KeyRing, TokenService};
use orgsvc_domain::{ErrorChain, TenantStore};
use secrecy::SecretSlice;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Loads of the set before giving up on a contended change.
const MAX_TRIES: usize = 5;

/// What a maintenance or rotation run left in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetUpdate {
    /// The set as stored now: build the [`orgsvc_auth::KeyRing`] from it.
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
        // A key sealed under another secret would split the set between two
        // secrets: whoever holds one could not sign once the other's key is
        // active. Refuse before changing anything.
        for key in &current.keys {
            encryption.open(&key.kid, &key.private_key)?;
        }
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

/// How this deployment signs access tokens with its stored key set.
#[derive(Clone)]
pub struct SigningSettings {
    /// The algorithm of the keys generated from now on.
    pub algorithm: SigningAlgorithm,
    /// When keys move on.
    pub policy: RotationPolicy,
    /// Decrypts and encrypts the private keys at rest.
    pub encryption: KeyEncryptionKey,
    /// The HS256 secret of tokens issued before the switch to the key set
    /// (`auth.jwt_secret`), verified while configured.
    pub legacy_secret: Option<SecretSlice<u8>>,
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
}

impl std::fmt::Debug for SigningSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSettings")
            .field("algorithm", &self.algorithm)
            .field("policy", &self.policy)
            .field("legacy_secret", &self.legacy_secret.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Keeps a [`TokenService`] signing with the stored key set's active key
/// and verifying with every published key. Clones share the service.
#[derive(Clone)]
pub struct SigningKeys {
    store: Arc<dyn TenantStore>,
    tokens: TokenService,
    settings: Arc<SigningSettings>,
    installed: Arc<AtomicU64>,
    /// Refreshes that failed since the start.
    failures: Arc<AtomicU64>,
    /// When the last refresh (or the start) succeeded, in Unix milliseconds.
    last_success_ms: Arc<AtomicI64>,
}

/// How the key ring keeps up with the stored set (for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningKeysStatus {
    /// The version of the stored set the installed ring was built from.
    pub installed_version: u64,
    /// Refreshes that failed since the start.
    pub refresh_failures: u64,
    /// When the last refresh succeeded (Unix milliseconds): an instance
    /// that cannot refresh misses rotations, and then refuses the tokens
    /// other instances sign with the new key.
    pub last_success_unix_ms: i64,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("tokens", &self.tokens)
            .field("settings", &self.settings)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Brings the stored set up to date ([`maintain_signing_keys`]) and
    /// builds the token service on it.
    ///
    /// # Errors
    /// The store's failure, a set that cannot be used (a private key that
    /// does not decrypt with `settings.encryption`), or a set other
    /// instances keep changing.
    pub async fn start(
        store: Arc<dyn TenantStore>,
        settings: SigningSettings,
    ) -> Result<Self, KeyError> {
        let update = maintain(store.as_ref(), &settings).await?;
        let ring = ring_of(&update.keys, &settings)?;
        tracing::info!(
            version = update.keys.version,
            signing_kid = ring.signing_kid(),
            "signing keys loaded"
        );
        let tokens = TokenService::with_key_ring(
            ring,
            settings.issuer.clone(),
            settings.audience.clone(),
            settings.policy.token_ttl,
        );
        Ok(Self {
            store,
            tokens,
            settings: Arc::new(settings),
            installed: Arc::new(AtomicU64::new(update.keys.version)),
            failures: Arc::new(AtomicU64::new(0)),
            last_success_ms: Arc::new(AtomicI64::new(clock::now_millis().timestamp_millis())),
        })
    }

    /// How the ring keeps up with the stored set now.
    pub fn status(&self) -> SigningKeysStatus {
        SigningKeysStatus {
            installed_version: self.installed.load(Ordering::Acquire),
            refresh_failures: self.failures.load(Ordering::Relaxed),
            last_success_unix_ms: self.last_success_ms.load(Ordering::Relaxed),
        }
    }

    /// The token service; it follows every [`SigningKeys::refresh`].
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// How often to refresh: a quarter of `publish_ahead`, between 1 s and
    /// a minute, so that every instance publishes a `next` key long before
    /// any signs with it.
    pub fn refresh_interval(&self) -> Duration {
        (self.settings.policy.publish_ahead / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Applies the set's scheduled moves (and adds a key when one is due),
    /// then installs a new ring if the stored set changed since the last
    /// one; answers whether it did.
    ///
    /// # Errors
    /// As [`SigningKeys::start`]; the installed ring stays.
    pub async fn refresh(&self) -> Result<bool, KeyError> {
        let refreshed = self.try_refresh().await;
        match &refreshed {
            Ok(_) => self
                .last_success_ms
                .store(clock::now_millis().timestamp_millis(), Ordering::Relaxed),
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        refreshed
    }

    async fn try_refresh(&self) -> Result<bool, KeyError> {
        let update = maintain(self.store.as_ref(), &self.settings).await?;
        if update.keys.version == self.installed.load(Ordering::Acquire) {
            return Ok(false);
        }
        let ring = ring_of(&update.keys, &self.settings)?;
        tracing::info!(
            version = update.keys.version,
            signing_kid = ring.signing_kid(),
            "signing keys changed: new key ring installed"
        );
        self.tokens.install_key_ring(ring);
        self.installed.store(update.keys.version, Ordering::Release);
        Ok(true)
    }

    /// Refreshes every [`SigningKeys::refresh_interval`] in the background
    /// until `stop` turns true; failures are logged and retried at the
    /// next tick (the installed ring keeps working meanwhile).
    pub fn spawn_refresher(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.refresh_interval());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate: start() just ran
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stop| *stop) => return,
                    _ = ticks.tick() => {}
                }
                if let Err(error) = self.refresh().await {
                    tracing::error!(error = %ErrorChain(&error), "refreshing the signing keys failed");
                }
            }
        })
    }
}

/// [`maintain_signing_keys`] under `settings`.
async fn maintain(
    store: &dyn SigningKeyStore,
    settings: &SigningSettings,
) -> Result<KeySetUpdate, KeyError> {
    maintain_signing_keys(
        store,
        &settings.policy,
        settings.algorithm,
        &settings.encryption,
    )
    .await
}

/// The ring of a stored set under `settings`.
fn ring_of(keys: &VersionedKeySet, settings: &SigningSettings) -> Result<KeyRing, KeyError> {
    KeyRing::new(
        &keys.keys,
        Some(&settings.encryption),
        settings.legacy_secret.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;
    use orgsvc_domain::{KeySetError, KeyState, SigningKey, StoreError};

    use super::*;
    use orgsvc_auth::KeyRing;

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
    async fn a_rotation_under_another_secret_is_refused_and_changes_nothing() {
        let store = MemoryKeys::default();
        let first =
            maintain_signing_keys(&store, &policy(), SigningAlgorithm::EdDsa, &encryption())
                .await
                .unwrap();
        let other =
            KeyEncryptionKey::derive(&b"another-key-encryption-secret-32-bytes".to_vec().into())
                .unwrap();
        let refused = rotate_signing_keys(&store, &policy(), SigningAlgorithm::EdDsa, &other).await;
        assert!(matches!(refused, Err(KeyError::Open { .. })), "{refused:?}");
        let refused =
            maintain_signing_keys(&store, &policy(), SigningAlgorithm::EdDsa, &other).await;
        assert!(matches!(refused, Err(KeyError::Open { .. })), "{refused:?}");
        assert_eq!(store.set.lock().unwrap().clone(), first.keys);
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
