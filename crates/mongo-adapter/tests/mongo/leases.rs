//! Leases on lifecycle operations (see the adapter's `lease.rs`): a running
//! operation that keeps renewing is never taken over, however long it runs;
//! an abandoned one is taken over exactly once; a process that lost its
//! lease while paused changes nothing when it resumes and answers with the
//! operation's outcome; a draining process gives its lease up.

use std::time::{Duration, Instant};

use orgsvc_domain::{
    CreateOrganizationError, DocumentId, Organization, ReconcileReport, RenameOrganizationError,
    TenantStore,
};
use orgsvc_mongo::{MongoStore, Paused, Step};
use tokio::task::JoinHandle;

use crate::support::{email, name, new_org, TestStore};

const LEASE: Duration = Duration::from_secs(2);

/// Documents in the renamed organization: three copy batches.
const DOCS: usize = 2_500;

async fn store_with_short_leases() -> TestStore {
    let t = TestStore::new().await.with_lease_timeout(LEASE);
    t.force_copy_fallback();
    t
}

async fn second_process(t: &TestStore) -> MongoStore {
    t.second_process().await.with_lease_timeout(LEASE)
}

/// Acme with [`DOCS`] documents, its rename to Acme Labs started and held
/// right after its first copied batch.
struct HeldRename {
    acme: Organization,
    seeded: Vec<String>,
    paused: Paused,
    rename: JoinHandle<Result<Organization, RenameOrganizationError>>,
}

