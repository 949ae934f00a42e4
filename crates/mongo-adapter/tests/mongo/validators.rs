//! The collection validators installed by the migrations accept every
//! record the store writes, in every intermediate state.
//!
//! Real MongoDB enforces validators, while the wire-protocol stand-in used on
//! build machines does not, so this checks each record against the latest
//! `$jsonSchema` of its collection (read from the migration files) with an
//! evaluator of the keywords those schemas use: `bsonType`, `required`,
//! `properties`, `enum`, `minimum`, `maximum` (`pattern` is not evaluated:
//! the patterns constrain names that the domain validates already).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mongodb::bson::{Bson, Document};
use orgsvc_domain::{
    AdminId, AdminRole, AuditAction, AuditEvent, AuditEventId, AuditLog, LoginThrottle, NewAdmin,
    OrganizationId, PasswordHash, RefreshToken, RefreshTokenHash, SessionFamilyId, SessionStore,
    TenantLayout, TenantStore,
};
use orgsvc_mongo::Step;

use crate::support::{email, name, new_org, TestStore};

/// The latest `$jsonSchema` of each collection, in migration order.
fn latest_schemas() -> BTreeMap<String, Document> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/mongodb");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let mut schemas = BTreeMap::new();
    for file in files {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for command in json.as_array().unwrap() {
            let Bson::Document(command) = Bson::try_from(command.clone()).unwrap() else {
                panic!("not a command: {command}");
            };
            if let (Ok(collection), Ok(validator)) = (
                command.get_str("collMod"),
                command.get_document("validator"),
            ) {
                let schema = validator.get_document("$jsonSchema").unwrap().clone();
                schemas.insert(collection.to_owned(), schema);
            }
        }
    }
    schemas
}

fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Document(_) => "object",
        Bson::String(_) => "string",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Double(_) => "double",
        Bson::DateTime(_) => "date",
        Bson::Boolean(_) => "bool",
        Bson::Array(_) => "array",
        Bson::ObjectId(_) => "objectId",
        Bson::Null => "null",
        _ => "other",
    }
}

fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    }
}

