//! The store's connections: one writer and a few readers on one WAL file,
//! each owned by a thread of its own.
//!
//! SQLite allows a single writer at a time, so every write goes through one
//! connection: writes are serialized in the process and never see
//! `SQLITE_BUSY` from each other. In WAL mode readers do not block the
//! writer (nor each other), so reads use separate read-only connections and
//! proceed while a write is in progress.
//!
//! Threads. No SQLite call runs on an async worker: a call is a job sent to
//! the thread owning the connection (the writer's, or whichever reader is
//! free first), and the caller awaits its answer. A job whose caller has
//! gone (a cancelled request) is skipped. Each connection is opened, used
//! and closed on its own thread, always the same: a thread of its own reuses
//! its own memory (on tokio's blocking pool, glibc kept memory freed by a
//! call in whichever thread's arena it ran), and its hand-off costs less
//! than the blocking pool's: `POST /org/data` went from 9,500 to
//! 18,000-20,000 requests/s (64 connections, two cores).
//!
//! One process per file: opening takes an exclusive lock on `<file>.lock`,
//! held until the last handle of the store is dropped and every connection
//! is closed, so a second store on the same file, in this process or
//! another, is refused. The cache of lookups (`cache.rs`) relies on it: it
//! sees every write because every write goes through this writer.

use std::ffi::OsString;
use std::fs::{File, TryLockError};
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use orgsvc_domain::StoreError;
use rusqlite::hooks::Action;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use crate::cache::{self, Cache};

/// How many read connections a store keeps open by default: one per CPU
/// (at most [`MAX_DEFAULT_READERS`]). Organization and admin lookups are
/// mostly answered by the cache, which leaves the readers the documents,
/// the logins' credential lookups and the cache misses; several let reads
/// use every core and keep a slow listing from delaying the others. Since
/// the schema no longer grows with the organizations (one documents table,
/// migration 0010), a reader costs the same whatever their number: its
/// thread and at most SQLite's default 2 MiB page cache.
pub(crate) fn default_readers() -> NonZeroUsize {
    thread::available_parallelism().map_or(NonZeroUsize::MIN, |cpus| cpus.min(MAX_DEFAULT_READERS))
}

/// The most read connections [`default_readers`] gives, however many CPUs.
pub(crate) const MAX_DEFAULT_READERS: NonZeroUsize = match NonZeroUsize::new(8) {
    Some(readers) => readers,
    None => NonZeroUsize::MIN,
};

/// Prepared statements each connection keeps: more than the store has
/// (about 100 distinct statements, most of them the writer's).
const STATEMENT_CACHE: usize = 128;

/// How long a statement waits for a lock held by another process (a backup
/// tool) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening waits for the lock file when another store holds it: a
/// store of this process that was just dropped releases it as soon as its
/// threads have closed their connections.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// A call waiting for the writer.
type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// A call waiting for a reader.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// The open connections of one store file. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Connections {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// Lookups cached in front of the readers, invalidated by the writer.
    cache: Arc<Cache>,
    /// Set by the writer's update hook when a write touches a table the
    /// cache watches; the writer then invalidates the cache.
    touched_cached_table: Arc<AtomicBool>,
    /// Jobs for the writer thread; dropping it stops the thread.
    writer: Sender<WriteJob>,
    /// Jobs for the reader threads; dropping it stops them.
    readers: Sender<ReadJob>,
    /// The migrations the upgrade at open applied, until
    /// [`Connections::take_applied_at_open`] reports them.
    applied_at_open: Mutex<Vec<String>>,
}

