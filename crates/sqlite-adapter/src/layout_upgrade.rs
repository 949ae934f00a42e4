//! The upgrade of a store with a table per organization (releases before
//! migration `0010_shared_documents`) to one `tenant_documents` table: run
//! when the store is opened, before any connection of the service.
//!
//! Dropping the old tables one by one cannot be linear: each `DROP TABLE`
//! scans the whole `sqlite_schema` (10,000 drops took 23 s on two cores, and
//! the time grows with the square of the number of organizations). So the
//! store is copied instead into a new file next to it,
//! `<file>.upgrading`, made by the current migrations:
//!
//! 1. the old file is brought to the last migration of the old layout
//!    (`0009`) and checkpointed, so it is whole without its WAL;
//! 2. the new file gets every migration, then, in one transaction, every
//!    master table's rows, the old migration records, and each
//!    organization's documents (`INSERT ... SELECT` from its table, found in
//!    a set of the old file's table names read in one scan): time linear in
//!    organizations + documents;
//! 3. it is checked (documents counted, foreign keys checked), synced to
//!    disk, the old file is kept as `<file>.before-0010` (a hard link when
//!    the file system allows, else a copy), and the new file replaces the
//!    old one by an atomic rename, then the directory is synced.
//!
//! Crash safety: the old file is never written after step 1 (which is the
//! normal migrations, each one transaction), and the new one only takes its
//! place whole. A crash before the rename leaves the old file in service and
//! a partial `<file>.upgrading`, which the next open deletes before it starts
//! over; a crash after it leaves the new file, which needs nothing more.
//!
//! A tenant table no organization names (which the old store never made) is
//! not carried over: it is named in a warning and stays in the kept file.
//! A table, view or trigger the new schema does not know (another tool's)
//! makes the upgrade fail, before anything is replaced; so does a file
//! already at `<file>.before-0010` that is not a link to the store (a copy
//! an earlier upgrade kept, or anything else): it is never overwritten.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orgsvc_domain::StoreError;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use crate::migrations::{self, Migration, MIGRATIONS, SHARED_DOCUMENTS};
use crate::tenant_tables::{self, quote_identifier};

/// How often a long upgrade reports its progress in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Tables of the new file that are not master tables copied as they are.
const NOT_COPIED: &[&str] = &["_migrations", "tenant_documents"];

/// Upgrades the store at `path` if it still has tables per organization
/// (see the module docs); answers the migrations it applied, in order
/// (those of the old layout the file lacked, then `0010_shared_documents`),
/// none when there was nothing to do (a new or empty file, or one already
/// upgraded). The caller holds the store's lock.
pub(crate) fn run(path: &Path) -> Result<Vec<String>, StoreError> {
    let staging = sibling(path, ".upgrading");
    remove_if_present(&staging)?;
    remove_if_present(&sibling(&staging, "-journal"))?;
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut old = open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    if !needs_upgrade(&old)? {
        return Ok(Vec::new());
    }
    let kept_at = sibling(path, ".before-0010");
    refuse_foreign_kept_file(path, &kept_at)?;
    let started = Instant::now();
    tracing::info!(
        path = %path.display(),
        "upgrading the embedded store from a table per organization to one documents table \
         (migration 0010); the service starts once it is done"
    );
    let (old_layout, upgrade) = migrations_around_the_upgrade();
    let mut applied = migrations::apply(&mut old, old_layout)
        .map_err(|e| StoreError::new("bringing the store to migration 0009 first", e))?;
    applied.extend(upgrade.iter().map(|m| m.name.to_owned()));
    checkpoint(&old)?;
    close(old)?;

    let (organizations, documents) = build(path, &staging).inspect_err(|_| {
        // Nothing replaced: the old file stays in service.
        let _ = fs::remove_file(&staging);
    })?;
    sync_file(&staging)?;
    keep(path, &kept_at)?;
    for leftover in ["-wal", "-shm"] {
        remove_if_present(&sibling(path, leftover))?;
    }
    fs::rename(&staging, path).map_err(|e| {
        StoreError::new(
            format!("replacing {} by the upgraded file", path.display()),
            e,
        )
    })?;
    sync_directory(path)?;
    tracing::info!(
        path = %path.display(),
        organizations,
        documents,
        seconds = started.elapsed().as_secs_f64(),
        kept_at = %kept_at.display(),
        "upgraded the embedded store to one documents table; the previous file is kept: \
         delete it once the service runs as it should"
    );
    Ok(applied)
}

