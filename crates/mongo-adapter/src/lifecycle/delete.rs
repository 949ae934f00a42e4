//! Delete: record (deleting) → delete the admins → drop the collection →
//! release the name → delete the record. Rolled forward.

use mongodb::bson::doc;
use orgsvc_domain::{DeleteOrganizationError, OrganizationId, StoreError};

use crate::documents::{self, OrgDoc, OrgState, PendingOp};
use crate::failpoints::Step;
use crate::store::MongoStore;

impl MongoStore {
    pub(crate) async fn delete(&self, id: OrganizationId) -> Result<(), DeleteOrganizationError> {
        let current = self
            .org_record(&id.to_string())
            .await?
            .ok_or(DeleteOrganizationError::NotFound)?;
        match current.state {
            OrgState::Active => {}
            OrgState::Provisioning => return Err(DeleteOrganizationError::NotFound),
            OrgState::Renaming | OrgState::Deleting => return Err(DeleteOrganizationError::Busy),
        }
        let op = PendingOp {
            started_at: documents::now(),
            rename: None,
        };
        let deleting = self
            .replace_org(&current, current.entering(OrgState::Deleting, op))
            .await?
            .ok_or(DeleteOrganizationError::Busy)?;
        self.failpoint(Step::DeleteRecorded)?;
        self.finish_deletion(&deleting).await?;
        Ok(())
    }

    /// Completes a deletion; idempotent. `true` when this call deleted the
    /// record.
    pub(crate) async fn finish_deletion(&self, record: &OrgDoc) -> Result<bool, StoreError> {
        self.admins()
            .delete_many(doc! { "organization_id": &record.id })
            .await
            .map_err(|e| StoreError::new("deleting the admins of an organization", e))?;
        self.failpoint(Step::DeleteAdminsRemoved)?;
        self.drop_collection(&record.collection).await?;
        self.failpoint(Step::DeleteCollectionDropped)?;
        self.release_name(&record.canonical, &record.id).await?;
        self.failpoint(Step::DeleteNameReleased)?;
        self.delete_org(record).await
    }
}
