//! The access-token signing keys: a key set shared by every instance through
//! the [`SigningKeyStore`] port, published as a JWK Set (RFC 7517 §5), and
//! the rotation rules as plain functions ([`plan_maintenance`],
//! [`add_key`]), so every instance decides the same way and the store only
//! keeps the atomicity (a compare-and-swap on the set's version).
//!
//! Life of a key: `next` (published, not yet signing) → `active` (signs new
//! tokens; exactly one once the set is not empty) → `retired` (published
//! until every token it signed has expired) → removed. No cryptography
//! here: keys are generated, sealed and used by the auth crate; this module
//! holds only their public parameters and the sealed private key.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::errors::StoreError;

/// A JWS algorithm a stored key signs with (RFC 7518 §3.1 `alg` values).
/// HS256 is not here: a shared secret is configuration, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// Ed25519 (RFC 8037 §3.1), the default for new deployments.
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4).
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys (RFC 7518 §3.3).
    #[serde(rename = "RS256")]
    Rs256,
}

impl SigningAlgorithm {
    /// Every algorithm, in order of preference.
    pub const ALL: [SigningAlgorithm; 3] = [Self::EdDsa, Self::Es256, Self::Rs256];

    /// The JWS `alg` value (RFC 7518 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The algorithm named by a JWS `alg` value; `None` for any other,
    /// including `none` and the HMAC algorithms.
    pub fn parse(alg: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == alg)
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published ahead of use, so verifiers know it before tokens arrive.
    Next,
    /// Signs new tokens. Never more than one.
    Active,
    /// No longer signs; published until its tokens have expired.
    Retired,
}

impl KeyState {
    /// The stored name: `next`, `active` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    /// The state with this stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Next, Self::Active, Self::Retired]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// A key's public parameters, as the JWK members of RFC 7518 §6 (OKP:
/// RFC 8037 §2), base64url without padding. Serialized with `kty` as the
/// tag, so the JSON is the public JWK minus `kid`, `alg` and `use`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kty")]
pub enum PublicKeyParameters {
    /// An octet key pair (RFC 8037 §2): `crv` is `Ed25519`.
    #[serde(rename = "OKP")]
    Okp {
        /// The curve.
        crv: String,
        /// The public key.
        x: String,
    },
    /// An elliptic-curve key (RFC 7518 §6.2.1): `crv` is `P-256`.
    #[serde(rename = "EC")]
    Ec {
        /// The curve.
        crv: String,
        /// The point's x coordinate.
        x: String,
        /// The point's y coordinate.
        y: String,
    },
    /// An RSA key (RFC 7518 §6.3.1).
    #[serde(rename = "RSA")]
    Rsa {
        /// The modulus.
        n: String,
        /// The public exponent.
        e: String,
    },
}

/// A private key encrypted at rest with an AEAD by the auth crate: the
/// random nonce and the ciphertext (with its tag). Opaque to the domain and
/// the stores, which keep the bytes unchanged. `Debug` shows only lengths.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPrivateKey {
    /// The AEAD nonce, random per encryption.
    pub nonce: Vec<u8>,
    /// The encrypted PKCS#8 DER private key followed by the AEAD tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedPrivateKey")
            .field("nonce_len", &self.nonce.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// One key of the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    /// The key id (RFC 7517 §4.5), unique in the set, put in every token's
    /// header (RFC 7515 §4.1.4).
    pub kid: String,
    /// The only algorithm tokens signed by this key are accepted with.
    pub algorithm: SigningAlgorithm,
    /// Where it is in its life.
    pub state: KeyState,
    /// When it was generated (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When it became active; `None` while `next`.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it stopped signing; set exactly when `retired`.
    pub retired_at: Option<DateTime<Utc>>,
    /// What verifiers need.
    pub public: PublicKeyParameters,
    /// The private key, encrypted.
    pub private_key: SealedPrivateKey,
}

/// A freshly generated key, before it joins the set (see [`add_key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSigningKey {
    /// Its id.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: SigningAlgorithm,
    /// Its public parameters.
    pub public: PublicKeyParameters,
    /// Its private key, encrypted.
    pub private_key: SealedPrivateKey,
}

/// The stored key set and its version, for a compare-and-swap
/// ([`SigningKeyStore::replace_signing_keys`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionedKeySet {
    /// 0 until the set is first stored; each replace adds one.
    pub version: u64,
    /// The keys, in the order they were stored.
    pub keys: Vec<SigningKey>,
}

impl VersionedKeySet {
    /// The key that signs new tokens.
    pub fn active(&self) -> Option<&SigningKey> {
        active_key(&self.keys)
    }
}

