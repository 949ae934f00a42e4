//! Contract checks for the signing key set ([`crate::SigningKeyStore`]).

use chrono::{DateTime, TimeDelta, Utc};

use super::Store;
use crate::{
    KeyState, PublicKeyParameters, ReplaceKeySetError, SealedPrivateKey, SigningAlgorithm,
    SigningKey,
};

fn now_ms() -> DateTime<Utc> {
    crate::clock::now_millis()
}

/// A key in `state` whose sealed bytes cover every byte value (0 to 255),
/// so a store that treats them as text or trims them is caught.
fn key(kid: &str, algorithm: SigningAlgorithm, state: KeyState) -> SigningKey {
    let now = now_ms();
    let public = match algorithm {
        SigningAlgorithm::EdDsa => PublicKeyParameters::Okp {
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        },
        SigningAlgorithm::Es256 => PublicKeyParameters::Ec {
            crv: "P-256".into(),
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
        },
        SigningAlgorithm::Rs256 => PublicKeyParameters::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4".into(),
            e: "AQAB".into(),
        },
    };
    let mut ciphertext: Vec<u8> = (0..=255_u8).collect();
    ciphertext.extend(kid.bytes());
    ciphertext.extend([0, 0, 0]);
    SigningKey {
        kid: kid.into(),
        algorithm,
        state,
        created_at: now - TimeDelta::seconds(60),
        activated_at: (state != KeyState::Next).then(|| now - TimeDelta::seconds(30)),
        retired_at: (state == KeyState::Retired).then_some(now),
        public,
        private_key: SealedPrivateKey {
            nonce: vec![
                0, 0xFF, 0x80, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
                19, 0,
            ],
            ciphertext,
        },
    }
}

/// Before anything is stored, the set is empty at version 0.
pub async fn signing_keys_start_empty(store: Store) {
    let set = store.load_signing_keys().await.unwrap();
    assert_eq!(set.version, 0);
    assert!(set.keys.is_empty());
}

/// A replaced set comes back unchanged, with the returned version.
pub async fn signing_keys_round_trip(store: Store) {
    let first = vec![key("k-active", SigningAlgorithm::EdDsa, KeyState::Active)];
    let v1 = store.replace_signing_keys(0, first.clone()).await.unwrap();
    assert_eq!(v1, 1);
    let loaded = store.load_signing_keys().await.unwrap();
    assert_eq!((loaded.version, loaded.keys), (1, first));

    let second = vec![
        key("k-old", SigningAlgorithm::Rs256, KeyState::Retired),
        key("k-active", SigningAlgorithm::EdDsa, KeyState::Active),
        key("k-next", SigningAlgorithm::Es256, KeyState::Next),
    ];
    let v2 = store
        .replace_signing_keys(v1, second.clone())
        .await
        .unwrap();
    assert_eq!(v2, 2);
    let loaded = store.load_signing_keys().await.unwrap();
    assert_eq!((loaded.version, loaded.keys), (2, second));

    // Keys can be removed too: the set is replaced, not merged.
    let third = vec![key("k-next", SigningAlgorithm::Es256, KeyState::Active)];
    store.replace_signing_keys(v2, third.clone()).await.unwrap();
    let loaded = store.load_signing_keys().await.unwrap();
    assert_eq!((loaded.version, loaded.keys), (3, third));
}

/// A replace from a version that is no longer current changes nothing.
pub async fn signing_keys_refuse_a_stale_version(store: Store) {
    let first = vec![key("a", SigningAlgorithm::EdDsa, KeyState::Active)];
    // Nothing stored yet: only version 0 is current.
    let early = store.replace_signing_keys(3, first.clone()).await;
    assert!(
        matches!(early, Err(ReplaceKeySetError::VersionConflict)),
        "{early:?}"
    );
    assert_eq!(store.load_signing_keys().await.unwrap().version, 0);

    store.replace_signing_keys(0, first.clone()).await.unwrap();
    let other = vec![key("b", SigningAlgorithm::Es256, KeyState::Active)];
    for stale in [0, 2, 7] {
        let result = store.replace_signing_keys(stale, other.clone()).await;
        assert!(
            matches!(result, Err(ReplaceKeySetError::VersionConflict)),
            "from {stale}: {result:?}"
        );
    }
    let loaded = store.load_signing_keys().await.unwrap();
    assert_eq!((loaded.version, loaded.keys), (1, first));
}

/// Of several replaces racing from one version (the first insert included),
/// exactly one wins and the stored set is the winner's.
pub async fn concurrent_signing_key_replaces_have_one_winner(store: Store) {
    for round in 0..2_u64 {
        let expected = store.load_signing_keys().await.unwrap().version;
        assert_eq!(expected, round);
        let tasks: Vec<_> = (0..4)
            .map(|n| {
                let store = store.clone();
                let keys = vec![key(
                    &format!("r{round}-k{n}"),
                    SigningAlgorithm::EdDsa,
                    KeyState::Active,
                )];
                tokio::spawn(async move {
                    let result = store.replace_signing_keys(expected, keys.clone()).await;
                    (result, keys)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (Ok(version), keys) => winners.push((version, keys)),
                (Err(ReplaceKeySetError::VersionConflict), _) => {}
                (Err(other), _) => panic!("replace failed: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        let loaded = store.load_signing_keys().await.unwrap();
        assert_eq!((loaded.version, loaded.keys), winners.remove(0));
    }
}

/// The sealed private key comes back byte for byte, whatever the bytes.
pub async fn sealed_private_keys_come_back_unchanged(store: Store) {
    let mut keys = vec![
        key("bytes", SigningAlgorithm::Rs256, KeyState::Active),
        key("empty-ish", SigningAlgorithm::EdDsa, KeyState::Next),
    ];
    keys[0].private_key.ciphertext = (0..4096_u32)
        .map(|n| u8::try_from(n.wrapping_mul(2_654_435_761) >> 24).unwrap())
        .collect();
    keys[1].private_key.ciphertext = vec![0];
    store.replace_signing_keys(0, keys.clone()).await.unwrap();
    let loaded = store.load_signing_keys().await.unwrap().keys;
    for (stored, read) in keys.iter().zip(&loaded) {
        assert_eq!(stored.private_key, read.private_key, "{}", stored.kid);
    }
    assert_eq!(loaded, keys);
}
