//! The service's clock: times are kept at millisecond precision, the finest
//! that both stores keep (MongoDB's BSON date is milliseconds since the
//! Unix epoch), so a time read back equals the time written.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The current time, truncated to the millisecond.
pub fn now_millis() -> DateTime<Utc> {
    to_millis(Utc::now())
}

/// `time` truncated to the millisecond.
pub fn to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

/// `at + ttl`, truncated to the millisecond, saturating at the latest
/// representable time: the expiry of a token or invitation issued at `at`.
pub fn expiry(at: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    to_millis(
        at.checked_add_signed(TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_ttl_later_in_milliseconds_saturating() {
        let at = now_millis();
        let hour = Duration::from_secs(3600);
        assert_eq!(expiry(at, hour), at + TimeDelta::hours(1));
        let forever = expiry(at, Duration::from_secs(u64::MAX));
        assert_eq!(forever, to_millis(DateTime::<Utc>::MAX_UTC));
        assert!(forever > at + TimeDelta::days(365 * 1000));
    }

    #[test]
    fn times_keep_whole_milliseconds_only() {
        let time = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let kept = to_millis(time);
        assert_eq!(kept.timestamp_subsec_nanos(), 123_000_000);
        assert_eq!(kept.timestamp(), 1_700_000_000);
        assert_eq!(now_millis().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
