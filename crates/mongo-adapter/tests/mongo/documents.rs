//! Tenant documents on MongoDB: stored shape, listing index, and writes
//! racing a rename, interleaved step by step with the `failpoints` seam.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::IndexModel;
use orgsvc_domain::testing::{all_documents, ContractFixture};
use orgsvc_domain::{
    DocumentBody, DocumentError, DocumentId, Organization, RenameOrganizationError, TenantDocument,
    TenantStore,
};
use orgsvc_mongo::{MongoStore, Step};
use serde_json::{json, Value};

use crate::support::{name, new_org, TestStore};

pub fn body(value: Value) -> DocumentBody {
    DocumentBody::parse(value).unwrap()
}

async fn acme(t: &TestStore) -> Organization {
    t.create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap()
}

/// The keys of the collection's listing index (the one leading with
/// `created_at`), if it has one.
async fn listing_index(t: &TestStore, collection: &str) -> Option<Document> {
    let indexes: Vec<IndexModel> =
        t.db.collection::<Document>(collection)
            .list_indexes()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
    indexes
        .into_iter()
        .map(|index| index.keys)
        .find(|keys| keys.keys().next().map(String::as_str) == Some("created_at"))
}

/// The listing index is `{created_at: 1, _id: 1}`; a server that cannot
/// maintain that key pattern (the stand-in accepts it on an empty collection
/// and then refuses every insert) gets `{created_at: 1}`, verified by a probe.
fn assert_listing_index(keys: Option<Document>) {
    let keys = keys.expect("the tenant collection has no listing index");
    assert!(
        keys == doc! { "created_at": 1, "_id": 1 } || keys == doc! { "created_at": 1 },
        "{keys:?}"
    );
}

