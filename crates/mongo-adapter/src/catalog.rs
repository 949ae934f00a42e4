//! Catalog operations on tenant collections, each verified by its effect
//! rather than trusted on the server's `ok` (some wire-compatible servers
//! answer `ok` without doing the work, or ignore `listCollections` filters).

use std::collections::HashSet;

use mongodb::bson::doc;
use orgsvc_domain::StoreError;

use crate::store::MongoStore;

/// MongoDB's "namespace exists" error code.
pub(crate) const NAMESPACE_EXISTS: i32 = 48;

impl MongoStore {
    /// The names of the master database's collections.
    pub(crate) async fn collection_names(&self) -> Result<HashSet<String>, StoreError> {
        let names = self
            .db()
            .list_collection_names()
            .await
            .map_err(|e| StoreError::new("listing collections", e))?;
        Ok(names.into_iter().collect())
    }

    /// Whether the collection exists (checked by name on the client).
    pub(crate) async fn collection_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.collection_names().await?.contains(name))
    }

    /// Creates the collection explicitly; an existing one is fine.
    pub(crate) async fn ensure_collection(&self, name: &str) -> Result<(), StoreError> {
        match self.db().create_collection(name).await {
            Ok(()) => Ok(()),
            Err(e) if command_code(&e) == Some(NAMESPACE_EXISTS) => Ok(()),
            Err(e) => Err(StoreError::new(format!("creating collection {name}"), e)),
        }
    }

    /// Drops the collection and checks that it is gone.
    pub(crate) async fn drop_collection(&self, name: &str) -> Result<(), StoreError> {
        self.tenant(name)
            .drop()
            .await
            .map_err(|e| StoreError::new(format!("dropping collection {name}"), e))?;
        if self.collection_exists(name).await? {
            return Err(StoreError::msg(format!(
                "collection {name} still exists after being dropped"
            )));
        }
        Ok(())
    }

    /// The number of documents in the collection (0 when it does not exist).
    pub(crate) async fn count(&self, name: &str) -> Result<u64, StoreError> {
        self.tenant(name)
            .count_documents(doc! {})
            .await
            .map_err(|e| StoreError::new(format!("counting documents of {name}"), e))
    }
}

/// The server's error code when a command was refused.
pub(crate) fn command_code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::Command(e) => Some(e.code),
        _ => None,
    }
}
