//! Admin lookups, listings and credential changes.
//!
//! What an admin looks like through the store is its record as the
//! organization's pending admin change (if any) leaves it: a change is
//! committed on the organization record before it reaches the admin record
//! (see `admin_changes.rs`), so every read combines the two. Records still
//! pending an `add_admin` confirmation (see `admin_add.rs`) are invisible.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use orgsvc_domain::{
    Admin, AdminId, AdminUpdate, OrganizationId, PasswordHash, StoreError, UpdateAdminError,
};

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::records::{self, AdminDoc, OrgState};
use crate::store::MongoStore;

/// How often an update is retried when the admin changed concurrently.
const UPDATE_ATTEMPTS: usize = 5;

impl MongoStore {
    /// The admin matching `filter`, if it is confirmed and its organization
    /// is visible, as the organization's pending admin change leaves it.
    pub(crate) async fn visible_admin(
        &self,
        filter: Document,
    ) -> Result<Option<AdminDoc>, StoreError> {
        let Some(admin) = self
            .admins()
            .find_one(filter)
            .await
            .map_err(|e| store_error("reading an admin", e))?
        else {
            return Ok(None);
        };
        if admin.pending_since.is_some() {
            return Ok(None);
        }
        let organization = self
            .organizations()
            .find_one(doc! { "_id": &admin.organization_id, "state": OrgState::visible_filter() })
            .await
            .map_err(|e| store_error("reading an admin's organization", e))?;
        Ok(organization.and_then(|organization| organization.overlay(admin)))
    }

    /// The confirmed admin records of an organization, oldest first, as
    /// stored (without any pending admin change applied).
    pub(crate) async fn confirmed_admins(
        &self,
        organization: &str,
    ) -> Result<Vec<AdminDoc>, StoreError> {
        self.admins()
            .find(doc! { "organization_id": organization, "pending_since": { "$exists": false } })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await
            .map_err(|e| store_error("listing the admins of an organization", e))?
            .try_collect()
            .await
            .map_err(|e| store_error("listing the admins of an organization", e))
    }

    /// The admins of a visible organization, oldest first; empty otherwise.
    pub(crate) async fn admins_of(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<Admin>, StoreError> {
        let Some(record) = self.org_record(&organization.to_string()).await? else {
            return Ok(Vec::new());
        };
        if !record.is_visible() {
            return Ok(Vec::new());
        }
        self.confirmed_admins(&record.id)
            .await?
            .into_iter()
            .filter_map(|admin| record.overlay(admin))
            .map(|admin| admin.to_admin())
            .collect()
    }

    /// Applies `update` by compare-and-swap on the admin's revision.
    pub(crate) async fn update_admin(
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
                if next.email != email.as_str() {
                    next.email_verified = 0;
                }
                next.email = email.as_str().to_owned();
            }
            if let Some(hash) = &update.password_hash {
                next.password_hash = hash.as_phc_str().to_owned();
                next.token_version += 1;
            }
            next.revision += 1;
            next.updated_at = records::now();
            // `current` carries the role of a pending admin change (the
            // committed one); writing it here applies that change early,
            // which its own application then finds done.
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
                Err(e) => return Err(store_error("updating an admin", e).into()),
            }
        }
        Err(StoreError::msg(format!("admin {id} kept changing while being updated")).into())
    }

    /// Replaces the password hash if it still equals `current`, in one
    /// conditional update that leaves `token_version` and `updated_at`
    /// alone. It bumps the record's revision, so a credential change that
    /// read the record before does not write the old hash back.
    pub(crate) async fn rehash_password(
        &self,
        id: AdminId,
        current: &PasswordHash,
        rehashed: PasswordHash,
    ) -> Result<bool, StoreError> {
        let result = self
            .admins()
            .update_one(
                doc! { "_id": id.to_string(), "password_hash": current.as_phc_str() },
                doc! {
                    "$set": { "password_hash": rehashed.as_phc_str() },
                    "$inc": { "revision": 1_i64 },
                },
            )
            .await
            .map_err(|e| store_error("replacing a password hash", e))?;
        Ok(result.matched_count == 1)
    }
}