async fn rename_keeps_the_listing_index(force_copy: bool) {
    let t = TestStore::new().await;
    if force_copy {
        t.force_copy_fallback();
    }
    let org = acme(&t).await;
    assert_listing_index(listing_index(&t, "org_acme").await);
    let created = listing_index(&t, "org_acme").await;
    let doc = t
        .insert_document(org.id, body(json!({"n": 1})))
        .await
        .unwrap();
    t.rename_organization(org.id, &name("Acme Labs"))
        .await
        .unwrap();
    assert_eq!(listing_index(&t, "org_acme_labs").await, created);
    assert_eq!(all_documents(&t.store(), org.id).await, [doc]);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_index_is_created_with_the_organization_and_survives_a_rename() {
    rename_keeps_the_listing_index(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_index_survives_a_rename_by_batched_copy() {
    rename_keeps_the_listing_index(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_stored_with_the_body_nested_and_typed_fields() {
    let t = TestStore::new().await;
    let org = acme(&t).await;
    let doc = t
        .insert_document(
            org.id,
            body(json!({"_id": "mine", "revision": "data", "n": 1, "f": 1.0})),
        )
        .await
        .unwrap();
    let raw = t.raw("org_acme").await;
    assert_eq!(raw.len(), 1);
    let stored = &raw[0];
    let mut keys: Vec<_> = stored.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "_id",
            "body",
            "created_at",
            "organization_id",
            "revision",
            "updated_at"
        ]
    );
    assert_eq!(stored.get_str("_id").unwrap(), doc.id.to_string());
    assert_eq!(
        stored.get_str("organization_id").unwrap(),
        org.id.to_string()
    );
    let stored_body = stored.get_document("body").unwrap();
    assert_eq!(stored_body.get_str("_id").unwrap(), "mine");
    assert_eq!(stored_body.get("f"), Some(&Bson::Double(1.0)));
    assert!(matches!(
        stored.get("revision"),
        Some(Bson::Int64(1) | Bson::Int32(1))
    ));
    assert_eq!(
        stored
            .get_datetime("created_at")
            .unwrap()
            .timestamp_millis(),
        doc.created_at.timestamp_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_created_under_a_former_name_starts_without_leftovers() {
    let t = TestStore::new().await;
    // Documents a racing write left behind after the former owner of the
    // name moved away.
    t.seed("org_acme", 0..5).await;
    let org = acme(&t).await;
    assert!(all_documents(&t.store(), org.id).await.is_empty());
    assert_listing_index(listing_index(&t, "org_acme").await);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_during_a_rename_are_busy() {
    let t = TestStore::new().await;
    let org = acme(&t).await;
    let doc = t
        .insert_document(org.id, body(json!({"v": 1})))
        .await
        .unwrap();
    let held = t.pause_after(Step::RenameNameClaimed);
    let rename = spawn_rename(&t, &org, "Acme Labs");
    let mut held = held;
    held.reached().await;

    let found = t.find_document(org.id, doc.id).await;
    assert!(matches!(found, Err(DocumentError::Busy)), "{found:?}");
    let listed = t.list_documents(org.id, Default::default()).await;
    assert!(matches!(listed, Err(DocumentError::Busy)), "{listed:?}");
    let inserted = t.insert_document(org.id, body(json!({}))).await;
    assert!(matches!(inserted, Err(DocumentError::Busy)), "{inserted:?}");
    let replaced = t
        .replace_document(org.id, doc.id, body(json!({})), None)
        .await;
    assert!(matches!(replaced, Err(DocumentError::Busy)), "{replaced:?}");
    let deleted = t.delete_document(org.id, doc.id, None).await;
    assert!(matches!(deleted, Err(DocumentError::Busy)), "{deleted:?}");

    held.resume();
    rename.await.unwrap().unwrap();
    assert_eq!(all_documents(&t.store(), org.id).await, [doc]);
    t.assert_consistent().await;
}

fn spawn_rename(
    t: &TestStore,
    org: &Organization,
    to: &str,
) -> tokio::task::JoinHandle<Result<Organization, RenameOrganizationError>> {
    let (store, id, to) = (t.store.clone(), org.id, name(to));
    tokio::spawn(async move { store.rename_organization(id, &to).await })
}

fn spawn_insert(
    store: &MongoStore,
    org: &Organization,
    value: Value,
) -> tokio::task::JoinHandle<Result<TenantDocument, DocumentError>> {
    let (store, id) = (store.clone(), org.id);
    tokio::spawn(async move { store.insert_document(id, body(value)).await })
}

/// An insert that read the record before the rename started and reaches the
/// server only after the whole rename: it lands in a recreated old
/// collection, is taken back, and answers `Busy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_arriving_after_the_whole_rename_is_withdrawn_and_refused() {
    let t = TestStore::new().await;
    let org = acme(&t).await;
    let before = t
        .insert_document(org.id, body(json!({"v": 0})))
        .await
        .unwrap();
    let mut writer_held = t.pause_after(Step::DocumentTargetRead);
    let insert = spawn_insert(&t.store, &org, json!({"late": true}));
    writer_held.reached().await;

    t.rename_organization(org.id, &name("Acme Labs"))
        .await
        .unwrap();
    writer_held.resume();
    let late = insert.await.unwrap();
    assert!(matches!(late, Err(DocumentError::Busy)), "{late:?}");

    assert_eq!(all_documents(&t.store(), org.id).await, [before]);
    assert!(t.raw("org_acme").await.is_empty(), "straggler left behind");
}

/// The same, when another organization took the old name in between: the
/// straggler is withdrawn from that organization's collection at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_arriving_after_the_old_name_was_reused_does_not_stay_there() {
    let t = TestStore::new().await;
    let org = acme(&t).await;
    let mut writer_held = t.pause_after(Step::DocumentTargetRead);
    let insert = spawn_insert(&t.store, &org, json!({"late": true}));
    writer_held.reached().await;

    t.rename_organization(org.id, &name("Acme Labs"))
        .await
        .unwrap();
    let newcomer = t
        .create_organization(new_org("Acme", "new@acme.example"))
        .await
        .unwrap();
    writer_held.resume();
    let late = insert.await.unwrap();
    assert!(matches!(late, Err(DocumentError::Busy)), "{late:?}");

    assert!(all_documents(&t.store(), newcomer.id).await.is_empty());
    assert!(all_documents(&t.store(), org.id).await.is_empty());
    t.assert_consistent().await;
}

/// An insert done before the rename moved the collection, whose writer only
/// then sees the record changed: the move carried it, so it succeeds.
async fn insert_before_the_move_is_carried(force_copy: bool) {
    let t = TestStore::new().await;
    if force_copy {
        t.force_copy_fallback();
    }
    let org = acme(&t).await;
    let mut writer_held = t.pause_after(Step::DocumentWritten);
    let insert = spawn_insert(&t.store, &org, json!({"early": true}));
    writer_held.reached().await;

    t.rename_organization(org.id, &name("Acme Labs"))
        .await
        .unwrap();
    writer_held.resume();
    let doc = insert.await.unwrap().unwrap();
    assert_eq!(all_documents(&t.store(), org.id).await, [doc]);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_done_before_the_move_is_carried_and_acknowledged() {
    insert_before_the_move_is_carried(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_done_before_a_batched_copy_is_carried_and_acknowledged() {
    insert_before_the_move_is_carried(true).await;
}

/// An insert done after the rename recorded itself but before the move: the
/// writer takes it back and answers `Busy`; the move never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_done_before_the_move_but_after_the_rename_started_is_withdrawn() {
    let t = TestStore::new().await;
    let org = acme(&t).await;
    let mut writer_held = t.pause_after(Step::DocumentWritten);
    let insert = spawn_insert(&t.store, &org, json!({"racing": true}));
    writer_held.reached().await;
    let mut rename_held = t.pause_after(Step::RenameNameClaimed);
    let rename = spawn_rename(&t, &org, "Acme Labs");
    rename_held.reached().await;

    writer_held.resume();
    let racing = insert.await.unwrap();
    assert!(matches!(racing, Err(DocumentError::Busy)), "{racing:?}");
    rename_held.resume();
    rename.await.unwrap().unwrap();
    assert!(all_documents(&t.store(), org.id).await.is_empty());
    t.assert_consistent().await;
}

/// A straggler insert that lands in the old collection after the move but
/// before the sweep, its writer still away: the sweep carries it to the new
/// collection, and the writer, back, finds it there and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_straggler_insert_before_the_sweep_is_carried_by_the_sweep() {
    let t = TestStore::new().await;
    let org = acme(&t).await;
    let seeded = t
        .insert_document(org.id, body(json!({"v": 0})))
        .await
        .unwrap();
    let mut writer_read = t.pause_after(Step::DocumentTargetRead);
    let insert = spawn_insert(&t.store, &org, json!({"straggler": true}));
    writer_read.reached().await;
    let mut rename_held = t.pause_after(Step::RenameRecordUpdated);
    let rename = spawn_rename(&t, &org, "Acme Labs");
    rename_held.reached().await;
    assert!(t.raw("org_acme").await.is_empty(), "the move is done");

    let mut writer_wrote = t.pause_after(Step::DocumentWritten);
    writer_read.resume();
    writer_wrote.reached().await;
    assert_eq!(t.raw("org_acme").await.len(), 1, "the straggler landed");

    rename_held.resume();
    rename.await.unwrap().unwrap();
    writer_wrote.resume();
    let straggler = insert.await.unwrap().unwrap();
    assert_eq!(all_documents(&t.store(), org.id).await, [seeded, straggler]);
    t.assert_consistent().await;
}

/// A straggler insert whose writer dies before checking the record: the
/// sweep still carries it (a failed write may have been applied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_straggler_of_a_writer_that_died_is_swept_into_the_new_collection() {
    let t = TestStore::new().await;
    let org = acme(&t).await;
    let mut rename_held = t.pause_after(Step::RenameRecordUpdated);
    let mut writer_read = t.pause_after(Step::DocumentTargetRead);
    let insert = spawn_insert(&t.store, &org, json!({"orphan": true}));
    writer_read.reached().await;
    let rename = spawn_rename(&t, &org, "Acme Labs");
    rename_held.reached().await;

    t.fail_after(Step::DocumentWritten);
    writer_read.resume();
    let died = insert.await.unwrap();
    assert!(matches!(died, Err(DocumentError::Store(_))), "{died:?}");
    rename_held.resume();
    rename.await.unwrap().unwrap();
    let docs = all_documents(&t.store(), org.id).await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].body.as_map()["orphan"], json!(true));
    t.assert_consistent().await;
}

/// A replace or delete that read the document before the rename and arrives
/// after the copy claimed it changes nothing and answers `Busy`; the
/// document moves unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_document_claimed_by_the_copy_are_refused() {
    let t = TestStore::new().await;
    t.force_copy_fallback();
    let org = acme(&t).await;
    let doc = t
        .insert_document(org.id, body(json!({"v": 1})))
        .await
        .unwrap();

    for delete in [false, true] {
        let mut writer_held = t.pause_after(Step::DocumentTargetRead);
        let write = {
            let (store, id) = (t.store.clone(), org.id);
            tokio::spawn(async move {
                if delete {
                    store.delete_document(id, doc.id, Some(1)).await.map(drop)
                } else {
                    store
                        .replace_document(id, doc.id, body(json!({"v": 2})), None)
                        .await
                        .map(drop)
                }
            })
        };
        writer_held.reached().await;
        // The copy claims every document, copies one batch and stops there.
        t.fail_after(Step::RenameCopyBatch);
        let to = if delete { "Acme Three" } else { "Acme Two" };
        let err = t.rename_organization(org.id, &name(to)).await.unwrap_err();
        assert!(matches!(err, RenameOrganizationError::Store(_)), "{err:?}");

        writer_held.resume();
        let refused = write.await.unwrap();
        assert!(matches!(refused, Err(DocumentError::Busy)), "{refused:?}");
        t.reconcile(Duration::ZERO).await.unwrap();
        assert_eq!(
            all_documents(&t.store(), org.id).await,
            std::slice::from_ref(&doc)
        );
        t.assert_consistent().await;
    }
}

/// Inserts, replacements and deletions run continuously while the
/// collection is moved by the batched copy: every acknowledged write is
/// reflected afterwards, every refused one left no trace, and no claim
/// marker or old collection remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_writes_during_a_batched_copy_are_applied_or_refused_never_lost() {
    let t = TestStore::new().await;
    t.force_copy_fallback();
    let org = acme(&t).await;
    let mut seeded = Vec::new();
    for n in 0..1_500 {
        seeded.push(
            t.insert_document(org.id, body(json!({ "seed": n })))
                .await
                .unwrap(),
        );
    }
    let done = Arc::new(AtomicBool::new(false));

    // Inserts, from several writers at once.
    let inserters: Vec<_> = (0..4)
        .map(|writer| {
            let (store, done) = (t.store.clone(), done.clone());
            tokio::spawn(async move {
                let (mut acknowledged, mut refused) = (Vec::new(), 0);
                let mut n = 0;
                while !done.load(Ordering::SeqCst) {
                    n += 1;
                    let value = json!({ "writer": writer, "insert": n });
                    match store.insert_document(org.id, body(value)).await {
                        Ok(doc) => acknowledged.push(doc),
                        Err(DocumentError::Busy) => refused += 1,
                        Err(other) => panic!("insert {n} of writer {writer}: {other:?}"),
                    }
                }
                (acknowledged, refused)
            })
        })
        .collect();
    // Replacements and deletions of seeded documents.
    let changer = {
        let (store, done, seeded) = (t.store.clone(), done.clone(), seeded.clone());
        tokio::spawn(async move {
            let mut outcome: BTreeMap<DocumentId, Option<TenantDocument>> = BTreeMap::new();
            let mut busy = 0;
            for (i, doc) in seeded.iter().enumerate().skip(1).step_by(7) {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let result = if i % 2 == 0 {
                    store
                        .delete_document(org.id, doc.id, Some(1))
                        .await
                        .map(|()| None)
                } else {
                    store
                        .replace_document(org.id, doc.id, body(json!({ "replaced": i })), Some(1))
                        .await
                        .map(Some)
                };
                match result {
                    Ok(after) => {
                        outcome.insert(doc.id, after);
                    }
                    Err(DocumentError::Busy) => busy += 1,
                    Err(other) => panic!("change of {i}: {other:?}"),
                }
            }
            (outcome, busy)
        })
    };

    tokio::time::sleep(Duration::from_millis(30)).await;
    for attempt in 0.. {
        match t.rename_organization(org.id, &name("Acme Moved")).await {
            Ok(_) => break,
            Err(RenameOrganizationError::Busy) if attempt < 100 => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(other) => panic!("rename: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    done.store(true, Ordering::SeqCst);
    let (mut inserted, mut refused_inserts) = (Vec::new(), 0);
    for inserter in inserters {
        let (acknowledged, refused) = inserter.await.unwrap();
        inserted.extend(acknowledged);
        refused_inserts += refused;
    }
    let (changed, refused_changes) = changer.await.unwrap();

    let mut expected: BTreeMap<DocumentId, TenantDocument> =
        seeded.into_iter().map(|d| (d.id, d)).collect();
    for (id, after) in &changed {
        match after {
            Some(doc) => expected.insert(*id, doc.clone()),
            None => expected.remove(id),
        };
    }
    expected.extend(inserted.iter().map(|d| (d.id, d.clone())));
    let stored: BTreeMap<DocumentId, TenantDocument> = all_documents(&t.store(), org.id)
        .await
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    let missing: BTreeSet<_> = expected
        .keys()
        .filter(|id| !stored.contains_key(id))
        .collect();
    let unexpected: BTreeSet<_> = stored
        .keys()
        .filter(|id| !expected.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged documents lost: {missing:?}"
    );
    assert!(
        unexpected.is_empty(),
        "refused documents stored: {unexpected:?}"
    );
    assert_eq!(stored, expected, "a document has the wrong version");
    assert!(!inserted.is_empty() && !changed.is_empty());
    println!(
        "inserts: {} acknowledged, {refused_inserts} refused; changes: {} applied, {refused_changes} refused",
        inserted.len(),
        changed.len()
    );

    let markers =
        t.db.collection::<Document>("org_acme_moved")
            .count_documents(doc! { "moving": { "$exists": true } })
            .await
            .unwrap();
    assert_eq!(markers, 0);
    t.assert_consistent().await;
}