impl Connections {
    /// Locks the file at `path` (creating it and its parent directories),
    /// runs `prepare` on it while no connection is open (the store's
    /// upgrade, `layout_upgrade.rs`, which answers the migrations it
    /// applied), opens the writer, which switches it to WAL mode, and
    /// `readers` read connections, each on its own thread.
    pub(crate) async fn open(
        path: &Path,
        readers: NonZeroUsize,
        prepare: fn(&Path) -> Result<Vec<String>, StoreError>,
    ) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let lock = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let lock = lock_exclusively(&path)?;
                let applied = prepare(&path)?;
                Ok::<_, StoreError>((lock, applied))
            })
            .await
            .map_err(|e| StoreError::new("locking the SQLite store", e))??
        };
        let (lock, applied_at_open) = lock;
        let lock = Arc::new(lock);
        let cache = Arc::new(Cache::default());
        let touched_cached_table = Arc::new(AtomicBool::new(false));

        // The writer goes first: it turns WAL on, which the readers rely on.
        let (writer, jobs) = mpsc::channel::<WriteJob>();
        let thread = WriterThread {
            path: path.clone(),
            jobs,
            touched: Arc::clone(&touched_cached_table),
            lock: Arc::clone(&lock),
        };
        started(spawn("orgsvc-sqlite-writer", move |ready| {
            thread.run(ready)
        }))
        .await?;

        let (read_jobs, jobs) = mpsc::channel::<ReadJob>();
        let jobs = Arc::new(Mutex::new(jobs));
        for number in 1..=readers.get() {
            let thread = ReaderThread {
                path: path.clone(),
                jobs: Arc::clone(&jobs),
                lock: Arc::clone(&lock),
            };
            let name = format!("orgsvc-sqlite-reader-{number}");
            started(spawn(&name, move |ready| thread.run(ready))).await?;
        }
        tracing::debug!(path = %path.display(), readers = readers.get(), "opened SQLite store");
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                cache,
                touched_cached_table,
                writer,
                readers: read_jobs,
                applied_at_open: Mutex::new(applied_at_open),
            }),
        })
    }

    /// The migrations `prepare` applied at open (`layout_upgrade.rs`), once:
    /// later calls get none.
    pub(crate) fn take_applied_at_open(&self) -> Vec<String> {
        let mut applied = self
            .inner
            .applied_at_open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *applied)
    }

    /// The store file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The cache of lookups, which the writer keeps coherent.
    pub(crate) fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Runs `op` on the writer connection, on the writer's thread. If `op`
    /// changed a row of a table the cache watches, the cache is invalidated
    /// once `op` has returned (committed), before this call returns.
    pub(crate) async fn write<T, E>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let cache = Arc::clone(&self.inner.cache);
        let touched = Arc::clone(&self.inner.touched_cached_table);
        let job: WriteJob = Box::new(move |connection| {
            if reply.is_closed() {
                return; // the caller has gone: nothing to do
            }
            let result = {
                let _invalidate = InvalidateAfterWrite {
                    cache: &cache,
                    touched: &touched,
                };
                op(connection)
            };
            // The caller may have gone meanwhile; the write stands anyway.
            let _ = reply.send(result);
        });
        self.inner
            .writer
            .send(job)
            .map_err(|_| StoreError::msg("the SQLite writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| E::from(unanswered("the SQLite writer")))?
    }

    /// Runs `op` on a read-only connection, on the first free reader's
    /// thread.
    pub(crate) async fn read<T, E>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |connection| {
            if !reply.is_closed() {
                let _ = reply.send(op(connection));
            }
        });
        self.inner
            .readers
            .send(job)
            .map_err(|_| StoreError::msg("the SQLite reader threads have stopped"))?;
        answer
            .await
            .map_err(|_| E::from(unanswered("a SQLite reader")))?
    }
}

fn unanswered(who: &str) -> StoreError {
    StoreError::msg(format!(
        "{who} did not answer: the call panicked (see the log) or the store is closing"
    ))
}

/// Invalidates the cache when dropped (after the write, even one that
/// panicked) if the write touched a watched table.
struct InvalidateAfterWrite<'a> {
    cache: &'a Cache,
    touched: &'a AtomicBool,
}

impl Drop for InvalidateAfterWrite<'_> {
    fn drop(&mut self) {
        if self.touched.swap(false, Ordering::Relaxed) {
            self.cache.invalidate();
        }
    }
}

/// What the writer thread owns.
struct WriterThread {
    path: PathBuf,
    jobs: Receiver<WriteJob>,
    /// Set by the update hook (see [`open_writer`]).
    touched: Arc<AtomicBool>,
    /// Held until the connection is closed.
    lock: Arc<File>,
}

