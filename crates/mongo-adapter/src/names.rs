//! Claims on canonical organization names.
//!
//! A claim is a document in `organization_names` whose `_id` is the canonical
//! name, so the server's unique `_id` decides which of two racing claims wins.
//! An organization holds the claim on its current name and, while renaming,
//! on its target name too. A record always exists before its claims and
//! outlives them, so a claim never outlives the record that references it.

use mongodb::bson::doc;
use orgsvc_domain::StoreError;

use crate::errors::is_duplicate_key;
use crate::store::MongoStore;

/// What claiming a name did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This call claimed the name: nobody held it before.
    New,
    /// The organization already held it.
    Held,
    /// Another organization holds it.
    Taken,
}

impl MongoStore {
    /// Claims `canonical` for the organization; `false` when another
    /// organization holds it. Claiming a name already held is a no-op.
    pub(crate) async fn claim_name(
        &self,
        canonical: &str,
        org_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.claim(canonical, org_id).await? != Claim::Taken)
    }

    /// Claims `canonical` for the organization and says whether the claim is
    /// new, was already held, or is another organization's.
    pub(crate) async fn claim(&self, canonical: &str, org_id: &str) -> Result<Claim, StoreError> {
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
            Err(e) if is_duplicate_key(&e) => Ok(Claim::Taken),
            Err(e) => Err(StoreError::new("claiming an organization name", e)),
        }
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
            .map_err(|e| StoreError::new("reading an organization name claim", e))
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
            .map_err(|e| StoreError::new("releasing an organization name", e))
    }
}