/// Why [`SigningKeyStore::replace_signing_keys`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceKeySetError {
    /// The stored version is no longer the expected one: another instance
    /// replaced the set since it was loaded. Load again and redo the change.
    #[error("the signing key set was changed by someone else")]
    VersionConflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The signing key set, stored once for all instances.
///
/// Rules every implementation MUST follow:
/// - The set is one unit: a load returns the keys of exactly one stored
///   version, never a mix of two.
/// - Before the first replace, a load returns version 0 and no keys.
/// - `replace_signing_keys(expected, keys)` stores `keys` as version
///   `expected + 1` and returns it, only if the stored version is still
///   `expected`, checked atomically with the write; otherwise it returns
///   [`ReplaceKeySetError::VersionConflict`] and changes nothing. Of
///   several replaces racing from one version exactly one wins.
/// - Every field comes back as stored: the sealed private key byte for
///   byte, times at millisecond precision.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// The current key set and its version.
    async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError>;

    /// Replaces the whole key set if its version is still
    /// `expected_version` (compare-and-swap); returns the new version.
    async fn replace_signing_keys(
        &self,
        expected_version: u64,
        keys: Vec<SigningKey>,
    ) -> Result<u64, ReplaceKeySetError>;
}

/// When keys move on (all durations; see [`RotationPolicy::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Lifetime of an access token.
    pub token_ttl: Duration,
    /// How long a `next` key is published before it becomes active: long
    /// enough for every verifier (and every instance) to have fetched it.
    pub publish_ahead: Duration,
    /// Age (since activation) at which the active key is replaced.
    pub rotate_every: Duration,
    /// Added to `token_ttl` before a retired key is removed: covers clock
    /// skew, verification leeway and instances that still signed with the
    /// key until their next reload of the set.
    pub grace: Duration,
}

impl RotationPolicy {
    /// Default rotation of every 30 days.
    pub const DEFAULT_ROTATE_EVERY: Duration = Duration::from_secs(30 * 24 * 3600);
    /// Default grace before a retired key is removed.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(5 * 60);

    /// The defaults for tokens living `token_ttl`: publish ahead by one
    /// token lifetime, rotate every 30 days, 5 minutes of grace.
    pub fn new(token_ttl: Duration) -> Self {
        Self {
            token_ttl,
            publish_ahead: token_ttl,
            rotate_every: Self::DEFAULT_ROTATE_EVERY,
            grace: Self::DEFAULT_GRACE,
        }
    }

