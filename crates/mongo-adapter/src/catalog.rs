//! Catalog operations on tenant collections, each verified by its effect
//! rather than trusted on the server's `ok` (some wire-compatible servers
//! answer `ok` without doing the work, or ignore `listCollections` filters).

use std::collections::HashSet;

use mongodb::bson::doc;
use mongodb::error::ErrorKind;
use mongodb::options::IndexOptions;
use mongodb::IndexModel;
use orgsvc_domain::StoreError;

use crate::errors::store_error;
use crate::errors::{command_code, NAMESPACE_EXISTS};
use crate::lease::Lease;
use crate::store::MongoStore;

/// MongoDB's codes for "an equivalent index exists under another name or
/// with other options".
const INDEX_CONFLICTS: [i32; 2] = [85, 86];

/// The index serving the listing order of tenant documents.
pub(crate) const LISTING_INDEX: &str = "created_at_1__id_1";

impl MongoStore {
    /// The names of the master database's collections.
    pub(crate) async fn collection_names(&self) -> Result<HashSet<String>, StoreError> {
        let names = self
            .db()
            .list_collection_names()
            .await
            .map_err(|e| store_error("listing collections", e))?;
        Ok(names.into_iter().collect())
    }

    /// Whether the collection exists (checked by name on the client).
    pub(crate) async fn collection_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.collection_names().await?.contains(name))
    }

    /// Creates the collection explicitly (fenced by `lease`); an existing
    /// one is fine.
    pub(crate) async fn ensure_collection(
        &self,
        name: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        lease.fence().await?;
        match self.db().create_collection(name).await {
            Ok(()) => Ok(()),
            Err(e) if command_code(&e) == Some(NAMESPACE_EXISTS) => Ok(()),
            Err(e) => Err(store_error(format!("creating collection {name}"), e)),
        }
    }

    /// Creates the tenant collection of an organization that has just claimed
    /// its name, with its listing index. Whatever a collection of that name
    /// still holds predates the claim (documents that a write racing a rename
    /// or deletion of the previous owner left behind), so it is dropped first.
    pub(crate) async fn fresh_tenant_collection(
        &self,
        name: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        if self.collection_exists(name).await? {
            tracing::warn!(
                collection = name,
                "dropping a leftover collection before reusing its name"
            );
            self.drop_collection(name, lease).await?;
        }
        self.ensure_collection(name, lease).await?;
        self.ensure_listing_index(name, lease).await
    }

    /// Creates the index serving the listing order, `{created_at: 1, _id: 1}`,
    /// on a new, empty tenant collection that nobody uses yet (idempotent),
    /// and verifies its effect
    /// with a probe document inserted and deleted again: the collection must
    /// still accept documents. A server that refuses that key pattern (a
    /// command error, not a lost connection) or cannot maintain it (the probe
    /// is refused) gets `{created_at: 1}` instead, with a warning: listings
    /// stay correct, only big collections list more slowly.
    pub(crate) async fn ensure_listing_index(
        &self,
        name: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        let full = listing_index(doc! { "created_at": 1, "_id": 1 }, LISTING_INDEX);
        lease.fence().await?;
        let refusal = match self.tenant(name).create_index(full).await {
            Ok(_) => match self.probe_writes(name, lease).await? {
                None => return Ok(()),
                Some(refusal) => {
                    // Start over without the index: the collection is new
                    // and empty (dropping the index by name is not enough
                    // where the server names indexes its own way).
                    self.drop_collection(name, lease).await?;
                    self.ensure_collection(name, lease).await?;
                    refusal
                }
            },
            Err(e) if command_code(&e).is_some_and(|c| INDEX_CONFLICTS.contains(&c)) => {
                return Ok(())
            }
            Err(e) if matches!(e.kind.as_ref(), ErrorKind::Command(_)) => e,
            Err(e) => {
                return Err(store_error(
                    format!("creating the listing index of {name}"),
                    e,
                ))
            }
        };
        tracing::warn!(
            collection = name,
            error = %refusal,
            "the server cannot index {{created_at: 1, _id: 1}}; indexing created_at alone"
        );
        lease.fence().await?;
        match self
            .tenant(name)
            .create_index(listing_index(doc! { "created_at": 1 }, "created_at_1"))
            .await
        {
            Ok(_) => {}
            Err(e) if command_code(&e).is_some_and(|c| INDEX_CONFLICTS.contains(&c)) => {}
            Err(e) => {
                return Err(store_error(
                    format!("creating the listing index of {name}"),
                    e,
                ))
            }
        }
        match self.probe_writes(name, lease).await? {
            None => Ok(()),
            Some(e) => Err(store_error(
                format!("{name} refuses documents once indexed on created_at"),
                e,
            )),
        }
    }

    /// Inserts and deletes a probe document; the server's refusal of the
    /// insert, if it refused.
    async fn probe_writes(
        &self,
        name: &str,
        lease: &Lease,
    ) -> Result<Option<mongodb::error::Error>, StoreError> {
        let probe = doc! {
            "_id": format!("probe-{}", uuid::Uuid::new_v4()),
            "created_at": crate::records::now(),
        };
        let id = probe.get("_id").cloned();
        lease.fence().await?;
        match self.tenant(name).insert_one(probe).await {
            Ok(_) => {}
            Err(e) if matches!(e.kind.as_ref(), ErrorKind::Write(_)) => return Ok(Some(e)),
            Err(e) => return Err(store_error(format!("probing writes to {name}"), e)),
        }
        self.tenant(name)
            .delete_one(doc! { "_id": id })
            .await
            .map_err(|e| store_error(format!("deleting the probe document of {name}"), e))?;
        Ok(None)
    }

    /// Drops the collection (fenced by `lease`) and checks that it is gone.
    pub(crate) async fn drop_collection(
        &self,
        name: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        lease.fence().await?;
        self.drop_verified(name).await
    }

    /// Drops the collection and checks that it is gone (unfenced: for the
    /// orphan sweep, which holds the name instead of a lease).
    pub(crate) async fn drop_verified(&self, name: &str) -> Result<(), StoreError> {
        self.tenant(name)
            .drop()
            .await
            .map_err(|e| store_error(format!("dropping collection {name}"), e))?;
        if self.collection_exists(name).await? {
            return Err(StoreError::msg(format!(
                "collection {name} still exists after being dropped"
            )));
        }
        Ok(())
    }
}

fn listing_index(keys: mongodb::bson::Document, name: &str) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_owned()).build())
        .build()
}
