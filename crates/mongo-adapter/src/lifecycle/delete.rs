//! Delete: record (deleting, under a new lease) → delete the admins and
//! the invitations (with their unsent emails) → drop the collection and
//! delete the organization's documents from the shared collection (`deleteMany`
//! by organization id; both whatever the layout, so leftovers of moves go
//! too) → release the name → delete the record. Rolled forward. Every
//! write is fenced by the lease.

use std::time::Instant;

use mongodb::bson::doc;
use orgsvc_domain::{DeleteOrganizationError, OrganizationId, StoreError};

use super::Settled;
use crate::errors::store_error;
use crate::failpoints::Step;
use crate::lease::{Interruption, Lease, OnDrain};
use crate::records::{OrgDoc, OrgState, PendingOp, StoredLayout};
use crate::store::MongoStore;
use crate::tenant_documents::TenantScope;

impl MongoStore {
    pub(crate) async fn delete_organization(
        &self,
        id: OrganizationId,
    ) -> Result<(), DeleteOrganizationError> {
        let current = self
            .org_record(&id.to_string())
            .await?
            .ok_or(DeleteOrganizationError::NotFound)?;
        match current.state {
            OrgState::Active => {}
            OrgState::Provisioning => return Err(DeleteOrganizationError::NotFound),
            OrgState::Renaming | OrgState::Deleting | OrgState::Moving => {
                return Err(DeleteOrganizationError::Busy)
            }
        }
        let sent = Instant::now();
        let deleting = self
            .replace_org(
                &current,
                current.entering(OrgState::Deleting, PendingOp::starting(None)),
            )
            .await?
            .ok_or(DeleteOrganizationError::Busy)?;
        let Some(lease) = deleting
            .lease()
            .map(|l| Lease::hold(self, &deleting.id, l, sent, OnDrain::Stop))
        else {
            return Err(
                StoreError::msg(format!("organization {id}: a new deletion has no lease")).into(),
            );
        };
        self.failpoint(Step::DeleteRecorded)?;

        let run = self.finish_deletion(&deleting, &lease).await;
        match (run, lease.interruption()) {
            (Ok(true), _) => Ok(()),
            (Err(error), None) => Err(error.into()),
            (_, Some(Interruption::Draining)) => {
                lease.release(self).await?;
                Err(DeleteOrganizationError::Busy)
            }
            // Taken over, expired while paused, or finished by another run.
            (_, _) => {
                drop(lease);
                match self.await_settled(&deleting.id).await? {
                    Settled::Gone => Ok(()),
                    Settled::Active(_) | Settled::Pending => Err(DeleteOrganizationError::Busy),
                }
            }
        }
    }

    /// Completes a deletion; idempotent. `true` when this call deleted the
    /// record.
    pub(crate) async fn finish_deletion(
        &self,
        record: &OrgDoc,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        lease.fence().await?;
        self.admins()
            .delete_many(doc! { "organization_id": &record.id })
            .await
            .map_err(|e| store_error("deleting the admins of an organization", e))?;
        self.failpoint(Step::DeleteAdminsRemoved)?;
        lease.fence().await?;
        self.delete_invitations(doc! { "organization_id": &record.id })
            .await?;
        // Wherever the documents may be: the collection of its own (in the
        // shared layout a leftover of a move, its name still claimed, so its
        // own) and the shared collection (in the collection layout a
        // leftover of a move back).
        self.drop_collection(&record.collection, lease).await?;
        let shared = TenantScope::new(&record.id, StoredLayout::Shared, &record.collection);
        lease.fence().await?;
        self.tenant(shared.collection())
            .delete_many(shared.all())
            .await
            .map_err(|e| store_error("deleting the shared documents of an organization", e))?;
        self.failpoint(Step::DeleteCollectionDropped)?;
        lease.fence().await?;
        self.release_name(&record.canonical, &record.id).await?;
        self.failpoint(Step::DeleteNameReleased)?;
        self.delete_org(record, lease).await
    }
}
