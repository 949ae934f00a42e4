//! orgsvc's credentials: argon2id password hashing, access tokens signed
//! by a rotating asymmetric key set published as a JWK Set (or the legacy
//! HS256 secret), and opaque tokens (refresh tokens, and the account tokens
//! emails carry).
//!
//! Hashing is CPU-bound, so it always runs on tokio's blocking pool, at most
//! `max_concurrent` hashes at a time, never on the async workers.

mod claims;
mod error;
mod key_ring;
mod keys;
mod opaque_tokens;
mod password;
mod token;
pub mod verified_tokens;

pub use error::{AuthError, TokenError};
pub use key_ring::KeyRing;
pub use keys::{
    generate_kid, generate_signing_key, Jwk, JwkSet, KeyEncryptionKey, KeyError,
    MIN_KEY_ENCRYPTION_SECRET_BYTES,
};
pub use opaque_tokens::{
    hash_account_token, hash_operator_key, hash_refresh_token, is_operator_key, OpaqueAccountToken,
    OpaqueRefreshToken, OperatorApiKey, OPERATOR_KEY_PREFIX,
};
pub use password::{Argon2Params, HashingPoolUsage, PasswordHasher, QueueWaitObserver};
pub use token::{generate_secret, AccessClaims, IssuedToken, TokenService, TokenSettings};
