//! Shared per-client rate limits ([`SharedRateLimits`]): one fixed-window
//! counter per client and window (semantics in `orgsvc_domain`'s
//! `rate_limits` module), so every instance on the database enforces one
//! budget.
//!
//! `rate_limits`: `{_id: "<client>|<window length ms>|<window index>",
//! count, window_end_ms, expires_at}`. A call is one `findOneAndUpdate`
//! (`$inc: {count: 1}`, upsert, returning the new document): MongoDB applies
//! it atomically to the one document, so concurrent calls from any number of
//! instances each see a distinct count and exactly `burst` of them are
//! allowed. `window_end_ms` (Int64 milliseconds) is what purges compare;
//! `expires_at` (the same instant as a BSON date) exists only for the TTL
//! index of migration 0004, which deletes a window's counter about a minute
//! after it ends. Where TTL deletion does not run (some MongoDB-compatible
//! servers), [`SharedRateLimits::purge_expired_rate_limits`] deletes them.
//!
//! Two first calls of a client in a new window may both miss the document
//! and both try to insert it; the loser gets a duplicate key error (MongoDB
//! retries such upserts itself since 4.2, but not every server does) and is
//! retried once, when the document exists and it is counted by `$inc`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use orgsvc_domain::{ClientKey, RateDecision, RateLimit, SharedRateLimits, StoreError};

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::store::MongoStore;

/// The rate limit counters, one per client and window.
pub(crate) const RATE_LIMITS: &str = "rate_limits";

/// Tries of one count: the first, and one more after losing the race to
/// create the window's counter.
const COUNT_TRIES: usize = 2;

impl MongoStore {
    fn rate_limits(&self) -> Collection<Document> {
        self.db().collection(RATE_LIMITS)
    }

    /// The window's count after adding one call, or `None` when the upsert
    /// lost the race to insert the counter (a duplicate key).
    async fn count_call(&self, key: &str, window_end_ms: i64) -> Result<Option<i64>, StoreError> {
        let update = doc! {
            "$inc": { "count": 1_i64 },
            // The same values on every call of the window: `$set` rather
            // than `$setOnInsert` only because some compatible servers
            // ignore `$setOnInsert` in an upserting `findAndModify`.
            "$set": {
                "window_end_ms": window_end_ms,
                "expires_at": bson::DateTime::from_millis(window_end_ms),
            },
        };
        let counted = self
            .rate_limits()
            .find_one_and_update(doc! { "_id": key }, update)
            .upsert(true)
            .return_document(ReturnDocument::After)
            .projection(doc! { "count": 1 })
            .await;
        match counted {
            Ok(Some(counter)) => match counter.get("count") {
                Some(Bson::Int64(count)) => Ok(Some(*count)),
                Some(Bson::Int32(count)) => Ok(Some(i64::from(*count))),
                _ => Err(StoreError::msg("a rate limit counter has no count")),
            },
            // Real MongoDB answers a lost insert race with 11000; some
            // compatible servers answer no document instead.
            Ok(None) => Ok(None),
            Err(e) if is_duplicate_key(&e) => Ok(None),
            Err(e) => Err(store_error("counting a rate-limited call", e)),
        }
    }
}

#[async_trait]
impl SharedRateLimits for MongoStore {
    async fn hit(
        &self,
        client: ClientKey,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, StoreError> {
        let window = limit.window_at(now);
        let key = window.key(client);
        for _ in 0..COUNT_TRIES {
            if let Some(count) = self.count_call(&key, window.end_ms).await? {
                let calls = u64::try_from(count).unwrap_or(0);
                return Ok(window.decide(calls, now));
            }
        }
        Err(StoreError::msg(
            "counting a rate-limited call: the window's counter could not be created",
        ))
    }

    async fn purge_expired_rate_limits(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.rate_limits()
            .delete_many(doc! { "window_end_ms": { "$lte": now.timestamp_millis() } })
            .await
            .map(|result| result.deleted_count)
            .map_err(|e| store_error("purging expired rate limit counters", e))
    }
}
