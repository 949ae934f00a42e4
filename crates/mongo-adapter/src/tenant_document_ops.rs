//! The tenant document operations of [`TenantStore`](orgsvc_domain::TenantStore)
//! and how they stay correct while a rename moves the collection.
//!
//! Every operation reads the organization's record (by id) first: missing,
//! provisioning or deleting → `OrganizationNotFound`; renaming or moving
//! between layouts → `Busy` (in the shared layout a rename moves nothing,
//! yet its few record writes answer `Busy` like any rename's); active → it
//! works in the scope the record names ([`TenantScope`]: the collection of
//! its own, or the shared collection filtered on its id), and only there.
//! A move between layouts (`lifecycle/tenant_move.rs`) is a rename's copy
//! from one scope to another, so everything below holds for it with
//! "collection" read as "scope".
//! Documents are found by their `_id` in that collection, so an id of another
//! organization is simply not found.
//!
//! # Writes racing a rename
//!
//! A request may read the record as active (collection `C`) just before a
//! rename starts, and write to `C` while or after the rename moves it to `T`.
//! The rename (see `lifecycle/rename.rs` and `collection_moves.rs`) first changes
//! the record (state `renaming`, new `revision`), claims the new name, moves
//! `C` to `T` either natively (`renameCollection`, atomic) or by the claiming
//! copy (each document of `C` is first *claimed*, i.e. marked [`MOVING`],
//! atomically; only claimed documents are copied; copied ones are deleted
//! from `C`; rounds repeat until nothing is left to claim; then `C` is
//! dropped), switches the record to `T`, then *sweeps* `C` again with the
//! same claiming copy (a write may have recreated `C` after the move) while
//! it still holds the old name, so no other organization can own `C` yet, and
//! only then releases the old name.
//!
//! Writers never touch a claimed document (their filters require `MOVING` to
//! be absent). So every document of `C` has one fate, decided atomically on
//! the document itself: either a writer changes or removes it while it is
//! unclaimed, or the rename claims (or natively moves) it first, after which
//! it is carried to `T` unchanged, even across crashes (a resumed copy copies
//! whatever is claimed).
//!
//! - **Replace / delete** work on an existing document, by `_id`, on the
//!   condition that it has the revision just read and is unclaimed. If that
//!   matches in `C`, `C` still held the organization's live document (ids are
//!   unique: after a move `C` holds no document with this id), so the write
//!   happened before the move took the document: a native rename carries the
//!   new version (or the deletion), and the copy has not copied it (it copies
//!   claimed documents only) and will claim the new version later (a claim
//!   round runs after every write that found the document unclaimed, since
//!   copies end only with a round that finds nothing to claim). The write is
//!   applied: success. If nothing matches, nothing was written; the
//!   operation looks again, and answers `Busy` once the record says
//!   renaming.
//! - **Insert** creates a document no move can know about yet, and a late
//!   insert recreates `C` after a native rename or lands after the copy's
//!   last claim round (and is then dropped with `C`). So after inserting, the
//!   writer reads the record again. Unchanged revision: the rename had not
//!   started when the insert was done (its first step changes the record),
//!   so any later move includes the document: success. Changed: the writer
//!   tries to take its document back, deleting it from `C` *if unclaimed*.
//!   - Deleted: no move had it (the native rename had not run, or the
//!     document is a straggler in a recreated `C`; the copy had not claimed
//!     it, so had not copied it): nothing is left anywhere → `Busy`.
//!   - Not deleted: the rename claimed or moved it first (or `C` is gone).
//!     The writer waits while its document is claimed but still in `C`
//!     (being copied), then looks for it in the organization's collections
//!     (the record's collection and rename target): found → it was carried
//!     → success; not found, and the record did not change during the look →
//!     it went with a dropped `C` and exists nowhere → `Busy`.
//!
//!   A document cannot reach `T` after the writer looked for it there: it
//!   reaches `T` only by a native rename of `C` or by being copied while
//!   claimed, and the writer looked for it in `C` (claimed) before looking in
//!   `T`. When the record is active again on `C` itself (a respelling, which
//!   moves nothing), the document is simply looked for there.
//! - **Find / list** read `C` and then the record again; a changed record
//!   means the read may have seen a half-moved collection, so it is retried
//!   (and answers `Busy` while the record says renaming).
//!
//! Whatever a straggler insert leaves in `C` (the writer died before taking
//! it back) is swept into `T` before the old name is released, and an
//! organization that claims a name anew drops whatever a collection of that
//! name still holds before using it. A straggler arriving after the old name
//! was released recreates `C` with nobody holding it; its writer takes the
//! document back, and the orphan sweep of reconciliation drops the
//! collection (see `orphans.rs`). What remains is one window no check can
//! close without multi-document transactions: an insert delayed between its
//! record read and its arrival at the server for longer than a whole rename
//! plus the creation of a new organization under the old name lands in that
//! organization's collection; its writer then finds the record changed and
//! deletes it at once (answering `Busy`), so it is visible there only for
//! that instant, unless the writer dies in between.
//!
//! [`MOVING`]: crate::tenant_documents::MOVING
//! [`TenantScope`]: crate::tenant_documents::TenantScope