impl WriterThread {
    fn run(self, ready: oneshot::Sender<Result<(), StoreError>>) {
        let Self {
            path,
            jobs,
            touched,
            lock,
        } = self;
        let mut connection = match open_writer(&path, touched) {
            Ok(connection) => connection,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        // Until every sender is gone, i.e. the store is dropped.
        for job in jobs {
            run_job("the SQLite writer", || job(&mut connection));
        }
        // Close before unlocking.
        close(connection, &path);
        drop(lock);
    }
}

/// What a reader thread owns.
struct ReaderThread {
    path: PathBuf,
    /// Shared by the readers: the first free one takes the next job.
    jobs: Arc<Mutex<Receiver<ReadJob>>>,
    /// Held until the connection is closed.
    lock: Arc<File>,
}

impl ReaderThread {
    fn run(self, ready: oneshot::Sender<Result<(), StoreError>>) {
        let connection = match open_reader(&self.path) {
            Ok(connection) => connection,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        loop {
            let next = {
                // Only `recv` runs under this lock: it cannot be poisoned.
                let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
                jobs.recv()
            };
            let Ok(job) = next else {
                break; // the store was dropped
            };
            run_job("a SQLite reader", || job(&connection));
        }
        close(connection, &self.path);
        drop(self.lock);
    }
}

/// Runs a job, keeping the thread alive if it panics (its caller then gets
/// an error: the answer was never sent). A transaction open in the job is
/// rolled back as the panic unwinds.
fn run_job(who: &str, job: impl FnOnce()) {
    if panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
        tracing::error!("a call on {who} panicked; the connection stays in service");
    }
}

/// Starts a connection's thread; `body` reports on `ready` whether its
/// connection opened.
fn spawn(
    name: &str,
    body: impl FnOnce(oneshot::Sender<Result<(), StoreError>>) + Send + 'static,
) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
    let (ready, opened) = oneshot::channel();
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || body(ready))
        .map_err(|e| StoreError::new(format!("starting thread {name}"), e))?;
    Ok(opened)
}

/// Waits until a thread started by [`spawn`] has opened its connection.
async fn started(
    opened: Result<oneshot::Receiver<Result<(), StoreError>>, StoreError>,
) -> Result<(), StoreError> {
    opened?
        .await
        .map_err(|_| StoreError::msg("a SQLite connection thread stopped while opening"))?
}

/// `<path>.lock`, opened (created if needed) and locked exclusively; fails
/// when another store holds it for longer than [`LOCK_PATIENCE`].
fn lock_exclusively(path: &Path) -> Result<File, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::new(format!("creating directory {}", parent.display()), e))?;
    }
    let mut name = OsString::from(path.as_os_str());
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| StoreError::new(format!("opening lock file {}", lock_path.display()), e))?;
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::msg(format!(
                    "the embedded store {} is in use by another orgsvc process (it holds the \
                     lock file {}); stop that process first, or give each process its own \
                     store.path",
                    path.display(),
                    lock_path.display()
                )))
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::new(
                    format!("locking {}", lock_path.display()),
                    e,
                ))
            }
        }
    }
}

/// Opens the writer: WAL mode, and an update hook that sets `touched` when
/// a row of a table the cache watches changes.
fn open_writer(path: &Path, touched: Arc<AtomicBool>) -> Result<Connection, StoreError> {
    let mut connection = open_connection(path)?;
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
    connection
        .update_hook(Some(move |_: Action, _: &str, table: &str, _: i64| {
            if cache::watches(table) {
                touched.store(true, Ordering::Relaxed);
            }
        }))
        .map_err(|e| StoreError::new("installing the SQLite update hook", e))?;
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
    // Every statement the store runs stays prepared (rusqlite keeps 16).
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

fn close(connection: Connection, path: &Path) {
    if let Err((_, error)) = connection.close() {
        tracing::warn!(path = %path.display(), error = %error, "closing a SQLite connection failed");
    }
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
/// until it ends (when the returned snapshot is dropped) sees one snapshot
/// of the file, so what one statement read (the organization exists) still
/// holds for the next (its documents) even if a delete commits in between.
pub(crate) fn begin_read<'c>(
    connection: &'c Connection,
    what: &str,
) -> Result<ReadSnapshot<'c>, StoreError> {
    if !connection.is_autocommit() {
        // An earlier snapshot could not be ended: end it now.
        let _ = run_cached(connection, "ROLLBACK");
    }
    run_cached(connection, "BEGIN")
        .map_err(|e| StoreError::new(format!("starting the read transaction for {what}"), e))?;
    Ok(ReadSnapshot { connection })
}

