//! The orphan sweep: dropping tenant collections that no organization holds.
//!
//! A tenant collection `org_<canonical>` belongs to whoever holds the claim
//! on `<canonical>` (see `names.rs`): creations claim the name before they
//! create the collection, renames claim the target before they move into
//! it and release the old name only after sweeping the old collection, and
//! deletions drop the collection before releasing the name. Yet a
//! collection can exist with nobody holding its name: MongoDB creates a
//! collection implicitly on any insert, so a document write that read the
//! record before a rename and reaches the server after the rename released
//! the old name recreates the old collection (its writer then takes the
//! document back, see `tenant_document_ops.rs`, leaving it empty, or dies
//! first); and a catalog operation of a process paused past its lease
//! (`lease.rs` fences catalog operations by a check before them, which a
//! pause right after the check defeats) may create one late.
//!
//! Such a collection is an *orphan*: nothing reads it, and whoever claims
//! its name later drops it first. The sweep drops it earlier, so orphans do
//! not pile up: for each `org_*` collection whose name nobody claims and no
//! organization record names, it *reserves* the name (a claim held by
//! `sweep:<uuid>`, so no creation or rename can claim the name meanwhile),
//! drops the collection (verified), and releases the reservation. Claims
//! meeting a reservation wait for it (see `names.rs`). A reservation left by
//! a sweep that died expires after [`MongoStore::reservation_ttl`] and is
//! then taken over by the next claim or removed by the next sweep. The
//! sweep checks that it still holds its reservation right before the drop;
//! like the lease fence of catalog operations (see `lease.rs`), that check
//! cannot cover a pause between itself and the drop, which would take
//! longer than the reservation's time-to-live.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use mongodb::bson::doc;
use orgsvc_domain::{StoreError, COLLECTION_PREFIX};

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::records::now_ms;
use crate::records::NameClaim;
use crate::store::MongoStore;

/// How many names one claim lookup asks for.
const LOOKUP_BATCH: usize = 1_000;

impl MongoStore {
    /// How long a reservation of the orphan sweep may last before a claim
    /// takes it over, and how often the sweep runs: four lease timeouts.
    pub(crate) fn reservation_ttl(&self) -> Duration {
        self.leases().timeout() * 4
    }

    /// Runs [`sweep_orphan_collections`](Self::sweep_orphan_collections)
    /// when the last sweep of this store (or of its clones) is at least
    /// [`reservation_ttl`](Self::reservation_ttl) ago; the number of
    /// collections dropped.
    pub(crate) async fn sweep_orphans_when_due(&self) -> Result<u32, StoreError> {
        let due = {
            let mut last = self
                .orphan_sweep_clock()
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = last.is_none_or(|at| at.elapsed() >= self.reservation_ttl());
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            self.sweep_orphan_collections().await
        } else {
            Ok(0)
        }
    }

    /// Drops every orphan tenant collection (see the module documentation)
    /// and removes expired reservations; the number of collections dropped.
    /// Cost: one `listCollections`, one claim lookup per thousand tenant
    /// collections, and three record lookups per orphan candidate.
    pub(crate) async fn sweep_orphan_collections(&self) -> Result<u32, StoreError> {
        let ttl = i64::try_from(self.reservation_ttl().as_millis()).unwrap_or(i64::MAX);
        self.name_claims()
            .delete_many(doc! { "reserved_ms": { "$lt": now_ms().saturating_sub(ttl) } })
            .await
            .map_err(|e| store_error("removing expired name reservations", e))?;

        let mut tenants: Vec<String> = self
            .collection_names()
            .await?
            .into_iter()
            .filter(|name| name.starts_with(COLLECTION_PREFIX))
            .collect();
        tenants.sort();
        let mut claimed = HashSet::new();
        for batch in tenants.chunks(LOOKUP_BATCH) {
            let canonicals: Vec<&str> = batch.iter().map(|c| canonical_of(c)).collect();
            let claims: Vec<NameClaim> = self
                .name_claims()
                .find(doc! { "_id": { "$in": canonicals } })
                .await
                .map_err(|e| store_error("looking up organization name claims", e))?
                .try_collect()
                .await
                .map_err(|e| store_error("looking up organization name claims", e))?;
            claimed.extend(claims.into_iter().map(|c| c.canonical));
        }

        let mut dropped = 0;
        for collection in tenants {
            let canonical = canonical_of(&collection);
            if claimed.contains(canonical) || self.named_by_a_record(&collection).await? {
                continue;
            }
            if self.drop_orphan(&collection, canonical).await? {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Whether an organization record names `collection` as its own or as
    /// either side of a pending rename. Claims already protect every such
    /// collection; this guards against records that lost their claim.
    async fn named_by_a_record(&self, collection: &str) -> Result<bool, StoreError> {
        // One query per field: an `$or` is not needed for three point lookups.
        for field in [
            "collection",
            "pending.rename.from_collection",
            "pending.rename.to_collection",
        ] {
            let found = self
                .organizations()
                .find_one(doc! { field: collection })
                .await
                .map_err(|e| store_error("looking up organization records", e))?;
            if let Some(record) = found {
                tracing::warn!(
                    collection,
                    organization = %record.id,
                    "a tenant collection is named by an organization record but its name is not claimed; leaving it"
                );
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reserves `canonical`, drops `collection` and releases the
    /// reservation; `false` when someone claimed the name first.
    async fn drop_orphan(&self, collection: &str, canonical: &str) -> Result<bool, StoreError> {
        let holder = format!("sweep:{}", uuid::Uuid::new_v4());
        let reservation = NameClaim {
            canonical: canonical.to_owned(),
            organization_id: holder.clone(),
            reserved_ms: Some(now_ms()),
        };
        match self.name_claims().insert_one(&reservation).await {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => return Ok(false),
            Err(e) => return Err(store_error("reserving an organization name", e)),
        }
        let documents = self
            .tenant(collection)
            .estimated_document_count()
            .await
            .unwrap_or(0);
        // Still ours? A sweep paused past the reservation's time-to-live may
        // have lost it to a creation that now uses the collection.
        if !self.holds_name(canonical, &holder).await? {
            return Ok(false);
        }
        tracing::info!(
            collection,
            documents,
            "dropping an orphan tenant collection (no organization holds its name)"
        );
        let dropped = self.drop_verified(collection).await;
        let released = self
            .name_claims()
            .delete_one(doc! { "_id": canonical, "organization_id": &holder })
            .await
            .map_err(|e| store_error("releasing a name reservation", e));
        dropped?;
        released?;
        Ok(true)
    }
}

/// The canonical organization name a tenant collection is named after.
fn canonical_of(collection: &str) -> &str {
    collection
        .strip_prefix(COLLECTION_PREFIX)
        .unwrap_or(collection)
}