/// The ways `value` violates `schema`, each with its path.
fn violations(schema: &Document, value: &Bson, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(types) = schema.get("bsonType") {
        let allowed: Vec<&str> = match types {
            Bson::String(one) => vec![one.as_str()],
            Bson::Array(many) => many.iter().map(|t| t.as_str().unwrap()).collect(),
            other => panic!("bsonType {other:?}"),
        };
        if !allowed.contains(&type_name(value)) {
            found.push(format!(
                "{path}: {} is not one of {allowed:?}",
                type_name(value)
            ));
        }
    }
    if let Ok(allowed) = schema.get_array("enum") {
        if !allowed.contains(value) {
            found.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    for (keyword, below) in [("minimum", true), ("maximum", false)] {
        if let (Some(bound), Some(n)) = (schema.get(keyword).and_then(number), number(value)) {
            if (below && n < bound) || (!below && n > bound) {
                found.push(format!("{path}: {n} breaks {keyword} {bound}"));
            }
        }
    }
    if let Bson::Document(record) = value {
        if let Ok(required) = schema.get_array("required") {
            for field in required {
                let field = field.as_str().unwrap();
                if !record.contains_key(field) {
                    found.push(format!("{path}.{field}: missing"));
                }
            }
        }
        if let Ok(properties) = schema.get_document("properties") {
            for (field, sub) in properties {
                if let (Some(value), Bson::Document(sub)) = (record.get(field), sub) {
                    found.extend(violations(sub, value, &format!("{path}.{field}")));
                }
            }
        }
    }
    found
}

async fn assert_valid(t: &TestStore, schemas: &BTreeMap<String, Document>, when: &str) {
    for (collection, schema) in schemas {
        for record in t.raw(collection).await {
            let found = violations(schema, &Bson::Document(record.clone()), collection);
            assert!(found.is_empty(), "{when}: {found:?} in {record:?}");
        }
    }
}

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

#[test]
fn the_evaluator_finds_what_validators_refuse() {
    let schemas = latest_schemas();
    let admins = &schemas["admins"];
    let record = mongodb::bson::doc! {
        "_id": "a", "revision": 1_i64, "organization_id": "o", "email": "x",
        "password_hash": "h", "role": "superuser", "token_version": -1_i32,
        "created_at": "yesterday",
    };
    let found = violations(admins, &Bson::Document(record), "admins");
    for expected in ["role", "token_version", "created_at", "updated_at: missing"] {
        assert!(
            found.iter().any(|f| f.contains(expected)),
            "{expected}: {found:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_accept_every_record_the_store_writes() {
    let schemas = latest_schemas();
    for collection in [
        "organizations",
        "admins",
        "organization_names",
        "refresh_tokens",
        "revoked_session_families",
        "login_throttles",
        "audit_events",
    ] {
        assert!(
            schemas.contains_key(collection),
            "no validator for {collection}"
        );
    }
    let t = TestStore::new().await;
    let hash = |tag: &str| PasswordHash::from_phc_string(format!("$argon2id$dummy-{tag}"));

    // Organizations and admins, with a change and an addition left half-done.
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let second = t
        .add_admin(
            acme.id,
            NewAdmin::new(email("second@acme.example"), AdminRole::Owner, hash("2")),
        )
        .await
        .unwrap();
    t.fail_after(Step::AdminChangeRecorded);
    t.set_admin_role(acme.id, acme.admin_id, AdminRole::Admin)
        .await
        .unwrap_err();
    t.fail_after(Step::AdminAddInserted);
    t.add_admin(
        acme.id,
        NewAdmin::new(email("third@acme.example"), AdminRole::Admin, hash("3")),
    )
    .await
    .unwrap_err();
    t.fail_after(Step::RenameNameClaimed);
    t.rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap_err();
    // A move of the documents to the shared layout, half-done.
    let globex = t
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();
    t.fail_after(Step::MoveLayoutFlipped);
    t.move_tenant(globex.id, TenantLayout::Shared)
        .await
        .unwrap_err();
    assert_valid(&t, &schemas, "half-done").await;

    t.reconcile(Duration::ZERO).await.unwrap();
    t.rehash_password(second.id, &hash("2"), hash("2b"))
        .await
        .unwrap();
    t.remove_admin(acme.id, acme.admin_id).await.unwrap();

    // Sessions: a used token, a revoked family, an email locked and another
    // merely counted.
    let now = Utc::now();
    let family = SessionFamilyId::new();
    for tag in ["1", "2"] {
        let token = RefreshToken {
            hash: RefreshTokenHash::from_hex(format!("{tag:0>64}")),
            family,
            admin_id: second.id,
            organization_id: acme.id,
            token_version: 0,
            issued_at: now,
            expires_at: now + TimeDelta::days(1),
        };
        t.save_refresh_token(token).await.unwrap();
    }
    let used = RefreshTokenHash::from_hex(format!("{:0>64}", "1"));
    t.use_refresh_token(&used, now).await.unwrap();
    t.revoke_family(family).await.unwrap();
    let throttle = LoginThrottle {
        max_failures: 1,
        base_lock: Duration::from_secs(60),
        max_lock: Duration::from_secs(600),
    };
    for address in [
        "locked@acme.example",
        "locked@acme.example",
        "once@acme.example",
    ] {
        t.begin_login_attempt(&email(address), now, &throttle)
            .await
            .unwrap();
    }

    // Audit entries with and without their optional fields.
    for actor in [Some(AdminId::new()), None] {
        let event = AuditEvent {
            id: AuditEventId::new(),
            organization_id: OrganizationId::new(),
            actor,
            operator: None,
            action: AuditAction::LoginFailed,
            target: "owner@acme.example".into(),
            at: at(1_700_000_000_000),
            request_id: actor.map(|_| "req".into()),
            client_ip: actor.map(|_| "192.0.2.1".into()),
        };
        t.record(event).await.unwrap();
    }
    assert_valid(&t, &schemas, "settled").await;
    for collection in [
        "refresh_tokens",
        "revoked_session_families",
        "login_throttles",
        "audit_events",
    ] {
        assert!(
            !t.raw(collection).await.is_empty(),
            "nothing checked in {collection}"
        );
    }
}
