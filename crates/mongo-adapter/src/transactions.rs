//! Multi-document transactions where the deployment has them (a replica set
//! or a sharded cluster; MongoDB manual, "Transactions"). A rename's copy
//! batch then is one atomic step fenced on the server: the transaction
//! renews the operation's lease on its organization record (matching its
//! holder), inserts the batch into the target and deletes it from the
//! source. A takeover writes the same record, so the two conflict and at
//! most one commits: a process that lost its lease cannot copy a batch even
//! if it was paused right after its last check. On a standalone server the
//! copy runs the same steps without a transaction (see `collection_moves.rs`),
//! fenced by the holder's own check of its lease.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{Error, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::ClientSession;
use orgsvc_domain::StoreError;

use crate::errors::store_error;
use crate::lease::Lease;
use crate::records::now_ms;
use crate::store::MongoStore;
use crate::tenant_documents::{TenantScope, MOVING};

/// Times a batch transaction is tried again after a transient error (a
/// write conflict with a lease renewal, a primary stepping down).
const ATTEMPTS: usize = 5;

/// Why a step inside a transaction stopped.
enum Stop {
    /// The organization record no longer carries the lease.
    Fenced,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

impl MongoStore {
    /// Whether the deployment runs multi-document transactions: its `hello`
    /// names a replica set (`setName`) or a router (`msg: "isdbgrid"`).
    /// Asked once per store; a failure to ask counts as "no".
    pub(crate) async fn supports_transactions(&self) -> bool {
        if self.forces_transactions() {
            return true;
        }
        *self
            .transactions()
            .get_or_init(|| async {
                match self.db().run_command(doc! { "hello": 1 }).await {
                    Ok(hello) => {
                        hello.contains_key("setName")
                            || hello.get_str("msg").is_ok_and(|msg| msg == "isdbgrid")
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not ask the server whether it runs transactions; copying without");
                        false
                    }
                }
            })
            .await
    }

    /// Copies `batch` (documents of the organization that this run claimed
    /// in `from`, already adopted into `to`) into `to` and deletes them from
    /// `from`, in one transaction that also renews the lease (see the module
    /// documentation).
    pub(crate) async fn copy_batch_in_transaction(
        &self,
        from: &TenantScope,
        to: &TenantScope,
        lease: &Lease,
        batch: &[Document],
    ) -> Result<(), StoreError> {
        let org_id = from.org_id();
        let ids: Vec<Bson> = batch.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let (source, target) = (from.collection(), to.collection());
        let failed = |e| {
            store_error(
                format!("copying a batch of {source} to {target} in a transaction"),
                e,
            )
        };
        for _ in 0..ATTEMPTS {
            lease.fence().await?;
            let mut session = self.client().start_session().await.map_err(failed)?;
            session.start_transaction().await.map_err(failed)?;
            match self
                .copy_batch_steps(&mut session, from, to, lease, batch, &ids)
                .await
            {
                Ok(()) => {}
                Err(Stop::Fenced) => {
                    let _ = session.abort_transaction().await;
                    return Err(StoreError::msg(format!(
                        "organization {org_id}: lifecycle operation stopped (the lease moved to another process)"
                    )));
                }
                Err(Stop::Failed(e)) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => {
                    let _ = session.abort_transaction().await;
                    continue;
                }
                Err(Stop::Failed(e)) => {
                    let _ = session.abort_transaction().await;
                    return Err(failed(e));
                }
            }
            match commit(&mut session).await {
                Ok(()) => return Ok(()),
                Err(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => continue,
                Err(e) => return Err(failed(e)),
            }
        }
        Err(StoreError::msg(format!(
            "copying a batch of {source} to {target}: the transaction kept conflicting ({ATTEMPTS} attempts)"
        )))
    }

    async fn copy_batch_steps(
        &self,
        session: &mut ClientSession,
        from: &TenantScope,
        to: &TenantScope,
        lease: &Lease,
        batch: &[Document],
        ids: &[Bson],
    ) -> Result<(), Stop> {
        let renewed = self
            .organizations()
            .update_one(
                doc! { "_id": from.org_id(), "pending.lease.holder": lease.holder() },
                doc! { "$set": { "pending.lease.renewed_ms": now_ms() } },
            )
            .session(&mut *session)
            .await?;
        if renewed.matched_count != 1 {
            return Err(Stop::Fenced);
        }
        // A resumed copy finds some of the batch copied already: inside a
        // transaction a duplicate key would abort it, so only the missing
        // documents are inserted.
        let present: Vec<Document> = self
            .tenant(to.collection())
            .find(to.filter(doc! { "_id": { "$in": ids } }))
            .projection(doc! { "_id": 1 })
            .session(&mut *session)
            .await?
            .stream(&mut *session)
            .try_collect()
            .await?;
        let present: Vec<&Bson> = present.iter().filter_map(|d| d.get("_id")).collect();
        let missing: Vec<&Document> = batch
            .iter()
            .filter(|d| d.get("_id").is_some_and(|id| !present.contains(&id)))
            .collect();
        if !missing.is_empty() {
            self.tenant(to.collection())
                .insert_many(missing)
                .session(&mut *session)
                .await?;
        }
        self.tenant(from.collection())
            .delete_many(from.filter(doc! { "_id": { "$in": ids }, MOVING: lease.epoch() }))
            .session(&mut *session)
            .await?;
        Ok(())
    }
}

/// Commits, retrying while the outcome is unknown (MongoDB manual,
/// "Transactions in Applications": retry commit on
/// `UnknownTransactionCommitResult`).
async fn commit(session: &mut ClientSession) -> Result<(), Error> {
    for _ in 0..ATTEMPTS {
        match session.commit_transaction().await {
            Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) => continue,
            other => return other,
        }
    }
    session.commit_transaction().await
}
