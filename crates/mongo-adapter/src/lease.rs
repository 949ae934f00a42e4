//! Leases on lifecycle operations: who may take the next step of an
//! organization's create, rename or delete, and proof that a process which
//! lost that right takes no further step.
//!
//! An operation in progress carries a lease on its organization record,
//! `pending.lease = {holder, epoch, renewed_ms}`: `holder` names this run of
//! the operation (a fresh UUID), `epoch` counts the runs (1 for the process
//! that started it, +1 at each takeover), and `renewed_ms` is the holder's
//! wall clock at its last renewal, in milliseconds since the epoch.
//!
//! - **Renewal.** While it works, the holder renews every
//!   `timeout / 6` with `{$set: {renewed_ms}}` filtered on its `holder`;
//!   a renewal matching nothing means another process took the operation
//!   over. Its own compare-and-swap steps renew too.
//! - **Takeover.** A reconciler takes an operation over only when its lease
//!   has not been renewed for `timeout` ([`LeaseDoc::expired`]), by a
//!   compare-and-swap on the record's `revision` *and* on the `renewed_ms`
//!   it saw: a renewal landing between its read and its write makes the
//!   takeover fail. Of two reconcilers racing for one expired lease exactly
//!   one wins. "Started long ago" is not "abandoned": an operation that
//!   keeps renewing is never taken over, however long its copy runs.
//! - **Fencing.** Before every write of the operation (copy batches, drops,
//!   collection and admin creation, claims, record updates) the holder
//!   calls [`Lease::fence`]. The holder trusts its lease for `3/4 ×
//!   timeout` after *sending* its last successful renewal, on its own
//!   monotonic clock; past that (its renewals were slow, or the process
//!   was paused: `kill -STOP`, a frozen VM) the fence renews at once and
//!   goes on only if that renewal still finds its holder id on the record,
//!   i.e. nobody took over. It fails when a renewal found another holder,
//!   and once the process drains for shutdown. The quarter of the timeout that is kept back
//!   absorbs clock skew between instances (keep clocks synchronised well
//!   within it: NTP does). Record updates are also compare-and-swaps, which
//!   a takeover (a new `revision`) defeats on the server; copies claim
//!   documents with their `epoch`, which a takeover overwrites, so a late
//!   delete of an earlier epoch matches nothing.
//!
//! What fencing cannot cover without transactions is one write whose
//! process was paused between the fence check and the write leaving the
//! process (microseconds of CPU); tenant documents carry their
//! organization's id, so even such a write never mixes two organizations'
//! documents (see `tenant_documents.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mongodb::bson::doc;
use orgsvc_domain::StoreError;

use crate::errors::store_error;
use crate::lease_timing::Leases;
use crate::records::{millis, now_ms, LeaseDoc, OrgDoc, OrgState};
use crate::store::MongoStore;

/// Why [`Lease::fence`] refused a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interruption {
    /// A renewal found another holder: the operation was taken over.
    TakenOver,
    /// No renewal succeeded for too long (the process was paused or the
    /// server unreachable): someone may take the operation over.
    Expired,
    /// The process is shutting down.
    Draining,
}

/// Whether an operation stops when the process drains for shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnDrain {
    /// Stops between two steps and gives its lease up (long operations:
    /// renames and deletions, whose copies and drops may take long).
    Stop,
    /// Runs to its end (creations: a few small writes).
    Finish,
}

/// A lease this process holds, renewed in the background until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    org_id: String,
    holder: String,
    epoch: i64,
    on_drain: OnDrain,
    state: Arc<LeaseState>,
    leases: Leases,
    store: MongoStore,
    renewals: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct LeaseState {
    valid_until: Mutex<Instant>,
    taken_over: AtomicBool,
}

impl LeaseState {
    /// Trusts the lease until `until`, unless it already does for longer (a
    /// late reply to an earlier renewal never shortens the window).
    fn extend(&self, until: Instant) {
        let mut valid_until = self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *valid_until = (*valid_until).max(until);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewals.abort();
    }
}