use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use orgsvc_domain::{
    check_revision, DocumentBody, DocumentError, DocumentId, DocumentPage, DocumentQuery,
    OrganizationId, PageCursor, StoreError, TenantDocument,
};

use crate::errors::store_error;
use crate::failpoints::Step;
use crate::records::{self, to_chrono, OrgDoc, OrgState};
use crate::store::MongoStore;
use crate::tenant_documents::{
    from_stored, not_moving, revision_to_bson, stored_revision, TenantScope, MOVING,
};

/// How often a read or write starts over when the record or the document
/// changed under it, before giving up.
const ATTEMPTS: usize = 10;

/// How long an insert that raced a rename waits for its document to be
/// copied (it waits only while the document is claimed and still in the old
/// collection, i.e. while a copy batch is in flight).
const SETTLE_POLL: Duration = Duration::from_millis(20);
const SETTLE_ROUNDS: usize = 500;

impl MongoStore {
    pub(crate) async fn insert_document(
        &self,
        organization: OrganizationId,
        body: DocumentBody,
    ) -> Result<TenantDocument, DocumentError> {
        let record = self.document_target(organization).await?;
        self.checkpoint(Step::DocumentTargetRead).await?;
        let now = to_chrono(records::now())?;
        let document = TenantDocument {
            id: DocumentId::new(),
            body,
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        let scope = TenantScope::of(&record);
        let collection = scope.collection();
        self.tenant(collection)
            .insert_one(scope.stored(&document)?)
            .await
            .map_err(|e| store_error(format!("inserting a document into {collection}"), e))?;
        self.checkpoint(Step::DocumentWritten).await?;
        if self.unchanged(&record).await? {
            return Ok(document);
        }
        self.settle_racing_insert(&record, &document.id.to_string())
            .await?;
        Ok(document)
    }

    pub(crate) async fn find_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
    ) -> Result<TenantDocument, DocumentError> {
        for _ in 0..ATTEMPTS {
            let record = self.document_target(organization).await?;
            let found = self
                .find_by_id(&TenantScope::of(&record), &id.to_string())
                .await?;
            if self.unchanged(&record).await? {
                return match found {
                    Some(stored) => Ok(from_stored(&stored)?),
                    None => Err(DocumentError::NotFound),
                };
            }
        }
        Err(too_many_attempts("reading a document"))
    }

