//! Errors of the auth crate. Their text is safe to log: it never contains a
//! password, hash, secret or token.

/// An unexpected failure while hashing or signing (not a wrong password).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The argon2 parameters are out of the algorithm's bounds.
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(String),
    /// Hashing or verification failed inside argon2.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The blocking hashing task panicked or was cancelled.
    #[error("password hashing task did not complete")]
    TaskFailed(#[from] tokio::task::JoinError),
    /// The token signing secret is unusable.
    #[error("invalid token secret: {0}")]
    InvalidSecret(&'static str),
    /// Signing a token failed.
    #[error("token signing failed")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

/// Why a presented access token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token's `exp` has passed.
    #[error("the access token has expired")]
    Expired,
    /// Malformed, wrongly signed, another algorithm, wrong issuer or
    /// audience, not yet valid (`nbf`), issued in the future (`iat`) or
    /// valid for longer than the service issues tokens for.
    #[error("the access token is invalid")]
    Invalid,
}
