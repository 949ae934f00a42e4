//! Lease timing shared by a store's clones: the lease timeout (how long a
//! lifecycle operation's lease lives without renewal, see `lease.rs`), the
//! renewal period derived from it, and the shutdown deadline after which
//! operations stop.

#[cfg(feature = "failpoints")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The lease timeout when none is configured.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(15);

/// Lease timing and the shutdown deadline, shared by a store's clones.
#[derive(Clone, Debug)]
pub(crate) struct Leases {
    timeout: Duration,
    drain_deadline: Arc<Mutex<Option<Instant>>>,
    #[cfg(feature = "failpoints")]
    frozen: Arc<AtomicBool>,
}

impl Leases {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            drain_deadline: Arc::default(),
            #[cfg(feature = "failpoints")]
            frozen: Arc::default(),
        }
    }

    /// How long a lease lives without renewal.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time between renewals.
    pub(crate) fn renew_every(&self) -> Duration {
        (self.timeout / 6).max(Duration::from_millis(20))
    }

    /// How long after sending a successful renewal the holder still trusts
    /// its lease.
    pub(crate) fn valid_for(&self) -> Duration {
        self.timeout * 3 / 4
    }

    /// Asks operations to stop at `deadline` (see
    /// [`TenantStore::begin_drain`](orgsvc_domain::TenantStore::begin_drain)).
    pub(crate) fn drain_at(&self, deadline: Instant) {
        *self
            .drain_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(deadline);
    }

    /// Whether the process drains and `deadline` has passed.
    pub(crate) fn draining(&self) -> bool {
        self.drain_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Whether the process has started to shut down (reconcilers then take
    /// nothing over).
    pub(crate) fn shutting_down(&self) -> bool {
        self.drain_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Test seam: stops every renewal, as a paused process would.
    #[cfg(feature = "failpoints")]
    pub(crate) fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }

    pub(crate) fn frozen(&self) -> bool {
        #[cfg(feature = "failpoints")]
        {
            self.frozen.load(Ordering::SeqCst)
        }
        #[cfg(not(feature = "failpoints"))]
        {
            false
        }
    }
}
