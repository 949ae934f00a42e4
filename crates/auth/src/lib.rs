//! orgsvc's credentials: argon2id password hashing and HS256 access tokens.
//!
//! Hashing is CPU-bound, so it always runs on tokio's blocking pool, at most
//! `max_concurrent` hashes at a time, never on the async workers.

mod error;
mod password;
mod token;

pub use error::{AuthError, TokenError};
pub use password::{Argon2Params, PasswordHasher};
pub use token::{generate_secret, AccessClaims, IssuedToken, TokenService, TokenSettings};
