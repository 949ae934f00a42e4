//! A test seam: stop an operation right after a given step, as if the
//! process died there, so tests can check what reconcile makes of it.
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
    /// Rename, batched copy: one batch of documents is copied.
    RenameCopyBatch,
    /// Rename, batched copy: every document and index is copied, the source
    /// still exists.
    RenameCollectionCopied,
    /// Rename: the collection is moved (the source is gone).
    RenameCollectionMoved,
    /// Rename: the record carries the new name (still renaming).
    RenameRecordUpdated,
    /// Rename: the old canonical name is released.
    RenameOldNameReleased,
    /// Delete: the record is marked deleting.
    DeleteRecorded,
    /// Delete: the admins are deleted.
    DeleteAdminsRemoved,
    /// Delete: the tenant collection is dropped.
    DeleteCollectionDropped,
    /// Delete: the canonical name is released (the record still exists).
    DeleteNameReleased,
}

#[cfg(feature = "failpoints")]
mod seam {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use super::{Step, StoreError};

    /// The armed failpoint and the rename strategy override, shared by the
    /// clones of a store.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Failpoints {
        armed: Arc<Mutex<Option<Step>>>,
        force_copy: Arc<AtomicBool>,
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
        pub(crate) fn forces_copy(&self) -> bool {
            false
        }
    }
}

pub(crate) use seam::Failpoints;
