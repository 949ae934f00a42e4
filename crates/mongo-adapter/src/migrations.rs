//! Versioned schema migrations: `migrations/mongodb/NNNN_name.json`, each a
//! JSON list of database commands run on the master database, embedded in
//! the binary and applied in order. Each applied migration is recorded in
//! `_migrations` with the SHA-256 of its file; a recorded migration whose
//! file changed stops startup.
//!
//! Commands must be idempotent (`createIndexes`, `collMod`, an `update`
//! whose filter excludes what it already changed; `create` of an existing
//! collection counts as done), so two processes starting at once both
//! succeed. A write command whose reply lists write errors counts as failed.
//!
//! 0003 (admin security) adds the session, throttling and audit collections
//! and makes `role` a required admin field: its validator is installed
//! first, then every admin without a role (all created before roles
//! existed, hence their organizations' creators) gets `role: owner`. From
//! then on the code reads `role` strictly; a process of an earlier version
//! still running during an upgrade cannot write an admin without one (the
//! validator refuses it) instead of silently leaving, say, a demoted admin
//! readable as an owner.
//!
//! 0004 (rate limits) adds `rate_limits`, the shared per-client counters,
//! with a TTL index on `expires_at` (deleted once their window ended) and an
//! index on `window_end_ms` for the maintenance purge.
//!
//! 0005 (lifecycle leases) restates the organizations validator with the
//! lease that pending operations carry (`pending.lease: {holder, epoch,
//! renewed_ms}`, see `lease.rs`); records without one (written before)
//! stay valid.
//!
//! 0006 (signing keys) adds `signing_keys`, which holds the one document of
//! the access-token signing key set (see `signing_keys.rs`), with a
//! validator for its shape.
//!
//! 0007 (outbox) adds `outbox`: one document per email, with the
//! single-use account token it carries embedded (see `outbox.rs`), a
//! unique index on the token's hash and a validator for the shape.
//!
//! 0008 (invitations) adds `invitations`: one document per invitation, with
//! its current token's hash (unique index) and the email waiting to move to
//! the outbox embedded (see `invitations.rs`), and an index of the outbox
//! on `invitation_id`.
//!
//! 0009 (organization state) restates the organizations validator with the
//! optional `suspension: {reason, at}` an operator's suspension writes
//! (absent: active, so every existing organization stays active) and adds
//! the `audit_events` index `{action: 1, id: -1}` for the operator's audit
//! listing filtered by action. The operator listing's prefix search reads
//! the `canonical` index of 0001.
//!
//! 0010 (operator keys) adds `operator_keys` (see `operator_keys.rs`), with
//! unique indexes on the name and the hash and a validator, and restates
//! the `audit_events` validator with the optional `operator` (the acting
//! operator key's name); entries written before have none.
//!
//! 0011 (shared tenancy, issue #16) restates the organizations validator
//! with the optional `layout` (`collection` or `shared`; absent: a
//! collection of its own, as every record written before), the state
//! `moving` and its `pending.move: {from, to}` (see
//! `lifecycle/tenant_move.rs`), and adds `tenant_documents`, the collection
//! of every organization in the shared layout, with its listing index
//! `{organization_id: 1, created_at: 1, id: 1}` (`id`: a copy of `_id`,
//! see `tenant_documents.rs`), which also serves lookups and deletions by
//! organization; lookups by id use `_id`.

use mongodb::bson::{self, doc, Bson, Document};
use mongodb::Database;
use orgsvc_domain::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::errors::{command_code, NAMESPACE_EXISTS};

/// Where applied migrations are recorded.
const MIGRATIONS_COLLECTION: &str = "_migrations";

