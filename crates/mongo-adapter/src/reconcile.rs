//! Finishing or undoing operations that a crash interrupted: lifecycle
//! operations (creations are rolled back; renames, deletions and moves of
//! documents between layouts completed),
//! admin removals and role changes committed on their organization record
//! (completed: see `admin_changes.rs`), and admin additions never confirmed
//! (rolled back: see `admin_add.rs`).

use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::doc;
use orgsvc_domain::{ReconcileReport, StoreError};

use crate::errors::store_error;
use crate::lifecycle::Outcome;
use crate::records::{self, AdminDoc, OrgDoc};
use crate::store::MongoStore;

impl MongoStore {
    /// Takes over and repairs every lifecycle operation whose lease has not
    /// been renewed for `lease_timeout` (see `lease.rs`; operations that keep
    /// renewing are left to the process running them, however long they
    /// take), and finishes admin changes and additions left since
    /// `lease_timeout` ago, and every fourth lease timeout drops orphan
    /// tenant collections (see `orphans.rs`). A record that cannot be repaired is logged and
    /// the others are still processed; the run then fails with the first
    /// error.
    pub(crate) async fn reconcile(
        &self,
        lease_timeout: Duration,
    ) -> Result<ReconcileReport, StoreError> {
        let cutoff = records::now()
            .timestamp_millis()
            .saturating_sub(i64::try_from(lease_timeout.as_millis()).unwrap_or(i64::MAX));
        let unsettled: Vec<OrgDoc> = self
            .organizations()
            .find(doc! { "state": { "$in": ["provisioning", "renaming", "deleting", "moving"] } })
            .await
            .map_err(|e| store_error("listing unfinished organizations", e))?
            .try_collect()
            .await
            .map_err(|e| store_error("listing unfinished organizations", e))?;

        let mut report = ReconcileReport::default();
        let mut first_error = None;
        for record in unsettled {
            match self.reconcile_one(&record, lease_timeout).await {
                Ok(Outcome::Completed) => report.completed += 1,
                Ok(Outcome::RolledBack) => report.rolled_back += 1,
                Ok(Outcome::Nothing) => {}
                Err(e) => {
                    tracing::warn!(organization = %record.id, state = ?record.state, error = ?e, "could not reconcile");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.reconcile_admin_changes(cutoff, &mut report).await {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.reconcile_admin_additions(cutoff, &mut report).await {
            first_error.get_or_insert(e);
        }
        match self.sweep_orphans_when_due().await {
            Ok(0) => {}
            Ok(dropped) => tracing::info!(dropped, "dropped orphan tenant collections"),
            Err(e) => {
                tracing::warn!(error = ?e, "could not sweep orphan tenant collections");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Finishes the admin changes committed at or before `cutoff` (ms) on
    /// visible organizations (the others are being created, which has no
    /// admin changes, or deleted, which deletes every admin anyway).
    async fn reconcile_admin_changes(
        &self,
        cutoff: i64,
        report: &mut ReconcileReport,
    ) -> Result<(), StoreError> {
        let pending: Vec<OrgDoc> = self
            .organizations()
            .find(doc! { "admin_change": { "$exists": true } })
            .await
            .map_err(|e| store_error("listing unfinished admin changes", e))?
            .try_collect()
            .await
            .map_err(|e| store_error("listing unfinished admin changes", e))?;
        let mut first_error = None;
        for record in pending {
            let stale = record
                .admin_change
                .as_ref()
                .is_some_and(|change| change.started_at.timestamp_millis() <= cutoff);
            if !stale || !record.is_visible() {
                continue;
            }
            match self.finish_admin_change(&record).await {
                Ok(true) => report.completed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(organization = %record.id, error = ?e, "could not finish an admin change");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Rolls back admin additions left pending since `cutoff` (ms) or
    /// earlier: deletes the pending records, which frees their emails.
    async fn reconcile_admin_additions(
        &self,
        cutoff: i64,
        report: &mut ReconcileReport,
    ) -> Result<(), StoreError> {
        let pending: Vec<AdminDoc> = self
            .admins()
            .find(doc! { "pending_since": { "$exists": true } })
            .await
            .map_err(|e| store_error("listing unconfirmed admins", e))?
            .try_collect()
            .await
            .map_err(|e| store_error("listing unconfirmed admins", e))?;
        for admin in pending {
            let stale = admin
                .pending_since
                .is_some_and(|since| since.timestamp_millis() <= cutoff);
            if stale && self.withdraw_pending_admin(&admin.id).await? {
                report.rolled_back += 1;
            }
        }
        Ok(())
    }
}
