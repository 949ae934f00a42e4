//! `orgsvc operator-keys create|list|revoke`, run as the binary on the
//! store a service would use: the key is printed on stdout only, works
//! against the store, and a revocation takes effect for every reader.

use std::process::{Command, Output};

use orgsvc_api::config::Settings;
use orgsvc_api::store_selection::SelectedStore;
use orgsvc_app::operators::authenticate_operator;
use orgsvc_app::AppError;
use orgsvc_domain::OperatorScope;
use tempfile::TempDir;

use crate::helpers::{Backend, JWT_SECRET};

backend_suite!(the_cli_creates_lists_and_revokes_keys);

/// The environment of a service on `backend` (a fresh embedded file in
/// `dir`, or a fresh MongoDB database).
fn store_env(backend: Backend, dir: &TempDir) -> Vec<(String, String)> {
    let mut env = vec![("ORGSVC__AUTH__JWT_SECRET".to_owned(), JWT_SECRET.to_owned())];
    match backend {
        Backend::Embedded => {
            env.push(("ORGSVC__STORE__KIND".into(), "embedded".into()));
            let path = dir.path().join("orgsvc.db");
            env.push(("ORGSVC__STORE__PATH".into(), path.display().to_string()));
        }
        Backend::Mongodb => {
            let uri = std::env::var("ORGSVC_TEST_MONGODB_URI")
                .unwrap_or_else(|_| panic!("ORGSVC_TEST_MONGODB_URI is not set: run scripts/test"));
            env.push(("ORGSVC__STORE__KIND".into(), "mongodb".into()));
            env.push(("ORGSVC__MONGODB__URI".into(), uri));
            let database = format!("orgsvc_cli_test_{}", uuid::Uuid::new_v4().simple());
            env.push(("ORGSVC__MONGODB__MASTER_DB".into(), database));
        }
    }
    env
}

fn orgsvc(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orgsvc"))
        .env_remove("RUST_LOG")
        .env_remove("ORGSVC_CONFIG")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("ORGSVC__LOG__LEVEL", "warn")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn open_store(env: &[(String, String)]) -> SelectedStore {
    let env = env.iter().cloned().collect();
    let settings = Settings::load_from(None, Some(env)).unwrap();
    SelectedStore::open(&settings).await.unwrap()
}

async fn the_cli_creates_lists_and_revokes_keys(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let env = store_env(backend, &dir);
    if let Backend::Embedded = backend {
        // A mistyped store.path must not create an empty store.
        let missing = orgsvc(&env, &["operator-keys", "list"]);
        assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));
        assert!(text(&missing.stderr).contains("no embedded store"));
    }
    let migrated = orgsvc(&env, &["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));

    let created = orgsvc(
        &env,
        &[
            "operator-keys",
            "create",
            "--name",
            "root",
            "--scope",
            "write",
        ],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let stdout = text(&created.stdout);
    let key = stdout.trim_end_matches('\n');
    assert!(key.starts_with("osk_") && key.len() == 47, "{stdout:?}");
    assert_eq!(stdout, format!("{key}\n"), "stdout carries the key only");
    let stderr = text(&created.stderr);
    assert!(stderr.contains("root"), "{stderr}");
    assert!(!stderr.contains(key), "the key leaked to stderr: {stderr}");

    let taken = orgsvc(&env, &["operator-keys", "create", "--name", "root"]);
    assert_eq!(taken.status.code(), Some(2));
    assert!(taken.stdout.is_empty());
    assert!(
        text(&taken.stderr).contains("exists"),
        "{}",
        text(&taken.stderr)
    );
    let invalid = orgsvc(&env, &["operator-keys", "create", "--name", "Root Key"]);
    assert_eq!(invalid.status.code(), Some(2));
    let usage = orgsvc(&env, &["operator-keys", "create"]);
    assert_eq!(usage.status.code(), Some(2));
    let expiry = orgsvc(
        &env,
        &[
            "operator-keys",
            "create",
            "--name",
            "ttl",
            "--expires-in",
            "0",
        ],
    );
    assert_eq!(expiry.status.code(), Some(2));

    {
        let store = open_store(&env).await.into_shared();
        let operator = authenticate_operator(store.as_ref(), key).await.unwrap();
        assert_eq!(operator.name.as_str(), "root");
        assert_eq!(operator.scope, OperatorScope::Write);
        if let Backend::Embedded = backend {
            // While a service holds the embedded file, the CLI refuses.
            let locked = orgsvc(&env, &["operator-keys", "list"]);
            assert_eq!(locked.status.code(), Some(1));
            assert!(
                text(&locked.stderr).contains("in use"),
                "{}",
                text(&locked.stderr)
            );
        }
    }

    let listed = orgsvc(&env, &["operator-keys", "list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    assert!(
        table.lines().nth(1).unwrap().starts_with("root "),
        "{table}"
    );
    assert!(table.contains("write"), "{table}");
    assert!(!table.contains(key), "{table}");

    let revoked = orgsvc(&env, &["operator-keys", "revoke", "root"]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(revoked.stdout.is_empty());
    let unknown = orgsvc(&env, &["operator-keys", "revoke", "nobody"]);
    assert_eq!(unknown.status.code(), Some(2));

    let store = open_store(&env).await.into_shared();
    assert!(matches!(
        authenticate_operator(store.as_ref(), key).await,
        Err(AppError::InvalidOperatorKey)
    ));
}

#[test]
fn logs_written_to_a_pipe_are_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = Command::new(env!("CARGO_BIN_EXE_orgsvc"))
        .env_remove("RUST_LOG")
        .env_remove("ORGSVC_CONFIG")
        .envs(
            store_env(Backend::Embedded, &dir)
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .env("ORGSVC__LOG__LEVEL", "info")
        .env("ORGSVC__LOG__FORMAT", "text")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let logged = format!("{}{}", text(&migrated.stdout), text(&migrated.stderr));
    assert!(logged.contains("INFO"), "{logged}");
    assert!(
        !logged.contains('\u{1b}'),
        "colour codes in piped logs: {logged:?}"
    );
}