impl Lease {
    /// Starts holding `lease`, which the record of `org_id` carries since a
    /// write sent at `sent` (or earlier).
    pub(crate) fn hold(
        store: &MongoStore,
        org_id: &str,
        lease: &LeaseDoc,
        sent: Instant,
        on_drain: OnDrain,
    ) -> Self {
        let leases = store.leases().clone();
        let state = Arc::new(LeaseState {
            valid_until: Mutex::new(sent + leases.valid_for()),
            taken_over: AtomicBool::new(false),
        });
        let renewals = tokio::spawn(renew(
            store.clone(),
            org_id.to_owned(),
            lease.holder.clone(),
            Arc::clone(&state),
        ));
        Self {
            org_id: org_id.to_owned(),
            holder: lease.holder.clone(),
            epoch: lease.epoch,
            on_drain,
            state,
            leases,
            store: store.clone(),
            renewals,
        }
    }

    /// The operation's epoch (claims of a copy carry it).
    pub(crate) fn epoch(&self) -> i64 {
        self.epoch
    }

    /// This run's holder id, as the record's lease names it.
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    /// Ok while the next write may be taken; otherwise why not, as a store
    /// error (see [`Lease::interruption`]). When the holder's window of
    /// trust has lapsed (its renewals were slow, or the process was paused)
    /// it renews at once: that succeeds only if nobody took the operation
    /// over meanwhile, and opens a new window, since a takeover racing the
    /// renewal needs the renewal time it read to be unchanged.
    pub(crate) async fn fence(&self) -> Result<(), StoreError> {
        if self.interruption() == Some(Interruption::Expired) {
            self.revalidate().await?;
        }
        match self.interruption() {
            None => Ok(()),
            Some(why) => Err(StoreError::msg(format!(
                "organization {}: lifecycle operation stopped ({why:?}, epoch {})",
                self.org_id, self.epoch
            ))),
        }
    }

