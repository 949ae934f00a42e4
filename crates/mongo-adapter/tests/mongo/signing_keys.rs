//! The signing key set: one document, shared by every process on the
//! database, replaced by compare-and-swap.

use chrono::{DateTime, Utc};
use mongodb::bson::Bson;
use orgsvc_domain::{
    KeyState, PublicKeyParameters, ReplaceKeySetError, SealedPrivateKey, SigningAlgorithm,
    SigningKey, SigningKeyStore,
};

use crate::support::TestStore;

fn key(kid: &str) -> SigningKey {
    let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_123).unwrap();
    SigningKey {
        kid: kid.into(),
        algorithm: SigningAlgorithm::Es256,
        state: KeyState::Active,
        created_at: at,
        activated_at: Some(at),
        retired_at: None,
        public: PublicKeyParameters::Ec {
            crv: "P-256".into(),
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
        },
        private_key: SealedPrivateKey {
            nonce: vec![0xFB; 24],
            ciphertext: vec![0, 1, 2, 0xFF],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_set_is_one_document_of_the_documented_shape() {
    let t = TestStore::new().await;
    t.replace_signing_keys(0, vec![key("k1")]).await.unwrap();

    let raw = t.raw("signing_keys").await;
    assert_eq!(raw.len(), 1, "{raw:?}");
    let set = &raw[0];
    assert_eq!(set.get_str("_id").unwrap(), "signing_keys");
    assert!(
        matches!(set.get("version"), Some(Bson::Int64(1) | Bson::Int32(1))),
        "{set:?}"
    );
    let keys = set.get_array("keys").unwrap();
    let stored = keys[0].as_document().unwrap();
    assert_eq!(stored.get_str("kid").unwrap(), "k1");
    assert_eq!(stored.get_str("alg").unwrap(), "ES256");
    assert_eq!(stored.get_str("state").unwrap(), "active");
    assert_eq!(stored.get_i64("created_ms").unwrap(), 1_700_000_000_123);
    assert!(stored.get("retired_ms").is_none(), "{stored:?}");
    assert_eq!(
        stored
            .get_document("public")
            .unwrap()
            .get_str("kty")
            .unwrap(),
        "EC"
    );
    assert_eq!(stored.get_str("sealed").unwrap(), "AAEC/w==");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_set_and_only_one_replaces_a_version() {
    let t = TestStore::new().await;
    let other = t.second_process().await;
    t.replace_signing_keys(0, vec![key("k1")]).await.unwrap();
    assert_eq!(
        other.load_signing_keys().await.unwrap().keys,
        vec![key("k1")]
    );

    let (a, b) = tokio::join!(
        t.replace_signing_keys(1, vec![key("from-a")]),
        other.replace_signing_keys(1, vec![key("from-b")]),
    );
    let won = match (&a, &b) {
        (Ok(2), Err(ReplaceKeySetError::VersionConflict)) => "from-a",
        (Err(ReplaceKeySetError::VersionConflict), Ok(2)) => "from-b",
        other => panic!("expected one winner: {other:?}"),
    };
    let loaded = other.load_signing_keys().await.unwrap();
    assert_eq!((loaded.version, loaded.keys), (2, vec![key(won)]));
}
