//! Create: record (provisioning) → claim the name → insert the admin →
//! create the collection (dropping any leftover of a former owner of the
//! name) with its listing index → activate. Rolled back, never forward.

use mongodb::bson::doc;
use orgsvc_domain::{
    AdminRole, CreateOrganizationError, NewOrganization, Organization, StoreError,
};

use crate::documents::{self, AdminDoc, OrgDoc};
use crate::errors::is_duplicate_key;
use crate::failpoints::Step;
use crate::store::MongoStore;

impl MongoStore {
    pub(crate) async fn create(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        let now = documents::now();
        let record = OrgDoc::provisioning(new.id, &new.name, self.db().name(), new.admin.id, now);
        self.organizations()
            .insert_one(&record)
            .await
            .map_err(|e| StoreError::new("recording a new organization", e))?;
        self.failpoint(Step::CreateRecorded)?;

        if !self.claim_name(&record.canonical, &record.id).await? {
            self.delete_org(&record).await?;
            return Err(CreateOrganizationError::NameTaken);
        }
        self.failpoint(Step::CreateNameClaimed)?;

        match self
            .admins()
            // The first admin is an owner, whatever `new.admin.role` says.
            .insert_one(AdminDoc::new(&new.admin, new.id, AdminRole::Owner, now))
            .await
        {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {
                self.roll_back_creation(&record).await?;
                return Err(CreateOrganizationError::EmailTaken);
            }
            Err(e) => return Err(StoreError::new("inserting an admin", e).into()),
        }
        self.failpoint(Step::CreateAdminInserted)?;

        self.fresh_tenant_collection(&record.collection).await?;
        self.failpoint(Step::CreateCollectionCreated)?;

        let active = self
            .replace_org(&record, record.settled())
            .await?
            .ok_or_else(|| {
                StoreError::msg(format!(
                    "organization {} was rolled back by a reconciler before its creation finished",
                    record.id
                ))
            })?;
        Ok(active.to_organization()?)
    }

    /// Undoes a creation: drops the collection (only if this organization
    /// claimed its name, otherwise the collection is not its own), deletes the
    /// admin, releases the name and deletes the record last. `true` when this
    /// call deleted the record.
    pub(crate) async fn roll_back_creation(&self, record: &OrgDoc) -> Result<bool, StoreError> {
        if self.holds_name(&record.canonical, &record.id).await? {
            self.drop_collection(&record.collection).await?;
        }
        self.admins()
            .delete_many(doc! { "organization_id": &record.id })
            .await
            .map_err(|e| StoreError::new("deleting the admin of an unfinished organization", e))?;
        self.release_name(&record.canonical, &record.id).await?;
        self.delete_org(record).await
    }
}