async fn rename_held_mid_copy(t: &TestStore) -> HeldRename {
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let seeded = t.seed_documents("org_acme", acme.id, DOCS).await;
    let mut paused = t.pause_after(Step::RenameCopyBatch);
    let store = t.store.clone();
    let rename =
        tokio::spawn(async move { store.rename_organization(acme.id, &name("Acme Labs")).await });
    paused.reached().await;
    HeldRename {
        acme,
        seeded,
        paused,
        rename,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_that_keeps_renewing_its_lease_is_never_taken_over() {
    let t = store_with_short_leases().await;
    let HeldRename {
        acme,
        seeded,
        paused,
        rename,
    } = rename_held_mid_copy(&t).await;

    // Held mid-copy for three lease timeouts while its renewals go on:
    // reconcilers elsewhere see a live operation and leave it alone.
    let other = second_process(&t).await;
    let held_until = Instant::now() + LEASE * 3;
    while Instant::now() < held_until {
        assert_eq!(
            other.reconcile(LEASE).await.unwrap(),
            ReconcileReport::default()
        );
        tokio::time::sleep(LEASE / 4).await;
    }
    paused.resume();

    let renamed = rename.await.unwrap().unwrap();
    assert_eq!(renamed.name.as_str(), "Acme Labs");
    assert_eq!(
        t.ids_of("org_acme_labs", acme.id).await,
        seeded.into_iter().collect()
    );
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_rename_is_taken_over_once_and_changes_nothing_when_it_resumes() {
    let t = store_with_short_leases().await;
    // The process freezes mid-copy (as under `kill -STOP`): its request
    // held after a copied batch, no renewals.
    let HeldRename {
        acme,
        seeded,
        paused,
        rename,
    } = rename_held_mid_copy(&t).await;
    t.freeze_lease_renewals(true);
    tokio::time::sleep(LEASE + LEASE / 2).await;

    // Two reconcilers race for the expired lease: exactly one completes it.
    let (b1, b2) = (second_process(&t).await, second_process(&t).await);
    let (r1, r2) = tokio::join!(b1.reconcile(LEASE), b2.reconcile(LEASE));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.completed + r2.completed, 1, "{r1:?} {r2:?}");
    let renamed = b1.organization_by_id(acme.id).await.unwrap().unwrap();
    assert_eq!(renamed.name.as_str(), "Acme Labs");

    // Life goes on meanwhile: documents of the renamed organization are
    // deleted, and a new organization takes the old name and stores its own.
    let deleted: Vec<String> = seeded.iter().take(100).cloned().collect();
    for id in &deleted {
        b1.delete_document(acme.id, id.parse::<DocumentId>().unwrap(), None)
            .await
            .unwrap();
    }
    let newcomer = b1
        .create_organization(new_org("Acme", "owner@new-acme.example"))
        .await
        .unwrap();
    for i in 0..100 {
        b1.insert_document(
            newcomer.id,
            crate::documents::body(serde_json::json!({"i": i})),
        )
        .await
        .unwrap();
    }

    // The frozen process resumes: it finds its lease gone, writes nothing,
    // and answers with the outcome: the organization has the requested name.
    t.freeze_lease_renewals(false);
    paused.resume();
    let answer = rename.await.unwrap();
    let answer = answer.unwrap();
    assert_eq!(answer.name.as_str(), "Acme Labs");

    let expected: std::collections::BTreeSet<String> = seeded.iter().skip(100).cloned().collect();
    assert_eq!(t.ids_of("org_acme_labs", acme.id).await, expected);
    assert!(t.ids_of("org_acme_labs", newcomer.id).await.is_empty());
    assert_eq!(t.ids_of("org_acme", newcomer.id).await.len(), 100);
    assert!(t.ids_of("org_acme", acme.id).await.is_empty());
    assert_eq!(t.raw("org_acme").await.len(), 100);
    assert_eq!(t.raw("org_acme_labs").await.len(), DOCS - 100);
    t.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_creation_rolled_back_elsewhere_leaves_nothing_when_it_resumes() {
    for step in [Step::CreateNameClaimed, Step::CreateAdminInserted] {
        let t = store_with_short_leases().await;
        let mut paused = t.pause_after(step);
        let store = t.store.clone();
        let create = tokio::spawn(async move {
            store
                .create_organization(new_org("Acme", "owner@acme.example"))
                .await
        });
        paused.reached().await;
        t.freeze_lease_renewals(true);
        tokio::time::sleep(LEASE + LEASE / 2).await;

        let other = second_process(&t).await;
        assert_eq!(
            other.reconcile(LEASE).await.unwrap(),
            ReconcileReport {
                completed: 0,
                rolled_back: 1
            },
            "{step:?}"
        );
        // The name and the email are free again and taken by a newcomer.
        let newcomer = other
            .create_organization(new_org("Acme", "owner@acme.example"))
            .await
            .unwrap();
        let doc = other
            .insert_document(
                newcomer.id,
                crate::documents::body(serde_json::json!({"x": 1})),
            )
            .await
            .unwrap();

        t.freeze_lease_renewals(false);
        paused.resume();
        let err = create.await.unwrap().unwrap_err();
        assert!(
            matches!(err, CreateOrganizationError::NameTaken),
            "{step:?}: {err:?}"
        );
        assert_eq!(t.raw("organizations").await.len(), 1, "{step:?}");
        assert_eq!(t.raw("admins").await.len(), 1, "{step:?}");
        assert_eq!(
            t.find_document(newcomer.id, doc.id).await.unwrap().id,
            doc.id
        );
        let login = t
            .admin_credentials_by_email(&email("owner@acme.example"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.admin.organization_id, newcomer.id);
        t.assert_consistent().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_whose_organization_is_gone_does_not_hold_its_email() {
    let t = TestStore::new().await;
    t.db.collection::<mongodb::bson::Document>("admins")
        .insert_one(orphan_admin("owner@acme.example"))
        .await
        .unwrap();
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let admin = t
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.admin.organization_id, acme.id);

    // The same for an admin added to an existing organization.
    t.db.collection::<mongodb::bson::Document>("admins")
        .insert_one(orphan_admin("second@acme.example"))
        .await
        .unwrap();
    let second = t
        .add_admin(
            acme.id,
            orgsvc_domain::NewAdmin::new(
                email("second@acme.example"),
                orgsvc_domain::AdminRole::Admin,
                orgsvc_domain::PasswordHash::from_phc_string("$argon2id$dummy".into()),
            ),
        )
        .await
        .unwrap();
    assert_eq!(second.organization_id, acme.id);
    t.assert_consistent().await;
}

/// An admin record whose organization does not exist, as a process that
/// lost its lease while paused could leave behind.
fn orphan_admin(address: &str) -> mongodb::bson::Document {
    mongodb::bson::doc! {
        "_id": uuid::Uuid::now_v7().to_string(),
        "revision": 0_i64,
        "organization_id": orgsvc_domain::OrganizationId::new().to_string(),
        "email": address,
        "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "role": "owner",
        "role_revision": 0_i64,
        "token_version": 0_i64,
        "created_at": mongodb::bson::DateTime::now(),
        "updated_at": mongodb::bson::DateTime::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_rename_gives_its_lease_up_and_another_process_finishes_it() {
    let t = TestStore::new()
        .await
        .with_lease_timeout(Duration::from_secs(60));
    t.force_copy_fallback();
    let HeldRename {
        acme,
        seeded,
        paused,
        rename,
    } = rename_held_mid_copy(&t).await;

    t.begin_drain(Instant::now());
    paused.resume();
    let err = rename.await.unwrap().unwrap_err();
    assert!(matches!(err, RenameOrganizationError::Busy), "{err:?}");

    // Without waiting for the 60 s lease timeout, another instance takes the
    // released operation over.
    let other = t
        .second_process()
        .await
        .with_lease_timeout(Duration::from_secs(60));
    assert_eq!(
        other.reconcile(Duration::from_secs(60)).await.unwrap(),
        ReconcileReport {
            completed: 1,
            rolled_back: 0
        }
    );
    assert_eq!(
        t.ids_of("org_acme_labs", acme.id).await,
        seeded.into_iter().collect()
    );
    t.assert_consistent().await;
}
