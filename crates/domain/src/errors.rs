//! Errors of the store operations. One enum per operation, so callers match
//! exactly the cases that operation can produce.

use std::error::Error as StdError;

/// A storage failure (store unreachable, server error, corrupt record).
/// Carries context and the underlying cause for the logs; its text is never
/// shown to clients. [`StoreError::is_unavailable`] tells a store that did
/// not answer (worth retrying later) from everything else.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct StoreError {
    context: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
    unavailable: bool,
}

impl StoreError {
    /// A failure caused by `source`, described by `context`.
    pub fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            context: context.into(),
            source: Some(source.into()),
            unavailable: false,
        }
    }

    /// A failure with no underlying error (e.g. a broken invariant).
    pub fn msg(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            source: None,
            unavailable: false,
        }
    }

    /// The store did not answer (unreachable, no server selectable within
    /// its timeout, connection lost): nothing is known to have changed, and
    /// the same call may succeed later.
    pub fn unavailable(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            unavailable: true,
            ..Self::new(context, source)
        }
    }

    /// Whether the store did not answer (see [`StoreError::unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

/// Why an organization could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrganizationError {
    /// Another organization has the same canonical name.
    #[error("an organization with this name already exists")]
    NameTaken,
    /// Another admin already uses this email.
    #[error("an admin with this email already exists")]
    EmailTaken,
    /// The creation was interrupted and undone (the process lost its claim
    /// on the operation, e.g. while paused); nothing was created: retry.
    #[error("the creation was interrupted; retry")]
    Busy,
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an organization could not be renamed.
#[derive(Debug, thiserror::Error)]
pub enum RenameOrganizationError {
    /// No such organization.
    #[error("organization not found")]
    NotFound,
    /// Another organization has (or is being renamed to) the same canonical name.
    #[error("an organization with this name already exists")]
    NameTaken,
    /// Another lifecycle operation on this organization is in progress.
    #[error("another change to this organization is in progress")]
    Busy,
    /// The organization's name is no longer the one the rename was decided
    /// on (another rename finished meanwhile); nothing changed.
    #[error("the organization was renamed meanwhile")]
    NameChanged,
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an organization could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteOrganizationError {
    /// No such organization.
    #[error("organization not found")]
    NotFound,
    /// Another lifecycle operation on this organization is in progress.
    #[error("another change to this organization is in progress")]
    Busy,
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an admin's credentials could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateAdminError {
    /// No such admin.
    #[error("admin not found")]
    NotFound,
    /// Another admin already uses this email.
    #[error("an admin with this email already exists")]
    EmailTaken,
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a tenant document operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The organization does not exist (or is being created or deleted).
    #[error("organization not found")]
    OrganizationNotFound,
    /// No document with this id in the organization.
    #[error("document not found")]
    NotFound,
    /// The document's revision is not the expected one (optimistic
    /// concurrency): someone else changed it first.
    #[error("the document was changed by someone else (revision {current})")]
    RevisionMismatch {
        /// The document's current revision.
        current: u64,
    },
    /// The organization's collection is being moved (a rename is in
    /// progress); retry shortly. Nothing was written.
    #[error("the organization is being renamed; retry shortly")]
    Busy,
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an organization's usage could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// Its documents are between two places (a rename or a move between
    /// layouts is in progress), so they cannot be counted once each; retry
    /// shortly.
    #[error("the organization's documents are being moved; retry shortly")]
    Busy,
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an admin could not be added to an organization.
#[derive(Debug, thiserror::Error)]
pub enum AddAdminError {
    /// The organization does not exist (or is being created or deleted).
    #[error("organization not found")]
    OrganizationNotFound,
    /// Another admin already uses this email.
    #[error("an admin with this email already exists")]
    EmailTaken,
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an admin could not be removed or given another role.
#[derive(Debug, thiserror::Error)]
pub enum ChangeAdminError {
    /// The organization has no admin with this id.
    #[error("admin not found")]
    NotFound,
    /// The change would leave the organization without an owner.
    #[error("the organization's last owner cannot be removed or demoted")]
    LastOwner,
    /// Unexpected storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Displays an error with its whole source chain: `outer: cause: root cause`.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