/// Why migrations could not be applied. Startup must stop on any of them.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A command of the migration failed (or the file is not a JSON list of
    /// command documents).
    #[error("migration {name} failed: {source}")]
    Failed {
        /// The migration, e.g. `0002_validators`.
        name: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The migration's file differs from the one that was applied.
    #[error("migration {name} was edited after being applied (checksum mismatch)")]
    ChecksumMismatch {
        /// The migration.
        name: String,
    },
    /// Reading or writing the migration records failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An embedded migration file.
struct Migration {
    name: &'static str,
    json: &'static str,
}

macro_rules! migration {
    ($name:literal) => {
        Migration {
            name: $name,
            json: include_str!(concat!("../../../migrations/mongodb/", $name, ".json")),
        }
    };
}

/// Every migration, in the order they apply.
const MIGRATIONS: &[Migration] = &[
    migration!("0001_collections_and_indexes"),
    migration!("0002_validators"),
    migration!("0003_admin_security"),
    migration!("0004_rate_limits"),
    migration!("0005_lifecycle_leases"),
    migration!("0006_signing_keys"),
    migration!("0007_outbox"),
    migration!("0008_invitations"),
    migration!("0009_organization_state"),
    migration!("0010_operator_keys"),
    migration!("0011_shared_tenancy"),
];

/// The record of an applied migration.
#[derive(Debug, Serialize, Deserialize)]
struct AppliedMigration {
    #[serde(rename = "_id")]
    name: String,
    checksum: String,
    applied_at: bson::DateTime,
}

impl Migration {
    fn checksum(&self) -> String {
        Sha256::digest(self.json.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    fn commands(&self) -> Result<Vec<Document>, MigrationError> {
        let failed = |source| MigrationError::Failed {
            name: self.name.to_owned(),
            source,
        };
        let json: serde_json::Value = serde_json::from_str(self.json)
            .map_err(|e| failed(store_error("the file is not valid JSON", e)))?;
        let serde_json::Value::Array(commands) = json else {
            return Err(failed(StoreError::msg(
                "the file is not a JSON list of commands",
            )));
        };
        commands
            .into_iter()
            .map(|command| match Bson::try_from(command) {
                Ok(Bson::Document(command)) if !command.is_empty() => Ok(command),
                Ok(_) => Err(failed(StoreError::msg("a command is not a JSON object"))),
                Err(e) => Err(failed(store_error(
                    "a command is not valid extended JSON",
                    e,
                ))),
            })
            .collect()
    }

    async fn run(&self, db: &Database) -> Result<(), MigrationError> {
        for (index, command) in self.commands()?.into_iter().enumerate() {
            let verb = command.keys().next().cloned().unwrap_or_default();
            match db.run_command(command).await {
                Ok(reply) => {
                    if let Some(refusal) = write_refusal(&reply) {
                        return Err(MigrationError::Failed {
                            name: self.name.to_owned(),
                            source: StoreError::msg(format!(
                                "command {} ({verb}) was refused: {refusal}",
                                index + 1
                            )),
                        });
                    }
                }
                Err(e) if verb == "create" && command_code(&e) == Some(NAMESPACE_EXISTS) => {}
                Err(e) => {
                    return Err(MigrationError::Failed {
                        name: self.name.to_owned(),
                        source: store_error(
                            format!("command {} ({verb}) was refused", index + 1),
                            e,
                        ),
                    })
                }
            }
        }
        Ok(())
    }
}

/// What a write command's reply reports as refused, if anything: write
/// commands (`update`, `delete`, `insert`) answer `ok: 1` even when some
/// documents were refused, and list them under `writeErrors`.
fn write_refusal(reply: &Document) -> Option<String> {
    let errors = reply
        .get_array("writeErrors")
        .ok()
        .filter(|errors| !errors.is_empty())
        .map(|errors| format!("write errors {errors:?}"));
    let concern = reply
        .get_document("writeConcernError")
        .ok()
        .map(|error| format!("write concern error {error:?}"));
    errors.or(concern)
}

/// Applies the pending migrations; returns the names of those applied now.
pub(crate) async fn apply(db: &Database) -> Result<Vec<String>, MigrationError> {
    let records = db.collection::<AppliedMigration>(MIGRATIONS_COLLECTION);
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let checksum = migration.checksum();
        let recorded = records
            .find_one(doc! { "_id": migration.name })
            .await
            .map_err(|e| store_error("reading the migration records", e))?;
        if let Some(record) = recorded {
            verify(migration, &record, &checksum)?;
            continue;
        }
        migration.run(db).await?;
        let record = AppliedMigration {
            name: migration.name.to_owned(),
            checksum: checksum.clone(),
            applied_at: crate::records::now(),
        };
        match records.insert_one(&record).await {
            Ok(_) => {
                tracing::info!(migration = migration.name, "applied migration");
                applied.push(migration.name.to_owned());
            }
            // Another process applied it at the same time.
            Err(e) if is_duplicate_key(&e) => {
                let record = records
                    .find_one(doc! { "_id": migration.name })
                    .await
                    .map_err(|e| store_error("reading the migration records", e))?
                    .ok_or_else(|| StoreError::msg("a migration record vanished"))?;
                verify(migration, &record, &checksum)?;
            }
            Err(e) => return Err(store_error("recording an applied migration", e).into()),
        }
    }
    Ok(applied)
}

fn verify(
    migration: &Migration,
    record: &AppliedMigration,
    checksum: &str,
) -> Result<(), MigrationError> {
    if record.checksum == checksum {
        Ok(())
    } else {
        Err(MigrationError::ChecksumMismatch {
            name: migration.name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/mongodb");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter_map(|file| file.strip_suffix(".json").map(str::to_owned))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn every_migration_parses_into_commands() {
        for migration in MIGRATIONS {
            let commands = migration.commands().unwrap();
            assert!(!commands.is_empty(), "{}", migration.name);
        }
    }

    #[test]
    fn validators_keep_their_operators() {
        let validators = MIGRATIONS[1].commands().unwrap();
        let schema = validators[0].get_document("validator").unwrap();
        assert!(schema.contains_key("$jsonSchema"), "{schema:?}");
    }

    #[test]
    fn admin_security_requires_roles_and_backfills_them_after_enforcing() {
        let commands = MIGRATIONS[2].commands().unwrap();
        let position = |verb: &str, target: &str| {
            commands
                .iter()
                .position(|c| c.get_str(verb) == Ok(target))
                .unwrap()
        };
        let validator = &commands[position("collMod", "admins")];
        let schema = validator
            .get_document("validator")
            .unwrap()
            .get_document("$jsonSchema")
            .unwrap();
        let required = schema.get_array("required").unwrap();
        assert!(required.contains(&Bson::String("role".into())));
        // Enforced first, then backfilled: no writer without roles slips in
        // between.
        assert!(position("collMod", "admins") < position("update", "admins"));
    }

    #[test]
    fn rate_limit_counters_expire_by_ttl_index() {
        let commands = MIGRATIONS[3].commands().unwrap();
        let indexes = commands
            .iter()
            .find(|c| c.get_str("createIndexes") == Ok("rate_limits"))
            .unwrap()
            .get_array("indexes")
            .unwrap();
        let ttl = indexes
            .iter()
            .filter_map(Bson::as_document)
            .find(|index| index.get_document("key").unwrap() == &doc! { "expires_at": 1 })
            .unwrap();
        assert_eq!(ttl.get_i32("expireAfterSeconds"), Ok(0));
    }

    #[test]
    fn shared_tenancy_allows_layouts_and_moves_and_indexes_the_listing_without_id() {
        let commands = MIGRATIONS[10].commands().unwrap();
        let schema = commands[0]
            .get_document("validator")
            .unwrap()
            .get_document("$jsonSchema")
            .unwrap();
        let properties = schema.get_document("properties").unwrap();
        let states = properties
            .get_document("state")
            .unwrap()
            .get_array("enum")
            .unwrap();
        assert!(states.contains(&Bson::String("moving".into())));
        let layouts = properties
            .get_document("layout")
            .unwrap()
            .get_array("enum")
            .unwrap();
        assert_eq!(
            layouts,
            &vec![Bson::from("collection"), Bson::from("shared")]
        );
        let required = schema.get_array("required").unwrap();
        assert!(!required.contains(&Bson::String("layout".into())));
        let index = commands
            .iter()
            .find(|c| c.get_str("createIndexes") == Ok("tenant_documents"))
            .unwrap()
            .get_array("indexes")
            .unwrap()[0]
            .as_document()
            .unwrap()
            .get_document("key")
            .unwrap()
            .clone();
        assert_eq!(
            index,
            doc! { "organization_id": 1, "created_at": 1, "id": 1 }
        );
    }

    #[test]
    fn write_errors_in_a_reply_are_refusals() {
        assert!(write_refusal(&doc! { "ok": 1, "n": 2 }).is_none());
        assert!(write_refusal(&doc! { "ok": 1, "writeErrors": [] }).is_none());
        let refused = doc! { "ok": 1, "writeErrors": [{ "index": 0, "code": 121 }] };
        assert!(write_refusal(&refused).unwrap().contains("121"));
        let concern = doc! { "ok": 1, "writeConcernError": { "code": 64 } };
        assert!(write_refusal(&concern).is_some());
    }

    #[test]
    fn checksum_is_the_sha256_of_the_file() {
        let migration = Migration {
            name: "x",
            json: "abc",
        };
        assert_eq!(
            migration.checksum(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_migrations_are_reported_by_name() {
        for json in ["{", "{}", "[1]", "[{}]"] {
            let err = Migration {
                name: "0009_bad",
                json,
            }
            .commands()
            .unwrap_err();
            assert!(
                err.to_string().starts_with("migration 0009_bad failed: "),
                "{err}"
            );
        }
    }
}
