//! The shared layout (issue #16): organizations whose documents live in
//! `tenant_documents`, scoped by organization id, and moves of an
//! organization's documents between the layouts.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mongodb::bson::{doc, Document};
use orgsvc_domain::testing::{all_documents, ContractFixture};
use orgsvc_domain::{
    DeleteOrganizationError, DocumentBody, DocumentError, DocumentId, DocumentQuery,
    MoveTenantError, Organization, PageSize, RenameOrganizationError, TenantLayout, TenantStore,
    UsageError,
};
use orgsvc_mongo::Step;
use serde_json::json;

use crate::support::{name, new_org, TestStore};

const SHARED: &str = "tenant_documents";

fn body(value: serde_json::Value) -> DocumentBody {
    DocumentBody::parse(value).unwrap()
}

async fn create(t: &TestStore, org: &str) -> Organization {
    let email = format!("owner@{}.example", org.to_lowercase().replace(' ', "-"));
    t.create_organization(new_org(org, &email)).await.unwrap()
}

/// The raw documents of `organization` in the shared collection, by `_id`.
async fn shared_of(t: &TestStore, organization: &Organization) -> Vec<Document> {
    let mut docs: Vec<Document> = t
        .raw(SHARED)
        .await
        .into_iter()
        .filter(|d| d.get_str("organization_id") == Ok(&organization.id.to_string()))
        .collect();
    docs.sort_by(|a, b| a.get_str("_id").unwrap().cmp(b.get_str("_id").unwrap()));
    docs
}

