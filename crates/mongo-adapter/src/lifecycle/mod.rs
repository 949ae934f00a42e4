//! Create, rename and delete without multi-document transactions.
//!
//! Each operation first records its intent on the organization record
//! (`state`: `provisioning`, `renaming` or `deleting`, plus `pending` with
//! `started_at` and, for a rename, the source and target names), then takes
//! idempotent steps, and settles the record last. Records change only by
//! compare-and-swap on their `revision`, so two processes (a request and a
//! reconciler, or two reconcilers) never both take the same transition.
//!
//! Names are reserved by claims (see `names.rs`): an organization claims its
//! name while provisioning and its target name when a rename starts; the old
//! name stays claimed until the collection has moved and the documents that
//! racing writes left in the old collection are swept after it (see
//! `documents_api.rs`). Whoever claims a name anew drops whatever a
//! collection of that name still holds before using it.
//!
//! Reconcile rolls back creations and rolls forward renames and deletions
//! whose `started_at` is older than its `stale_after`.
//!
//! Admin removals and role changes also compare-and-swap the record (it is
//! their serialization point: see `admin_changes.rs`) but write only
//! `admin_id` and `admin_change`; a lifecycle step that loses to one of them
//! takes its step again on the fresh record (see `replace_org`).

mod create;
mod delete;
mod rename;

use mongodb::bson::doc;
use orgsvc_domain::StoreError;

use crate::documents::OrgDoc;
use crate::store::MongoStore;

/// How often a lifecycle step is taken again after losing its
/// compare-and-swap to admin changes only.
const LIFECYCLE_STEP_ATTEMPTS: usize = 10;

impl MongoStore {
    /// The organization record with this id, in whatever state.
    pub(crate) async fn org_record(&self, id: &str) -> Result<Option<OrgDoc>, StoreError> {
        self.organizations()
            .find_one(doc! { "_id": id })
            .await
            .map_err(|e| StoreError::new("reading an organization record", e))
    }

    /// Takes a lifecycle step: replaces `current` by `next` (built from
    /// `current`, differing in lifecycle fields only) if no other lifecycle
    /// step changed the record since it was read; returns the stored record,
    /// or `None` when one did.
    ///
    /// Admin changes (see `admin_changes.rs`) also move the record's
    /// revision, but only touch `admin_id` and `admin_change`: when the
    /// record changed in those alone, the step is taken again on the fresh
    /// record, keeping what the admin change wrote.
    pub(crate) async fn replace_org(
        &self,
        current: &OrgDoc,
        mut next: OrgDoc,
    ) -> Result<Option<OrgDoc>, StoreError> {
        let mut current = current.clone();
        for _ in 0..LIFECYCLE_STEP_ATTEMPTS {
            if let Some(stored) = self.swap_org(&current, next.clone()).await? {
                return Ok(Some(stored));
            }
            let Some(fresh) = self.org_record(&current.id).await? else {
                return Ok(None);
            };
            if !fresh.same_lifecycle(&current) {
                return Ok(None);
            }
            next.admin_id.clone_from(&fresh.admin_id);
            next.admin_change.clone_from(&fresh.admin_change);
            current = fresh;
        }
        Err(StoreError::msg(format!(
            "organization {}: admin changes kept a lifecycle step from being taken",
            current.id
        )))
    }

    /// Replaces `current` by `next` if nobody changed it since it was read
    /// (compare-and-swap on the revision); returns the stored record, or
    /// `None` when it changed meanwhile.
    pub(crate) async fn swap_org(
        &self,
        current: &OrgDoc,
        mut next: OrgDoc,
    ) -> Result<Option<OrgDoc>, StoreError> {
        next.revision = current.revision + 1;
        let result = self
            .organizations()
            .replace_one(
                doc! { "_id": &current.id, "revision": current.revision },
                &next,
            )
            .await
            .map_err(|e| StoreError::new("updating an organization record", e))?;
        Ok((result.matched_count == 1).then_some(next))
    }

    /// Deletes `current` if nobody changed it since it was read; `true` when
    /// this call deleted it.
    pub(crate) async fn delete_org(&self, current: &OrgDoc) -> Result<bool, StoreError> {
        let result = self
            .organizations()
            .delete_one(doc! { "_id": &current.id, "revision": current.revision })
            .await
            .map_err(|e| StoreError::new("deleting an organization record", e))?;
        Ok(result.deleted_count == 1)
    }
}
