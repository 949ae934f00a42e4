//! Contract checks for the operator API keys ([`crate::OperatorKeyStore`]).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::Store;
use crate::{CreateOperatorKeyError, OperatorKey, OperatorKeyName, OperatorScope, TokenHash};

fn now_ms() -> DateTime<Utc> {
    crate::clock::now_millis()
}

fn hash(n: u32) -> TokenHash {
    TokenHash::from_hex(format!("{n:064x}"))
}

/// Key `n` named `name`, created at `at`, expiring `expires_in` later.
fn key(
    n: u32,
    name: &str,
    scope: OperatorScope,
    at: DateTime<Utc>,
    expires_in: Option<Duration>,
) -> OperatorKey {
    OperatorKey::create(
        OperatorKeyName::parse(name).unwrap(),
        scope,
        hash(n),
        at,
        expires_in,
    )
}

/// Keys come back as created, oldest first; a revoked key stays listed
/// with its first `revoked_at`, and only known names revoke.
pub async fn operator_keys_are_created_listed_and_revoked(store: Store) {
    let now = now_ms();
    assert!(store.operator_keys().await.unwrap().is_empty());
    let ci = key(1, "ci", OperatorScope::Write, now, None);
    let reader = key(
        2,
        "dashboard",
        OperatorScope::Read,
        now,
        Some(Duration::from_secs(3600)),
    );
    store.create_operator_key(ci.clone()).await.unwrap();
    store.create_operator_key(reader.clone()).await.unwrap();
    assert_eq!(
        store.operator_keys().await.unwrap(),
        vec![ci.clone(), reader.clone()]
    );

    let later = now + TimeDelta::seconds(5);
    let revoked = store
        .revoke_operator_key(&ci.name, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(later));
    assert_eq!(revoked.id, ci.id);
    let again = store
        .revoke_operator_key(&ci.name, later + TimeDelta::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(later), "the first revocation stays");
    let unknown = OperatorKeyName::parse("nobody").unwrap();
    assert_eq!(
        store.revoke_operator_key(&unknown, later).await.unwrap(),
        None
    );

    let listed = store.operator_keys().await.unwrap();
    assert_eq!(listed, vec![revoked, reader]);
}

/// A name is taken by any key, revoked or not; racing creations of one
/// name have one winner.
pub async fn operator_key_names_are_unique(store: Store) {
    let now = now_ms();
    store
        .create_operator_key(key(1, "ci", OperatorScope::Write, now, None))
        .await
        .unwrap();
    let taken = store
        .create_operator_key(key(2, "ci", OperatorScope::Read, now, None))
        .await;
    assert!(
        matches!(taken, Err(CreateOperatorKeyError::NameTaken)),
        "{taken:?}"
    );
    let name = OperatorKeyName::parse("ci").unwrap();
    store.revoke_operator_key(&name, now).await.unwrap();
    let after_revoke = store
        .create_operator_key(key(3, "ci", OperatorScope::Read, now, None))
        .await;
    assert!(
        matches!(after_revoke, Err(CreateOperatorKeyError::NameTaken)),
        "{after_revoke:?}"
    );
    assert_eq!(store.operator_keys().await.unwrap().len(), 1);

    let racers = (10..18).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_operator_key(key(n, "racer", OperatorScope::Write, now, None))
                .await
        })
    });
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(()) => won += 1,
            Err(CreateOperatorKeyError::NameTaken) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.operator_keys().await.unwrap().len(), 2);
}

/// A usable key is found by its hash, and only by its hash.
pub async fn operator_keys_are_found_by_hash(store: Store) {
    let now = now_ms();
    let ci = key(1, "ci", OperatorScope::Write, now, None);
    let other = key(2, "other", OperatorScope::Read, now, None);
    store.create_operator_key(ci.clone()).await.unwrap();
    store.create_operator_key(other.clone()).await.unwrap();
    assert_eq!(
        store.operator_key_by_hash(&hash(1), now).await.unwrap(),
        Some(ci)
    );
    assert_eq!(
        store.operator_key_by_hash(&hash(2), now).await.unwrap(),
        Some(other)
    );
    assert_eq!(
        store.operator_key_by_hash(&hash(3), now).await.unwrap(),
        None
    );
}

/// Expired and revoked keys are not found by their hash.
pub async fn expired_and_revoked_operator_keys_are_not_found(store: Store) {
    let now = now_ms();
    let expiring = key(
        1,
        "expiring",
        OperatorScope::Write,
        now,
        Some(Duration::from_secs(60)),
    );
    let revoked = key(2, "revoked", OperatorScope::Write, now, None);
    store.create_operator_key(expiring.clone()).await.unwrap();
    store.create_operator_key(revoked.clone()).await.unwrap();

    let just_before = now + TimeDelta::seconds(60) - TimeDelta::milliseconds(1);
    assert_eq!(
        store
            .operator_key_by_hash(&hash(1), just_before)
            .await
            .unwrap(),
        Some(expiring)
    );
    let at_expiry = now + TimeDelta::seconds(60);
    assert_eq!(
        store
            .operator_key_by_hash(&hash(1), at_expiry)
            .await
            .unwrap(),
        None
    );

    store
        .revoke_operator_key(&revoked.name, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.operator_key_by_hash(&hash(2), now).await.unwrap(),
        None
    );
}

/// The last use is recorded, never moved back; an unknown id changes
/// nothing.
pub async fn operator_key_last_use_is_recorded(store: Store) {
    let now = now_ms();
    let ci = key(1, "ci", OperatorScope::Write, now, None);
    store.create_operator_key(ci.clone()).await.unwrap();
    let used = now + TimeDelta::seconds(90);
    store.record_operator_key_use(ci.id, used).await.unwrap();
    let found = store
        .operator_key_by_hash(&hash(1), used)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.last_used_at, Some(used));

    store
        .record_operator_key_use(ci.id, used - TimeDelta::seconds(30))
        .await
        .unwrap();
    let listed = store.operator_keys().await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(used), "never moved back");

    store
        .record_operator_key_use(crate::OperatorKeyId::new(), used)
        .await
        .unwrap();
    assert_eq!(store.operator_keys().await.unwrap(), listed);
}
