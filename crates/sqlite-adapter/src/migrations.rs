//! Versioned schema migrations from `migrations/sqlite/`, embedded in the
//! binary.
//!
//! A migration may also have a step written in Rust, run after its SQL in
//! the same transaction, for what SQL cannot name statically: the tenant
//! tables (`0002_document_revisions` upgrades every `org_*` table,
//! `0003_light_tenant_tables` converts them to a lighter layout,
//! `0010_shared_documents` checks none is left: the store moves their rows
//! when it opens, see `layout_upgrade.rs`). The step is part of the
//! migration: like the file, never change it once released.
//!
//! Each migration runs in its own transaction together with its record in
//! `_migrations(version, name, checksum, applied_at)`, so it is applied
//! entirely or not at all. A recorded migration is skipped when its SHA-256
//! checksum still matches the embedded file and refused otherwise: released
//! migrations are never edited, a change is a new file.

use orgsvc_domain::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::connection::{begin, commit};
use crate::{rows, tenant_tables};

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A migration's statements failed; it was rolled back.
    #[error("migration {name} failed and was rolled back")]
    Failed {
        /// The migration, e.g. `0001_initial`.
        name: String,
        /// What SQLite reported.
        #[source]
        source: StoreError,
    },
    /// An applied migration's file was edited afterwards.
    #[error(
        "migration {name} was changed after it was applied (recorded checksum {recorded}, \
         this build has {embedded}); add a new migration instead of editing an applied one"
    )]
    ChecksumMismatch {
        /// The migration.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the migration in this build.
        embedded: String,
    },
    /// The database holds a migration this build does not know: it was
    /// migrated by a newer version of the service.
    #[error(
        "the database has migration {name} (version {version}) applied, which this build \
         does not know; it was migrated by a newer orgsvc"
    )]
    UnknownVersion {
        /// The recorded version.
        version: i64,
        /// The recorded name.
        name: String,
    },
    /// The migration records could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One embedded migration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Migration {
    /// Applied in increasing order, starting at 1.
    pub(crate) version: i64,
    /// The file name without `.sql`, e.g. `0001_initial`.
    pub(crate) name: &'static str,
    /// The statements (no `BEGIN`/`COMMIT`).
    pub(crate) sql: &'static str,
    /// Run after `sql`, in the same transaction (see the module docs).
    pub(crate) step: Option<Step>,
}

/// A migration's step written in Rust.
pub(crate) type Step = fn(&Connection) -> Result<(), StoreError>;

macro_rules! migration {
    ($version:literal, $name:literal) => {
        migration!($version, $name, None)
    };
    ($version:literal, $name:literal, $step:expr) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/sqlite/", $name, ".sql")),
            step: $step,
        }
    };
}

/// Every migration of this build, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_initial"),
    migration!(
        2,
        "0002_document_revisions",
        Some(tenant_tables::upgrade_all)
    ),
    migration!(
        3,
        "0003_light_tenant_tables",
        Some(tenant_tables::rebuild_all)
    ),
    migration!(4, "0004_admin_security"),
    migration!(5, "0005_signing_keys"),
    migration!(6, "0006_outbox_and_account_tokens"),
    migration!(7, "0007_invitations"),
    migration!(8, "0008_organization_state"),
    migration!(9, "0009_operator_keys"),
    migration!(10, "0010_shared_documents", Some(tenant_tables::refuse_any)),
];

/// The version of `0010_shared_documents`, which replaced the tables per
/// organization with `tenant_documents` (see `layout_upgrade.rs`).
pub(crate) const SHARED_DOCUMENTS: i64 = 10;

/// Applies the pending `migrations` in order, logging each; returns the
/// names applied now.
pub(crate) fn apply(
    connection: &mut Connection,
    migrations: &[Migration],
) -> Result<Vec<String>, MigrationError> {
    apply_logged(connection, migrations, true)
}

/// [`apply`] without a log line per migration: for a file that is built
/// to replace a store (`layout_upgrade.rs`), whose own records say which
/// migrations the store had.
pub(crate) fn apply_unlogged(
    connection: &mut Connection,
    migrations: &[Migration],
) -> Result<Vec<String>, MigrationError> {
    apply_logged(connection, migrations, false)
}

