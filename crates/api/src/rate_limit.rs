//! Per-client-IP rate limiting of the credential endpoints (`POST
//! /admin/login`, `POST /admin/refresh`), shared by every worker, and by
//! every instance when the store can count calls ([`LoginRateLimiter`]).
//!
//! Two limiters, chosen at startup by the store:
//!
//! - **In-process** ([`RateLimiter`], the embedded store): GCRA (the generic
//!   cell rate algorithm, a token bucket kept as one timestamp per client):
//!   a client may make `burst` calls at once, then one every `60 s /
//!   rate_per_minute`; a refused call does not count. Memory is bounded: a
//!   client whose bucket is full again is forgotten (swept at least once
//!   per refill period), and the table holds at most [`DEFAULT_CAPACITY`]
//!   clients; when it is full of active clients, the one closest to a full
//!   bucket is forgotten first. Each process counts its own calls.
//! - **Shared via the store** (MongoDB, [`SharedRateLimits`]): one
//!   fixed-window counter per client in the store, one round trip per call,
//!   so all instances together allow one budget: `burst` calls per window of
//!   `burst × 60 s / rate_per_minute`, at most `2 × burst` around a window
//!   edge (the exact rule is [`orgsvc_domain::RateLimit`]'s).
//!
//! A store failure never fails a login or refresh: the call is checked by
//! this instance's in-process limiter instead (fail-open to per-instance
//! limits) and a warning is logged.
//!
//! Clients are keyed by [`ClientKey`]: IP address, IPv6 ones by their /64
//! prefix, IPv4-mapped IPv6 addresses as the IPv4 address.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use orgsvc_domain::{ClientKey, RateDecision, RateLimit, SharedRateLimits};

use crate::config::SecuritySettings;
use crate::problem::{whole_seconds_up, ErrorChain};

/// Emails with a link (password reset, email verification) asked for one
/// address, on top of the per-IP limit: 3 at once, then one a minute (fixed
/// windows of 3 minutes when shared), so nobody can flood an inbox.
pub const LINK_EMAILS_PER_ADDRESS: RateLimit = RateLimit {
    rate_per_minute: NonZeroU32::MIN,
    burst: match NonZeroU32::new(3) {
        Some(burst) => burst,
        None => NonZeroU32::MIN,
    },
};

/// Most clients the limiter keeps state for.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// A call was refused: retry after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Time until the call would be allowed.
    pub retry_after: Duration,
}

impl Limited {
    /// `retry_after` in whole seconds, rounded up (at least 1), as sent in
    /// `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        whole_seconds_up(self.retry_after)
    }
}

/// The in-process GCRA rate limiter keyed by client IP (see the module's
/// doc).
#[derive(Debug)]
pub struct RateLimiter {
    /// Time one call "costs": `60 s / rate_per_minute`.
    interval: Duration,
    /// How far ahead of now a client's bucket may be drawn: `burst × interval`.
    tolerance: Duration,
    capacity: usize,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    /// Each client's theoretical arrival time: its bucket is full again then.
    full_at: HashMap<ClientKey, Instant>,
    /// When full buckets were last swept out.
    swept_at: Option<Instant>,
}

impl RateLimiter {
    /// `rate_per_minute` calls per client and minute after a `burst`.
    pub fn new(rate_per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self::with_capacity(rate_per_minute, burst, DEFAULT_CAPACITY)
    }

    /// Like [`RateLimiter::new`], keeping at most `capacity` clients (at
    /// least one).
    pub fn with_capacity(rate_per_minute: NonZeroU32, burst: NonZeroU32, capacity: usize) -> Self {
        let interval = Duration::from_secs(60) / rate_per_minute.get();
        Self {
            interval,
            tolerance: interval.saturating_mul(burst.get()),
            capacity: capacity.max(1),
            state: Mutex::new(Buckets {
                full_at: HashMap::new(),
                swept_at: None,
            }),
        }
    }

