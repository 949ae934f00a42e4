//! Per-client rate limits shared by every service instance, behind the
//! [`SharedRateLimits`] port, and the client keys limits are counted under.
//!
//! # Semantics: fixed windows
//!
//! A [`RateLimit`] of `burst` calls and `rate_per_minute` is enforced as a
//! fixed window counter, so that one atomic increment per call is all a
//! store needs:
//!
//! - Time is cut into windows of `burst × 60 s / rate_per_minute` (rounded
//!   up to a whole millisecond), aligned to the Unix epoch, so every
//!   instance cuts the same windows. With the defaults (burst 10, 30 per
//!   minute) a window is 20 s.
//! - A client may make `burst` calls per window, at once or spread out. The
//!   call after that is refused until the window ends, with `retry_after`
//!   the time left in the window. Refused calls are counted too, but a
//!   window's count is forgotten when it ends, so they cost nothing beyond
//!   it.
//! - Over a long time a client makes at most `rate_per_minute` calls a
//!   minute, as with the in-process limiter.
//! - Worst case, at a window edge: `burst` calls at the very end of one
//!   window and `burst` more at the start of the next, so `2 × burst` calls
//!   within a moment, and in any span of `n` whole windows at most
//!   `(n + 1) × burst` calls. The in-process GCRA allows `burst` plus one
//!   call per `60 s / rate_per_minute`, about as many in such a span, but
//!   never `2 × burst` at once.
//! - Windows follow the clock of the instance that counts the call: an
//!   instance whose clock is off by `d` moves its window edges by `d`, and
//!   may let a client have up to one more `burst` around each edge. Keep
//!   instance clocks synchronised (NTP).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::errors::StoreError;

/// Whom a rate limit counts calls of: a client IP address, IPv6 addresses by
/// their /64 prefix (one host usually holds a whole /64), IPv4-mapped IPv6
/// addresses as the IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address, or an IPv6 /64 prefix (the address with its low 64
    /// bits zeroed).
    Ip(IpAddr),
    /// Requests without a peer address (not over TCP) share one key.
    Unknown,
    /// An email address a request names (password resets are limited per
    /// email as well as per IP), by a 128-bit FNV-1a digest of it: the
    /// address itself is not kept in the limiter.
    Email(u128),
    /// An operator key (issue #17: the operator API is limited per key),
    /// by its id.
    Operator(u128),
}

impl ClientKey {
    /// The key of requests naming `email`.
    pub fn email(email: &crate::AdminEmail) -> Self {
        Self::Email(fnv1a_128(email.as_str().as_bytes()))
    }

    /// The key of requests authenticated by the operator key `id`.
    pub fn operator(id: crate::OperatorKeyId) -> Self {
        Self::Operator(id.as_uuid().as_u128())
    }

    /// The key of a client at `client` (`None`: no peer address).
    pub fn of(client: Option<IpAddr>) -> Self {
        match client {
            None => Self::Unknown,
            Some(IpAddr::V4(v4)) => Self::Ip(IpAddr::V4(v4)),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !u128::from(u64::MAX);
                    Self::Ip(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// FNV-1a, 128-bit (offset basis and prime of the FNV specification,
/// draft-eastlake-fnv): stable across processes and versions, unlike std's
/// hasher, so every instance counts an email under the same key.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET_BASIS: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u128::from(*byte)).wrapping_mul(PRIME)
    })
}

/// Stable text for storage keys: `192.0.2.1`, `2001:db8:1:2::/64`,
/// `unknown`, `email:<32 hex digits>`, `operator:<32 hex digits>`.
impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Self::Ip(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            Self::Unknown => f.write_str("unknown"),
            Self::Email(digest) => write!(f, "email:{digest:032x}"),
            Self::Operator(id) => write!(f, "operator:{id:032x}"),
        }
    }
}

/// A rate limit: `burst` calls at once, `rate_per_minute` over time (see the
/// module documentation for how a shared store enforces it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed per minute over a long time.
    pub rate_per_minute: NonZeroU32,
    /// Calls allowed at once, and per window.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// The window length in milliseconds: `burst × 60,000 / rate_per_minute`,
    /// rounded up, at least 1.
    pub fn window_millis(&self) -> i64 {
        let total = u64::from(self.burst.get()) * 60_000;
        let millis = total.div_ceil(u64::from(self.rate_per_minute.get()));
        // At most (2^32 - 1) × 60,000: always fits.
        i64::try_from(millis).unwrap_or(i64::MAX).max(1)
    }

    /// The window `now` falls in.
    pub fn window_at(&self, now: DateTime<Utc>) -> RateWindow {
        let length_ms = self.window_millis();
        let index = now.timestamp_millis().div_euclid(length_ms);
        RateWindow {
            length_ms,
            index,
            end_ms: index.saturating_add(1).saturating_mul(length_ms),
            burst: self.burst.get(),
        }
    }
}

/// One window of a [`RateLimit`]: where a store counts a client's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// The window length, in milliseconds.
    pub length_ms: i64,
    /// The window's number: its start is `index × length_ms` milliseconds
    /// after the Unix epoch.
    pub index: i64,
    /// When it ends (exclusive), in milliseconds since the Unix epoch.
    pub end_ms: i64,
    /// Calls allowed in it.
    pub burst: u32,
}

