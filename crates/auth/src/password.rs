//! Password hashing with argon2id.
//!
//! argon2 needs `memory_kib` of working memory per hash (19 MiB by
//! default). Allocating it afresh for every hash lets the process's peak
//! memory grow with the number of hashes (glibc keeps such blocks after they
//! are freed), so each hash borrows a buffer from a small pool instead: at
//! most `max_concurrent` buffers ever exist, and hashing memory is bounded by
//! `max_concurrent × memory_kib`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash as PhcHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Told how long each hash waited for a permit (the crate records no
/// metrics itself; the caller decides what to do with the figure).
pub type QueueWaitObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// How busy the hashing pool is at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingPoolUsage {
    /// Hashes running now (holding a permit), `0..=capacity`.
    pub in_use: usize,
    /// Hashes allowed at once (`max_concurrent`).
    pub capacity: usize,
    /// Hashes waiting for a permit.
    pub waiting: usize,
}

/// Hashes and verifies passwords off the async workers, with bounded
/// concurrency and bounded memory, so a burst of logins can exhaust neither
/// threads nor memory.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A PHC string with the configured parameters, a random salt and a
    /// random output: verifying against it costs exactly one hash and never
    /// succeeds, so unknown emails cost the same time as known ones.
    dummy_hash: Arc<str>,
    permits: Arc<Semaphore>,
    capacity: usize,
    /// Hashes waiting for a permit now.
    waiting: Arc<AtomicUsize>,
    on_queue_wait: Option<QueueWaitObserver>,
    memory: Arc<MemoryPool>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("max_concurrent", &self.capacity)
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
        let dummy_hash = dummy_phc(&params)?;
        let capacity = max_concurrent.max(1);
        Ok(Self {
            params,
            dummy_hash: dummy_hash.into(),
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            waiting: Arc::default(),
            on_queue_wait: None,
            memory: Arc::new(MemoryPool::default()),
        })
    }

    /// The same hasher, calling `observer` with each hash's wait for a
    /// permit (zero when one was free) before the hash runs.
    pub fn with_queue_wait_observer(self, observer: QueueWaitObserver) -> Self {
        Self {
            on_queue_wait: Some(observer),
            ..self
        }
    }

    /// The pool's usage now (clones share the pool).
    pub fn pool_usage(&self) -> HashingPoolUsage {
        HashingPoolUsage {
            in_use: self
                .capacity
                .saturating_sub(self.permits.available_permits()),
            capacity: self.capacity,
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    /// Hashes a password into a PHC string with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, AuthError> {
        let params = self.params.clone();
        let password = password.clone();
        let phc = self
            .run_blocking(move |memory| {
                let salt = SaltString::generate(&mut OsRng);
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                compute(
                    &argon2,
                    password.expose().as_bytes(),
                    salt.as_salt(),
                    memory,
                )
                .map(|hash| hash.to_string())
                .map_err(|e| AuthError::Hashing(e.to_string()))
            })
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
        let candidate = candidate.to_owned();
        let matches = self
            .run_blocking(move |memory| verify_with(&candidate, &phc, memory))
            .await??;
        Ok(known && matches)
    }

    /// Whether `hash` was made otherwise than [`PasswordHasher::hash`] would
    /// make it now: another algorithm or version, other cost parameters
    /// (memory, iterations, lanes) or another output length. A login that
    /// verified the password should then store a fresh hash of it. An
    /// unparseable hash also needs one (it cannot be verified anyway).
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok(stored) = PhcHash::new(hash.as_phc_str()) else {
            return true;
        };
        let same_algorithm = stored.algorithm == Algorithm::Argon2id.ident();
        let same_version = stored.version == Some(Version::V0x13.into());
        let same_params = Params::try_from(&stored).is_ok_and(|params| {
            params.m_cost() == self.params.m_cost()
                && params.t_cost() == self.params.t_cost()
                && params.p_cost() == self.params.p_cost()
        });
        let wanted_len = self
            .params
            .output_len()
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let same_len = stored.hash.is_some_and(|output| output.len() == wanted_len);
        !(same_algorithm && same_version && same_params && same_len)
    }

    /// Runs `work` on the blocking pool once a permit is free, lending it a
    /// working-memory buffer.
    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let queued = Instant::now();
        let waiting = Waiting::enter(&self.waiting);
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AuthError::Hashing("hashing pool closed".into()))?;
        drop(waiting);
        if let Some(observe) = &self.on_queue_wait {
            observe(queued.elapsed());
        }
        let pool = self.memory.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let mut memory = pool.take();
            let result = work(&mut memory);
            pool.give_back(memory);
            result
        })
        .await?)
    }
}

