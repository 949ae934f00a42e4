//! A test seam: stop an operation right after a given step, as if the
//! process died there, so tests can check what reconcile makes of it; or
//! hold it there until the test lets it go on, so tests can interleave
//! operations exactly (e.g. a document write arriving after a rename moved
//! the collection).
//!
//! The seam exists only with the `failpoints` feature; without it every check
//! compiles to nothing.

use orgsvc_domain::StoreError;

/// A step of a lifecycle operation after which a failpoint can stop it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create: the provisioning record is inserted.
    CreateRecorded,
    /// Create: the canonical name is claimed.
    CreateNameClaimed,
    /// Create: the admin is inserted.
    CreateAdminInserted,
    /// Create: the tenant collection is created (the record is not active yet).
    CreateCollectionCreated,
    /// Rename: the record is marked renaming with its targets.
    RenameRecorded,
    /// Rename: the new canonical name is claimed.
    RenameNameClaimed,
    /// Rename or move, batched copy: one batch of documents is copied (not
    /// yet deleted from the source).
    RenameCopyBatch,
    /// Rename, batched copy: every document and index is copied, the source
    /// still exists.
    RenameCollectionCopied,
    /// Rename: the collection is moved (the source is gone).
    RenameCollectionMoved,
    /// Rename: the record carries the new name (still renaming).
    RenameRecordUpdated,
    /// Rename: stragglers (documents written to the old collection after it
    /// moved) are moved too and the old collection is gone; the old name is
    /// still claimed.
    RenameStragglersSwept,
    /// Rename: the old canonical name is released.
    RenameOldNameReleased,
    /// Move of the documents to another layout: the record is marked
    /// moving with its source and target layouts.
    MoveRecorded,
    /// Move: every document is copied to the target layout and gone from
    /// the source; the record still names the source layout.
    MoveDocumentsCopied,
    /// Move: the record names the target layout (still moving); the source
    /// is not removed yet.
    MoveLayoutFlipped,
    /// Move: stragglers are swept and the source removed (its collection
    /// dropped, or its documents deleted from the shared collection); the
    /// record is still moving.
    MoveSourceRemoved,
    /// Delete: the record is marked deleting.
    DeleteRecorded,
    /// Delete: the admins are deleted.
    DeleteAdminsRemoved,
    /// Delete: the tenant collection is dropped and the shared collection
    /// holds none of the organization's documents.
    DeleteCollectionDropped,
    /// Delete: the canonical name is released (the record still exists).
    DeleteNameReleased,
    /// Document write: the organization's record was read as active (its
    /// collection is known) and, for a replace or delete, the document read;
    /// nothing is written yet.
    DocumentTargetRead,
    /// Document write: the write is done in the collection read before; the
    /// record is not read again yet.
    DocumentWritten,
    /// Add admin: the admin record is inserted, pending (invisible, its email
    /// taken); its organization is not checked again yet.
    AdminAddInserted,
    /// Admin removal or role change: decided on the organization record and
    /// admins just read; nothing is written yet.
    AdminChangeDecided,
    /// Admin removal or role change: committed on the organization record
    /// (`admin_change` set, primary admin updated); the admin record is not
    /// changed yet.
    AdminChangeRecorded,
    /// Admin removal or role change: applied to the admin record; the
    /// organization record still carries `admin_change`.
    AdminChangeApplied,
}

#[cfg(feature = "failpoints")]
mod seam {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use tokio::sync::oneshot;

    use super::{Step, StoreError};

    /// A held step: signals when an operation reaches it, waits for resume.
    type Hold = (Step, oneshot::Sender<()>, oneshot::Receiver<()>);

    /// The armed failpoint, the held steps and the rename strategy override,
    /// shared by the clones of a store.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Failpoints {
        armed: Arc<Mutex<Option<Step>>>,
        holds: Arc<Mutex<Vec<Hold>>>,
        force_copy: Arc<AtomicBool>,
        force_transactions: Arc<AtomicBool>,
    }

    /// An operation held at a step (see [`crate::MongoStore::pause_after`]).
    #[derive(Debug)]
    pub struct Paused {
        reached: Option<oneshot::Receiver<()>>,
        resume: Option<oneshot::Sender<()>>,
    }

    impl Paused {
        /// Waits until an operation reaches the step (and stops there).
        pub async fn reached(&mut self) {
            if let Some(reached) = self.reached.take() {
                let _ = reached.await;
            }
        }

        /// Lets the held operation go on.
        pub fn resume(mut self) {
            if let Some(resume) = self.resume.take() {
                let _ = resume.send(());
            }
        }
    }

    impl Drop for Paused {
        fn drop(&mut self) {
            if let Some(resume) = self.resume.take() {
                let _ = resume.send(());
            }
        }
    }

    impl Failpoints {
        /// No failpoint armed, the native rename allowed.
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// Arms a one-shot failure right after `step`.
        pub(crate) fn fail_after(&self, step: Step) {
            *self.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(step);
        }

        /// Holds the next operation reaching `step` there (one shot).
        pub(crate) fn pause_after(&self, step: Step) -> Paused {
            let (reached_tx, reached_rx) = oneshot::channel();
            let (resume_tx, resume_rx) = oneshot::channel();
            self.holds
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((step, reached_tx, resume_rx));
            Paused {
                reached: Some(reached_rx),
                resume: Some(resume_tx),
            }
        }

        /// Waits here if a test holds operations at `step`.
        pub(crate) async fn hold(&self, step: Step) {
            let hold = {
                let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
                holds
                    .iter()
                    .position(|(held, _, _)| *held == step)
                    .map(|i| holds.remove(i))
            };
            if let Some((_, reached, resume)) = hold {
                let _ = reached.send(());
                let _ = resume.await;
            }
        }

        /// Makes renames skip the native `renameCollection`.
        pub(crate) fn force_copy(&self) {
            self.force_copy.store(true, Ordering::SeqCst);
        }

        /// Fails (once) if a failure is armed after `step`.
        pub(crate) fn check(&self, step: Step) -> Result<(), StoreError> {
            let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
            if *armed == Some(step) {
                *armed = None;
                return Err(StoreError::msg(format!(
                    "failpoint: stopped after {step:?}"
                )));
            }
            Ok(())
        }

        /// Whether renames must use the batched copy.
        pub(crate) fn forces_copy(&self) -> bool {
            self.force_copy.load(Ordering::SeqCst)
        }

        /// Makes copies use transactions whatever the server says.
        pub(crate) fn force_transactions(&self) {
            self.force_transactions.store(true, Ordering::SeqCst);
        }

        /// Whether copies must use transactions.
        pub(crate) fn forces_transactions(&self) -> bool {
            self.force_transactions.load(Ordering::SeqCst)
        }
    }
}

#[cfg(not(feature = "failpoints"))]
mod seam {
    use super::{Step, StoreError};

    /// No seam: every check passes.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Failpoints;

    impl Failpoints {
        pub(crate) fn new() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn check(&self, _step: Step) -> Result<(), StoreError> {
            Ok(())
        }

        #[inline(always)]
        pub(crate) async fn hold(&self, _step: Step) {}

        #[inline(always)]
        pub(crate) fn forces_copy(&self) -> bool {
            false
        }

        #[inline(always)]
        pub(crate) fn forces_transactions(&self) -> bool {
            false
        }
    }
}

pub(crate) use seam::Failpoints;
#[cfg(feature = "failpoints")]
pub use seam::Paused;
