//! The store's connections: one writer and a few readers on one WAL file.
//!
//! SQLite allows a single writer at a time, so every write goes through one
//! connection behind a mutex: writes are serialized in the process and never
//! see `SQLITE_BUSY` from each other. In WAL mode readers do not block the
//! writer (nor each other), so reads use a small set of separate read-only
//! connections and proceed while a write is in progress. Every call runs on
//! tokio's blocking pool, never on an async worker, and only once a
//! connection is free for it: callers wait for one asynchronously (a
//! semaphore per kind), so a burst of requests queues without taking one
//! blocking thread each (64 concurrent reads took 75 threads before; many
//! threads each parsing the schema left gigabytes in glibc's per-thread
//! arenas while organizations were being created).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use orgsvc_domain::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many read connections the store keeps open. Each connection caches
/// the whole schema, and every organization adds a table and two indexes to
/// it: about 2 KiB per organization per connection (measured: ~23 MiB per
/// connection with 10,000 organizations), so every reader costs memory in
/// proportion to the number of organizations. Two readers keep reads
/// concurrent with each other and with the writer; four gave no more
/// `GET /org/get` throughput on two cores (29k/s either way, both behind
/// the semaphores below) but 152 instead of 104 MiB peak RSS with 10,000
/// organizations.
const READERS: usize = 2;

/// How long a statement waits for a lock held by another process (a backup
/// tool, a second instance) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The open connections of one store file. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Connections {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// One permit for the writer, one per reader: callers queue here,
    /// asynchronously, so that a blocking-pool thread is only taken by a
    /// call that has a connection to run on.
    writer_permit: Arc<Semaphore>,
    reader_permits: Arc<Semaphore>,
}

impl Connections {
    /// Opens the file at `path` (creating it and its parent directories),
    /// switches it to WAL mode and opens the readers.
    pub(crate) async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        run_blocking(move || Self::open_blocking(path)).await?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::new(format!("creating directory {}", parent.display()), e)
            })?;
        }
        // The writer goes first: it turns WAL on, which the readers rely on.
        let writer = open_writer(&path)?;
        let readers: Vec<_> = (0..READERS)
            .map(|_| open_reader(&path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        tracing::debug!(path = %path.display(), readers = READERS, "opened SQLite store");
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                reader_permits: Arc::new(Semaphore::new(readers.len())),
                readers,
                next_reader: AtomicUsize::new(0),
                writer_permit: Arc::new(Semaphore::new(1)),
            }),
        })
    }

    /// The store file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `op` on the writer connection, on the blocking pool.
    pub(crate) async fn write<T, E>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let permit = acquire(&inner.writer_permit).await?;
        run_blocking(move || {
            let result = lock(&inner.writer, "the SQLite writer connection")
                .map_err(E::from)
                .and_then(|mut writer| op(&mut writer));
            drop(permit);
            result
        })
        .await?
    }

    /// Runs `op` on a read-only connection, on the blocking pool.
    pub(crate) async fn read<T, E>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let permit = acquire(&inner.reader_permits).await?;
        run_blocking(move || {
            let result = inner
                .reader()
                .map_err(E::from)
                .and_then(|reader| op(&reader));
            drop(permit);
            result
        })
        .await?
    }
}

impl Inner {
    /// An idle reader. A caller holds one of `reader_permits` (one per reader)
    /// until its reader is released, so there is always one; waiting for the
    /// next in turn is only a fallback.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        if let Some(idle) = self.readers.iter().find_map(|r| r.try_lock().ok()) {
            return Ok(idle);
        }
        let turn = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let reader = turn
            .checked_rem(self.readers.len())
            .and_then(|index| self.readers.get(index))
            .ok_or_else(|| StoreError::msg("the SQLite store has no reader connection"))?;
        lock(reader, "a SQLite reader connection")
    }
}

fn lock<'a>(
    connection: &'a Mutex<Connection>,
    what: &str,
) -> Result<MutexGuard<'a, Connection>, StoreError> {
    connection.lock().map_err(|_| {
        StoreError::msg(format!(
            "{what} is unusable: a task panicked while holding it"
        ))
    })
}

/// A permit of `permits`, waited for without holding a thread. The
/// semaphores are never closed, so this only fails if that changes.
async fn acquire(permits: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, StoreError> {
    Arc::clone(permits)
        .acquire_owned()
        .await
        .map_err(|e| StoreError::new("waiting for a SQLite connection", e))
}

async fn run_blocking<T: Send + 'static>(
    op: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| StoreError::new("running a SQLite call on the blocking pool", e))
}

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let connection = open_connection(path)?;
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| StoreError::new("switching SQLite to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::msg(format!(
            "SQLite refused WAL mode for {} (journal mode is {mode})",
            path.display()
        )));
    }
    // With WAL, NORMAL loses at most the last commits on power loss, never
    // consistency.
    set_pragma(&connection, "synchronous", "NORMAL")?;
    Ok(connection)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let connection = open_connection(path)?;
    set_pragma(&connection, "query_only", "ON")?;
    Ok(connection)
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)
        .map_err(|e| StoreError::new(format!("opening SQLite file {}", path.display()), e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::new("setting the SQLite busy timeout", e))?;
    set_pragma(&connection, "foreign_keys", "ON")?;
    Ok(connection)
}

fn set_pragma(connection: &Connection, pragma: &str, value: &str) -> Result<(), StoreError> {
    connection
        .pragma_update(None, pragma, value)
        .map_err(|e| StoreError::new(format!("setting SQLite pragma {pragma} = {value}"), e))
}

/// Starts a write transaction that takes SQLite's write lock at once, so its
/// reads and writes see one consistent state even if another process writes.
pub(crate) fn begin<'c>(
    connection: &'c mut Connection,
    what: &str,
) -> Result<Transaction<'c>, StoreError> {
    connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| StoreError::new(format!("starting the transaction for {what}"), e))
}

/// Starts a read transaction on a (read-only) connection: every statement
/// until it ends sees one snapshot of the file, so a table name read from
/// `organizations` still names the same table in the next statement even if
/// a rename commits in between.
pub(crate) fn begin_read<'c>(
    connection: &'c Connection,
    what: &str,
) -> Result<Transaction<'c>, StoreError> {
    connection
        .unchecked_transaction()
        .map_err(|e| StoreError::new(format!("starting the read transaction for {what}"), e))
}

/// Commits `transaction`, started by [`begin`] for `what`.
pub(crate) fn commit(transaction: Transaction<'_>, what: &str) -> Result<(), StoreError> {
    transaction
        .commit()
        .map_err(|e| StoreError::new(format!("committing {what}"), e))
}
