//! Rename: record (renaming, with source and target, under a new lease) →
//! claim the new name (dropping any leftover collection of that name's
//! former owner) → move the collection → switch the record to the new name
//! → sweep stragglers (move documents that writes racing the move left in
//! the old collection) → release the old name → activate. Rolled forward
//! once the new name is claimed. Every write is fenced by the lease. In the
//! shared layout the collection steps are skipped: the documents stay where
//! they are, keyed by organization id, and only the record changes (its
//! logical `collection` among the rest).

use std::time::Instant;

use orgsvc_domain::{
    Organization, OrganizationId, OrganizationName, RenameOrganizationError, StoreError,
};

use super::Settled;
use crate::failpoints::Step;
use crate::lease::{Interruption, Lease, OnDrain};
use crate::names::Claim;
use crate::records::{self, OrgDoc, OrgState, PendingOp, PendingRename, StoredLayout};
use crate::store::MongoStore;

impl MongoStore {
    /// Renames the organization; with `expected`, only while its canonical
    /// name is that one (`NameChanged` otherwise): the check is on the record
    /// read here, and every change below is a compare-and-swap on that
    /// record's revision, so no other rename can slip in between.
    pub(crate) async fn rename_organization(
        &self,
        id: OrganizationId,
        expected: Option<&str>,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        let current = self
            .org_record(&id.to_string())
            .await?
            .ok_or(RenameOrganizationError::NotFound)?;
        match current.state {
            OrgState::Active => {}
            OrgState::Provisioning => return Err(RenameOrganizationError::NotFound),
            OrgState::Renaming | OrgState::Deleting | OrgState::Moving => {
                return Err(RenameOrganizationError::Busy)
            }
        }
        if expected.is_some_and(|expected| expected != current.canonical) {
            return Err(RenameOrganizationError::NameChanged);
        }

        if new_name.canonical() == current.canonical {
            let respelled = OrgDoc {
                name: new_name.as_str().to_owned(),
                updated_at: records::now(),
                ..current.clone()
            };
            let stored = self
                .replace_org(&current, respelled)
                .await?
                .ok_or(RenameOrganizationError::Busy)?;
            return Ok(stored.to_organization()?);
        }

        let op = PendingOp::starting(Some(PendingRename {
            from_canonical: current.canonical.clone(),
            from_collection: current.collection.clone(),
            to_name: new_name.as_str().to_owned(),
            to_canonical: new_name.canonical().to_owned(),
            to_collection: new_name.collection_name().as_str().to_owned(),
        }));
        let sent = Instant::now();
        let renaming = self
            .replace_org(&current, current.entering(OrgState::Renaming, op))
            .await?
            .ok_or(RenameOrganizationError::Busy)?;
        let Some(lease) = renaming
            .lease()
            .map(|l| Lease::hold(self, &renaming.id, l, sent, OnDrain::Stop))
        else {
            return Err(
                StoreError::msg(format!("organization {id}: a new rename has no lease")).into(),
            );
        };
        self.failpoint(Step::RenameRecorded)?;

        let run = self.run_rename(renaming, &lease).await;
        let interrupted = lease.interruption();
        match (run, interrupted) {
            (Ok(Some(renamed)), _) => Ok(renamed.to_organization()?),
            (Err(RenameOrganizationError::Store(error)), None) => Err(error.into()),
            (Err(error), None) => Err(error),
            (_, Some(Interruption::Draining)) => {
                lease.release(self).await?;
                Err(RenameOrganizationError::Busy)
            }
            // Taken over, expired while paused, or the record changed under
            // this run: answer with whatever the operation came to.
            (_, _) => {
                drop(lease);
                self.rename_outcome(id, new_name).await
            }
        }
    }

    /// The steps of a rename after it is recorded; `Ok(None)` when the
    /// record changed under them.
    async fn run_rename(
        &self,
        renaming: OrgDoc,
        lease: &Lease,
    ) -> Result<Option<OrgDoc>, RenameOrganizationError> {
        match self.claim_rename_target(&renaming, lease).await? {
            Claim::New | Claim::Held => {}
            refused @ (Claim::Taken | Claim::Reserved) => {
                if !self.abandon_rename(&renaming, lease).await? {
                    return Ok(None);
                }
                return Err(if refused == Claim::Taken {
                    RenameOrganizationError::NameTaken
                } else {
                    RenameOrganizationError::Busy
                });
            }
        }
        self.checkpoint(Step::RenameNameClaimed).await?;
        Ok(self.finish_rename(renaming, lease).await?)
    }

