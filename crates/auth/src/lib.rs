//! orgsvc's credentials: argon2id password hashing, HS256 access tokens and
//! opaque refresh tokens.
//!
//! Hashing is CPU-bound, so it always runs on tokio's blocking pool, at most
//! `max_concurrent` hashes at a time, never on the async workers.

mod error;
mod password;
mod refresh;
mod token;

pub use error::{AuthError, TokenError};
pub use password::{Argon2Params, HashingPoolUsage, PasswordHasher, QueueWaitObserver};
pub use refresh::{hash_refresh_token, OpaqueRefreshToken};
pub use token::{generate_secret, AccessClaims, IssuedToken, TokenService, TokenSettings};