/// Counts a hash as waiting for a permit until dropped (also when the
/// waiting future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Working-memory buffers, reused from hash to hash. Holds at most as many
/// buffers as there are hashing permits, since each in-flight hash holds one.
#[derive(Debug, Default)]
struct MemoryPool {
    idle: Mutex<Vec<Vec<Block>>>,
}

impl MemoryPool {
    fn take(&self) -> Vec<Block> {
        self.idle
            .lock()
            .map(|mut idle| idle.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn give_back(&self, buffer: Vec<Block>) {
        // A poisoned lock only loses the buffer for reuse.
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(buffer);
        }
    }
}

/// argon2 of `password` with `salt`, in `memory` (grown to the size the
/// parameters need, and kept at that size for the next hash).
fn compute<'a>(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'a>,
    memory: &mut Vec<Block>,
) -> argon2::password_hash::Result<PhcHash<'a>> {
    let params = argon2.params();
    let mut salt_bytes = [0_u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    memory.resize(params.block_count(), Block::new());
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..])?)
    })?;
    Ok(PhcHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt),
        hash: Some(output),
    })
}

/// Whether `candidate` hashes to the stored `phc`, recomputed with the
/// stored algorithm, version, parameters and salt; outputs are compared in
/// constant time.
fn verify_with(candidate: &str, phc: &str, memory: &mut Vec<Block>) -> Result<bool, AuthError> {
    let stored = PhcHash::new(phc).map_err(|e| AuthError::Hashing(format!("stored hash: {e}")))?;
    let unusable =
        |e: argon2::password_hash::Error| AuthError::Hashing(format!("stored hash: {e}"));
    let algorithm = Algorithm::try_from(stored.algorithm).map_err(unusable)?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| unusable(e.into()))?
        .unwrap_or_default();
    let params = Params::try_from(&stored).map_err(unusable)?;
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return Err(AuthError::Hashing(
            "stored hash has no salt or output".into(),
        ));
    };
    if algorithm != Algorithm::Argon2id {
        return Err(AuthError::Hashing(format!(
            "stored hash uses {algorithm}, not argon2id"
        )));
    }
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = compute(&argon2, candidate.as_bytes(), salt, memory)
        .map_err(|e| AuthError::Hashing(e.to_string()))?;
    // `Output`'s equality is constant-time.
    Ok(computed.hash.as_ref() == Some(&expected))
}