fn ids(documents: &[orgsvc_domain::TenantDocument]) -> BTreeSet<String> {
    documents.iter().map(|d| d.id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_organization_has_no_collection_and_a_rename_moves_no_document() {
    let t = TestStore::new().await.with_tenancy(TenantLayout::Shared);
    let acme = create(&t, "Acme").await;
    assert_eq!(acme.location.layout, TenantLayout::Shared);
    assert_eq!(acme.location.collection.as_str(), "org_acme");
    assert_eq!(acme.location.physical_collection(), SHARED);
    for n in 0..20 {
        t.insert_document(acme.id, body(json!({ "n": n })))
            .await
            .unwrap();
    }
    assert!(t.tenant_collections().await.is_empty());
    let before = shared_of(&t, &acme).await;
    assert_eq!(before.len(), 20);
    for document in &before {
        assert_eq!(document.get("id"), document.get("_id"), "{document:?}");
    }
    let record = &t.raw("organizations").await[0];
    assert_eq!(record.get_str("layout").unwrap(), "shared");

    let renamed = t
        .rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap();

    assert_eq!(renamed.location.collection.as_str(), "org_acme_labs");
    assert_eq!(renamed.location.layout, TenantLayout::Shared);
    assert_eq!(shared_of(&t, &acme).await, before, "a document changed");
    assert!(t.tenant_collections().await.is_empty());
    assert_eq!(all_documents(&t.store(), acme.id).await.len(), 20);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_layout_are_read_as_a_collection_of_their_own() {
    let t = TestStore::new().await;
    let acme = create(&t, "Acme").await;
    t.insert_document(acme.id, body(json!({"v": 1})))
        .await
        .unwrap();
    t.db.collection::<Document>("organizations")
        .update_one(
            doc! { "_id": acme.id.to_string() },
            doc! { "$unset": { "layout": "" } },
        )
        .await
        .unwrap();
    let found = t.organization_by_id(acme.id).await.unwrap().unwrap();
    assert_eq!(found.location.layout, TenantLayout::Collection);
    assert_eq!(all_documents(&t.store(), acme.id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_organizations_see_only_their_own_documents() {
    let t = TestStore::new().await.with_tenancy(TenantLayout::Shared);
    let (acme, globex) = (create(&t, "Acme").await, create(&t, "Globex").await);
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    for n in 0..15 {
        ours.push(
            t.insert_document(acme.id, body(json!({ "n": n, "kind": "x" })))
                .await
                .unwrap(),
        );
        theirs.push(
            t.insert_document(globex.id, body(json!({ "n": n, "kind": "x" })))
                .await
                .unwrap(),
        );
    }
    // A document in the shared collection without an organization is
    // nobody's (unlike in a collection of one's own).
    t.db.collection::<Document>(SHARED)
        .insert_one(doc! {
            "_id": DocumentId::new().to_string(), "id": "x", "body": { "kind": "x" },
            "revision": 1_i64, "created_at": mongodb::bson::DateTime::now(),
            "updated_at": mongodb::bson::DateTime::now(),
        })
        .await
        .unwrap();

    let store = t.store();
    assert_eq!(all_documents(&store, acme.id).await, ours);
    assert_eq!(all_documents(&store, globex.id).await, theirs);
    let mut query = DocumentQuery {
        limit: PageSize::parse(4).unwrap(),
        filters: DocumentQuery::parse_filters(json!({"kind": "x"})).unwrap(),
        ..DocumentQuery::default()
    };
    let mut paged = Vec::new();
    loop {
        let page = t.list_documents(acme.id, query.clone()).await.unwrap();
        paged.extend(page.documents);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, ours);

    let foreign = theirs[0].id;
    assert!(matches!(
        t.find_document(acme.id, foreign).await,
        Err(DocumentError::NotFound)
    ));
    assert!(matches!(
        t.replace_document(acme.id, foreign, body(json!({})), None)
            .await,
        Err(DocumentError::NotFound)
    ));
    assert!(matches!(
        t.delete_document(acme.id, foreign, None).await,
        Err(DocumentError::NotFound)
    ));
    assert_eq!(
        t.find_document(globex.id, foreign).await.unwrap(),
        theirs[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_shared_organization_removes_only_its_documents() {
    let t = TestStore::new().await.with_tenancy(TenantLayout::Shared);
    let (acme, globex) = (create(&t, "Acme").await, create(&t, "Globex").await);
    for n in 0..10 {
        t.insert_document(acme.id, body(json!({ "n": n })))
            .await
            .unwrap();
    }
    let kept = t
        .insert_document(globex.id, body(json!({ "kept": true })))
        .await
        .unwrap();

    t.delete_organization(acme.id).await.unwrap();

    assert!(shared_of(&t, &acme).await.is_empty());
    assert_eq!(shared_of(&t, &globex).await.len(), 1);
    assert_eq!(all_documents(&t.store(), globex.id).await, vec![kept]);
    let again = create(&t, "Acme").await;
    assert!(all_documents(&t.store(), again.id).await.is_empty());
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_deletion_interrupted_by_a_crash_is_completed_by_reconcile() {
    let t = TestStore::new().await.with_tenancy(TenantLayout::Shared);
    let (acme, globex) = (create(&t, "Acme").await, create(&t, "Globex").await);
    for n in 0..10 {
        t.insert_document(acme.id, body(json!({ "n": n })))
            .await
            .unwrap();
        t.insert_document(globex.id, body(json!({ "n": n })))
            .await
            .unwrap();
    }
    t.fail_after(Step::DeleteAdminsRemoved);
    t.delete_organization(acme.id).await.unwrap_err();
    assert_eq!(shared_of(&t, &acme).await.len(), 10);

    let report = t.reconcile(Duration::ZERO).await.unwrap();
    assert_eq!(report.completed, 1);

    assert!(shared_of(&t, &acme).await.is_empty());
    assert_eq!(all_documents(&t.store(), globex.id).await.len(), 10);
    assert!(t.organization_by_id(acme.id).await.unwrap().is_none());
    t.assert_consistent().await;
}

/// Moves `organization` to `to` and back, checking every document, id and
/// tag after each move.
async fn move_both_ways(t: &TestStore, acme: &Organization, seeded: usize) {
    let store = t.store();
    let before = all_documents(&store, acme.id).await;
    assert_eq!(before.len(), seeded);

    let moved = t.move_tenant(acme.id, TenantLayout::Shared).await.unwrap();
    assert!(moved.moved);
    assert_eq!(moved.documents, seeded as u64);
    assert_eq!(moved.organization.location.layout, TenantLayout::Shared);
    assert!(!t.tenant_collections().await.contains("org_acme"));
    assert_eq!(shared_of(t, acme).await.len(), seeded);
    assert_eq!(all_documents(&store, acme.id).await, before);
    t.assert_consistent().await;

    let back = t
        .move_tenant(acme.id, TenantLayout::Collection)
        .await
        .unwrap();
    assert!(back.moved);
    assert_eq!(back.documents, seeded as u64);
    assert_eq!(back.organization.location.layout, TenantLayout::Collection);
    assert!(shared_of(t, acme).await.is_empty());
    let own = t.raw("org_acme").await;
    assert_eq!(own.len(), seeded);
    assert!(own
        .iter()
        .all(|d| !d.contains_key("id") && !d.contains_key("moving")));
    assert_eq!(all_documents(&store, acme.id).await, before);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_shared_and_back_keeps_every_document_and_id() {
    let t = TestStore::new().await;
    let acme = create(&t, "Acme").await;
    let globex = create(&t, "Globex").await;
    t.insert_document(globex.id, body(json!({ "theirs": 1 })))
        .await
        .unwrap();
    t.seed_documents("org_acme", acme.id, 2_500).await;
    move_both_ways(&t, &acme, 2_500).await;
    assert_eq!(all_documents(&t.store(), globex.id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_with_transactional_copies_keeps_every_document() {
    let t = TestStore::new().await;
    t.force_transactions();
    let acme = create(&t, "Acme").await;
    t.seed_documents("org_acme", acme.id, 1_200).await;
    move_both_ways(&t, &acme, 1_200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_the_current_layout_changes_nothing() {
    let t = TestStore::new().await;
    let acme = create(&t, "Acme").await;
    t.seed_documents("org_acme", acme.id, 5).await;
    let records = t.raw("organizations").await;
    let same = t
        .move_tenant(acme.id, TenantLayout::Collection)
        .await
        .unwrap();
    assert!(!same.moved);
    assert_eq!(same.organization, acme);
    assert_eq!(t.raw("organizations").await, records);
    assert!(matches!(
        t.move_tenant(orgsvc_domain::OrganizationId::new(), TenantLayout::Shared)
            .await,
        Err(MoveTenantError::NotFound)
    ));
}

/// A move stopped by a crash after `step`, in either direction, is
/// completed by reconcile with every document exactly once.
async fn interrupted_move_is_completed_by_reconcile(step: Step) {
    let t = TestStore::new().await;
    let acme = create(&t, "Acme").await;
    let seeded: BTreeSet<String> = t
        .seed_documents("org_acme", acme.id, 2_500)
        .await
        .into_iter()
        .collect();
    for (to, source, target) in [
        (TenantLayout::Shared, "org_acme", SHARED),
        (TenantLayout::Collection, SHARED, "org_acme"),
    ] {
        t.fail_after(step);
        t.move_tenant(acme.id, to).await.unwrap_err();
        let found = t.organization_by_id(acme.id).await.unwrap().unwrap();
        assert_eq!(found.name.as_str(), "Acme", "still visible while moving");
        assert!(matches!(
            t.insert_document(acme.id, body(json!({}))).await,
            Err(DocumentError::Busy)
        ));

        let report = t.reconcile(Duration::ZERO).await.unwrap();
        assert_eq!(report.completed, 1, "{step:?} to {to:?}");

        let moved = t.organization_by_id(acme.id).await.unwrap().unwrap();
        assert_eq!(moved.location.layout, to);
        assert_eq!(
            t.ids_of(target, acme.id).await,
            seeded,
            "{step:?} to {to:?}"
        );
        assert_eq!(t.raw(target).await.len(), seeded.len(), "duplicated");
        if source == SHARED {
            assert!(t.ids_of(source, acme.id).await.is_empty());
        } else {
            assert!(!t.tenant_collections().await.contains(source));
        }
        assert_eq!(ids(&all_documents(&t.store(), acme.id).await), seeded);
        t.assert_consistent().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_interrupted_after_a_copy_batch_is_completed_by_reconcile() {
    interrupted_move_is_completed_by_reconcile(Step::RenameCopyBatch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_interrupted_after_the_layout_flip_is_completed_by_reconcile() {
    interrupted_move_is_completed_by_reconcile(Step::MoveLayoutFlipped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_interrupted_before_activating_is_completed_by_reconcile() {
    interrupted_move_is_completed_by_reconcile(Step::MoveSourceRemoved).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_move_is_completed_by_moving_again() {
    let t = TestStore::new().await;
    let acme = create(&t, "Acme").await;
    let seeded: BTreeSet<String> = t
        .seed_documents("org_acme", acme.id, 1_500)
        .await
        .into_iter()
        .collect();
    t.fail_after(Step::RenameCopyBatch);
    t.move_tenant(acme.id, TenantLayout::Shared)
        .await
        .unwrap_err();
    // The other way is refused while this move is pending.
    assert!(matches!(
        t.move_tenant(acme.id, TenantLayout::Collection).await,
        Err(MoveTenantError::Busy)
    ));

    // The command run again (here with a short lease timeout, so that the
    // crashed run's lease expires soon): it takes the move over.
    let rerun = t
        .second_process()
        .await
        .with_lease_timeout(Duration::from_millis(300));
    let again = rerun
        .move_tenant(acme.id, TenantLayout::Shared)
        .await
        .unwrap();

    assert!(again.moved);
    assert_eq!(again.documents, 1_500);
    assert_eq!(again.organization.location.layout, TenantLayout::Shared);
    assert_eq!(t.ids_of(SHARED, acme.id).await, seeded);
    assert_eq!(t.raw(SHARED).await.len(), 1_500);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_and_lifecycle_operations_during_a_move_are_busy() {
    let t = TestStore::new().await;
    let acme = create(&t, "Acme").await;
    let existing = t
        .insert_document(acme.id, body(json!({ "v": 1 })))
        .await
        .unwrap();
    t.seed_documents("org_acme", acme.id, 1_500).await;
    let mut paused = t.pause_after(Step::RenameCopyBatch);
    let mover = {
        let store = t.store();
        tokio::spawn(async move { store.move_tenant(acme.id, TenantLayout::Shared).await })
    };
    paused.reached().await;

    assert!(matches!(
        t.insert_document(acme.id, body(json!({}))).await,
        Err(DocumentError::Busy)
    ));
    assert!(matches!(
        t.find_document(acme.id, existing.id).await,
        Err(DocumentError::Busy)
    ));
    assert!(matches!(
        t.replace_document(acme.id, existing.id, body(json!({"v": 2})), None)
            .await,
        Err(DocumentError::Busy)
    ));
    assert!(matches!(
        t.delete_document(acme.id, existing.id, None).await,
        Err(DocumentError::Busy)
    ));
    assert!(matches!(
        t.rename_organization(acme.id, &name("Beta")).await,
        Err(RenameOrganizationError::Busy)
    ));
    assert!(matches!(
        t.delete_organization(acme.id).await,
        Err(DeleteOrganizationError::Busy)
    ));
    // Its documents are in two places: usage is not counted (not a store
    // failure either), and is again once the move is done.
    assert!(matches!(
        t.organization_usage(acme.id, Utc::now()).await,
        Err(UsageError::Busy)
    ));
    paused.resume();

    let moved = mover.await.unwrap().unwrap();
    assert_eq!(moved.documents, 1_501);
    let usage = t
        .organization_usage(acme.id, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(usage.documents, 1_501);
    assert_eq!(
        t.find_document(acme.id, existing.id).await.unwrap(),
        existing
    );
    t.assert_consistent().await;
}

/// Inserts, replacements and deletions running while the organization
/// moves are applied (and found afterwards) or refused as `Busy` (and
/// absent): never lost, never duplicated.
async fn writes_racing_a_move(to: TenantLayout) {
    let t = TestStore::new().await;
    let from = match to {
        TenantLayout::Shared => TenantLayout::Collection,
        TenantLayout::Collection => TenantLayout::Shared,
    };
    let t = t.with_tenancy(from);
    let acme = create(&t, "Acme").await;
    let mut seeded = Vec::new();
    for n in 0..200 {
        seeded.push(
            t.insert_document(acme.id, body(json!({ "seed": n })))
                .await
                .unwrap(),
        );
    }
    let store = t.store();
    let moved = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, moved, seeded) = (store.clone(), moved.clone(), seeded.clone());
        tokio::spawn(async move {
            let (mut inserted, mut deleted, mut refused) = (Vec::new(), Vec::new(), 0);
            let mut extra = 20;
            for n in 0..5_000 {
                match store
                    .insert_document(acme.id, body(json!({ "write": n })))
                    .await
                {
                    Ok(doc) => inserted.push(doc.id),
                    Err(DocumentError::Busy) => refused += 1,
                    Err(other) => panic!("insert {n} failed: {other:?}"),
                }
                if let Some(victim) = seeded.get(n) {
                    match store.delete_document(acme.id, victim.id, None).await {
                        Ok(()) => deleted.push(victim.id),
                        Err(DocumentError::Busy) => refused += 1,
                        Err(other) => panic!("delete {n} failed: {other:?}"),
                    }
                }
                if moved.load(Ordering::SeqCst) {
                    extra -= 1;
                    if extra == 0 {
                        break;
                    }
                }
            }
            (inserted, deleted, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut attempts = 0;
    let result = loop {
        match t.move_tenant(acme.id, to).await {
            Err(MoveTenantError::Busy) if attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other.unwrap(),
        }
    };
    moved.store(true, Ordering::SeqCst);
    let (inserted, deleted, refused) = writer.await.unwrap();
    assert!(result.moved);

    let found = ids(&all_documents(&store, acme.id).await);
    let mut expected: BTreeSet<String> = ids(&seeded);
    for id in &deleted {
        expected.remove(&id.to_string());
    }
    expected.extend(inserted.iter().map(ToString::to_string));
    assert_eq!(found, expected, "{refused} writes were refused");
    let collection = match to {
        TenantLayout::Shared => SHARED,
        TenantLayout::Collection => "org_acme",
    };
    assert_eq!(t.raw(collection).await.len(), expected.len(), "duplicated");
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_a_move_to_shared_are_applied_or_refused_never_lost() {
    writes_racing_a_move(TenantLayout::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_a_move_to_a_collection_are_applied_or_refused_never_lost() {
    writes_racing_a_move(TenantLayout::Collection).await;
}
