//! Claims on canonical organization names.
//!
//! A claim is a document in `organization_names` whose `_id` is the canonical
//! name, so the server's unique `_id` decides which of two racing claims wins.
//! An organization holds the claim on its current name and, while renaming,
//! on its target name too. A record always exists before its claims and
//! outlives them, so a claim never outlives the record that references it.
//!
//! The orphan sweep (see `orphans.rs`) briefly *reserves* an unclaimed name
//! while it drops the collection of that name: a claim held by
//! `sweep:<uuid>` with `reserved_ms`. A claim meeting a reservation waits
//! for it to go (it lasts one drop), and takes it over once it is older than
//! the reservation time-to-live (its sweep died).

use std::time::Duration;

use mongodb::bson::doc;
use orgsvc_domain::StoreError;

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::records::now_ms;
use crate::store::MongoStore;

/// How long a claim waits for a reservation of the orphan sweep to go
/// before answering [`Claim::Reserved`].
const RESERVATION_WAIT: Duration = Duration::from_secs(2);
/// How often a waiting claim looks again.
const RESERVATION_POLL: Duration = Duration::from_millis(25);

/// What claiming a name did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This call claimed the name: nobody held it before.
    New,
    /// The organization already held it.
    Held,
    /// Another organization holds it.
    Taken,
    /// The orphan sweep holds it, and still did after [`RESERVATION_WAIT`]:
    /// the caller should answer "busy, try again".
    Reserved,
}

impl MongoStore {
    /// Claims `canonical` for the organization and says whether the claim is
    /// new, was already held, or is another organization's, waiting out a
    /// reservation of the orphan sweep (up to [`RESERVATION_WAIT`]).
    pub(crate) async fn claim(&self, canonical: &str, org_id: &str) -> Result<Claim, StoreError> {
        let waited = std::time::Instant::now();
        loop {
            match self.try_claim(canonical, org_id).await? {
                Claim::Reserved if waited.elapsed() < RESERVATION_WAIT => {
                    tokio::time::sleep(RESERVATION_POLL).await;
                }
                claim => return Ok(claim),
            }
        }
    }

    /// One attempt of [`claim`](Self::claim); takes over an expired
    /// reservation.
    async fn try_claim(&self, canonical: &str, org_id: &str) -> Result<Claim, StoreError> {
        let claim = self
            .name_claims()
            .update_one(
                doc! { "_id": canonical, "organization_id": org_id },
                doc! { "$set": { "organization_id": org_id } },
            )
            .upsert(true)
            .await;
        match claim {
            Ok(result) if result.upserted_id.is_some() => Ok(Claim::New),
            Ok(_) => Ok(Claim::Held),
            Err(e) if is_duplicate_key(&e) => self.reservation_in_the_way(canonical).await,
            Err(e) => Err(store_error("claiming an organization name", e)),
        }
    }

    /// What holds `canonical` when a claim on it failed: `Taken` by an
    /// organization, or `Reserved` by the orphan sweep. An expired
    /// reservation is deleted (compare-and-swap on its holder and time), so
    /// the caller's next attempt may claim the name.
    async fn reservation_in_the_way(&self, canonical: &str) -> Result<Claim, StoreError> {
        let holder = self
            .name_claims()
            .find_one(doc! { "_id": canonical })
            .await
            .map_err(|e| store_error("reading an organization name claim", e))?;
        let Some(holder) = holder else {
            return Ok(Claim::Reserved); // released meanwhile: try again
        };
        let Some(reserved_ms) = holder.reserved_ms else {
            return Ok(Claim::Taken);
        };
        let ttl = i64::try_from(self.reservation_ttl().as_millis()).unwrap_or(i64::MAX);
        if now_ms().saturating_sub(reserved_ms) > ttl {
            tracing::warn!(
                name = canonical,
                "taking over a reservation of an orphan sweep that did not finish"
            );
            self.name_claims()
                .delete_one(doc! {
                    "_id": canonical,
                    "organization_id": &holder.organization_id,
                    "reserved_ms": reserved_ms,
                })
                .await
                .map_err(|e| store_error("releasing an expired name reservation", e))?;
        }
        Ok(Claim::Reserved)
    }

    /// Whether the organization holds the claim on `canonical`.
    pub(crate) async fn holds_name(
        &self,
        canonical: &str,
        org_id: &str,
    ) -> Result<bool, StoreError> {
        self.name_claims()
            .find_one(doc! { "_id": canonical, "organization_id": org_id })
            .await
            .map(|claim| claim.is_some())
            .map_err(|e| store_error("reading an organization name claim", e))
    }

    /// Releases the organization's claim on `canonical`, if it holds it.
    pub(crate) async fn release_name(
        &self,
        canonical: &str,
        org_id: &str,
    ) -> Result<(), StoreError> {
        self.name_claims()
            .delete_one(doc! { "_id": canonical, "organization_id": org_id })
            .await
            .map(drop)
            .map_err(|e| store_error("releasing an organization name", e))
    }
}
