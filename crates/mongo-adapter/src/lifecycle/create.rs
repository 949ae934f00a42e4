//! Create: record (provisioning, in the store's tenancy layout, under a new
//! lease) → claim the name → insert the admin → create the collection
//! (dropping any leftover of a former owner of the name) with its listing
//! index, or in the shared layout only drop such a leftover → activate.
//! Rolled back, never forward. Every write is fenced by the lease.

use std::time::Instant;

use mongodb::bson::doc;
use orgsvc_domain::{CreateOrganizationError, NewOrganization, Organization, StoreError};

use super::Settled;
use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::failpoints::Step;
use crate::lease::{Lease, OnDrain};
use crate::names::Claim;
use crate::records::{self, AdminDoc, OrgDoc, StoredLayout};
use crate::store::MongoStore;

impl MongoStore {
    pub(crate) async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        let now = records::now();
        let record = OrgDoc::provisioning(
            new.id,
            &new.name,
            self.db().name(),
            self.tenancy(),
            new.owner.id,
            now,
        );
        let sent = Instant::now();
        self.organizations()
            .insert_one(&record)
            .await
            .map_err(|e| store_error("recording a new organization", e))?;
        let Some(lease) = record
            .lease()
            .map(|l| Lease::hold(self, &record.id, l, sent, OnDrain::Finish))
        else {
            return Err(StoreError::msg("a new organization record has no lease").into());
        };
        self.failpoint(Step::CreateRecorded)?;

        let run = self.provision(&record, &new, &lease).await;
        let interrupted = lease.interruption();
        match (run, interrupted) {
            (Ok(Some(active)), _) => Ok(active.to_organization()?),
            (Err(CreateOrganizationError::Store(error)), None) => Err(error.into()),
            (Err(error), None) => Err(error),
            // Taken over (and so rolled back): answer with whatever the
            // creation came to. (Creations run to their end when the
            // process drains: `OnDrain::Finish`.)
            (_, _) => {
                drop(lease);
                self.creation_outcome(&record, &new).await
            }
        }
    }

    /// The steps of a creation after it is recorded; `Ok(None)` when a
    /// reconciler rolled it back meanwhile.
    async fn provision(
        &self,
        record: &OrgDoc,
        new: &NewOrganization,
        lease: &Lease,
    ) -> Result<Option<OrgDoc>, CreateOrganizationError> {
        lease.fence().await?;
        match self.claim(&record.canonical, &record.id).await? {
            Claim::New | Claim::Held => {}
            Claim::Taken => {
                self.delete_org(record, lease).await?;
                return Err(CreateOrganizationError::NameTaken);
            }
            Claim::Reserved => {
                self.delete_org(record, lease).await?;
                return Err(CreateOrganizationError::Busy);
            }
        }
        self.checkpoint(Step::CreateNameClaimed).await?;

        let owner = new.owner.as_admin();
        let admin = AdminDoc::new(&owner, new.id, owner.role, records::now());
        if !self.insert_admin(&admin, lease).await? {
            self.roll_back_creation(record, lease).await?;
            return Err(CreateOrganizationError::EmailTaken);
        }
        self.checkpoint(Step::CreateAdminInserted).await?;

        match record.layout {
            StoredLayout::Collection => {
                self.fresh_tenant_collection(&record.collection, lease)
                    .await?;
            }
            // No collection of its own; a leftover of a former owner of the
            // name would otherwise outlive the sweep (the name is claimed).
            StoredLayout::Shared => {
                if self.collection_exists(&record.collection).await? {
                    self.drop_collection(&record.collection, lease).await?;
                }
            }
        }
        self.failpoint(Step::CreateCollectionCreated)?;

        Ok(self.step(lease, record, record.settled()).await?)
    }

    /// Inserts the first admin of an organization being created (fenced);
    /// `false` when another admin has its email. An admin whose organization
    /// record no longer exists (left by a process that lost its lease while
    /// paused, see `lease.rs`) holds its email for nobody: it is deleted and
    /// the insert tried again.
    async fn insert_admin(&self, admin: &AdminDoc, lease: &Lease) -> Result<bool, StoreError> {
        for _ in 0..2 {
            lease.fence().await?;
            match self.admins().insert_one(admin).await {
                Ok(_) => return Ok(true),
                Err(e) if is_duplicate_key(&e) => {
                    if !self.free_orphaned_email(&admin.email).await? {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(store_error("inserting an admin", e)),
            }
        }
        Ok(false)
    }

    /// Deletes the admin holding `email` if its organization record does
    /// not exist (records exist before their admins and outlive them, so
    /// such an admin is an orphan); `true` when it did.
    pub(crate) async fn free_orphaned_email(&self, email: &str) -> Result<bool, StoreError> {
        let Some(holder) = self
            .admins()
            .find_one(doc! { "email": email })
            .await
            .map_err(|e| store_error("reading the admin holding an email", e))?
        else {
            return Ok(false);
        };
        if self.org_record(&holder.organization_id).await?.is_some() {
            return Ok(false);
        }
        tracing::warn!(organization = %holder.organization_id, "deleting an admin whose organization does not exist");
        let deleted = self
            .admins()
            .delete_one(doc! { "_id": &holder.id, "organization_id": &holder.organization_id })
            .await
            .map_err(|e| store_error("deleting an orphaned admin", e))?;
        Ok(deleted.deleted_count == 1)
    }

    /// The answer to a creation whose run this process lost: created if it
    /// somehow completed, otherwise (rolled back) `NameTaken` when another
    /// organization has the name now and `Busy` (try again) when not.
    async fn creation_outcome(
        &self,
        record: &OrgDoc,
        new: &NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        match self.await_settled(&record.id).await? {
            Settled::Active(active) => Ok(active.to_organization()?),
            Settled::Gone | Settled::Pending => {
                let taken = self
                    .organization_by_canonical(new.name.canonical())
                    .await?
                    .is_some_and(|other| other != record.id);
                if taken {
                    Err(CreateOrganizationError::NameTaken)
                } else {
                    Err(CreateOrganizationError::Busy)
                }
            }
        }
    }

    /// Undoes a creation: drops the collection (only if this organization
    /// claimed its name, otherwise the collection is not its own), deletes the
    /// admin, releases the name and deletes the record last. `true` when this
    /// call deleted the record.
    pub(crate) async fn roll_back_creation(
        &self,
        record: &OrgDoc,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        if self.holds_name(&record.canonical, &record.id).await? {
            self.drop_collection(&record.collection, lease).await?;
        }
        lease.fence().await?;
        self.admins()
            .delete_many(doc! { "organization_id": &record.id })
            .await
            .map_err(|e| store_error("deleting the admin of an unfinished organization", e))?;
        lease.fence().await?;
        self.release_name(&record.canonical, &record.id).await?;
        self.delete_org(record, lease).await
    }

    /// The id of the organization holding the claim on `canonical`, if any.
    async fn organization_by_canonical(
        &self,
        canonical: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .name_claims()
            .find_one(doc! { "_id": canonical })
            .await
            .map_err(|e| store_error("reading an organization name claim", e))?
            .map(|claim| claim.organization_id))
    }
}
