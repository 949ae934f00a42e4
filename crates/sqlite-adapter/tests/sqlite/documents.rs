//! Tenant documents in SQLite: the listing index, JSON paths for any field
//! name, type-aware filters, snapshots during renames, and the file.

use std::sync::Arc;

use orgsvc_domain::testing::{all_documents, new_org};
use orgsvc_domain::{
    DocumentBody, DocumentQuery, Organization, PageSize, TenantDocument, TenantStore,
};
use orgsvc_sqlite::SqliteStore;
use serde_json::{json, Value};

use crate::support::{migrated_store, name};

fn body(value: Value) -> DocumentBody {
    DocumentBody::parse(value).unwrap()
}

async fn create(store: &SqliteStore, org_name: &str) -> Organization {
    let email = format!(
        "owner@{}.example",
        org_name.to_ascii_lowercase().replace(' ', "-")
    );
    store
        .create_organization(new_org(org_name, &email))
        .await
        .unwrap()
}

/// The `name` field of each document listed with `filter`.
async fn names(store: &SqliteStore, org: &Organization, filter: Value) -> Vec<String> {
    let query = DocumentQuery {
        filters: DocumentQuery::parse_filters(filter).unwrap(),
        limit: PageSize::parse(100).unwrap(),
        ..DocumentQuery::default()
    };
    let page = store.list_documents(org.id, query).await.unwrap();
    assert!(page.next.is_none());
    page.documents
        .into_iter()
        .map(|d| d.body.as_map()["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn field_names_with_quotes_spaces_and_escapes_round_trip() {
    let test = migrated_store().await;
    let org = create(&test.store, "Acme").await;
    let value = json!({
        "na\"me": 1,
        "with space": "x",
        "back\\slash": true,
        "tab\there\nnewline": null,
        "Zoë 🚀": {"in\"ner": ["\"quoted\"", "\\"]},
        "[0]": 2,
        "a]b[c": 3,
        "*": 4,
        "": "empty name"
    });
    let stored = test
        .store
        .insert_document(org.id, body(value.clone()))
        .await
        .unwrap();

    let found = test.store.find_document(org.id, stored.id).await.unwrap();

    assert_eq!(found, stored);
    assert_eq!(
        serde_json::to_string(&found.body.into_value()).unwrap(),
        serde_json::to_string(&value).unwrap()
    );
}

#[tokio::test]
async fn filters_address_exactly_the_named_field_whatever_its_characters() {
    let test = migrated_store().await;
    let org = create(&test.store, "Acme").await;
    let docs = [
        json!({"name": "quote-space", "na\"me x": "v"}),
        json!({"name": "other-value", "na\"me x": "w"}),
        // Near misses: a prefix, the escaped spelling, no quote.
        json!({"name": "prefix", "na\"me": "v"}),
        json!({"name": "backslash", "na\\\"me x": "v"}),
        json!({"name": "plain", "name x": "v"}),
        json!({"name": "slash", "back\\slash": 7, "Zoë 🚀": "fusée"}),
    ];
    for doc in docs {
        test.store.insert_document(org.id, body(doc)).await.unwrap();
    }

    assert_eq!(
        names(&test.store, &org, json!({"na\"me x": "v"})).await,
        ["quote-space"]
    );
    assert_eq!(
        names(&test.store, &org, json!({"na\\\"me x": "v"})).await,
        ["backslash"]
    );
    assert_eq!(
        names(&test.store, &org, json!({"back\\slash": 7.0})).await,
        ["slash"]
    );
    assert_eq!(
        names(&test.store, &org, json!({"Zoë 🚀": "fusée"})).await,
        ["slash"]
    );
    assert_eq!(
        names(&test.store, &org, json!({"na\"me x": null})).await,
        ["prefix", "backslash", "plain", "slash"]
    );
}

#[tokio::test]
async fn filters_compare_json_types_not_sqlite_values() {
    let test = migrated_store().await;
    let org = create(&test.store, "Acme").await;
    let docs = [
        json!({"name": "true", "v": true}),
        json!({"name": "one", "v": 1}),
        json!({"name": "one-real", "v": 1.0}),
        json!({"name": "one-exp", "v": 1e0}),
        json!({"name": "false", "v": false}),
        json!({"name": "zero", "v": 0}),
        json!({"name": "string-1", "v": "1"}),
        json!({"name": "string-true", "v": "true"}),
        json!({"name": "string-null", "v": "null"}),
        json!({"name": "null", "v": null}),
        json!({"name": "missing"}),
        json!({"name": "array", "v": [1, true, null]}),
        json!({"name": "object", "v": {"v": 1}}),
        json!({"name": "big", "v": 9_007_199_254_740_993_i64}),
    ];
    for doc in docs {
        test.store.insert_document(org.id, body(doc)).await.unwrap();
    }
    let store = &test.store;

    assert_eq!(names(store, &org, json!({"v": true})).await, ["true"]);
    assert_eq!(names(store, &org, json!({"v": false})).await, ["false"]);
    assert_eq!(
        names(store, &org, json!({"v": 1})).await,
        ["one", "one-real", "one-exp"]
    );
    assert_eq!(
        names(store, &org, json!({"v": 1.0})).await,
        ["one", "one-real", "one-exp"]
    );
    assert_eq!(names(store, &org, json!({"v": 0})).await, ["zero"]);
    assert_eq!(names(store, &org, json!({"v": "1"})).await, ["string-1"]);
    assert_eq!(
        names(store, &org, json!({"v": "true"})).await,
        ["string-true"]
    );
    assert_eq!(
        names(store, &org, json!({"v": null})).await,
        ["null", "missing"]
    );
    // Integers compare exactly, beyond f64 precision.
    assert_eq!(
        names(store, &org, json!({"v": 9_007_199_254_740_993_i64})).await,
        ["big"]
    );
    assert!(names(store, &org, json!({"v": 9_007_199_254_740_992_i64}))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_during_renames_always_find_the_table() {
    let test = migrated_store().await;
    let org = create(&test.store, "Acme").await;
    let mut inserted = Vec::new();
    for n in 0..150 {
        inserted.push(
            test.store
                .insert_document(org.id, body(json!({ "n": n })))
                .await
                .unwrap(),
        );
    }
    let inserted = Arc::new(inserted);
    let renamer = {
        let store = test.store.clone();
        tokio::spawn(async move {
            for round in 0..40 {
                let to = if round % 2 == 0 { "Acme Two" } else { "Acme" };
                store.rename_organization(org.id, &name(to)).await.unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|reader| {
            let (store, inserted) = (test.store.clone(), inserted.clone());
            tokio::spawn(async move {
                for round in 0..40 {
                    let doc = &inserted[(reader * 40 + round) % inserted.len()];
                    assert_eq!(&store.find_document(org.id, doc.id).await.unwrap(), doc);
                    let page = store
                        .list_documents(org.id, DocumentQuery::default())
                        .await
                        .unwrap();
                    assert_eq!(page.documents.len(), 20);
                }
            })
        })
        .collect();
    renamer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    let store: Arc<dyn TenantStore> = Arc::new(test.store.clone());
    assert_eq!(all_documents(&store, org.id).await, *inserted);
}

#[tokio::test]
async fn documents_survive_closing_and_reopening_the_file() {
    let test = migrated_store().await;
    let org = create(&test.store, "Acme").await;
    let kept = test
        .store
        .insert_document(org.id, body(json!({"v": 1, "ratio": 0.1})))
        .await
        .unwrap();
    let replaced = test
        .store
        .replace_document(org.id, kept.id, body(json!({"v": 2})), Some(1))
        .await
        .unwrap();
    let deleted = test
        .store
        .insert_document(org.id, body(json!({"v": "gone"})))
        .await
        .unwrap();
    test.store
        .delete_document(org.id, deleted.id, None)
        .await
        .unwrap();
    drop(test.store);

    let reopened = SqliteStore::open(&test.path).await.unwrap();
    assert_eq!(reopened.migrate().await.unwrap(), Vec::<String>::new());

    let store: Arc<dyn TenantStore> = Arc::new(reopened);
    let documents: Vec<TenantDocument> = all_documents(&store, org.id).await;
    assert_eq!(documents, std::slice::from_ref(&replaced));
    assert_eq!(documents[0].revision, 2);
    let bumped = store
        .replace_document(org.id, kept.id, body(json!({"v": 3})), Some(2))
        .await
        .unwrap();
    assert_eq!(bumped.revision, 3);
}
