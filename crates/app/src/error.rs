//! The one error type of every use case: what went wrong, in the
//! application's terms. The HTTP layer maps each variant to a status and a
//! stable `code` in one table (`orgsvc-api`'s `problem` module).

use std::error::Error as StdError;
use std::time::Duration;

use orgsvc_auth::{AuthError, TokenError};
use orgsvc_domain::{
    AcceptInvitationError, AddAdminError, ChangeAdminError, CreateOrganizationError,
    DeleteOrganizationError, DocumentError, InvitationError, InvitationStatus, InvitationTtlError,
    RenameOrganizationError, StoreError, UpdateAdminError, UsageError,
};

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Unknown email, wrong or malformed password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Failed logins locked the email; nothing was checked.
    #[error("login locked")]
    LoginLocked {
        /// Until the lock ends.
        retry_after: Duration,
    },
    /// The refresh token is unknown, expired, revoked, or its admin changed
    /// password, was removed or lost its organization.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A used refresh token was presented again: its whole session was
    /// revoked (reuse detection).
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// The access token is malformed, forged or revoked, or names an admin
    /// or organization that no longer holds.
    #[error("invalid access token")]
    InvalidToken,
    /// The access token has expired.
    #[error("expired access token")]
    TokenExpired,
    /// The caller is an `admin`, not an owner, of its organization.
    #[error("owner role required")]
    OwnerRequired,
    /// The caller may act only on its own organization.
    #[error("forbidden")]
    Forbidden,
    /// No organization has the name.
    #[error("organization not found")]
    OrganizationNotFound,
    /// The name (or one mapping to the same collection) is taken.
    #[error("organization name taken")]
    OrganizationNameTaken,
    /// Another admin uses the email.
    #[error("email taken")]
    EmailTaken,
    /// Another change to the organization is in progress; nothing was done.
    #[error("operation in progress")]
    OperationInProgress,
    /// The organization's collection is being moved (or an interrupted
    /// operation finished); nothing was done.
    #[error("organization busy")]
    OrganizationBusy,
    /// The caller's organization has no admin with this id.
    #[error("admin not found")]
    AdminNotFound,
    /// The change would leave the organization without an owner.
    #[error("last owner")]
    LastOwner,
    /// The caller's organization has no document with this id.
    #[error("document not found")]
    DocumentNotFound,
    /// The request's preconditions do not hold for the document's current
    /// revision (RFC 9110 §13.2.2); nothing was done.
    #[error("precondition failed")]
    PreconditionFailed {
        /// The document's current revision.
        current: u64,
    },
    /// The caller's organization has no invitation with this id.
    #[error("invitation not found")]
    InvitationNotFound,
    /// The invitation is accepted, revoked or expired: it cannot be
    /// revoked or resent.
    #[error("invitation not pending")]
    InvitationNotPending(InvitationStatus),
    /// The invitation token is unknown, used, replaced by a resend,
    /// revoked or expired, or its organization is gone: one answer for all,
    /// so tokens cannot be probed.
    #[error("invitation unusable")]
    InvitationUnusable,
    /// The requested invitation lifetime is zero or longer than 30 days
    /// ([`orgsvc_domain::invitation_ttl`]).
    #[error("invalid invitation lifetime")]
    InvalidInvitationTtl,
    /// The password-reset or email-verification token is unknown, used,
    /// expired, of another purpose, or its admin's email changed since it
    /// was sent (one answer for all, so tokens cannot be probed).
    #[error("the link's token is unknown, used or expired")]
    AccountTokenUnusable,
    /// `auth.require_verified_email` is on and the caller's email is not
    /// verified yet.
    #[error("the admin's email is not verified")]
    EmailUnverified,
    /// An operator suspended the caller's organization (issue #17): its
    /// admins cannot log in, refresh, or use their access tokens until it is
    /// resumed; nothing of it was changed.
    #[error("organization suspended")]
    OrganizationSuspended,
    /// The invitation was accepted (its admin exists, the invitation is
    /// used) but the organization is suspended, so nobody was signed in:
    /// the admin logs in once it is resumed.
    #[error("invitation accepted, but the organization is suspended")]
    AcceptedWhileSuspended,
    /// The operator key is missing its `osk_` shape, unknown, revoked or
    /// expired (one answer for all, so keys cannot be probed).
    #[error("invalid operator key")]
    InvalidOperatorKey,
    /// The operator key's scope (`read`) does not cover the action.
    #[error("operator key scope insufficient")]
    OperatorScopeInsufficient,
    /// An operator key (revoked or not) already has the name.
    #[error("operator key name taken")]
    OperatorKeyNameTaken,
    /// No operator key has the name.
    #[error("operator key not found")]
    OperatorKeyNotFound,
    /// The requested expiry of an operator key is zero or too far away
    /// ([`crate::operators::MAX_OPERATOR_KEY_TTL`]).
    #[error("invalid operator key expiry")]
    InvalidOperatorKeyExpiry,
    /// The store did not answer (retry later).
    #[error("store unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// Anything unexpected (a store or credential-service failure); the
    /// source is for the log only, never for the client.
    #[error("unexpected error")]
    Unexpected(#[source] Box<dyn StdError + Send + Sync>),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            Self::StoreUnavailable(error)
        } else {
            Self::Unexpected(Box::new(error))
        }
    }
}

