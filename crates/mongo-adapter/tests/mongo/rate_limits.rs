//! Shared rate limits: one budget per client and window, whichever process
//! counts the call, and counters that go once their window ended.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document};
use mongodb::IndexModel;
use orgsvc_domain::{ClientKey, RateDecision, RateLimit, SharedRateLimits};

use crate::support::TestStore;

/// Three calls per 3 s window (60 a minute after a burst of 3).
fn limit() -> RateLimit {
    RateLimit {
        rate_per_minute: NonZeroU32::new(60).unwrap(),
        burst: NonZeroU32::new(3).unwrap(),
    }
}

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

fn client(ip: &str) -> ClientKey {
    ClientKey::of(Some(ip.parse().unwrap()))
}

/// A time 1 s into a window of [`limit`] an hour from now (so that a TTL
/// monitor leaves the test's counters alone): its window runs from
/// `t0() - 1_000` to `t0() + 2_000`.
fn t0() -> i64 {
    let hour_ahead = Utc::now().timestamp_millis() + 3_600_000;
    hour_ahead - hour_ahead.rem_euclid(3_000) + 1_000
}

fn limited(retry_after_ms: u64) -> RateDecision {
    RateDecision::Limited {
        retry_after: Duration::from_millis(retry_after_ms),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_its_burst_per_window_then_waits_for_the_window_to_end() {
    let t = TestStore::new().await;
    let t0 = t0();
    let a = client("192.0.2.1");
    for _ in 0..3 {
        assert_eq!(
            t.hit(a, limit(), at(t0)).await.unwrap(),
            RateDecision::Allowed
        );
    }
    assert_eq!(t.hit(a, limit(), at(t0)).await.unwrap(), limited(2_000));
    assert_eq!(t.hit(a, limit(), at(t0 + 1_999)).await.unwrap(), limited(1));
    // Other clients have their own budget; a /64 is one client.
    assert_eq!(
        t.hit(client("192.0.2.2"), limit(), at(t0)).await.unwrap(),
        RateDecision::Allowed
    );
    let v6 = client("2001:db8:1:2::1");
    for _ in 0..3 {
        assert_eq!(
            t.hit(v6, limit(), at(t0)).await.unwrap(),
            RateDecision::Allowed
        );
    }
    assert_eq!(
        t.hit(client("2001:db8:1:2:ffff::9"), limit(), at(t0))
            .await
            .unwrap(),
        limited(2_000)
    );
    // The next window brings the whole burst back, however many were refused.
    for _ in 0..3 {
        assert_eq!(
            t.hit(a, limit(), at(t0 + 2_000)).await.unwrap(),
            RateDecision::Allowed
        );
    }
    assert_eq!(
        t.hit(a, limit(), at(t0 + 2_000)).await.unwrap(),
        limited(3_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_allow_one_burst_between_them_even_at_once() {
    let t = TestStore::new().await;
    let t0 = t0();
    let processes = [
        t.store.clone(),
        t.second_process().await,
        t.second_process().await,
    ];
    let a = client("198.51.100.7");
    // 12 simultaneous first calls of a new window, 4 through each process:
    // they race to create the window's counter.
    let calls = (0..12).map(|n| processes[n % 3].hit(a, limit(), at(t0)));
    let decisions: Vec<RateDecision> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let allowed = decisions
        .iter()
        .filter(|d| **d == RateDecision::Allowed)
        .count();
    assert_eq!(allowed, 3, "{decisions:?}");
    assert!(
        decisions
            .iter()
            .all(|d| matches!(d, RateDecision::Allowed) || *d == limited(2_000)),
        "{decisions:?}"
    );
    // One counter holds the window's count.
    let counters = t.raw("rate_limits").await;
    assert_eq!(counters.len(), 1, "{counters:?}");
    let count = match counters[0].get("count") {
        Some(Bson::Int64(count)) => *count,
        Some(Bson::Int32(count)) => i64::from(*count),
        other => panic!("count {other:?}"),
    };
    assert_eq!(count, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_purged_once_their_window_ended() {
    let t = TestStore::new().await;
    let t0 = t0();
    let a = client("192.0.2.1");
    t.hit(a, limit(), at(t0)).await.unwrap();
    t.hit(a, limit(), at(t0 + 3_000)).await.unwrap();
    t.hit(client("192.0.2.2"), limit(), at(t0 + 3_000))
        .await
        .unwrap();
    let stored = t.raw("rate_limits").await;
    assert_eq!(stored.len(), 3);
    let ends: Vec<i64> = stored
        .iter()
        .map(|c| c.get_i64("window_end_ms").unwrap())
        .collect();
    assert!(ends.contains(&(t0 + 2_000)), "{stored:?}");

    // Until the first window ends, nothing goes; then only its counter.
    let purged = t.purge_expired_rate_limits(at(t0 + 1_999)).await.unwrap();
    assert_eq!(purged, 0);
    let purged = t.purge_expired_rate_limits(at(t0 + 2_000)).await.unwrap();
    assert_eq!(purged, 1);
    assert_eq!(t.raw("rate_limits").await.len(), 2);
    // The purge did not reset the current window's count.
    t.hit(a, limit(), at(t0 + 3_000)).await.unwrap();
    t.hit(a, limit(), at(t0 + 3_000)).await.unwrap();
    assert_eq!(
        t.hit(a, limit(), at(t0 + 3_000)).await.unwrap(),
        limited(2_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_expire_through_a_ttl_index_at_their_window_end() {
    let t = TestStore::new().await;
    let indexes: Vec<IndexModel> =
        t.db.collection::<Document>("rate_limits")
            .list_indexes()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
    let ttl = indexes
        .iter()
        .find(|index| index.keys == mongodb::bson::doc! { "expires_at": 1 })
        .unwrap_or_else(|| panic!("no index on expires_at: {indexes:?}"));
    let expire_after = ttl.options.as_ref().and_then(|o| o.expire_after);
    assert_eq!(expire_after, Some(Duration::ZERO), "{ttl:?}");
    assert!(t.has_index_on("rate_limits", "window_end_ms").await);
}