    /// When a key retired at `retired_at` is no longer needed.
    pub fn removable_at(&self, retired_at: DateTime<Utc>) -> DateTime<Utc> {
        retired_at
            .checked_add_signed(delta(self.token_ttl.saturating_add(self.grace)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// When a `next` key created at `created_at` may become active.
    pub fn activatable_at(&self, created_at: DateTime<Utc>) -> DateTime<Utc> {
        created_at
            .checked_add_signed(delta(self.publish_ahead))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// When a key activated at `activated_at` should be replaced.
    pub fn rotation_due_at(&self, activated_at: DateTime<Utc>) -> DateTime<Utc> {
        activated_at
            .checked_add_signed(delta(self.rotate_every))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// A key set that breaks the rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// Two keys have the same `kid`.
    #[error("two signing keys have the kid {0:?}")]
    DuplicateKid(String),
    /// More than one key is active.
    #[error("more than one signing key is active")]
    SeveralActive,
    /// More than one key is `next`.
    #[error("more than one signing key is next")]
    SeveralNext,
    /// A rotation was asked for while a `next` key is still waiting.
    #[error("a next signing key is already waiting to become active")]
    NextPending,
    /// A key's times do not match its state (e.g. retired without
    /// `retired_at`).
    #[error("signing key {0:?} has times that do not match its state")]
    InconsistentTimes(String),
}

/// The key that signs new tokens.
pub fn active_key(keys: &[SigningKey]) -> Option<&SigningKey> {
    keys.iter().find(|k| k.state == KeyState::Active)
}

/// Checks the set's invariants: unique `kid`s, at most one active and at
/// most one `next` key, times matching each state.
pub fn check_key_set(keys: &[SigningKey]) -> Result<(), KeySetError> {
    let mut kids = std::collections::HashSet::new();
    let (mut active, mut next) = (0_usize, 0_usize);
    for key in keys {
        if !kids.insert(key.kid.as_str()) {
            return Err(KeySetError::DuplicateKid(key.kid.clone()));
        }
        let times_fit = match key.state {
            KeyState::Next => {
                next += 1;
                key.activated_at.is_none() && key.retired_at.is_none()
            }
            KeyState::Active => {
                active += 1;
                key.activated_at.is_some() && key.retired_at.is_none()
            }
            KeyState::Retired => key.retired_at.is_some(),
        };
        if !times_fit {
            return Err(KeySetError::InconsistentTimes(key.kid.clone()));
        }
    }
    if active > 1 {
        return Err(KeySetError::SeveralActive);
    }
    if next > 1 {
        return Err(KeySetError::SeveralNext);
    }
    Ok(())
}

/// Adds a freshly generated key: active at once when the set has no active
/// key (the very first key: nothing to pre-publish for), otherwise as the
/// `next` key. Refuses a second `next` key and a `kid` already in the set.
pub fn add_key(
    keys: &[SigningKey],
    new: NewSigningKey,
    now: DateTime<Utc>,
) -> Result<Vec<SigningKey>, KeySetError> {
    if keys.iter().any(|k| k.kid == new.kid) {
        return Err(KeySetError::DuplicateKid(new.kid));
    }
    if keys.iter().any(|k| k.state == KeyState::Next) {
        return Err(KeySetError::NextPending);
    }
    let first = active_key(keys).is_none();
    let mut out = keys.to_vec();
    out.push(SigningKey {
        kid: new.kid,
        algorithm: new.algorithm,
        state: if first {
            KeyState::Active
        } else {
            KeyState::Next
        },
        created_at: now,
        activated_at: first.then_some(now),
        retired_at: None,
        public: new.public,
        private_key: new.private_key,
    });
    Ok(out)
}

/// What [`plan_maintenance`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenancePlan {
    /// The set after promotion and removal.
    pub keys: Vec<SigningKey>,
    /// Whether `keys` differs from the input (so it must be stored).
    pub changed: bool,
    /// Whether a new key should be generated and added with [`add_key`]:
    /// the set has no active key, or the active key is due for rotation and
    /// no `next` key is waiting.
    pub needs_new_key: bool,
}

/// The scheduled moves of the set at `now`:
/// - a retired key whose tokens have all expired
///   ([`RotationPolicy::removable_at`]) is removed;
/// - a `next` key published for `publish_ahead` becomes active, and the
///   previously active key retires at `now` (so there is never more than
///   one active key); a `next` key in a set without active key becomes
///   active at once;
/// - a new key is asked for when there is no active key, or the active one
///   is older than `rotate_every` and no `next` key waits.
pub fn plan_maintenance(
    keys: &[SigningKey],
    policy: &RotationPolicy,
    now: DateTime<Utc>,
) -> MaintenancePlan {
    let mut out: Vec<SigningKey> = keys
        .iter()
        .filter(|k| {
            k.state != KeyState::Retired
                || k.retired_at.is_none_or(|at| policy.removable_at(at) > now)
        })
        .cloned()
        .collect();
    let has_active = active_key(&out).is_some();
    let promote = out.iter().position(|k| {
        k.state == KeyState::Next && (!has_active || policy.activatable_at(k.created_at) <= now)
    });
    if let Some(index) = promote {
        for key in out.iter_mut().filter(|k| k.state == KeyState::Active) {
            key.state = KeyState::Retired;
            key.retired_at = Some(now);
        }
        if let Some(key) = out.get_mut(index) {
            key.state = KeyState::Active;
            key.activated_at = Some(now);
        }
    }
    let changed = out != keys;
    let has_next = out.iter().any(|k| k.state == KeyState::Next);
    let needs_new_key = match active_key(&out) {
        None => true,
        Some(active) => {
            !has_next
                && active
                    .activated_at
                    .is_none_or(|at| policy.rotation_due_at(at) <= now)
        }
    };
    MaintenancePlan {
        keys: out,
        changed,
        needs_new_key,
    }
}

/// When [`plan_maintenance`] will next have something to do (a promotion,
/// a removal or a rotation); `None` for an empty set, which needs a key
/// now.
pub fn next_maintenance_at(keys: &[SigningKey], policy: &RotationPolicy) -> Option<DateTime<Utc>> {
    let has_next = keys.iter().any(|k| k.state == KeyState::Next);
    keys.iter()
        .filter_map(|k| match k.state {
            KeyState::Next => Some(policy.activatable_at(k.created_at)),
            KeyState::Active if !has_next => k.activated_at.map(|at| policy.rotation_due_at(at)),
            KeyState::Active => None,
            KeyState::Retired => k.retired_at.map(|at| policy.removable_at(at)),
        })
        .min()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn new_key(kid: &str) -> NewSigningKey {
        NewSigningKey {
            kid: kid.into(),
            algorithm: SigningAlgorithm::EdDsa,
            public: PublicKeyParameters::Okp {
                crv: "Ed25519".into(),
                x: "x".into(),
            },
            private_key: SealedPrivateKey {
                nonce: vec![1; 24],
                ciphertext: vec![2; 64],
            },
        }
    }

    /// TTL 900 s, publish ahead 900 s, rotate every 10 000 s, grace 60 s.
    fn policy() -> RotationPolicy {
        RotationPolicy {
            token_ttl: Duration::from_secs(900),
            publish_ahead: Duration::from_secs(900),
            rotate_every: Duration::from_secs(10_000),
            grace: Duration::from_secs(60),
        }
    }

    fn states(keys: &[SigningKey]) -> Vec<(&str, KeyState)> {
        keys.iter().map(|k| (k.kid.as_str(), k.state)).collect()
    }

    #[test]
    fn the_first_key_of_an_empty_set_is_active_at_once() {
        let plan = plan_maintenance(&[], &policy(), at(0));
        assert!(plan.needs_new_key);
        assert!(!plan.changed);
        let keys = add_key(&plan.keys, new_key("a"), at(0)).unwrap();
        assert_eq!(states(&keys), [("a", KeyState::Active)]);
        assert_eq!(keys[0].activated_at, Some(at(0)));
        let plan = plan_maintenance(&keys, &policy(), at(1));
        assert!(!plan.needs_new_key && !plan.changed);
    }

    #[test]
    fn a_rotation_adds_a_next_key_that_activates_after_publish_ahead() {
        let keys = add_key(&[], new_key("a"), at(0)).unwrap();
        let keys = add_key(&keys, new_key("b"), at(100)).unwrap();
        assert_eq!(
            states(&keys),
            [("a", KeyState::Active), ("b", KeyState::Next)]
        );
        // Published for 899 s: not yet.
        let plan = plan_maintenance(&keys, &policy(), at(999));
        assert!(!plan.changed && !plan.needs_new_key);
        // 900 s: b signs, a retires now.
        let plan = plan_maintenance(&keys, &policy(), at(1000));
        assert!(plan.changed && !plan.needs_new_key);
        assert_eq!(
            states(&plan.keys),
            [("a", KeyState::Retired), ("b", KeyState::Active)]
        );
        assert_eq!(plan.keys[0].retired_at, Some(at(1000)));
        assert_eq!(plan.keys[1].activated_at, Some(at(1000)));
    }

    #[test]
    fn a_retired_key_stays_until_its_tokens_expired_then_goes() {
        let keys = add_key(&[], new_key("a"), at(0)).unwrap();
        let keys = add_key(&keys, new_key("b"), at(0)).unwrap();
        let keys = plan_maintenance(&keys, &policy(), at(900)).keys;
        // Retired at 900; TTL 900 + grace 60: removable at 1860.
        let plan = plan_maintenance(&keys, &policy(), at(1859));
        assert!(!plan.changed);
        assert_eq!(plan.keys.len(), 2);
        let plan = plan_maintenance(&keys, &policy(), at(1860));
        assert!(plan.changed);
        assert_eq!(states(&plan.keys), [("b", KeyState::Active)]);
    }

    #[test]
    fn an_old_active_key_asks_for_a_new_one_unless_one_waits() {
        let keys = add_key(&[], new_key("a"), at(0)).unwrap();
        assert!(!plan_maintenance(&keys, &policy(), at(9_999)).needs_new_key);
        assert!(plan_maintenance(&keys, &policy(), at(10_000)).needs_new_key);
        let keys = add_key(&keys, new_key("b"), at(10_000)).unwrap();
        assert!(!plan_maintenance(&keys, &policy(), at(10_001)).needs_new_key);
    }

    #[test]
    fn a_second_next_key_or_a_reused_kid_is_refused() {
        let keys = add_key(&[], new_key("a"), at(0)).unwrap();
        assert_eq!(
            add_key(&keys, new_key("a"), at(1)),
            Err(KeySetError::DuplicateKid("a".into()))
        );
        let keys = add_key(&keys, new_key("b"), at(1)).unwrap();
        assert_eq!(
            add_key(&keys, new_key("c"), at(2)),
            Err(KeySetError::NextPending)
        );
    }

    #[test]
    fn a_next_key_without_an_active_one_activates_at_once() {
        let mut keys = add_key(&[], new_key("a"), at(0)).unwrap();
        keys = add_key(&keys, new_key("b"), at(0)).unwrap();
        keys.retain(|k| k.kid == "b");
        let plan = plan_maintenance(&keys, &policy(), at(1));
        assert_eq!(states(&plan.keys), [("b", KeyState::Active)]);
        assert!(!plan.needs_new_key);
    }

    #[test]
    fn check_key_set_finds_broken_sets() {
        let keys = add_key(&[], new_key("a"), at(0)).unwrap();
        assert_eq!(check_key_set(&keys), Ok(()));
        let mut two = keys.clone();
        two.push(SigningKey {
            kid: "b".into(),
            ..keys[0].clone()
        });
        assert_eq!(check_key_set(&two), Err(KeySetError::SeveralActive));
        two[1].kid = "a".into();
        assert_eq!(
            check_key_set(&two),
            Err(KeySetError::DuplicateKid("a".into()))
        );
        let mut odd = keys;
        odd[0].state = KeyState::Retired;
        assert_eq!(
            check_key_set(&odd),
            Err(KeySetError::InconsistentTimes("a".into()))
        );
    }

    #[test]
    fn next_maintenance_is_the_earliest_scheduled_move() {
        assert_eq!(next_maintenance_at(&[], &policy()), None);
        let keys = add_key(&[], new_key("a"), at(0)).unwrap();
        assert_eq!(next_maintenance_at(&keys, &policy()), Some(at(10_000)));
        let keys = add_key(&keys, new_key("b"), at(50)).unwrap();
        assert_eq!(next_maintenance_at(&keys, &policy()), Some(at(950)));
        let keys = plan_maintenance(&keys, &policy(), at(950)).keys;
        assert_eq!(next_maintenance_at(&keys, &policy()), Some(at(1910)));
    }

    #[test]
    fn names_round_trip() {
        for alg in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(SigningAlgorithm::parse("none"), None);
        assert_eq!(SigningAlgorithm::parse("HS256"), None);
        for state in [KeyState::Next, KeyState::Active, KeyState::Retired] {
            assert_eq!(KeyState::parse(state.as_str()), Some(state));
        }
    }

    #[test]
    fn sealed_keys_do_not_show_their_bytes() {
        let sealed = SealedPrivateKey {
            nonce: vec![0xAB; 3],
            ciphertext: vec![0xCD; 5],
        };
        let shown = format!("{sealed:?}");
        assert!(!shown.contains("171") && !shown.contains("205"), "{shown}");
    }

    /// A step of a simulated deployment.
    #[derive(Clone, Debug)]
    enum Step {
        /// Time passes (seconds) and maintenance runs, adding a key if asked.
        Maintain(u32),
        /// An operator asks for a rotation now.
        Rotate,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![(0_u32..20_000).prop_map(Step::Maintain), Just(Step::Rotate),]
    }

    proptest! {
        /// Whatever happens, the set never has two active or two next keys,
        /// it has an active key once it has any key, and a retired key is
        /// kept at least until its tokens have expired.
        #[test]
        fn rotation_keeps_the_invariants(
            steps in proptest::collection::vec(step(), 1..60),
            ttl in 1_u64..5_000,
            ahead in 0_u64..5_000,
            every in 1_u64..30_000,
        ) {
            let policy = RotationPolicy {
                token_ttl: Duration::from_secs(ttl),
                publish_ahead: Duration::from_secs(ahead),
                rotate_every: Duration::from_secs(every),
                grace: Duration::from_secs(0),
            };
            let mut keys: Vec<SigningKey> = Vec::new();
            let mut now = at(0);
            let mut serial = 0_u32;
            for step in steps {
                let before = keys.clone();
                match step {
                    Step::Maintain(secs) => {
                        now += TimeDelta::seconds(i64::from(secs));
                        let plan = plan_maintenance(&keys, &policy, now);
                        keys = plan.keys;
                        if plan.needs_new_key {
                            serial += 1;
                            keys = add_key(&keys, new_key(&serial.to_string()), now).unwrap();
                        }
                    }
                    Step::Rotate => {
                        serial += 1;
                        match add_key(&keys, new_key(&serial.to_string()), now) {
                            Ok(next) => keys = next,
                            Err(e) => prop_assert_eq!(e, KeySetError::NextPending),
                        }
                    }
                }
                prop_assert_eq!(check_key_set(&keys), Ok(()));
                prop_assert!(keys.is_empty() || active_key(&keys).is_some());
                for gone in before.iter().filter(|b| !keys.iter().any(|k| k.kid == b.kid)) {
                    prop_assert_eq!(gone.state, KeyState::Retired);
                    let retired_at = gone.retired_at.unwrap();
                    prop_assert!(policy.removable_at(retired_at) <= now);
                }
            }
        }
    }
}