fn apply_logged(
    connection: &mut Connection,
    migrations: &[Migration],
    log: bool,
) -> Result<Vec<String>, MigrationError> {
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS _migrations (
                version    INTEGER NOT NULL PRIMARY KEY,
                name       TEXT    NOT NULL,
                checksum   TEXT    NOT NULL,
                applied_at INTEGER NOT NULL
            ) STRICT",
        )
        .map_err(|e| StoreError::new("creating the _migrations table", e))?;
    refuse_unknown_versions(connection, migrations)?;
    let mut applied = Vec::new();
    for migration in migrations {
        if apply_one(connection, migration)? {
            if log {
                tracing::info!(migration = migration.name, "applied SQLite migration");
            }
            applied.push(migration.name.to_owned());
        }
    }
    Ok(applied)
}

/// Applies `migration` unless it is recorded; returns whether it was applied.
fn apply_one(connection: &mut Connection, migration: &Migration) -> Result<bool, MigrationError> {
    let what = format!("migration {}", migration.name);
    // Checked inside the transaction: another process may be migrating too.
    let transaction = begin(connection, &what)?;
    let embedded = checksum(migration.sql);
    let recorded: Option<String> = transaction
        .query_row(
            "SELECT checksum FROM _migrations WHERE version = ?1",
            [migration.version],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| StoreError::new(format!("reading the record of {what}"), e))?;
    match recorded {
        Some(recorded) if recorded == embedded => return Ok(false),
        Some(recorded) => {
            return Err(MigrationError::ChecksumMismatch {
                name: migration.name.to_owned(),
                recorded,
                embedded,
            })
        }
        None => {}
    }
    transaction
        .execute_batch(migration.sql)
        .map_err(|e| MigrationError::Failed {
            name: migration.name.to_owned(),
            source: StoreError::new(format!("running {what}"), e),
        })?;
    if let Some(step) = migration.step {
        step(&transaction).map_err(|source| MigrationError::Failed {
            name: migration.name.to_owned(),
            source,
        })?;
    }
    transaction
        .execute(
            "INSERT INTO _migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                migration.version,
                migration.name,
                embedded,
                rows::millis(rows::now())
            ],
        )
        .map_err(|e| StoreError::new(format!("recording {what}"), e))?;
    commit(transaction, &what)?;
    Ok(true)
}

fn refuse_unknown_versions(
    connection: &Connection,
    migrations: &[Migration],
) -> Result<(), MigrationError> {
    let newest = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    let unknown: Option<(i64, String)> = connection
        .query_row(
            "SELECT version, name FROM _migrations WHERE version > ?1 ORDER BY version LIMIT 1",
            [newest],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(|e| StoreError::new("reading the applied migrations", e))?;
    match unknown {
        Some((version, name)) => Err(MigrationError::UnknownVersion { version, name }),
        None => Ok(()),
    }
}

/// The SHA-256 of `sql`, as lowercase hex.
fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    fn table_exists(connection: &Connection, table: &str) -> bool {
        connection
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |row| row.get::<_, i64>(0),
            )
            .unwrap()
            == 1
    }

    #[test]
    fn embedded_migrations_are_numbered_increasingly_from_one_like_their_files() {
        let mut previous = 0;
        for migration in MIGRATIONS {
            let version = migration.version;
            assert!(version > previous, "{} is out of order", migration.name);
            assert!(
                migration.name.starts_with(&format!("{version:04}_")),
                "{} should start with {version:04}_",
                migration.name
            );
            previous = version;
        }
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
    }

    #[test]
    fn a_failing_migration_is_named_and_leaves_nothing_behind() {
        let mut connection = memory();
        let broken = [
            Migration {
                version: 1,
                name: "0001_good",
                sql: "CREATE TABLE good (id INTEGER);",
                step: None,
            },
            Migration {
                version: 2,
                name: "0002_broken",
                sql: "CREATE TABLE half_done (id INTEGER); THIS IS NOT SQL;",
                step: None,
            },
        ];

        let err = apply(&mut connection, &broken).unwrap_err();

        assert!(
            matches!(&err, MigrationError::Failed { name, .. } if name == "0002_broken"),
            "{err:?}"
        );
        assert!(err.to_string().contains("0002_broken"), "{err}");
        assert!(table_exists(&connection, "good"));
        assert!(!table_exists(&connection, "half_done"));
        let recorded: Vec<String> = connection
            .prepare("SELECT name FROM _migrations ORDER BY version")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recorded, ["0001_good"]);
    }

    #[test]
    fn checksum_is_lowercase_hex_sha256() {
        assert_eq!(
            checksum("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