/// The migrations before `0010_shared_documents` (the old layout's), and
/// 0010 itself: the new file is made by every migration up to 0010, the
/// layout the copy is written for; later ones are applied to it by
/// [`crate::SqliteStore::migrate`], as to any store.
fn migrations_around_the_upgrade() -> (&'static [Migration], &'static [Migration]) {
    let position = MIGRATIONS
        .iter()
        .position(|m| m.version == SHARED_DOCUMENTS)
        .unwrap_or(MIGRATIONS.len());
    let (before, rest) = MIGRATIONS.split_at(position);
    (before, rest.get(..1).unwrap_or_default())
}

/// Whether the file has tables per organization and lacks migration 0010.
fn needs_upgrade(connection: &Connection) -> Result<bool, StoreError> {
    let has_records: bool = connection
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = '_migrations'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| StoreError::new("reading the store's schema", e))?;
    if !has_records {
        return Ok(false);
    }
    let upgraded: Option<i64> = connection
        .query_row(
            "SELECT version FROM _migrations WHERE version = ?1",
            [SHARED_DOCUMENTS],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| StoreError::new("reading the applied migrations", e))?;
    if upgraded.is_some() {
        return Ok(false);
    }
    connection
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name GLOB 'org_*'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| StoreError::new("looking for tables per organization", e))
}

