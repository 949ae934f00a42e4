//! Moving an organization's documents between layouts (issue #16):
//! `collection` (`org_<canonical name>`, its own) and `shared`
//! (`tenant_documents`, scoped by organization id).
//!
//! Record (moving, with `pending.move: {from, to}`, under a new lease) →
//! prepare the target (a collection of its own is created with its listing
//! index; the shared collection exists since migration 0011) → the claiming
//! copy from the source scope to the target scope (`collection_moves.rs`:
//! batches claimed, inserted with their ids preserved, duplicates of an
//! interrupted run skipped, deleted from the source) until a claim round
//! finds nothing → verify the counts: the source holds none of the
//! organization's documents, the target at least what was copied → flip
//! the record's `layout` (compare-and-swap, fenced) → sweep stragglers
//! (inserts that read the record before the move started may still land in
//! the source) → remove the source (drop the collection of its own,
//! verified; or `deleteMany` of the organization's documents in the shared
//! collection) → activate. Rolled forward once recorded: reconcile takes
//! over a move whose lease expired and runs the same idempotent steps, and
//! so does calling the move again (it waits for the run in progress, and
//! takes it over once its lease expired).
//!
//! Document operations answer `Busy` while the record says moving, and
//! writes racing the start of the move are applied before it or refused,
//! exactly as for a rename (see `tenant_document_ops.rs`): the claim on
//! each document decides its one fate. Renames and deletions answer `Busy`
//! meanwhile; the organization keeps its name (and so its claim on its
//! collection's name) throughout.

use std::time::Instant;

use futures_util::TryStreamExt;
use mongodb::bson::doc;
use mongodb::IndexModel;
use orgsvc_domain::{MoveTenantError, OrganizationId, StoreError, TenantMove};

use super::Settled;
use crate::errors::store_error;
use crate::failpoints::Step;
use crate::lease::{Interruption, Lease, OnDrain};
use crate::records::{OrgDoc, OrgState, PendingMove, PendingOp, StoredLayout};
use crate::store::MongoStore;
use crate::tenant_documents::TenantScope;

impl MongoStore {
    /// Moves the organization's documents to layout `to` (see the module
    /// documentation); a no-op success when they are there already.
    pub(crate) async fn move_tenant(
        &self,
        id: OrganizationId,
        to: StoredLayout,
    ) -> Result<TenantMove, MoveTenantError> {
        let key = id.to_string();
        let current = self
            .org_record(&key)
            .await?
            .ok_or(MoveTenantError::NotFound)?;
        match current.state {
            OrgState::Active => {}
            OrgState::Provisioning | OrgState::Deleting => return Err(MoveTenantError::NotFound),
            OrgState::Renaming => return Err(MoveTenantError::Busy),
            // Asked again (e.g. the command re-run after a crash): wait for
            // the run in progress, taking it over once its lease expired.
            OrgState::Moving if current.pending_move().is_some_and(|m| m.to == to) => {
                return self.move_outcome(&key, to).await;
            }
            OrgState::Moving => return Err(MoveTenantError::Busy),
        }
        if current.layout == to {
            return Ok(TenantMove {
                organization: current.to_organization()?,
                moved: false,
                documents: 0,
            });
        }
        let op = PendingOp::starting_move(PendingMove {
            from: current.layout,
            to,
        });
        let sent = Instant::now();
        let moving = self
            .replace_org(&current, current.entering(OrgState::Moving, op))
            .await?
            .ok_or(MoveTenantError::Busy)?;
        let Some(lease) = moving
            .lease()
            .map(|l| Lease::hold(self, &moving.id, l, sent, OnDrain::Stop))
        else {
            return Err(
                StoreError::msg(format!("organization {id}: a new move has no lease")).into(),
            );
        };
        self.failpoint(Step::MoveRecorded)?;

        let run = self.finish_move(moving, &lease).await;
        match (run, lease.interruption()) {
            (Ok(Some((moved, documents))), _) => Ok(TenantMove {
                organization: moved.to_organization()?,
                moved: true,
                documents,
            }),
            (Err(error), None) => Err(error.into()),
            (_, Some(Interruption::Draining)) => {
                lease.release(self).await?;
                Err(MoveTenantError::Busy)
            }
            // Taken over, expired while paused, or the record changed under
            // this run: answer with whatever the move came to.
            (_, _) => {
                drop(lease);
                self.move_outcome(&key, to).await
            }
        }
    }

    /// The answer to a move this process does not (or no longer) run: moved
    /// once the organization settled in layout `to`, `NotFound` when it is
    /// gone, `Busy` when it has not settled yet (or settled elsewhere).
    async fn move_outcome(
        &self,
        key: &str,
        to: StoredLayout,
    ) -> Result<TenantMove, MoveTenantError> {
        match self.await_settled(key).await? {
            Settled::Active(record) if record.layout == to => {
                let documents = self.count_in(&TenantScope::of(&record)).await?;
                Ok(TenantMove {
                    organization: record.to_organization()?,
                    moved: true,
                    documents,
                })
            }
            Settled::Active(_) | Settled::Pending => Err(MoveTenantError::Busy),
            Settled::Gone => Err(MoveTenantError::NotFound),
        }
    }