impl RateWindow {
    /// When the window ends (exclusive).
    pub fn end(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.end_ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The storage key of `client`'s count in this window:
    /// `<client>|<length_ms>|<index>` (the length keeps instances with
    /// different settings, e.g. during a rolling change, from sharing counts
    /// of windows that differ).
    pub fn key(&self, client: ClientKey) -> String {
        format!("{client}|{}|{}", self.length_ms, self.index)
    }

    /// The answer to the `calls`-th call of the window (1 for the first),
    /// made at `now`.
    pub fn decide(&self, calls: u64, now: DateTime<Utc>) -> RateDecision {
        if calls <= u64::from(self.burst) {
            return RateDecision::Allowed;
        }
        let left = self.end_ms.saturating_sub(now.timestamp_millis()).max(1);
        RateDecision::Limited {
            retry_after: Duration::from_millis(u64::try_from(left).unwrap_or(1)),
        }
    }
}

/// Whether a call may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the limit (and counted).
    Allowed,
    /// Over the limit.
    Limited {
        /// Time until the client's next call would be allowed (at least
        /// 1 ms).
        retry_after: Duration,
    },
}

/// Rate limits counted in a store, so that every service instance on it
/// enforces one budget per client together.
///
/// Rules every implementation MUST follow:
/// - `hit` counts the call and answers in one atomic step: of any number of
///   concurrent calls of a client in one window, from any number of
///   instances, exactly `burst` are `Allowed` (see [`RateWindow::decide`]).
/// - Counts of a window are no longer needed once it ends; they may be
///   deleted then (e.g. by a TTL index) and `purge_expired_rate_limits`
///   deletes them.
#[async_trait]
pub trait SharedRateLimits: Send + Sync + 'static {
    /// Counts a call of `client` at `now` under `limit`, in the window of
    /// [`RateLimit::window_at`]`(now)`, and answers whether it is allowed.
    async fn hit(
        &self,
        client: ClientKey,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, StoreError>;

    /// Deletes the counts of windows that ended at or before `now`; returns
    /// how many went.
    async fn purge_expired_rate_limits(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {

    #[test]
    fn emails_are_keyed_by_a_stable_digest_not_the_address() {
        let email = crate::AdminEmail::parse("Reset@Example.com").unwrap();
        let key = ClientKey::email(&email);
        assert_eq!(key, ClientKey::email(&email.clone()));
        assert_ne!(
            key,
            ClientKey::email(&crate::AdminEmail::parse("other@example.com").unwrap())
        );
        let shown = key.to_string();
        assert!(
            shown.starts_with("email:") && shown.len() == 6 + 32,
            "{shown}"
        );
        assert!(!shown.contains("example"), "{shown}");
        // The specification's test vector: the same key in every process.
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }
    use super::*;

    fn limit(rate_per_minute: u32, burst: u32) -> RateLimit {
        RateLimit {
            rate_per_minute: NonZeroU32::new(rate_per_minute).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    #[test]
    fn a_window_lasts_as_long_as_refilling_a_burst() {
        assert_eq!(limit(30, 10).window_millis(), 20_000);
        assert_eq!(limit(1, 1).window_millis(), 60_000);
        assert_eq!(limit(7, 1).window_millis(), 8_572); // 8,571.43 rounded up
        assert_eq!(limit(1_000_000, 1).window_millis(), 1);
        assert_eq!(
            limit(1, u32::MAX).window_millis(),
            i64::from(u32::MAX) * 60_000
        );
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let limit = limit(30, 10);
        let window = limit.window_at(at(45_000));
        assert_eq!((window.index, window.end_ms), (2, 60_000));
        assert_eq!(limit.window_at(at(40_000)).index, 2);
        assert_eq!(limit.window_at(at(59_999)).index, 2);
        assert_eq!(limit.window_at(at(60_000)).index, 3);
        assert_eq!(limit.window_at(at(-1)).index, -1);
        assert_eq!(window.end(), at(60_000));
    }

    #[test]
    fn a_window_allows_its_burst_then_waits_for_its_end() {
        let window = limit(30, 10).window_at(at(45_000));
        for calls in 1..=10 {
            assert_eq!(window.decide(calls, at(45_000)), RateDecision::Allowed);
        }
        assert_eq!(
            window.decide(11, at(45_000)),
            RateDecision::Limited {
                retry_after: Duration::from_secs(15)
            }
        );
        assert_eq!(
            window.decide(500, at(59_999)),
            RateDecision::Limited {
                retry_after: Duration::from_millis(1)
            }
        );
    }

    #[test]
    fn keys_name_the_client_the_window_length_and_the_window() {
        let window = limit(30, 10).window_at(at(45_000));
        let v4 = ClientKey::of(Some("192.0.2.1".parse().unwrap()));
        assert_eq!(window.key(v4), "192.0.2.1|20000|2");
        let v6 = ClientKey::of(Some("2001:db8:1:2:3:4:5:6".parse().unwrap()));
        assert_eq!(window.key(v6), "2001:db8:1:2::/64|20000|2");
        assert_eq!(window.key(ClientKey::Unknown), "unknown|20000|2");
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let key = |text: &str| ClientKey::of(Some(text.parse().unwrap()));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:198.51.100.7"), key("198.51.100.7"));
        assert_eq!(ClientKey::of(None), ClientKey::Unknown);
    }
}
