//! The caller's organization's documents: create, list, get, and
//! conditional replace and delete (RFC 9110 §13 preconditions, decided by
//! [`Preconditions`], made atomic by the store's revision compare).

use std::future::Future;

use orgsvc_domain::preconditions::{Decision, Preconditions};
use orgsvc_domain::{
    Admin, DocumentBody, DocumentError, DocumentId, DocumentPage, DocumentQuery, TenantDocument,
};

use crate::{AppError, Application};

/// Most times a conditional write is tried when the document keeps
/// changing between reading its revision and writing.
pub const WRITE_ATTEMPTS: usize = 3;

impl Application {
    /// Stores `body` in the caller's organization as a new document
    /// (revision 1).
    ///
    /// # Errors
    /// [`AppError::OrganizationBusy`] during a rename;
    /// [`AppError::InvalidToken`] when the organization was deleted; store
    /// failures.
    pub async fn create_document(
        &self,
        caller: &Admin,
        body: DocumentBody,
    ) -> Result<TenantDocument, AppError> {
        let document = self
            .store
            .insert_document(caller.organization_id, body)
            .await?;
        tracing::info!(document_id = %document.id, "document created");
        Ok(document)
    }

    /// One page of the caller's organization's documents, oldest first.
    ///
    /// # Errors
    /// As [`Application::create_document`].
    pub async fn documents(
        &self,
        caller: &Admin,
        query: DocumentQuery,
    ) -> Result<DocumentPage, AppError> {
        Ok(self
            .store
            .list_documents(caller.organization_id, query)
            .await?)
    }

    /// One of the caller's organization's documents.
    ///
    /// # Errors
    /// [`AppError::DocumentNotFound`] (also for another organization's id);
    /// as [`Application::create_document`].
    pub async fn document(
        &self,
        caller: &Admin,
        id: DocumentId,
    ) -> Result<TenantDocument, AppError> {
        Ok(self.store.find_document(caller.organization_id, id).await?)
    }

    /// Replaces the content of one of the caller's organization's documents
    /// if it meets `conditions`; answers it with its new revision.
    ///
    /// # Errors
    /// [`AppError::PreconditionFailed`] with the current revision (nothing
    /// changed); as [`Application::document`].
    pub async fn replace_document(
        &self,
        caller: &Admin,
        id: DocumentId,
        body: DocumentBody,
        conditions: &Preconditions,
    ) -> Result<TenantDocument, AppError> {
        let organization = caller.organization_id;
        let document = self
            .write_if(caller, id, conditions, |expected| {
                self.store
                    .replace_document(organization, id, body.clone(), expected)
            })
            .await?;
        tracing::info!(document_id = %document.id, revision = document.revision, "document replaced");
        Ok(document)
    }

    /// Deletes one of the caller's organization's documents if it meets
    /// `conditions`.
    ///
    /// # Errors
    /// As [`Application::replace_document`].
    pub async fn delete_document(
        &self,
        caller: &Admin,
        id: DocumentId,
        conditions: &Preconditions,
    ) -> Result<(), AppError> {
        let organization = caller.organization_id;
        self.write_if(caller, id, conditions, |expected| {
            self.store.delete_document(organization, id, expected)
        })
        .await?;
        tracing::info!(document_id = %id, "document deleted");
        Ok(())
    }

    /// Performs `write` (a replacement or deletion given its expected
    /// revision) if the document meets `conditions` (RFC 9110 §13.2.2),
    /// atomically: the write names the revision the decision was made on,
    /// so the store's compare refuses it if the document changed in
    /// between, and the decision is then made again on the new revision.
    /// Unconditional writes and `*` name none; a single `If-Match` revision
    /// is named without a read. A document that changes under every one of
    /// [`WRITE_ATTEMPTS`] tries is a precondition failure with its latest
    /// revision (nothing was written; the client re-reads).
    async fn write_if<T, W, F>(
        &self,
        caller: &Admin,
        id: DocumentId,
        conditions: &Preconditions,
        write: W,
    ) -> Result<T, AppError>
    where
        W: Fn(Option<u64>) -> F,
        F: Future<Output = Result<T, DocumentError>>,
    {
        if conditions.hold_for_any_revision() {
            return Ok(write(None).await?);
        }
        if let Some(pinned) = conditions.pinned_revision() {
            if conditions.evaluate(pinned, false) == Decision::Proceed {
                // Any other revision fails `If-Match`: the store's refusal is right.
                return Ok(write(Some(pinned)).await?);
            }
        }
        let mut current = self
            .store
            .find_document(caller.organization_id, id)
            .await?
            .revision;
        for _ in 0..WRITE_ATTEMPTS {
            if conditions.evaluate(current, false) != Decision::Proceed {
                break;
            }
            match write(Some(current)).await {
                Err(DocumentError::RevisionMismatch { current: now }) => current = now,
                done => return Ok(done?),
            }
        }
        Err(AppError::PreconditionFailed { current })
    }
}
