//! Moving a tenant collection to its new name.
//!
//! First the native `renameCollection` (same database, `dropTarget: false`),
//! then a check of its effect: the source is gone and the target exists.
//! When the server refuses or the check fails, a batched copy that moves the
//! documents one claimed batch at a time:
//!
//! 1. claim a batch of the organization's documents in the source that this
//!    run has not claimed yet by setting [`MOVING`] to the run's lease epoch
//!    (one `updateMany` on their ids, each document claimed atomically, so
//!    that no single command outlasts a lease; documents an earlier,
//!    taken-over run claimed are claimed anew, so that run's late deletes
//!    match nothing);
//! 2. copy this run's claimed documents to the target in batches (`_id`s
//!    preserved, the marker stripped, the organization id set, duplicates
//!    from an interrupted copy ignored), and delete each copied batch from
//!    the source;
//! 3. repeat until a claim round finds nothing left to claim, recreate the
//!    source's indexes on the target, and drop the source.
//!
//! The claim is what makes the copy safe against document writes racing it
//! (see `tenant_document_ops.rs`): writers never change or delete a claimed
//! document, and a claimed document is never lost (a resumed copy copies
//! whatever is claimed), so each document has exactly one fate, decided
//! atomically on the document itself. Safe to run again after a crash at any
//! point, and by several processes at once. Every write is fenced by the
//! operation's lease (see `lease.rs`), and only the organization's own
//! documents are claimed, copied or deleted (see `tenant_documents.rs`).
//!
//! [`MOVING`]: crate::tenant_documents::MOVING

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use orgsvc_domain::StoreError;

use crate::errors::only_duplicate_keys;
use crate::errors::store_error;
use crate::failpoints::Step;
use crate::lease::Lease;
use crate::records::StoredLayout;
use crate::store::MongoStore;
use crate::tenant_documents::{not_claimed_by, TenantScope, MOVING};

/// Documents copied per `insert_many` by the fallback.
const COPY_BATCH: usize = 1_000;

/// Claim rounds finding less than a batch after which a copy gives up (once
/// the documents present at the start are claimed, each round only finds
/// documents written by requests that read the organization as active
/// before the rename started, so a handful of rounds is the most expected).
const MAX_CLAIM_ROUNDS: usize = 50;

impl MongoStore {
    /// Moves collection `from` of organization `org_id` to `to` with every
    /// document and index.
    pub(crate) async fn move_collection(
        &self,
        from: &str,
        to: &str,
        org_id: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        let names = self.collection_names().await?;
        match (names.contains(from), names.contains(to)) {
            (false, true) => return Ok(()), // moved before a crash
            (false, false) => {
                tracing::warn!(
                    from,
                    to,
                    "tenant collection missing during rename; creating it empty"
                );
                self.ensure_collection(to, lease).await?;
                return self.ensure_listing_index(to, lease).await;
            }
            (true, false) if !self.forces_copy() => {
                if self.rename_natively(from, to, lease).await? {
                    return Ok(());
                }
            }
            (true, _) => {}
        }
        self.copy_collection(from, to, org_id, lease).await
    }

    /// Tries `renameCollection`; `true` when its effect is verified (the
    /// source is gone, the target exists). Document counts are not compared:
    /// writes racing the rename may change them.
    async fn rename_natively(
        &self,
        from: &str,
        to: &str,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        let db = self.db().name();
        let command = doc! {
            "renameCollection": format!("{db}.{from}"),
            "to": format!("{db}.{to}"),
            "dropTarget": false,
        };
        lease.fence().await?;
        if let Err(e) = self.client().database("admin").run_command(command).await {
            tracing::info!(from, to, error = %e, "renameCollection refused; copying instead");
            return Ok(false);
        }
        let names = self.collection_names().await?;
        let moved = !names.contains(from) && names.contains(to);
        if !moved {
            tracing::info!(
                from,
                to,
                "renameCollection had no verified effect; copying instead"
            );
        }
        Ok(moved)
    }

    /// The fallback: claim, copy and delete in batches until nothing is left,
    /// recreate indexes, drop the source. Also moves stragglers (documents
    /// written to `from` after an earlier move) into an existing `to`.
    pub(crate) async fn copy_collection(
        &self,
        from: &str,
        to: &str,
        org_id: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        self.ensure_collection(to, lease).await?;
        if !self.collection_exists(from).await? {
            return Ok(());
        }
        let source = TenantScope::new(org_id, StoredLayout::Collection, from);
        let target = TenantScope::new(org_id, StoredLayout::Collection, to);
        self.copy_documents(&source, &target, lease).await?;
        self.copy_indexes(from, to, lease).await?;
        self.failpoint(Step::RenameCollectionCopied)?;
        self.drop_collection(from, lease).await
    }

