//! Many tasks on one store: writes serialize, reads run beside them.

use orgsvc_domain::testing::new_org;
use orgsvc_domain::TenantStore;

use crate::support::{connect, migrated_store, name};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_and_renames_of_distinct_organizations_all_succeed() {
    let test = migrated_store().await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = test.store.clone();
            tokio::spawn(async move {
                let created = store
                    .create_organization(new_org(&format!("Org {i}"), &format!("a{i}@org.example")))
                    .await
                    .unwrap();
                assert!(store
                    .organization_by_id(created.id)
                    .await
                    .unwrap()
                    .is_some());
                store
                    .rename_organization(created.id, &name(&format!("Renamed {i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();

    let mut renamed = Vec::new();
    for task in tasks {
        renamed.push(task.await.unwrap());
    }

    for (i, organization) in renamed.iter().enumerate() {
        let found = test
            .store
            .organization_by_name(&name(&format!("renamed-{i}")))
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(organization));
        assert_eq!(
            organization.location.collection.as_str(),
            format!("org_renamed_{i}")
        );
        assert!(test
            .store
            .organization_by_name(&name(&format!("org-{i}")))
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn writes_commit_while_another_connection_holds_a_read_open() {
    let test = migrated_store().await;
    let reader = connect(&test.path);
    reader.execute_batch("BEGIN").unwrap();
    let before: i64 = reader
        .query_row("SELECT count(*) FROM organizations", [], |row| row.get(0))
        .unwrap();

    // Without WAL this commit would wait for the reader and time out.
    let created = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();

    let during: i64 = reader
        .query_row("SELECT count(*) FROM organizations", [], |row| row.get(0))
        .unwrap();
    assert_eq!((before, during), (0, 0), "the open read keeps its snapshot");
    reader.execute_batch("COMMIT").unwrap();
    assert_eq!(
        test.store.organization_by_id(created.id).await.unwrap(),
        Some(created)
    );
}
