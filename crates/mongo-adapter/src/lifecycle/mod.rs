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
//! `tenant_document_ops.rs`). Whoever claims a name anew drops whatever a
//! collection of that name still holds before using it.
//!
//! Each operation holds a lease on its record while it works (see
//! `lease.rs`): every write it makes is fenced by that lease, and reconcile
//! takes over only operations whose lease expired, then rolls back
//! creations and rolls forward renames and deletions. A request whose run
//! was interrupted (taken over, its lease expired while the process was
//! paused, or the record changed under it) does not fail: it waits for the
//! operation to settle, taking it over itself once its lease expires, and
//! answers with the outcome ([`MongoStore::await_settled`]). On shutdown
//! (see `TenantStore::begin_drain`) it gives its lease up instead and
//! answers busy.
//!
//! Admin removals and role changes also compare-and-swap the record (it is
//! their serialization point: see `admin_changes.rs`) but write only
//! `admin_id` and `admin_change`; a lifecycle step that loses to one of them
//! takes its step again on the fresh record (see `replace_org`).

mod create;
mod delete;
mod rename;
mod tenant_move;

use std::time::{Duration, Instant};

use mongodb::bson::doc;
use orgsvc_domain::StoreError;

use crate::errors::store_error;
use crate::lease::{Interruption, Lease};
use crate::names::Claim;
use crate::records::{OrgDoc, OrgState};
use crate::store::MongoStore;

/// How often a request waiting for an interrupted operation to settle looks
/// at its record.
const SETTLE_POLL: Duration = Duration::from_millis(50);

/// Where an operation this process no longer runs ended up.
#[derive(Debug)]
pub(crate) enum Settled {
    /// The record is gone (a creation rolled back, a deletion completed).
    Gone,
    /// The record has no operation pending any more: as it is now.
    Active(Box<OrgDoc>),
    /// Still pending when the wait ended (or the process drains).
    Pending,
}

/// What reconciling one record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    RolledBack,
    /// Another process holds or got there first.
    Nothing,
}

/// How often a lifecycle step is taken again after losing its
/// compare-and-swap to admin changes only.
const LIFECYCLE_STEP_ATTEMPTS: usize = 10;

impl MongoStore {
    /// The organization record with this id, in whatever state.
    pub(crate) async fn org_record(&self, id: &str) -> Result<Option<OrgDoc>, StoreError> {
        self.organizations()
            .find_one(doc! { "_id": id })
            .await
            .map_err(|e| store_error("reading an organization record", e))
    }

    /// Takes a lifecycle step: replaces `current` by `next` (built from
    /// `current`, differing in lifecycle fields only) if no other lifecycle
    /// step changed the record since it was read; returns the stored record,
    /// or `None` when one did.
    ///
    /// Admin changes (see `admin_changes.rs`) and suspensions (see
    /// `operator.rs`) also move the record's revision, but only touch
    /// `admin_id`, `admin_change` and `suspension`: when the record changed
    /// in those alone, the step is taken again on the fresh record, keeping
    /// what they wrote.
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
            next.suspension.clone_from(&fresh.suspension);
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
            .map_err(|e| store_error("updating an organization record", e))?;
        Ok((result.matched_count == 1).then_some(next))
    }

    /// A step of the operation holding `lease`: fenced, renewing the lease,
    /// and a compare-and-swap like [`MongoStore::replace_org`].
    pub(crate) async fn step(
        &self,
        lease: &Lease,
        current: &OrgDoc,
        next: OrgDoc,
    ) -> Result<Option<OrgDoc>, StoreError> {
        lease.fence().await?;
        self.replace_org(current, lease.stamp(next)).await
    }

    /// Takes over `record`'s operation if its lease expired `timeout` ago,
    /// and finishes it: creations are rolled back, renames and deletions
    /// completed (a rename whose target name another organization took is
    /// abandoned).
    pub(crate) async fn reconcile_one(
        &self,
        record: &OrgDoc,
        timeout: Duration,
    ) -> Result<Outcome, StoreError> {
        if record.state == OrgState::Active || self.leases().shutting_down() {
            return Ok(Outcome::Nothing);
        }
        let Some((record, lease)) = self.take_over(record, timeout).await? else {
            return Ok(Outcome::Nothing);
        };
        let finished = self.finish_taken_over(record, &lease).await;
        if finished.is_err() && lease.interruption() == Some(Interruption::Draining) {
            lease.release(self).await?;
        }
        finished
    }

    /// Finishes an operation this process took over.
    async fn finish_taken_over(
        &self,
        record: OrgDoc,
        lease: &Lease,
    ) -> Result<Outcome, StoreError> {
        let done = match record.state {
            OrgState::Active => false,
            OrgState::Provisioning => {
                return Ok(done_as(
                    self.roll_back_creation(&record, lease).await?,
                    Outcome::RolledBack,
                ));
            }
            OrgState::Deleting => self.finish_deletion(&record, lease).await?,
            OrgState::Moving => self.finish_move(record, lease).await?.is_some(),
            OrgState::Renaming => {
                let claim = match record.pending_rename() {
                    Some(t) if record.canonical == t.from_canonical => {
                        self.claim_rename_target(&record, lease).await?
                    }
                    _ => Claim::Held,
                };
                if claim == Claim::Reserved {
                    // The orphan sweep drops a collection of the target's
                    // name: the next pass tries again.
                    return Ok(Outcome::Nothing);
                }
                if claim == Claim::Taken {
                    return Ok(done_as(
                        self.abandon_rename(&record, lease).await?,
                        Outcome::RolledBack,
                    ));
                }
                self.finish_rename(record, lease).await?.is_some()
            }
        };
        Ok(done_as(done, Outcome::Completed))
    }

    /// Waits until the operation on organization `org_id` has settled,
    /// whoever finishes it: this process takes it over itself once its
    /// lease has expired. Gives up with [`Settled::Pending`] after twice
    /// the lease timeout and 5 s, or at once while the process drains.
    pub(crate) async fn await_settled(&self, org_id: &str) -> Result<Settled, StoreError> {
        let timeout = self.leases().timeout();
        let give_up = Instant::now() + timeout * 2 + Duration::from_secs(5);
        loop {
            let Some(record) = self.org_record(org_id).await? else {
                return Ok(Settled::Gone);
            };
            if record.pending.is_none() {
                return Ok(Settled::Active(Box::new(record)));
            }
            if self.leases().shutting_down() || Instant::now() >= give_up {
                return Ok(Settled::Pending);
            }
            if let Err(error) = self.reconcile_one(&record, timeout).await {
                tracing::warn!(organization = org_id, error = %error, "could not finish an interrupted operation; waiting");
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// Deletes `current` (the operation holding `lease` ends with it) if
    /// nobody changed it since it was read; `true` when this call deleted
    /// it.
    pub(crate) async fn delete_org(
        &self,
        current: &OrgDoc,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        lease.fence().await?;
        let result = self
            .organizations()
            .delete_one(doc! { "_id": &current.id, "revision": current.revision })
            .await
            .map_err(|e| store_error("deleting an organization record", e))?;
        Ok(result.deleted_count == 1)
    }
}

fn done_as(done: bool, outcome: Outcome) -> Outcome {
    if done {
        outcome
    } else {
        Outcome::Nothing
    }
}