    /// The claiming copy of the organization's documents from `from` to `to`
    /// (steps 1 and 2 of the module documentation), repeated until a claim
    /// round finds nothing left to claim: afterwards `from` holds none of
    /// its documents that were there or written before the last round.
    /// Nothing to do when `from` is a collection that does not exist.
    /// Returns how many documents this run copied (counting those an
    /// interrupted run had copied already).
    pub(crate) async fn copy_documents(
        &self,
        from: &TenantScope,
        to: &TenantScope,
        lease: &Lease,
    ) -> Result<u64, StoreError> {
        if from.layout() == StoredLayout::Collection
            && !self.collection_exists(from.collection()).await?
        {
            return Ok(0);
        }
        let source = from.collection();
        let epoch = lease.epoch();
        let mut tail_rounds = 0;
        let mut copied = 0;
        loop {
            lease.fence().await?;
            let ids = self.unclaimed(from, epoch).await?;
            if ids.is_empty() {
                break;
            }
            let full = ids.len() == COPY_BATCH;
            let mut claim = not_claimed_by(epoch);
            claim.insert("_id", doc! { "$in": ids });
            lease.fence().await?;
            self.tenant(source)
                .update_many(from.filter(claim), doc! { "$set": { MOVING: epoch } })
                .await
                .map_err(|e| store_error(format!("claiming the documents of {source}"), e))?;
            copied += self.copy_claimed(from, to, lease).await?;
            if !full {
                tail_rounds += 1;
                if tail_rounds == MAX_CLAIM_ROUNDS {
                    return Err(StoreError::msg(format!(
                        "{source} still receives documents after {MAX_CLAIM_ROUNDS} copy rounds"
                    )));
                }
            }
        }
        Ok(copied)
    }

    /// The ids of up to a batch of the organization's documents in `from`
    /// that the run of lease epoch `epoch` has not claimed yet.
    async fn unclaimed(&self, from: &TenantScope, epoch: i64) -> Result<Vec<Bson>, StoreError> {
        let source = from.collection();
        let found: Vec<Document> = self
            .tenant(source)
            .find(from.filter(not_claimed_by(epoch)))
            .projection(doc! { "_id": 1 })
            .limit(COPY_BATCH as i64)
            .await
            .map_err(|e| store_error(format!("finding the documents of {source} to claim"), e))?
            .try_collect()
            .await
            .map_err(|e| store_error(format!("finding the documents of {source} to claim"), e))?;
        Ok(found.iter().filter_map(|d| d.get("_id").cloned()).collect())
    }

    /// Copies every document of `from` this run claimed to `to` and deletes
    /// it from `from`, batch by batch; how many it copied.
    async fn copy_claimed(
        &self,
        from: &TenantScope,
        to: &TenantScope,
        lease: &Lease,
    ) -> Result<u64, StoreError> {
        let source = from.collection();
        let epoch = lease.epoch();
        let claimed = from.filter(doc! { MOVING: epoch });
        let mut copied = 0;
        loop {
            let batch: Vec<Document> = self
                .tenant(source)
                .find(claimed.clone())
                .limit(COPY_BATCH as i64)
                .await
                .map_err(|e| store_error(format!("reading {source} to copy it"), e))?
                .try_collect()
                .await
                .map_err(|e| store_error(format!("reading {source} to copy it"), e))?;
            if batch.is_empty() {
                return Ok(copied);
            }
            copied += batch.len() as u64;
            let ids: Vec<Bson> = batch.iter().filter_map(|d| d.get("_id").cloned()).collect();
            let mut copies: Vec<Document> = batch.into_iter().map(|d| to.adopt(d)).collect();
            if self.supports_transactions().await {
                self.copy_batch_in_transaction(from, to, lease, &copies)
                    .await?;
                self.checkpoint(Step::RenameCopyBatch).await?;
                continue;
            }
            self.insert_batch(to.collection(), &mut copies, lease)
                .await?;
            lease.fence().await?;
            self.tenant(source)
                .delete_many(from.filter(doc! { "_id": { "$in": ids }, MOVING: epoch }))
                .await
                .map_err(|e| store_error(format!("deleting copied documents of {source}"), e))?;
        }
    }

    /// Inserts and empties `batch`; documents already there are skipped.
    async fn insert_batch(
        &self,
        to: &str,
        batch: &mut Vec<Document>,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        lease.fence().await?;
        match self
            .tenant(to)
            .insert_many(batch.drain(..))
            .ordered(false)
            .await
        {
            Ok(_) => {}
            Err(e) if only_duplicate_keys(&e) => {}
            Err(e) => return Err(store_error(format!("copying documents into {to}"), e)),
        }
        self.checkpoint(Step::RenameCopyBatch).await
    }

    /// Creates on `to` every index of `from` except `_id_`.
    async fn copy_indexes(&self, from: &str, to: &str, lease: &Lease) -> Result<(), StoreError> {
        let indexes: Vec<_> = self
            .tenant(from)
            .list_indexes()
            .await
            .map_err(|e| store_error(format!("listing the indexes of {from}"), e))?
            .try_collect()
            .await
            .map_err(|e| store_error(format!("listing the indexes of {from}"), e))?;
        for index in indexes {
            let name = index.options.as_ref().and_then(|o| o.name.as_deref());
            if name == Some("_id_") {
                continue;
            }
            lease.fence().await?;
            self.tenant(to)
                .create_index(index)
                .await
                .map_err(|e| store_error(format!("recreating an index on {to}"), e))?;
        }
        Ok(())
    }
}