    /// Counts a call of `client` now; `Err` when it is over the limit.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Limited> {
        self.check_at(client, Instant::now())
    }

    /// Counts a call of `client` at `now` (an injected clock, for tests).
    pub fn check_at(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Limited> {
        self.check_key_at(ClientKey::of(client), now)
    }

    /// Counts a call under `key` at `now`.
    pub fn check_key_at(&self, key: ClientKey, now: Instant) -> Result<(), Limited> {
        // The map stays consistent whatever panicked while holding the lock.
        let mut buckets = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let known = buckets.full_at.get(&key).copied();
        let drawn_from = known.filter(|full_at| *full_at > now).unwrap_or(now);
        let full_at = drawn_from.checked_add(self.interval).unwrap_or(drawn_from);
        let ahead = full_at.saturating_duration_since(now);
        if ahead > self.tolerance {
            return Err(Limited {
                retry_after: ahead - self.tolerance,
            });
        }
        if known.is_none() {
            self.make_room(&mut buckets, now);
        } else {
            self.sweep_if_due(&mut buckets, now);
        }
        buckets.full_at.insert(key, full_at);
        Ok(())
    }

    /// How many clients the limiter holds state for.
    pub fn tracked_clients(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .full_at
            .len()
    }

    /// Drops full buckets once per refill period.
    fn sweep_if_due(&self, buckets: &mut Buckets, now: Instant) {
        let due = buckets
            .swept_at
            .is_none_or(|swept_at| now.saturating_duration_since(swept_at) >= self.tolerance);
        if due {
            buckets.full_at.retain(|_, full_at| *full_at > now);
            buckets.swept_at = Some(now);
        }
    }

    /// Before adding a client: sweeps when due or when the table is full,
    /// and if it is still full, forgets the client closest to a full bucket.
    fn make_room(&self, buckets: &mut Buckets, now: Instant) {
        if buckets.full_at.len() >= self.capacity {
            buckets.swept_at = None;
        }
        self.sweep_if_due(buckets, now);
        while buckets.full_at.len() >= self.capacity {
            let closest = buckets
                .full_at
                .iter()
                .min_by_key(|(_, full_at)| **full_at)
                .map(|(key, _)| *key);
            match closest {
                Some(key) => buckets.full_at.remove(&key),
                None => break,
            };
        }
    }
}

/// The wall clock the shared limiter counts calls by (tests freeze it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The limit of the credential routes: in-process, or shared by every
/// instance through the store (see the module's doc). Chosen at startup.
pub struct LoginRateLimiter {
    limit: RateLimit,
    /// The in-process limiter: the only one without a shared store, the
    /// fallback when the shared store fails.
    local: RateLimiter,
    shared: Option<Arc<dyn SharedRateLimits>>,
    clock: Clock,
}

impl fmt::Debug for LoginRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRateLimiter")
            .field("limit", &self.limit)
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

impl LoginRateLimiter {
    /// This process counts its own calls: `security.login_rate_per_minute`
    /// after `security.login_rate_burst`, GCRA.
    pub fn in_process(security: &SecuritySettings) -> Self {
        Self::of_limit(security.login_rate_limit())
    }

    /// This process counts its own calls under `limit`, GCRA (e.g.
    /// [`LINK_EMAILS_PER_ADDRESS`]).
    pub fn of_limit(limit: RateLimit) -> Self {
        Self {
            limit,
            local: RateLimiter::new(limit.rate_per_minute, limit.burst),
            shared: None,
            clock: Arc::new(Utc::now),
        }
    }

    /// The same limit, counted by every instance on `store` together.
    pub fn shared_via(self, store: Arc<dyn SharedRateLimits>) -> Self {
        Self {
            shared: Some(store),
            ..self
        }
    }

    /// Every instance on `store` counts calls there, together: the same
    /// settings as fixed windows (see [`RateLimit`]).
    pub fn shared(security: &SecuritySettings, store: Arc<dyn SharedRateLimits>) -> Self {
        Self::in_process(security).shared_via(store)
    }

    /// The same limiter, reading the time for the shared store from `clock`
    /// instead of the system clock (the in-process limiter keeps its
    /// monotonic clock).
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// Whether calls are counted in the store, across instances.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Counts a call of `client` now; `Err` when it is over the limit.
    pub async fn check(&self, client: Option<IpAddr>) -> Result<(), Limited> {
        self.check_at(client, Instant::now(), (self.clock)()).await
    }

    /// Counts a call of `client` at `now` (the same moment as `instant`, for
    /// the in-process limiter). Never fails: when the shared store does, the
    /// in-process limiter decides and a warning is logged.
    pub async fn check_at(
        &self,
        client: Option<IpAddr>,
        instant: Instant,
        now: DateTime<Utc>,
    ) -> Result<(), Limited> {
        self.check_key_at(ClientKey::of(client), instant, now).await
    }

    /// Counts a call under `key` now (e.g. [`ClientKey::email`]); `Err`
    /// when it is over the limit.
    pub async fn check_key(&self, key: ClientKey) -> Result<(), Limited> {
        self.check_key_at(key, Instant::now(), (self.clock)()).await
    }