    pub(crate) async fn list_documents(
        &self,
        organization: OrganizationId,
        query: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError> {
        let limit = query.limit.get();
        let fetch = i64::try_from(limit + 1)
            .map_err(|e| store_error("a page size does not fit in 64 bits", e))?;
        for _ in 0..ATTEMPTS {
            let record = self.document_target(organization).await?;
            let scope = TenantScope::of(&record);
            let collection = scope.collection();
            let filter = scope.listing_filter(&query.filters, query.after.as_ref())?;
            let stored: Vec<Document> = self
                .tenant(collection)
                .find(filter)
                .sort(scope.listing_sort())
                .limit(fetch)
                .await
                .map_err(|e| store_error(format!("listing the documents of {collection}"), e))?
                .try_collect()
                .await
                .map_err(|e| store_error(format!("listing the documents of {collection}"), e))?;
            if !self.unchanged(&record).await? {
                continue;
            }
            let mut documents = stored
                .iter()
                .map(from_stored)
                .collect::<Result<Vec<_>, _>>()?;
            let next = if documents.len() > limit {
                documents.truncate(limit);
                documents.last().map(PageCursor::after)
            } else {
                None
            };
            return Ok(DocumentPage { documents, next });
        }
        Err(too_many_attempts("listing documents"))
    }

    pub(crate) async fn replace_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        body: DocumentBody,
        expected_revision: Option<u64>,
    ) -> Result<TenantDocument, DocumentError> {
        let key = id.to_string();
        for _ in 0..ATTEMPTS {
            let Some((record, current)) = self.live_document(organization, &key).await? else {
                continue;
            };
            let revision = stored_revision(&current)?;
            check_revision(expected_revision, revision)?;
            let current = from_stored(&current)?;
            let replacement = TenantDocument {
                id,
                body: body.clone(),
                revision: revision + 1,
                created_at: current.created_at,
                updated_at: to_chrono(records::now())?,
            };
            self.checkpoint(Step::DocumentTargetRead).await?;
            let scope = TenantScope::of(&record);
            let collection = scope.collection();
            let result = self
                .tenant(collection)
                .replace_one(
                    scope.filter(
                        doc! { "_id": &key, "revision": revision_to_bson(revision)?, MOVING: not_moving() },
                    ),
                    scope.stored(&replacement)?,
                )
                .await
                .map_err(|e| store_error(format!("replacing a document in {collection}"), e))?;
            if result.matched_count == 1 {
                // Applied: an unclaimed document changed in place is carried
                // by any move (see the module documentation).
                self.checkpoint(Step::DocumentWritten).await?;
                return Ok(replacement);
            }
        }
        Err(too_many_attempts("replacing a document"))
    }