/// Makes the new file at `staging` from the old one at `path` (steps 2 and
/// 3 of the module docs); returns how many organizations and documents it
/// moved.
fn build(path: &Path, staging: &Path) -> Result<(u64, u64), StoreError> {
    let mut new = open(
        staging,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    // A failed build is thrown away whole, so it needs no journal on disk
    // and no sync before the end; a larger page cache speeds the copy. The
    // tables are copied in name order, not in the order their references
    // need: the foreign keys are checked once, at the end (`check`).
    for (pragma, value) in [
        ("foreign_keys", "OFF"),
        ("journal_mode", "MEMORY"),
        ("synchronous", "OFF"),
        ("cache_size", "-65536"),
    ] {
        new.pragma_update(None, pragma, value)
            .map_err(|e| StoreError::new(format!("setting pragma {pragma}"), e))?;
    }
    let (old_layout, upgrade) = migrations_around_the_upgrade();
    let through_upgrade = &MIGRATIONS[..old_layout.len() + upgrade.len()];
    migrations::apply_unlogged(&mut new, through_upgrade)
        .map_err(|e| StoreError::new("creating the upgraded store's schema", e))?;
    let old = path
        .to_str()
        .ok_or_else(|| StoreError::msg(format!("{} is not valid UTF-8", path.display())))?;
    new.execute("ATTACH DATABASE ?1 AS old", [old])
        .map_err(|e| StoreError::new("attaching the store being upgraded", e))?;
    let transaction = new
        .transaction()
        .map_err(|e| StoreError::new("starting the upgrade's transaction", e))?;
    copy_master_tables(&transaction)?;
    let moved = copy_documents(&transaction)?;
    check(&transaction, moved.1)?;
    transaction
        .commit()
        .map_err(|e| StoreError::new("committing the upgraded store", e))?;
    new.execute_batch("DETACH DATABASE old")
        .map_err(|e| StoreError::new("detaching the upgraded store", e))?;
    close(new)?;
    Ok(moved)
}

/// Copies every master table's rows, column by column as the new schema
/// names them, and the records of the migrations applied before 0010.
/// Fails first on a table, view or trigger of the old file the new schema
/// does not have (the old tables per organization excepted).
fn copy_master_tables(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    let new_tables = table_names(transaction, "main")?;
    let foreign = transaction
        .query_row(
            "SELECT type, name FROM old.sqlite_schema AS o \
             WHERE o.type IN ('table', 'view', 'trigger') \
             AND o.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND o.name NOT GLOB 'org_*' \
             AND NOT EXISTS (SELECT 1 FROM main.sqlite_schema AS n \
                             WHERE n.type = o.type AND n.name = o.name) \
             ORDER BY o.name LIMIT 1",
            [],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
        )
        .optional()
        .map_err(|e| StoreError::new("comparing the old and new schemas", e))?;
    if let Some((kind, name)) = foreign {
        return Err(StoreError::msg(format!(
            "the store has a {kind} orgsvc does not know, {name:?}; move it out of the \
             file, then start again (nothing was changed)"
        )));
    }
    for table in &new_tables {
        if NOT_COPIED.contains(&table.as_str()) {
            continue;
        }
        let columns: Vec<String> = transaction
            .prepare("SELECT name FROM main.pragma_table_info(?1)")
            .and_then(|mut statement| statement.query_map([table], |row| row.get(0))?.collect())
            .map_err(|e| StoreError::new(format!("reading the columns of {table}"), e))?;
        let columns = columns
            .iter()
            .map(|column| quote_identifier(column))
            .collect::<Vec<_>>()
            .join(", ");
        let table = quote_identifier(table);
        transaction
            .execute_batch(&format!(
                "INSERT INTO main.{table} ({columns}) SELECT {columns} FROM old.{table}"
            ))
            .map_err(|e| StoreError::new(format!("copying table {table}"), e))?;
    }
    transaction
        .execute(
            "DELETE FROM main._migrations WHERE version < ?1",
            [SHARED_DOCUMENTS],
        )
        .and_then(|_| {
            transaction.execute(
                "INSERT INTO main._migrations (version, name, checksum, applied_at) \
                 SELECT version, name, checksum, applied_at FROM old._migrations \
                 WHERE version < ?1",
                [SHARED_DOCUMENTS],
            )
        })
        .map(|_| ())
        .map_err(|e| StoreError::new("copying the migration records", e))
}

/// Moves each organization's documents into `tenant_documents`; returns how
/// many organizations and documents.
fn copy_documents(transaction: &Transaction<'_>) -> Result<(u64, u64), StoreError> {
    let mut tables = tenant_tables::names(transaction, "old")?;
    let total: i64 = transaction
        .query_row("SELECT count(*) FROM old.organizations", [], |row| {
            row.get(0)
        })
        .map_err(|e| StoreError::new("counting the organizations", e))?;
    let mut organizations = 0_u64;
    let mut documents = 0_u64;
    let mut reported = Instant::now();
    let mut listing = transaction
        .prepare("SELECT id, table_name FROM old.organizations ORDER BY rowid")
        .map_err(|e| StoreError::new("listing the organizations", e))?;
    let mut rows = listing
        .query([])
        .map_err(|e| StoreError::new("listing the organizations", e))?;
    while let Some(row) = rows
        .next()
        .map_err(|e| StoreError::new("listing the organizations", e))?
    {
        let (id, table): (String, String) = (
            row.get(0)
                .map_err(|e| StoreError::new("reading an organization", e))?,
            row.get(1)
                .map_err(|e| StoreError::new("reading an organization", e))?,
        );
        organizations += 1;
        if !tables.remove(&table) {
            tracing::warn!(organization = %id, %table, "the organization's table is missing: it had no documents to move");
            continue;
        }
        let copied = transaction
            .execute(
                &format!(
                    "INSERT INTO main.tenant_documents \
                         (organization_id, id, doc, created_at, updated_at, revision) \
                     SELECT ?1, id, doc, created_at, updated_at, revision FROM old.{}",
                    quote_identifier(&table)
                ),
                params![id],
            )
            .map_err(|e| StoreError::new(format!("moving the documents of {table}"), e))?;
        documents += copied as u64;
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            tracing::info!(
                organizations,
                of = total,
                documents,
                "upgrading the embedded store"
            );
        }
    }
    if !tables.is_empty() {
        let mut names: Vec<_> = tables.into_iter().collect();
        names.sort();
        tracing::warn!(
            count = names.len(),
            tables = ?names.iter().take(10).collect::<Vec<_>>(),
            "tables per organization that no organization names were not carried over; \
             they remain in the kept file"
        );
    }
    Ok((organizations, documents))
}