    /// Renews now (see [`Lease::fence`]); marks the lease taken over when
    /// another process holds it.
    async fn revalidate(&self) -> Result<(), StoreError> {
        if self.leases.frozen() {
            return Ok(()); // test seam: a paused process renews nothing
        }
        let sent = Instant::now();
        match renew_once(&self.store, &self.org_id, &self.holder).await {
            Ok(true) => {
                self.state.extend(sent + self.leases.valid_for());
                Ok(())
            }
            Ok(false) => {
                self.state.taken_over.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Why the operation must stop, if it must (`Expired` may still be
    /// cured by [`Lease::fence`]).
    pub(crate) fn interruption(&self) -> Option<Interruption> {
        if self.state.taken_over.load(Ordering::SeqCst) {
            Some(Interruption::TakenOver)
        } else if self.on_drain == OnDrain::Stop && self.leases.draining() {
            Some(Interruption::Draining)
        } else if Instant::now()
            >= *self
                .state
                .valid_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        {
            Some(Interruption::Expired)
        } else {
            None
        }
    }

    /// `record` (carrying this lease) with its renewal stamped now: the
    /// holder's own compare-and-swap steps renew the lease too.
    pub(crate) fn stamp(&self, mut record: OrgDoc) -> OrgDoc {
        if let Some(lease) = record.pending.as_mut().and_then(|p| p.lease.as_mut()) {
            if lease.holder == self.holder {
                lease.renewed_ms = now_ms();
            }
        }
        record
    }

    /// Gives the lease up so that another process takes the operation over
    /// at once (shutdown): its renewal time is set to 0.
    pub(crate) async fn release(&self, store: &MongoStore) -> Result<(), StoreError> {
        self.renewals.abort();
        store
            .organizations()
            .update_one(
                doc! { "_id": &self.org_id, "pending.lease.holder": &self.holder },
                doc! { "$set": { "pending.lease.renewed_ms": 0_i64 } },
            )
            .await
            .map(drop)
            .map_err(|e| store_error("releasing a lifecycle lease", e))
    }
}

/// Renews `holder`'s lease on the record of `org_id` (its renewal time set
/// to now); `false` when the record no longer carries it.
async fn renew_once(store: &MongoStore, org_id: &str, holder: &str) -> Result<bool, StoreError> {
    store
        .organizations()
        .update_one(
            doc! { "_id": org_id, "pending.lease.holder": holder },
            doc! { "$set": { "pending.lease.renewed_ms": now_ms() } },
        )
        .await
        .map(|result| result.matched_count == 1)
        .map_err(|e| store_error("renewing a lifecycle lease", e))
}

/// Renews the lease until it is taken over (or the task is aborted).
async fn renew(store: MongoStore, org_id: String, holder: String, state: Arc<LeaseState>) {
    let leases = store.leases().clone();
    loop {
        tokio::time::sleep(leases.renew_every()).await;
        if leases.frozen() {
            continue;
        }
        let sent = Instant::now();
        match renew_once(&store, &org_id, &holder).await {
            Ok(true) => {
                state.extend(sent + leases.valid_for());
            }
            Ok(false) => {
                tracing::warn!(organization = %org_id, "a lifecycle operation was taken over by another process; this one stops");
                state.taken_over.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                tracing::warn!(organization = %org_id, error = %error, "could not renew a lifecycle lease; retrying");
            }
        }
    }
}

impl MongoStore {
    /// Takes over the operation `record` is going through, if its lease (or,
    /// for records written before leases existed, its start) is older than
    /// `timeout`: a compare-and-swap that also requires the renewal time
    /// read, so a renewal racing it wins. The record carrying the new lease,
    /// and the lease, when this call took it over.
    pub(crate) async fn take_over(
        &self,
        record: &OrgDoc,
        timeout: Duration,
    ) -> Result<Option<(OrgDoc, Lease)>, StoreError> {
        let Some(pending) = &record.pending else {
            return Ok(None);
        };
        let now = now_ms();
        let (expired, seen, epoch) = match &pending.lease {
            Some(lease) => (
                lease.expired(timeout, now),
                Some(lease.renewed_ms),
                lease.epoch,
            ),
            None => (
                now.saturating_sub(pending.started_at.timestamp_millis()) >= millis(timeout),
                None,
                0,
            ),
        };
        if !expired {
            return Ok(None);
        }
        let mut next = record.clone();
        let lease = LeaseDoc::new(epoch + 1);
        if let Some(p) = next.pending.as_mut() {
            p.lease = Some(lease.clone());
        }
        next.revision = record.revision + 1;
        let mut filter = doc! { "_id": &record.id, "revision": record.revision };
        if let Some(seen) = seen {
            filter.insert("pending.lease.renewed_ms", seen);
        }
        let sent = Instant::now();
        let result = self
            .organizations()
            .replace_one(filter, &next)
            .await
            .map_err(|e| store_error("taking over a lifecycle operation", e))?;
        if result.matched_count != 1 {
            return Ok(None);
        }
        tracing::info!(organization = %record.id, state = ?record.state, epoch = lease.epoch, "took over an abandoned lifecycle operation");
        let on_drain = match record.state {
            OrgState::Provisioning => OnDrain::Finish,
            _ => OnDrain::Stop,
        };
        let held = Lease::hold(self, &record.id, &lease, sent, on_drain);
        Ok(Some((next, held)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_the_timeout_without_renewal() {
        let lease = LeaseDoc {
            holder: "h".into(),
            epoch: 1,
            renewed_ms: 10_000,
        };
        let timeout = Duration::from_secs(2);
        assert!(!lease.expired(timeout, 10_000));
        assert!(!lease.expired(timeout, 11_999));
        assert!(lease.expired(timeout, 12_000));
        // A clock that went backwards does not expire it.
        assert!(!lease.expired(timeout, 5_000));
    }

    #[test]
    fn holders_stop_trusting_a_lease_well_before_others_may_take_it() {
        let leases = Leases::new(Duration::from_secs(12));
        assert_eq!(leases.renew_every(), Duration::from_secs(2));
        assert_eq!(leases.valid_for(), Duration::from_secs(9));
        assert!(leases.valid_for() + leases.renew_every() < leases.timeout());
    }
}
