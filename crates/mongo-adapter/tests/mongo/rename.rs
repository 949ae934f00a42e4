//! Moving tenant data on rename: every document, `_id` and index.

use orgsvc_domain::{RenameOrganizationError, TenantStore};

use crate::support::{name, new_org, TestStore};

async fn rename_moves_documents_and_indexes(force_copy: bool) {
    let t = TestStore::new().await;
    if force_copy {
        t.force_copy_fallback();
    }
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.seed("org_acme", 0..2_500).await;
    let seeded = t.documents("org_acme").await;

    let renamed = t
        .rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap();

    assert_eq!(renamed.location.collection.as_str(), "org_acme_labs");
    assert_eq!(
        t.documents("org_acme_labs").await,
        TestStore::tagged(&seeded, acme.id)
    );
    assert!(t.has_index_on("org_acme_labs", "value").await);
    assert!(!t.tenant_collections().await.contains("org_acme"));
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_moves_every_document_and_index_to_the_new_collection() {
    rename_moves_documents_and_indexes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_by_batched_copy_moves_every_document_and_index() {
    rename_moves_documents_and_indexes(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_to_a_respelling_moves_no_data() {
    let t = TestStore::new().await;
    let acme = t
        .create_organization(new_org("acme corp", "owner@acme.example"))
        .await
        .unwrap();
    t.seed("org_acme_corp", 0..10).await;
    let renamed = t
        .rename_organization(acme.id, &name("ACME-Corp"))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "ACME-Corp");
    assert_eq!(renamed.location, acme.location);
    assert_eq!(t.documents("org_acme_corp").await.len(), 10);
    assert!(t.has_index_on("org_acme_corp", "value").await);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_back_to_a_former_name_moves_the_data_back() {
    let t = TestStore::new().await;
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.seed("org_acme", 0..10).await;
    let seeded = t.documents("org_acme").await;
    t.rename_organization(acme.id, &name("Beta")).await.unwrap();
    let back = t.rename_organization(acme.id, &name("Acme")).await.unwrap();
    assert_eq!(back.location.collection.as_str(), "org_acme");
    assert_eq!(
        t.documents("org_acme").await,
        TestStore::tagged(&seeded, acme.id)
    );
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_renames_to_one_name_move_only_the_winners_documents() {
    let t = TestStore::new().await;
    let alpha = t
        .create_organization(new_org("Alpha", "a@alpha.example"))
        .await
        .unwrap();
    let beta = t
        .create_organization(new_org("Beta", "b@beta.example"))
        .await
        .unwrap();
    t.seed("org_alpha", 0..300).await;
    t.seed("org_beta", 1_000..1_300).await;
    let alpha_docs = t.documents("org_alpha").await;
    let beta_docs = t.documents("org_beta").await;
    let (alpha_moved, beta_moved) = (
        TestStore::tagged(&alpha_docs, alpha.id),
        TestStore::tagged(&beta_docs, beta.id),
    );

    let rename = |id| {
        let store = t.store.clone();
        tokio::spawn(async move { store.rename_organization(id, &name("Gamma")).await })
    };
    let (a, b) = (rename(alpha.id), rename(beta.id));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());

    let (winner_docs, loser_collection, loser_docs) = match (&a, &b) {
        (Ok(_), Err(RenameOrganizationError::NameTaken)) => (alpha_moved, "org_beta", beta_docs),
        (Err(RenameOrganizationError::NameTaken), Ok(_)) => (beta_moved, "org_alpha", alpha_docs),
        other => panic!("expected one winner and one NameTaken: {other:?}"),
    };
    assert_eq!(t.documents("org_gamma").await, winner_docs);
    assert_eq!(t.documents(loser_collection).await, loser_docs);
    t.assert_consistent().await;
}

/// The copy with each batch in a transaction (what replica sets get). The
/// stand-in accepts transactions without isolating them, so this proves the
/// path's steps and bookkeeping, not its atomicity (CI on a real MongoDB
/// replica set does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_with_transactional_copy_batches_moves_every_document() {
    let t = TestStore::new().await;
    if !accepts_transactions(&t).await {
        eprintln!("skipped: the server runs no transactions (a standalone mongod)");
        return;
    }
    t.force_copy_fallback();
    t.force_transactions();
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let seeded = t.seed_documents("org_acme", acme.id, 2_500).await;
    t.rename_organization(acme.id, &name("Acme Labs"))
        .await
        .unwrap();
    assert_eq!(
        t.ids_of("org_acme_labs", acme.id).await,
        seeded.into_iter().collect()
    );
    assert!(!t.tenant_collections().await.contains("org_acme"));
    t.assert_consistent().await;
}

/// Whether the server accepts a multi-document transaction (a standalone
/// `mongod` refuses `startTransaction` writes: IllegalOperation).
async fn accepts_transactions(t: &TestStore) -> bool {
    let client = t.db.client();
    let Ok(mut session) = client.start_session().await else {
        return false;
    };
    if session.start_transaction().await.is_err() {
        return false;
    }
    let written =
        t.db.collection::<mongodb::bson::Document>("transaction_probe")
            .insert_one(mongodb::bson::doc! { "probe": 1 })
            .session(&mut session)
            .await;
    written.is_ok() && session.commit_transaction().await.is_ok()
}