impl From<AuthError> for AppError {
    fn from(error: AuthError) -> Self {
        Self::Unexpected(Box::new(error))
    }
}

impl From<TokenError> for AppError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Expired => Self::TokenExpired,
            TokenError::Invalid => Self::InvalidToken,
        }
    }
}

impl From<CreateOrganizationError> for AppError {
    fn from(error: CreateOrganizationError) -> Self {
        match error {
            CreateOrganizationError::NameTaken => Self::OrganizationNameTaken,
            CreateOrganizationError::EmailTaken => Self::EmailTaken,
            CreateOrganizationError::Busy => Self::OrganizationBusy,
            CreateOrganizationError::Store(error) => error.into(),
        }
    }
}

impl From<orgsvc_domain::ChangeStateError> for AppError {
    fn from(error: orgsvc_domain::ChangeStateError) -> Self {
        match error {
            orgsvc_domain::ChangeStateError::NotFound => Self::OrganizationNotFound,
            orgsvc_domain::ChangeStateError::Store(error) => error.into(),
        }
    }
}

impl From<RenameOrganizationError> for AppError {
    fn from(error: RenameOrganizationError) -> Self {
        match error {
            RenameOrganizationError::NotFound => Self::OrganizationNotFound,
            RenameOrganizationError::NameTaken => Self::OrganizationNameTaken,
            RenameOrganizationError::Busy | RenameOrganizationError::NameChanged => {
                Self::OperationInProgress
            }
            RenameOrganizationError::Store(error) => error.into(),
        }
    }
}

impl From<DeleteOrganizationError> for AppError {
    fn from(error: DeleteOrganizationError) -> Self {
        match error {
            DeleteOrganizationError::NotFound => Self::OrganizationNotFound,
            DeleteOrganizationError::Busy => Self::OperationInProgress,
            DeleteOrganizationError::Store(error) => error.into(),
        }
    }
}

impl From<UsageError> for AppError {
    fn from(error: UsageError) -> Self {
        match error {
            UsageError::Busy => Self::OrganizationBusy,
            UsageError::Store(error) => error.into(),
        }
    }
}

impl From<DocumentError> for AppError {
    fn from(error: DocumentError) -> Self {
        match error {
            // The organization was deleted since the token was checked: the
            // token no longer holds, as the next request would find.
            DocumentError::OrganizationNotFound => Self::InvalidToken,
            DocumentError::NotFound => Self::DocumentNotFound,
            DocumentError::RevisionMismatch { current } => Self::PreconditionFailed { current },
            DocumentError::Busy => Self::OrganizationBusy,
            DocumentError::Store(error) => error.into(),
        }
    }
}

impl From<UpdateAdminError> for AppError {
    fn from(error: UpdateAdminError) -> Self {
        match error {
            // The admin vanished since authentication: its organization was deleted.
            UpdateAdminError::NotFound => Self::InvalidToken,
            UpdateAdminError::EmailTaken => Self::EmailTaken,
            UpdateAdminError::Store(error) => error.into(),
        }
    }
}

impl From<AddAdminError> for AppError {
    fn from(error: AddAdminError) -> Self {
        match error {
            // The organization was deleted since the token was checked.
            AddAdminError::OrganizationNotFound => Self::InvalidToken,
            AddAdminError::EmailTaken => Self::EmailTaken,
            AddAdminError::Store(error) => error.into(),
        }
    }
}

impl From<ChangeAdminError> for AppError {
    fn from(error: ChangeAdminError) -> Self {
        match error {
            ChangeAdminError::NotFound => Self::AdminNotFound,
            ChangeAdminError::LastOwner => Self::LastOwner,
            ChangeAdminError::Store(error) => error.into(),
        }
    }
}

impl From<InvitationError> for AppError {
    fn from(error: InvitationError) -> Self {
        match error {
            InvitationError::EmailTaken => Self::EmailTaken,
            InvitationError::NotFound => Self::InvitationNotFound,
            InvitationError::NotPending(status) => Self::InvitationNotPending(status),
            InvitationError::Store(error) => error.into(),
        }
    }
}

impl From<AcceptInvitationError> for AppError {
    fn from(error: AcceptInvitationError) -> Self {
        match error {
            // A deleted organization's invitations are gone: the token is
            // as dead as an unknown one.
            AcceptInvitationError::InvalidToken | AcceptInvitationError::OrganizationNotFound => {
                Self::InvitationUnusable
            }
            AcceptInvitationError::EmailTaken => Self::EmailTaken,
            AcceptInvitationError::Store(error) => error.into(),
        }
    }
}

impl From<InvitationTtlError> for AppError {
    fn from(_: InvitationTtlError) -> Self {
        Self::InvalidInvitationTtl
    }
}