/// Checks the new file before it replaces the old one: every moved document
/// is there once, and no row refers to a missing one.
fn check(transaction: &Transaction<'_>, moved: u64) -> Result<(), StoreError> {
    let stored: i64 = transaction
        .query_row("SELECT count(*) FROM main.tenant_documents", [], |row| {
            row.get(0)
        })
        .map_err(|e| StoreError::new("counting the moved documents", e))?;
    let stored = u64::try_from(stored).unwrap_or(0);
    if stored != moved {
        return Err(StoreError::msg(format!(
            "the upgraded store holds {stored} documents, {moved} were moved; nothing was replaced"
        )));
    }
    let violation: Option<String> = transaction
        .query_row("PRAGMA main.foreign_key_check", [], |row| row.get(0))
        .optional()
        .map_err(|e| StoreError::new("checking the upgraded store's references", e))?;
    match violation {
        Some(table) => Err(StoreError::msg(format!(
            "a row of {table} refers to a missing row in the upgraded store; nothing was replaced"
        ))),
        None => Ok(()),
    }
}

/// The tables of schema `schema`, SQLite's own excepted.
fn table_names(connection: &Connection, schema: &str) -> Result<Vec<String>, StoreError> {
    connection
        .prepare(&format!(
            "SELECT name FROM {}.sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            quote_identifier(schema)
        ))
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .map_err(|e| StoreError::new(format!("listing the tables of {schema}"), e))
}

/// Writes everything in the WAL into the file itself and empties the WAL.
fn checkpoint(connection: &Connection) -> Result<(), StoreError> {
    let busy: i64 = connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .map_err(|e| StoreError::new("checkpointing the store", e))?;
    if busy != 0 {
        return Err(StoreError::msg(
            "another connection holds the store: it could not be checkpointed for the upgrade",
        ));
    }
    Ok(())
}

/// Fails when a file is at `kept_at` that is not a hard link to `path`. A
/// link is what an upgrade that crashed before its swap leaves; [`keep`]
/// replaces it.
fn refuse_foreign_kept_file(path: &Path, kept_at: &Path) -> Result<(), StoreError> {
    let existing = match fs::symlink_metadata(kept_at) {
        Ok(existing) => existing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::new(
                format!("inspecting {}", kept_at.display()),
                e,
            ))
        }
    };
    let store = fs::metadata(path)
        .map_err(|e| StoreError::new(format!("inspecting {}", path.display()), e))?;
    if same_file(&existing, &store) {
        return Ok(());
    }
    Err(StoreError::msg(format!(
        "the upgrade keeps the previous store at {kept}, but something is there already \
         (a copy an earlier upgrade kept?); nothing was changed: move {kept} away and start again",
        kept = kept_at.display()
    )))
}

/// Whether two metadata describe the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    false
}

/// Keeps the old file at `kept_at`: a hard link (no copy) where possible.
/// Whatever is there already is a link to it (see
/// [`refuse_foreign_kept_file`]).
fn keep(path: &Path, kept_at: &Path) -> Result<(), StoreError> {
    remove_if_present(kept_at)?;
    if fs::hard_link(path, kept_at).is_ok() {
        return Ok(());
    }
    fs::copy(path, kept_at)
        .map(|_| ())
        .map_err(|e| StoreError::new(format!("keeping the old file at {}", kept_at.display()), e))
}

fn open(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| StoreError::new(format!("opening {}", path.display()), e))?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(|e| StoreError::new("setting the busy timeout", e))?;
    Ok(connection)
}

fn close(connection: Connection) -> Result<(), StoreError> {
    connection
        .close()
        .map_err(|(_, e)| StoreError::new("closing a connection of the upgrade", e))
}

fn sync_file(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| StoreError::new(format!("syncing {}", path.display()), e))
}

/// Syncs the directory holding `path`, so a rename in it is durable.
fn sync_directory(path: &Path) -> Result<(), StoreError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    sync_file(directory)
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::new(format!("removing {}", path.display()), e)),
    }
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}
