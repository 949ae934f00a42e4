//! Admin lookups and credential changes.

use mongodb::bson::{doc, Document};
use orgsvc_domain::{Admin, AdminId, AdminUpdate, StoreError, UpdateAdminError};

use crate::documents::{self, AdminDoc, OrgState};
use crate::errors::is_duplicate_key;
use crate::store::MongoStore;

/// How often an update is retried when the admin changed concurrently.
const UPDATE_ATTEMPTS: usize = 5;

impl MongoStore {
    /// The admin matching `filter`, if its organization is visible.
    pub(crate) async fn visible_admin(
        &self,
        filter: Document,
    ) -> Result<Option<AdminDoc>, StoreError> {
        let Some(admin) = self
            .admins()
            .find_one(filter)
            .await
            .map_err(|e| StoreError::new("reading an admin", e))?
        else {
            return Ok(None);
        };
        let organization = self
            .organizations()
            .find_one(doc! { "_id": &admin.organization_id, "state": OrgState::visible_filter() })
            .await
            .map_err(|e| StoreError::new("reading an admin's organization", e))?;
        Ok(organization.map(|_| admin))
    }

    /// Applies `update` by compare-and-swap on the admin's revision.
    pub(crate) async fn change_admin(
        &self,
        id: AdminId,
        update: AdminUpdate,
    ) -> Result<Admin, UpdateAdminError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self
                .visible_admin(doc! { "_id": id.to_string() })
                .await?
                .ok_or(UpdateAdminError::NotFound)?;
            if update.is_empty() {
                return Ok(current.to_admin()?);
            }
            let mut next = current.clone();
            if let Some(email) = &update.email {
                next.email = email.as_str().to_owned();
            }
            if let Some(hash) = &update.password_hash {
                next.password_hash = hash.as_phc_str().to_owned();
                next.token_version += 1;
            }
            next.revision += 1;
            next.updated_at = documents::now();
            let replaced = self
                .admins()
                .replace_one(
                    doc! { "_id": &current.id, "revision": current.revision },
                    &next,
                )
                .await;
            match replaced {
                Ok(result) if result.matched_count == 1 => return Ok(next.to_admin()?),
                Ok(_) => continue, // changed meanwhile: read it again
                Err(e) if is_duplicate_key(&e) => return Err(UpdateAdminError::EmailTaken),
                Err(e) => return Err(StoreError::new("updating an admin", e).into()),
            }
        }
        Err(StoreError::msg(format!("admin {id} kept changing while being updated")).into())
    }
}