    /// [`LoginRateLimiter::check_at`] for any key.
    pub async fn check_key_at(
        &self,
        client: ClientKey,
        instant: Instant,
        now: DateTime<Utc>,
    ) -> Result<(), Limited> {
        let Some(shared) = &self.shared else {
            return self.local.check_key_at(client, instant);
        };
        match shared.hit(client, self.limit, now).await {
            Ok(RateDecision::Allowed) => Ok(()),
            Ok(RateDecision::Limited { retry_after }) => Err(Limited { retry_after }),
            Err(error) => {
                tracing::warn!(
                    error = %ErrorChain(&error),
                    "the shared credential rate limit is unavailable: this instance limits alone"
                );
                self.local.check_key_at(client, instant)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use orgsvc_domain::StoreError;

    use super::*;
    use crate::config::Settings;

    fn limiter(rate_per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(
            NonZeroU32::new(rate_per_minute).unwrap(),
            NonZeroU32::new(burst).unwrap(),
        )
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_passes_then_one_call_per_interval() {
        let limiter = limiter(60, 3); // one a second after 3 at once
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at(ip("192.0.2.1"), t0), Ok(()));
        }
        let refused = limiter.check_at(ip("192.0.2.1"), t0).unwrap_err();
        assert_eq!(refused.retry_after, SEC);
        assert_eq!(refused.retry_after_secs(), 1);
        // Refused calls do not count: one second later exactly one passes.
        assert!(limiter.check_at(ip("192.0.2.1"), t0).is_err());
        assert_eq!(limiter.check_at(ip("192.0.2.1"), t0 + SEC), Ok(()));
        assert!(limiter.check_at(ip("192.0.2.1"), t0 + SEC).is_err());
        // After a full refill period, the whole burst is back.
        let later = t0 + 5 * SEC;
        for _ in 0..3 {
            assert_eq!(limiter.check_at(ip("192.0.2.1"), later), Ok(()));
        }
        assert!(limiter.check_at(ip("192.0.2.1"), later).is_err());
    }

    #[test]
    fn retry_after_is_the_time_until_the_next_call_passes_rounded_up() {
        let limiter = limiter(2, 1); // one every 30 s
        let t0 = Instant::now();
        limiter.check_at(ip("192.0.2.1"), t0).unwrap();
        let refused = limiter
            .check_at(ip("192.0.2.1"), t0 + Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(29_900));
        assert_eq!(refused.retry_after_secs(), 30);
        let almost = t0 + Duration::from_millis(29_999);
        assert_eq!(
            limiter
                .check_at(ip("192.0.2.1"), almost)
                .unwrap_err()
                .retry_after_secs(),
            1
        );
        assert_eq!(limiter.check_at(ip("192.0.2.1"), t0 + 30 * SEC), Ok(()));
    }

    #[test]
    fn clients_are_limited_separately() {
        let limiter = limiter(60, 1);
        let t0 = Instant::now();
        limiter.check_at(ip("192.0.2.1"), t0).unwrap();
        assert!(limiter.check_at(ip("192.0.2.1"), t0).is_err());
        assert_eq!(limiter.check_at(ip("192.0.2.2"), t0), Ok(()));
        assert_eq!(limiter.check_at(ip("2001:db8:1::1"), t0), Ok(()));
        assert_eq!(limiter.check_at(None, t0), Ok(()));
        assert!(limiter.check_at(None, t0).is_err());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        let limiter = limiter(60, 1);
        let t0 = Instant::now();
        limiter.check_at(ip("2001:db8:1:2::1"), t0).unwrap();
        assert!(limiter.check_at(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert_eq!(limiter.check_at(ip("2001:db8:1:3::1"), t0), Ok(()));
        limiter.check_at(ip("198.51.100.7"), t0).unwrap();
        assert!(limiter.check_at(ip("::ffff:198.51.100.7"), t0).is_err());
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let limiter = limiter(60, 2);
        let t0 = Instant::now();
        for n in 0..50 {
            limiter.check_at(ip(&format!("192.0.2.{n}")), t0).unwrap();
        }
        assert_eq!(limiter.tracked_clients(), 50);
        // Two seconds later every bucket is full again; the next call sweeps.
        limiter.check_at(ip("198.51.100.1"), t0 + 2 * SEC).unwrap();
        assert_eq!(limiter.tracked_clients(), 1);
    }

    #[test]
    fn the_table_never_exceeds_its_capacity() {
        let limiter = RateLimiter::with_capacity(
            NonZeroU32::new(1).unwrap(),
            NonZeroU32::new(1).unwrap(),
            10,
        );
        let t0 = Instant::now();
        for n in 0..100_u32 {
            let at = t0 + Duration::from_millis(u64::from(n));
            limiter
                .check_at(ip(&format!("10.0.{}.{}", n / 256, n % 256)), at)
                .unwrap();
            assert!(limiter.tracked_clients() <= 10);
        }
        // The most recent clients are the ones still limited.
        let at = t0 + Duration::from_millis(100);
        assert!(limiter.check_at(ip("10.0.0.99"), at).is_err());
        assert_eq!(limiter.check_at(ip("10.0.0.0"), at), Ok(()));
    }

    /// A shared store that answers every call the same, and counts them.
    struct FixedStore {
        answer: Option<RateDecision>,
        calls: Mutex<Vec<(ClientKey, RateLimit, DateTime<Utc>)>>,
    }

    #[async_trait]
    impl SharedRateLimits for FixedStore {
        async fn hit(
            &self,
            client: ClientKey,
            limit: RateLimit,
            now: DateTime<Utc>,
        ) -> Result<RateDecision, StoreError> {
            self.calls.lock().unwrap().push((client, limit, now));
            self.answer
                .ok_or_else(|| StoreError::msg("the store is down"))
        }

        async fn purge_expired_rate_limits(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
            Ok(0)
        }
    }

    fn security(rate_per_minute: &str, burst: &str) -> SecuritySettings {
        let env = [
            ("ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE", rate_per_minute),
            ("ORGSVC__SECURITY__LOGIN_RATE_BURST", burst),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        Settings::load_from(None, Some(env)).unwrap().security
    }

    fn shared(answer: Option<RateDecision>) -> (Arc<FixedStore>, LoginRateLimiter) {
        let store = Arc::new(FixedStore {
            answer,
            calls: Mutex::new(Vec::new()),
        });
        let limiter = LoginRateLimiter::shared(&security("60", "2"), store.clone());
        (store, limiter)
    }

    #[actix_web::test]
    async fn a_shared_limiter_counts_every_call_in_the_store_under_the_settings() {
        let (store, limiter) = shared(Some(RateDecision::Allowed));
        assert!(limiter.is_shared());
        let (t0, now) = (Instant::now(), Utc::now());
        // More than the burst: the store decides, not the process.
        for _ in 0..5 {
            assert_eq!(
                limiter.check_at(ip("2001:db8:1:2::7"), t0, now).await,
                Ok(())
            );
        }
        let calls = store.calls.lock().unwrap();
        assert_eq!(calls.len(), 5);
        let (client, limit, at) = calls[0];
        assert_eq!(client, ClientKey::of(ip("2001:db8:1:2::1")));
        assert_eq!((limit.rate_per_minute.get(), limit.burst.get()), (60, 2));
        assert_eq!(at, now);
    }

    #[actix_web::test]
    async fn a_shared_refusal_carries_the_time_left() {
        let retry_after = Duration::from_millis(14_200);
        let (_, limiter) = shared(Some(RateDecision::Limited { retry_after }));
        let refused = limiter
            .check_at(ip("192.0.2.1"), Instant::now(), Utc::now())
            .await
            .unwrap_err();
        assert_eq!(refused.retry_after_secs(), 15);
    }

    #[actix_web::test]
    async fn a_failing_store_leaves_the_limit_to_this_instance() {
        let (store, limiter) = shared(None);
        let (t0, now) = (Instant::now(), Utc::now());
        for _ in 0..2 {
            assert_eq!(limiter.check_at(ip("192.0.2.1"), t0, now).await, Ok(()));
        }
        let refused = limiter
            .check_at(ip("192.0.2.1"), t0, now)
            .await
            .unwrap_err();
        assert_eq!(refused.retry_after, SEC);
        assert_eq!(store.calls.lock().unwrap().len(), 3);
    }

    #[actix_web::test]
    async fn the_in_process_limiter_is_gcra() {
        let limiter = LoginRateLimiter::in_process(&security("60", "2"));
        assert!(!limiter.is_shared());
        let (t0, now) = (Instant::now(), Utc::now());
        for _ in 0..2 {
            assert_eq!(limiter.check_at(ip("192.0.2.1"), t0, now).await, Ok(()));
        }
        assert!(limiter.check_at(ip("192.0.2.1"), t0, now).await.is_err());
        // One call a second after the burst, not a whole window later.
        assert_eq!(
            limiter.check_at(ip("192.0.2.1"), t0 + SEC, now).await,
            Ok(())
        );
    }

    #[test]
    fn whole_seconds_round_up_and_are_at_least_one() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(SEC), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds_up(Duration::from_secs(60)), 60);
    }
}
