//! Moving a tenant collection to its new name.
//!
//! First the native `renameCollection` (same database, `dropTarget: false`),
//! then a check of its effect: the target holds the source's document count
//! and the source is gone. When the server refuses or the check fails, a
//! batched copy (`_id`s preserved, duplicates from an earlier interrupted
//! copy ignored), then the source's indexes recreated on the target, the
//! counts compared, and only then the source dropped. Safe to run again after
//! a crash at any point.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use orgsvc_domain::StoreError;

use crate::errors::only_duplicate_keys;
use crate::failpoints::Step;
use crate::store::MongoStore;

/// Documents copied per `insert_many` by the fallback.
const COPY_BATCH: usize = 1_000;

impl MongoStore {
    /// Moves collection `from` to `to` with every document and index.
    pub(crate) async fn move_collection(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let names = self.collection_names().await?;
        match (names.contains(from), names.contains(to)) {
            (false, true) => return Ok(()), // moved before a crash
            (false, false) => {
                tracing::warn!(
                    from,
                    to,
                    "tenant collection missing during rename; creating it empty"
                );
                return self.ensure_collection(to).await;
            }
            (true, false) if !self.forces_copy() => {
                if self.rename_natively(from, to).await? {
                    return Ok(());
                }
            }
            (true, _) => {}
        }
        self.copy_collection(from, to).await
    }

    /// Tries `renameCollection`; `true` when its effect is verified.
    async fn rename_natively(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        let expected = self.count(from).await?;
        let db = self.db().name();
        let command = doc! {
            "renameCollection": format!("{db}.{from}"),
            "to": format!("{db}.{to}"),
            "dropTarget": false,
        };
        if let Err(e) = self.client().database("admin").run_command(command).await {
            tracing::info!(from, to, error = %e, "renameCollection refused; copying instead");
            return Ok(false);
        }
        let names = self.collection_names().await?;
        let moved =
            !names.contains(from) && names.contains(to) && self.count(to).await? == expected;
        if !moved {
            tracing::info!(
                from,
                to,
                "renameCollection had no verified effect; copying instead"
            );
        }
        Ok(moved)
    }

    /// The fallback: copy in batches, recreate indexes, verify, drop source.
    async fn copy_collection(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.ensure_collection(to).await?;
        let mut cursor = self
            .tenant(from)
            .find(doc! {})
            .batch_size(COPY_BATCH as u32)
            .await
            .map_err(|e| StoreError::new(format!("reading {from} to copy it"), e))?;
        let mut batch = Vec::with_capacity(COPY_BATCH);
        while let Some(document) = cursor
            .try_next()
            .await
            .map_err(|e| StoreError::new(format!("reading {from} to copy it"), e))?
        {
            batch.push(document);
            if batch.len() == COPY_BATCH {
                self.insert_batch(to, &mut batch).await?;
            }
        }
        self.insert_batch(to, &mut batch).await?;
        self.copy_indexes(from, to).await?;
        self.failpoint(Step::RenameCollectionCopied)?;

        let (copied, expected) = (self.count(to).await?, self.count(from).await?);
        if copied != expected {
            return Err(StoreError::msg(format!(
                "copy of {from} to {to} has {copied} documents instead of {expected}"
            )));
        }
        self.drop_collection(from).await
    }

    /// Inserts and empties `batch`; documents already there are skipped.
    async fn insert_batch(&self, to: &str, batch: &mut Vec<Document>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self
            .tenant(to)
            .insert_many(batch.drain(..))
            .ordered(false)
            .await
        {
            Ok(_) => {}
            Err(e) if only_duplicate_keys(&e) => {}
            Err(e) => return Err(StoreError::new(format!("copying documents into {to}"), e)),
        }
        self.failpoint(Step::RenameCopyBatch)
    }

    /// Creates on `to` every index of `from` except `_id_`.
    async fn copy_indexes(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let indexes: Vec<_> = self
            .tenant(from)
            .list_indexes()
            .await
            .map_err(|e| StoreError::new(format!("listing the indexes of {from}"), e))?
            .try_collect()
            .await
            .map_err(|e| StoreError::new(format!("listing the indexes of {from}"), e))?;
        for index in indexes {
            let name = index.options.as_ref().and_then(|o| o.name.as_deref());
            if name == Some("_id_") {
                continue;
            }
            self.tenant(to)
                .create_index(index)
                .await
                .map_err(|e| StoreError::new(format!("recreating an index on {to}"), e))?;
        }
        Ok(())
    }
}