/// A read transaction started by [`begin_read`]; ends when dropped. Its
/// `BEGIN` and `COMMIT` are cached statements: rusqlite's own transactions
/// parse them again every time, which cost more than a page of documents'
/// queries (measured on `GET /org/data?limit=20`).
pub(crate) struct ReadSnapshot<'c> {
    connection: &'c Connection,
}

impl std::ops::Deref for ReadSnapshot<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
    }
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        // Ending a read transaction cannot lose anything; should it fail,
        // the next begin_read ends it.
        if let Err(error) = run_cached(self.connection, "COMMIT") {
            tracing::warn!(%error, "ending a SQLite read transaction failed");
        }
    }
}

/// Runs a statement without parameters through the statement cache.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<usize> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
}

/// Commits `transaction`, started by [`begin`] for `what`.
pub(crate) fn commit(transaction: Transaction<'_>, what: &str) -> Result<(), StoreError> {
    transaction
        .commit()
        .map_err(|e| StoreError::new(format!("committing {what}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const READERS: NonZeroUsize = match NonZeroUsize::new(2) {
        Some(readers) => readers,
        None => NonZeroUsize::MIN,
    };

    async fn open() -> (tempfile::TempDir, Connections) {
        let dir = tempfile::tempdir().unwrap();
        let connections =
            Connections::open(&dir.path().join("orgsvc.db"), READERS, |_| Ok(Vec::new()))
                .await
                .unwrap();
        (dir, connections)
    }

    fn select_one(connection: &Connection) -> Result<i64, StoreError> {
        connection
            .query_row("SELECT 1", [], |row| row.get(0))
            .map_err(|e| StoreError::new("select", e))
    }

    #[tokio::test]
    async fn a_call_that_panics_fails_alone_and_its_connection_stays_in_service() {
        let (_dir, connections) = open().await;
        for _ in 0..=READERS.get() {
            let err = connections
                .read(|_| -> Result<(), StoreError> { panic!("a bug in a read") })
                .await
                .unwrap_err();
            assert!(err.to_string().contains("did not answer"), "{err}");
        }
        let err = connections
            .write(|_| -> Result<(), StoreError> { panic!("a bug in a write") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not answer"), "{err}");

        assert_eq!(connections.read(select_one).await.unwrap(), 1);
        assert_eq!(connections.write(|c| select_one(c)).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_read_snapshot_ends_when_dropped_and_a_stuck_one_is_ended_by_the_next() {
        let (_dir, connections) = open().await;
        let ended = connections
            .read(|c| {
                let snapshot = begin_read(c, "a read")?;
                let inside = !snapshot.is_autocommit();
                drop(snapshot);
                Ok::<_, StoreError>((inside, c.is_autocommit()))
            })
            .await
            .unwrap();
        assert_eq!(ended, (true, true));

        // A transaction left open (as a failed COMMIT would leave it) does
        // not make the next snapshot fail.
        let recovered = (0..=READERS.get())
            .map(|_| {
                connections.read(|c| {
                    c.execute_batch("BEGIN")
                        .map_err(|e| StoreError::new("begin", e))?;
                    let snapshot = begin_read(c, "the next read")?;
                    let one = select_one(&snapshot)?;
                    drop(snapshot);
                    Ok::<_, StoreError>((one, c.is_autocommit()))
                })
            })
            .collect::<Vec<_>>();
        for answer in recovered {
            assert_eq!(answer.await.unwrap(), (1, true));
        }
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let (_dir, connections) = open().await;
        let err = connections
            .read(|c| {
                c.execute_batch("CREATE TABLE t (x)")
                    .map_err(|e| StoreError::new("create", e))
            })
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("readonly"), "{err:?}");
    }

    #[tokio::test]
    async fn calls_run_on_the_connections_own_threads() {
        let (_dir, connections) = open().await;
        let thread_name = || thread::current().name().map(str::to_owned);
        let writer = connections
            .write(move |_| Ok::<_, StoreError>(thread_name()))
            .await
            .unwrap();
        let reader = connections
            .read(move |_| Ok::<_, StoreError>(thread_name()))
            .await
            .unwrap();
        assert_eq!(writer.as_deref(), Some("orgsvc-sqlite-writer"));
        assert!(
            reader
                .as_deref()
                .is_some_and(|name| name.starts_with("orgsvc-sqlite-reader-")),
            "{reader:?}"
        );
    }
}
