//! Versioned migrations: applied once, refused when tampered with.

use orgsvc_sqlite::{MigrationError, SqliteStore};

use crate::support::{connect, migrated_store, table_exists};

#[tokio::test]
async fn migrate_applies_every_migration_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = SqliteStore::open(&dir.path().join("orgsvc.db"))
        .await
        .unwrap();

    assert_eq!(store.migrate().await.unwrap(), ["0001_initial"]);
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());

    let connection = connect(&dir.path().join("orgsvc.db"));
    assert!(table_exists(&connection, "organizations"));
    assert!(table_exists(&connection, "admins"));
    let recorded: (i64, String, String) = connection
        .query_row(
            "SELECT version, name, checksum FROM _migrations",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!((recorded.0, recorded.1.as_str()), (1, "0001_initial"));
    assert_eq!(recorded.2.len(), 64, "SHA-256 as hex: {}", recorded.2);
}

#[tokio::test]
async fn migrate_refuses_a_migration_changed_after_it_was_applied() {
    let test = migrated_store().await;
    connect(&test.path)
        .execute(
            "UPDATE _migrations SET checksum = 'edited' WHERE name = '0001_initial'",
            [],
        )
        .unwrap();

    let err = test.store.migrate().await.unwrap_err();

    assert!(
        matches!(&err, MigrationError::ChecksumMismatch { name, .. } if name == "0001_initial"),
        "{err:?}"
    );
    assert!(err.to_string().contains("0001_initial"), "{err}");
}

#[tokio::test]
async fn migrate_refuses_a_database_migrated_by_a_newer_build() {
    let test = migrated_store().await;
    connect(&test.path)
        .execute(
            "INSERT INTO _migrations (version, name, checksum, applied_at) \
             VALUES (999, '0999_future', 'x', 0)",
            [],
        )
        .unwrap();

    let err = test.store.migrate().await.unwrap_err();

    assert!(
        matches!(&err, MigrationError::UnknownVersion { version: 999, name } if name == "0999_future"),
        "{err:?}"
    );
}