    pub(crate) async fn delete_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        expected_revision: Option<u64>,
    ) -> Result<(), DocumentError> {
        let key = id.to_string();
        for _ in 0..ATTEMPTS {
            let Some((record, current)) = self.live_document(organization, &key).await? else {
                continue;
            };
            let revision = stored_revision(&current)?;
            check_revision(expected_revision, revision)?;
            self.checkpoint(Step::DocumentTargetRead).await?;
            let scope = TenantScope::of(&record);
            let collection = scope.collection();
            let result = self
                .tenant(collection)
                .delete_one(scope.filter(
                    doc! { "_id": &key, "revision": revision_to_bson(revision)?, MOVING: not_moving() },
                ))
                .await
                .map_err(|e| store_error(format!("deleting a document of {collection}"), e))?;
            if result.deleted_count == 1 {
                // Applied: an unclaimed document was never copied, and a
                // native rename after this moves a collection without it.
                self.checkpoint(Step::DocumentWritten).await?;
                return Ok(());
            }
        }
        Err(too_many_attempts("deleting a document"))
    }

    /// The record of an organization whose documents can be used now.
    async fn document_target(&self, organization: OrganizationId) -> Result<OrgDoc, DocumentError> {
        let record = self
            .org_record(&organization.to_string())
            .await?
            .ok_or(DocumentError::OrganizationNotFound)?;
        match record.state {
            OrgState::Active => Ok(record),
            OrgState::Renaming | OrgState::Moving => Err(DocumentError::Busy),
            OrgState::Provisioning | OrgState::Deleting => Err(DocumentError::OrganizationNotFound),
        }
    }

    /// Whether the organization's record went through no lifecycle step
    /// since `before` was read (lease renewals and admin changes do not
    /// count: see [`OrgDoc::same_lifecycle`]).
    async fn unchanged(&self, before: &OrgDoc) -> Result<bool, StoreError> {
        Ok(self
            .org_record(&before.id)
            .await?
            .is_some_and(|now| now.same_lifecycle(before)))
    }

    /// The document with this id in the organization's collection, unclaimed,
    /// with the record it was read under; `None` when the record changed
    /// meanwhile (the caller starts over). `NotFound` when the collection has
    /// no such document; `Busy` when a rename claimed it.
    async fn live_document(
        &self,
        organization: OrganizationId,
        key: &str,
    ) -> Result<Option<(OrgDoc, Document)>, DocumentError> {
        let record = self.document_target(organization).await?;
        let found = self.find_by_id(&TenantScope::of(&record), key).await?;
        match found {
            Some(stored) if !stored.contains_key(MOVING) => Ok(Some((record, stored))),
            found => {
                if !self.unchanged(&record).await? {
                    return Ok(None);
                }
                match found {
                    // A claim without a rename in progress: an interrupted
                    // copy that reconcile has yet to finish.
                    Some(_) => Err(DocumentError::Busy),
                    None => Err(DocumentError::NotFound),
                }
            }
        }
    }

    /// The organization's document `key` in `scope`.
    async fn find_by_id(
        &self,
        scope: &TenantScope,
        key: &str,
    ) -> Result<Option<Document>, StoreError> {
        let collection = scope.collection();
        self.tenant(collection)
            .find_one(scope.filter(doc! { "_id": key }))
            .await
            .map_err(|e| store_error(format!("reading a document of {collection}"), e))
    }

    /// Whether `scope`'s collection exists and holds the organization's
    /// document `key` (claimed or not). Checks existence first so that
    /// looking does not create it on servers that create collections on
    /// reads.
    async fn holds_document(&self, scope: &TenantScope, key: &str) -> Result<bool, StoreError> {
        Ok(self.collection_exists(scope.collection()).await?
            && self.find_by_id(scope, key).await?.is_some())
    }

    /// Decides the fate of a document inserted into `record`'s collection
    /// while the record changed (see the module documentation): `Ok` when
    /// the document is (or will be, once its copy batch lands) in the
    /// organization's collection, `Busy` (or `OrganizationNotFound`) when it
    /// is nowhere.
    async fn settle_racing_insert(&self, record: &OrgDoc, key: &str) -> Result<(), DocumentError> {
        let written = TenantScope::of(record);
        let old = written.collection();
        let current = self.org_record(&record.id).await?;
        let still_there = current
            .as_ref()
            .is_some_and(|now| now.state == OrgState::Active && TenantScope::of(now) == written);
        if !still_there && self.collection_exists(old).await? {
            let taken_back = self
                .tenant(old)
                .delete_one(written.filter(doc! { "_id": key, MOVING: not_moving() }))
                .await
                .map_err(|e| store_error(format!("withdrawing a document from {old}"), e))?
                .deleted_count
                == 1;
            if taken_back {
                tracing::info!(organization = %record.id, collection = %old, "a document insert raced a rename or move and was withdrawn");
                return Err(self.refusal(&record.id).await?);
            }
        }
        for _ in 0..SETTLE_ROUNDS {
            let Some(current) = self.org_record(&record.id).await? else {
                return Err(DocumentError::OrganizationNotFound);
            };
            if matches!(current.state, OrgState::Provisioning | OrgState::Deleting) {
                return Err(DocumentError::OrganizationNotFound);
            }
            let in_transit = self.collection_exists(old).await?
                && self
                    .tenant(old)
                    .find_one(written.filter(doc! { "_id": key, MOVING: { "$exists": true } }))
                    .await
                    .map_err(|e| store_error(format!("reading a document of {old}"), e))?
                    .is_some();
            if in_transit {
                tokio::time::sleep(SETTLE_POLL).await;
                continue;
            }
            let mut places = vec![TenantScope::of(&current)];
            if let Some(rename) = current.pending_rename() {
                places.push(TenantScope::new(
                    &current.id,
                    current.layout,
                    &rename.to_collection,
                ));
            }
            if let Some(relayout) = current.pending_move() {
                places.push(TenantScope::new(
                    &current.id,
                    relayout.to,
                    &current.collection,
                ));
            }
            for place in &places {
                if self.holds_document(place, key).await? {
                    return Ok(());
                }
            }
            if self.unchanged(&current).await? {
                tracing::info!(organization = %record.id, collection = %old, "a document insert raced a rename or move and was dropped with its source");
                return Err(DocumentError::Busy);
            }
        }
        Err(StoreError::msg(format!(
            "a document inserted into {old} while organization {} was renamed or moved did not settle",
            record.id
        ))
        .into())
    }

    /// The refusal of a write that was taken back: `Busy` while the
    /// organization exists, `OrganizationNotFound` once it is being deleted.
    async fn refusal(&self, org_id: &str) -> Result<DocumentError, StoreError> {
        Ok(match self.org_record(org_id).await? {
            Some(record) if record.is_visible() => DocumentError::Busy,
            _ => DocumentError::OrganizationNotFound,
        })
    }
}

fn too_many_attempts(what: &str) -> DocumentError {
    DocumentError::Store(StoreError::msg(format!(
        "{what}: the organization or the document kept changing ({ATTEMPTS} attempts)"
    )))
}