    /// Completes a move (every step idempotent, so a move interrupted
    /// anywhere is finished by running this again); the settled record and
    /// how many documents the organization holds in its new layout. `None`
    /// when another process changed the record meanwhile.
    pub(crate) async fn finish_move(
        &self,
        mut record: OrgDoc,
        lease: &Lease,
    ) -> Result<Option<(OrgDoc, u64)>, StoreError> {
        let Some(relayout) = record.pending_move() else {
            return Err(StoreError::msg(format!(
                "organization {} is moving but its record has no target layout",
                record.id
            )));
        };
        let from = TenantScope::new(&record.id, relayout.from, &record.collection);
        let to = TenantScope::new(&record.id, relayout.to, &record.collection);
        if record.layout == relayout.from {
            if relayout.to == StoredLayout::Collection {
                self.prepare_own_collection(to.collection(), lease).await?;
            }
            let copied = self.copy_documents(&from, &to, lease).await?;
            self.verify_copy(&from, &to, copied).await?;
            self.checkpoint(Step::MoveDocumentsCopied).await?;
            let flipped = OrgDoc {
                layout: relayout.to,
                ..record.clone()
            };
            let Some(flipped) = self.step(lease, &record, flipped).await? else {
                return Ok(None);
            };
            record = flipped;
            self.checkpoint(Step::MoveLayoutFlipped).await?;
        }
        // Inserts that read the record before the move started may land in
        // the source after the copy: carry them over, then remove the source.
        self.copy_documents(&from, &to, lease).await?;
        self.remove_source(&from, lease).await?;
        self.failpoint(Step::MoveSourceRemoved)?;
        let documents = self.count_in(&to).await?;
        let settled = self.step(lease, &record, record.settled()).await?;
        if settled.is_some() {
            tracing::info!(organization = %record.id, from = ?relayout.from, to = ?relayout.to, documents, "moved an organization's documents to another layout");
        }
        Ok(settled.map(|record| (record, documents)))
    }

    /// Checks a finished copy: the source holds none of the organization's
    /// documents (claimed or not), and the target at least as many as this
    /// run copied (it may hold more: batches an interrupted run copied and
    /// deleted from the source already).
    async fn verify_copy(
        &self,
        from: &TenantScope,
        to: &TenantScope,
        copied: u64,
    ) -> Result<(), StoreError> {
        let left = if from.layout() == StoredLayout::Collection
            && !self.collection_exists(from.collection()).await?
        {
            0
        } else {
            self.count_in(from).await?
        };
        let arrived = self.count_in(to).await?;
        if left > 0 || arrived < copied {
            return Err(StoreError::msg(format!(
                "organization {}: after copying {copied} documents from {} to {}, {left} are left in the source and {arrived} are in the target",
                from.org_id(),
                from.collection(),
                to.collection()
            )));
        }
        Ok(())
    }

    /// Removes the source of a move whose documents all left it: drops the
    /// collection of its own (verified), or deletes the organization's
    /// documents from the shared collection (none but writes that raced the
    /// last sweep, whose writers then answer `Busy`).
    async fn remove_source(&self, from: &TenantScope, lease: &Lease) -> Result<(), StoreError> {
        match from.layout() {
            StoredLayout::Collection => self.drop_collection(from.collection(), lease).await,
            StoredLayout::Shared => {
                lease.fence().await?;
                self.tenant(from.collection())
                    .delete_many(from.all())
                    .await
                    .map(drop)
                    .map_err(|e| {
                        store_error("removing the shared documents of a moved organization", e)
                    })
            }
        }
    }

    /// Makes the organization's collection of its own ready to receive its
    /// documents: created with its listing index when missing. One that
    /// exists was created by an interrupted run of this move (the
    /// organization holds the claim on its name, and claims drop leftovers)
    /// and may hold copies: it stays, and is indexed now only if that run
    /// stopped before indexing it, while it is still empty.
    async fn prepare_own_collection(&self, name: &str, lease: &Lease) -> Result<(), StoreError> {
        if !self.collection_exists(name).await? {
            self.ensure_collection(name, lease).await?;
            return self.ensure_listing_index(name, lease).await;
        }
        let indexes: Vec<IndexModel> = self
            .tenant(name)
            .list_indexes()
            .await
            .map_err(|e| store_error(format!("listing the indexes of {name}"), e))?
            .try_collect()
            .await
            .map_err(|e| store_error(format!("listing the indexes of {name}"), e))?;
        if indexes.len() > 1 {
            return Ok(());
        }
        let empty = self
            .tenant(name)
            .count_documents(doc! {})
            .await
            .map_err(|e| store_error(format!("counting the documents of {name}"), e))?
            == 0;
        if empty {
            self.ensure_listing_index(name, lease).await
        } else {
            tracing::warn!(
                collection = name,
                "a tenant collection holding documents has no listing index; leaving it"
            );
            Ok(())
        }
    }

    /// How many documents the organization holds in `scope` (claimed or not).
    pub(crate) async fn count_in(&self, scope: &TenantScope) -> Result<u64, StoreError> {
        let collection = scope.collection();
        self.tenant(collection)
            .count_documents(scope.all())
            .await
            .map_err(|e| store_error(format!("counting the documents of {collection}"), e))
    }
}
