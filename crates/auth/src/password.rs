//! Password hashing with argon2id.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash as PhcHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use orgsvc_domain::{Password, PasswordHash};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::error::AuthError;

/// argon2id cost parameters. The default is OWASP's recommendation:
/// 19 MiB of memory, 2 iterations, 1 lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Argon2Params {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes over the memory.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords off the async workers, with bounded
/// concurrency so a burst of logins cannot exhaust memory or threads.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A hash of a random password, verified against when an email is
    /// unknown so that unknown and known emails cost the same time.
    dummy_hash: Arc<str>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", self.argon2.params())
            .field("max_concurrent", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with these parameters, running at most `max_concurrent`
    /// hashes at once (at least one).
    pub fn new(params: Argon2Params, max_concurrent: usize) -> Result<Self, AuthError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| AuthError::InvalidParams(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash_with(&argon2, &random_password())?;
        Ok(Self {
            argon2,
            dummy_hash: dummy_hash.into(),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        })
    }

    /// Hashes a password into a PHC string with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, AuthError> {
        let argon2 = self.argon2.clone();
        let password = password.clone();
        let phc = self
            .run_blocking(move || hash_with(&argon2, password.expose()))
            .await??;
        Ok(PasswordHash::from_phc_string(phc))
    }

    /// Verifies `candidate` against `hash`. With `None` (unknown account) it
    /// verifies against a dummy hash, at the same cost, and returns `false`.
    pub async fn verify(
        &self,
        candidate: &str,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, AuthError> {
        let known = hash.is_some();
        let phc: Arc<str> = match hash {
            Some(hash) => hash.as_phc_str().into(),
            None => self.dummy_hash.clone(),
        };
        let argon2 = self.argon2.clone();
        let candidate = candidate.to_owned();
        let matches = self
            .run_blocking(move || verify_with(&argon2, &candidate, &phc))
            .await??;
        Ok(known && matches)
    }

    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AuthError::Hashing("hashing pool closed".into()))?;
        Ok(tokio::task::spawn_blocking(work).await?)
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

fn verify_with(argon2: &Argon2<'_>, candidate: &str, phc: &str) -> Result<bool, AuthError> {
    let parsed = PhcHash::new(phc).map_err(|e| AuthError::Hashing(format!("stored hash: {e}")))?;
    match argon2.verify_password(candidate.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(AuthError::Hashing(e.to_string())),
    }
}

fn random_password() -> String {
    SaltString::generate(&mut OsRng).as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(
            Argon2Params {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap()
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = cheap();
        let hash = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(hasher.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("correct horsE", Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_configured_params_and_a_fresh_salt() {
        let hasher = cheap();
        let a = hasher.hash(&password("same password")).await.unwrap();
        let b = hasher.hash(&password("same password")).await.unwrap();
        assert!(a.as_phc_str().starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        let hasher = cheap();
        assert!(!hasher.verify("anything at all", None).await.unwrap());
    }

    #[test]
    fn default_params_follow_owasp() {
        let params = Argon2Params::default();
        assert_eq!(
            (params.memory_kib, params.iterations, params.parallelism),
            (19456, 2, 1)
        );
    }

    #[test]
    fn out_of_range_params_are_refused() {
        let params = Argon2Params {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1,
        };
        assert!(matches!(
            PasswordHasher::new(params, 1),
            Err(AuthError::InvalidParams(_))
        ));
    }
}