/// A PHC string with these parameters, a random salt and a random output.
fn dummy_phc(params: &Params) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut output = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    OsRng.fill_bytes(&mut output);
    let invalid = |e: argon2::password_hash::Error| AuthError::InvalidParams(e.to_string());
    let phc = PhcHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(invalid)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(invalid)?),
    };
    Ok(phc.to_string())
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
    async fn queue_waits_are_observed_and_the_pool_reports_its_usage() {
        let waits = Arc::new(Mutex::new(Vec::new()));
        let seen = waits.clone();
        let hasher = PasswordHasher::new(
            Argon2Params {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
            1,
        )
        .unwrap()
        .with_queue_wait_observer(Arc::new(move |wait| seen.lock().unwrap().push(wait)));
        let idle = HashingPoolUsage {
            in_use: 0,
            capacity: 1,
            waiting: 0,
        };
        assert_eq!(hasher.pool_usage(), idle);
        let permit = hasher.permits.clone().acquire_owned().await.unwrap();
        let queued = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.verify("anything", None).await }
        });
        while hasher.pool_usage().waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            hasher.pool_usage(),
            HashingPoolUsage {
                in_use: 1,
                capacity: 1,
                waiting: 1,
            }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(permit);
        assert!(!queued.await.unwrap().unwrap());
        assert_eq!(hasher.pool_usage(), idle);
        let waits = waits.lock().unwrap();
        assert_eq!(waits.len(), 1);
        assert!(waits[0] >= Duration::from_millis(20), "{waits:?}");
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        let hasher = cheap();
        assert!(!hasher.verify("anything at all", None).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_reference_argon2_implementation() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};

        let hasher = cheap();
        let ours = hasher.hash(&password("interop password")).await.unwrap();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(256, 1, 1, None).unwrap(),
        );
        let parsed = PhcHash::new(ours.as_phc_str()).unwrap();
        assert!(reference
            .verify_password(b"interop password", &parsed)
            .is_ok());
        assert!(reference
            .verify_password(b"other password", &parsed)
            .is_err());

        let salt = SaltString::generate(&mut OsRng);
        let theirs = reference
            .hash_password(b"interop password", &salt)
            .unwrap()
            .to_string();
        let theirs = PasswordHash::from_phc_string(theirs);
        assert!(hasher
            .verify("interop password", Some(&theirs))
            .await
            .unwrap());
        assert!(!hasher
            .verify("other password", Some(&theirs))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn hashes_made_with_other_params_still_verify() {
        let stronger = PasswordHasher::new(
            Argon2Params {
                memory_kib: 1024,
                iterations: 2,
                parallelism: 2,
            },
            1,
        )
        .unwrap();
        let hash = stronger.hash(&password("changed params")).await.unwrap();
        assert!(cheap().verify("changed params", Some(&hash)).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn working_memory_is_reused_and_bounded_by_the_permits() {
        let hasher = cheap();
        let hashes = (0..8).map(|n| {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(&password(&format!("password {n}"))).await })
        });
        for hash in hashes {
            hash.await.unwrap().unwrap();
        }
        let idle = hasher.memory.idle.lock().unwrap();
        assert!((1..=2).contains(&idle.len()), "{} buffers", idle.len());
        assert!(idle.iter().all(|buffer| buffer.len() == 256));
    }

    #[tokio::test]
    async fn a_hash_with_the_configured_params_needs_no_rehash() {
        let hasher = cheap();
        let hash = hasher.hash(&password("current params")).await.unwrap();
        assert!(!hasher.needs_rehash(&hash));
    }

    #[tokio::test]
    async fn hashes_with_other_params_need_a_rehash() {
        let hash = cheap().hash(&password("old params")).await.unwrap();
        for (memory_kib, iterations, parallelism) in [(512, 1, 1), (256, 2, 1), (256, 1, 2)] {
            let stronger = PasswordHasher::new(
                Argon2Params {
                    memory_kib,
                    iterations,
                    parallelism,
                },
                1,
            )
            .unwrap();
            assert!(
                stronger.needs_rehash(&hash),
                "m={memory_kib} t={iterations} p={parallelism}"
            );
            let rehashed = stronger.hash(&password("old params")).await.unwrap();
            assert!(!stronger.needs_rehash(&rehashed));
        }
    }

    #[test]
    fn other_algorithms_versions_lengths_and_garbage_need_a_rehash() {
        use argon2::PasswordHasher as _;

        let hasher = cheap();
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::new(256, 1, 1, None).unwrap();
        let with = |algorithm, version, params| {
            let phc = Argon2::new(algorithm, version, params)
                .hash_password(b"some password", &salt)
                .unwrap()
                .to_string();
            PasswordHash::from_phc_string(phc)
        };
        let reference = with(Algorithm::Argon2id, Version::V0x13, params.clone());
        assert!(!hasher.needs_rehash(&reference), "the reference itself");
        for (name, hash) in [
            (
                "argon2i",
                with(Algorithm::Argon2i, Version::V0x13, params.clone()),
            ),
            (
                "argon2d",
                with(Algorithm::Argon2d, Version::V0x13, params.clone()),
            ),
            (
                "v=16",
                with(Algorithm::Argon2id, Version::V0x10, params.clone()),
            ),
            (
                "64-byte output",
                with(
                    Algorithm::Argon2id,
                    Version::V0x13,
                    Params::new(256, 1, 1, Some(64)).unwrap(),
                ),
            ),
            (
                "garbage",
                PasswordHash::from_phc_string("not a hash".into()),
            ),
        ] {
            assert!(hasher.needs_rehash(&hash), "{name}");
        }
    }

    #[test]
    fn the_dummy_hash_has_the_configured_params() {
        let hasher = cheap();
        assert!(hasher
            .dummy_hash
            .starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
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