    /// The answer to a rename whose run this process lost: the renamed
    /// organization when it now has the requested name, `NameTaken` when the
    /// rename was abandoned, `NotFound` when the organization is gone,
    /// `Busy` when it has not settled yet.
    async fn rename_outcome(
        &self,
        id: OrganizationId,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        match self.await_settled(&id.to_string()).await? {
            Settled::Active(record) if record.canonical == new_name.canonical() => {
                tracing::info!(organization = %id, "a rename interrupted here was completed by another run");
                Ok(record.to_organization()?)
            }
            Settled::Active(_) => Err(RenameOrganizationError::NameTaken),
            Settled::Gone => Err(RenameOrganizationError::NotFound),
            Settled::Pending => Err(RenameOrganizationError::Busy),
        }
    }

    /// Claims the target name of a rename: `Taken` when another organization
    /// holds it, `Reserved` when the orphan sweep still does (see
    /// `names.rs`). When this call claims it anew, whatever a collection of
    /// that name holds predates the claim (no copy into it can have started:
    /// that needs the claim), so it is dropped.
    pub(crate) async fn claim_rename_target(
        &self,
        record: &OrgDoc,
        lease: &Lease,
    ) -> Result<Claim, StoreError> {
        let Some(target) = record.pending_rename() else {
            return Err(StoreError::msg(format!(
                "organization {} is renaming but its record has no target",
                record.id
            )));
        };
        lease.fence().await?;
        match self.claim(&target.to_canonical, &record.id).await? {
            claim @ (Claim::Taken | Claim::Held | Claim::Reserved) => Ok(claim),
            Claim::New => {
                if self.collection_exists(&target.to_collection).await? {
                    tracing::warn!(
                        collection = %target.to_collection,
                        "dropping a leftover collection before renaming into it"
                    );
                    self.drop_collection(&target.to_collection, lease).await?;
                }
                Ok(Claim::New)
            }
        }
    }

    /// Puts a rename whose target name could not be claimed back to active,
    /// unchanged. `true` when this call did it.
    pub(crate) async fn abandon_rename(
        &self,
        record: &OrgDoc,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        Ok(self.step(lease, record, record.settled()).await?.is_some())
    }

    /// Completes a rename whose target name is claimed: moves the collection,
    /// switches the record to the new name, releases the old name and
    /// activates the record. Every step is idempotent, so a rename interrupted
    /// anywhere can be finished by running this again. `None` when another
    /// process changed the record meanwhile.
    pub(crate) async fn finish_rename(
        &self,
        mut record: OrgDoc,
        lease: &Lease,
    ) -> Result<Option<OrgDoc>, StoreError> {
        let Some(target) = record.pending_rename().cloned() else {
            return Err(StoreError::msg(format!(
                "organization {} is renaming but its record has no target",
                record.id
            )));
        };
        // In the shared layout no document moves: the record alone changes.
        let own_collection = record.layout == StoredLayout::Collection;
        if record.canonical == target.from_canonical {
            if own_collection {
                self.move_collection(
                    &target.from_collection,
                    &target.to_collection,
                    &record.id,
                    lease,
                )
                .await?;
            }
            self.checkpoint(Step::RenameCollectionMoved).await?;
            let switched = OrgDoc {
                name: target.to_name.clone(),
                canonical: target.to_canonical.clone(),
                collection: target.to_collection.clone(),
                updated_at: records::now(),
                ..record.clone()
            };
            let Some(switched) = self.step(lease, &record, switched).await? else {
                return Ok(None);
            };
            record = switched;
            self.checkpoint(Step::RenameRecordUpdated).await?;
        }
        // Writes that read the record before the rename started may still
        // land in the old collection (recreating it after a native rename).
        // While the old name is held, the old collection is this
        // organization's alone: move whatever is there, then drop it.
        if own_collection && self.holds_name(&target.from_canonical, &record.id).await? {
            self.copy_collection(
                &target.from_collection,
                &target.to_collection,
                &record.id,
                lease,
            )
            .await?;
        }
        self.checkpoint(Step::RenameStragglersSwept).await?;
        lease.fence().await?;
        self.release_name(&target.from_canonical, &record.id)
            .await?;
        self.failpoint(Step::RenameOldNameReleased)?;
        self.step(lease, &record, record.settled()).await
    }
}
