//! Adding an admin to an existing organization without transactions.
//!
//! Steps: check that the organization is visible → insert the admin record
//! *pending* (`pending_since` set: it holds its email, through the unique
//! email index, but every read ignores it) → check the organization again →
//! confirm the record (`$unset` of `pending_since`, conditional on it being
//! still pending). The confirmation is the commit point.
//!
//! A deletion of the organization racing the add deletes every admin record
//! of the organization, pending or not, after marking the organization
//! deleting: either it deletes the pending record (the confirmation then
//! matches nothing and the add answers `OrganizationNotFound`), or the record
//! arrives after the deletion started (the second check sees it and the add
//! withdraws its record), or the add is confirmed first and the admin goes
//! with the organization. So no confirmed admin outlives its organization.
//!
//! A process dying between insertion and confirmation leaves a pending
//! record: reconcile deletes pending records older than its `stale_after`
//! (rolled back, which frees the email). An add never changes the
//! organization record: adding an admin cannot break the last-owner rule,
//! and removals count confirmed admins only.

use mongodb::bson::doc;
use orgsvc_domain::{AddAdminError, Admin, NewAdmin, OrganizationId, StoreError};

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::failpoints::Step;
use crate::records::{self, AdminDoc};
use crate::store::MongoStore;

impl MongoStore {
    pub(crate) async fn add_admin(
        &self,
        organization: OrganizationId,
        admin: NewAdmin,
    ) -> Result<Admin, AddAdminError> {
        let org_id = organization.to_string();
        if !self.organization_is_visible(&org_id).await? {
            return Err(AddAdminError::OrganizationNotFound);
        }
        let now = records::now();
        let mut record = AdminDoc::new(&admin, organization, admin.role, now);
        record.pending_since = Some(now);
        let mut attempts = 0;
        loop {
            match self.admins().insert_one(&record).await {
                Ok(_) => break,
                // An admin whose organization record is gone (left by a
                // process that lost its lease) holds its email for nobody.
                Err(e) if is_duplicate_key(&e) => {
                    attempts += 1;
                    if attempts > 1 || !self.free_orphaned_email(&record.email).await? {
                        return Err(AddAdminError::EmailTaken);
                    }
                }
                Err(e) => return Err(store_error("inserting an admin", e).into()),
            }
        }
        self.checkpoint(Step::AdminAddInserted).await?;

        if !self.organization_is_visible(&org_id).await? {
            self.withdraw_pending_admin(&record.id).await?;
            return Err(AddAdminError::OrganizationNotFound);
        }
        let confirmed = self
            .admins()
            .update_one(
                doc! { "_id": &record.id, "pending_since": { "$exists": true } },
                doc! { "$unset": { "pending_since": "" } },
            )
            .await
            .map_err(|e| store_error("confirming an added admin", e))?;
        if confirmed.matched_count == 1 {
            record.pending_since = None;
            return Ok(record.to_admin()?);
        }
        // Deleted before confirmation: by the organization's deletion, or
        // by a reconciler that took this add for abandoned.
        if self.organization_is_visible(&org_id).await? {
            return Err(StoreError::msg(format!(
                "admin {} was rolled back by a reconciler before its addition finished",
                record.id
            ))
            .into());
        }
        Err(AddAdminError::OrganizationNotFound)
    }

    /// Deletes the admin record if it is still pending; `true` when this
    /// call deleted it.
    pub(crate) async fn withdraw_pending_admin(&self, id: &str) -> Result<bool, StoreError> {
        let result = self
            .admins()
            .delete_one(doc! { "_id": id, "pending_since": { "$exists": true } })
            .await
            .map_err(|e| store_error("withdrawing a pending admin", e))?;
        Ok(result.deleted_count == 1)
    }

    /// Whether the organization exists and is visible (active or renaming).
    async fn organization_is_visible(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .org_record(id)
            .await?
            .is_some_and(|record| record.is_visible()))
    }
}
