//! A fresh, migrated store per test, and ways to look at what it stored.

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::ops::Deref;
use std::sync::Arc;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::{Client, Database, IndexModel};
use orgsvc_domain::testing::ContractFixture;
use orgsvc_domain::{AdminEmail, OrganizationId, OrganizationName, TenantLayout, TenantStore};
use orgsvc_mongo::MongoStore;
use tokio::runtime::{Handle, RuntimeFlavor};

pub use orgsvc_domain::testing::new_org;

/// A fresh store for the contract suite; its database is dropped with it.
pub async fn fresh_store() -> TestStore {
    TestStore::new().await
}

/// A fresh store creating organizations in the shared layout.
pub async fn fresh_shared_store() -> TestStore {
    TestStore::new().await.with_tenancy(TenantLayout::Shared)
}

pub fn name(raw: &str) -> OrganizationName {
    OrganizationName::parse(raw).unwrap()
}

pub fn email(raw: &str) -> AdminEmail {
    AdminEmail::parse(raw).unwrap()
}

/// A store on its own database, which is dropped with it.
pub struct TestStore {
    pub store: MongoStore,
    pub db: Database,
}

impl TestStore {
    /// A store on a new database, migrated.
    pub async fn new() -> Self {
        let test = Self::unmigrated().await;
        test.store.migrate().await.unwrap();
        test
    }

    /// A store on a new, empty database.
    pub async fn unmigrated() -> Self {
        let uri = std::env::var("ORGSVC_TEST_MONGODB_URI").unwrap_or_else(|_| {
            panic!(
                "ORGSVC_TEST_MONGODB_URI is not set: run the tests with scripts/test, \
                 which starts a MongoDB stand-in, or set it to a server's URI"
            )
        });
        let name = format!(
            "orgsvc_test_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let store = MongoStore::connect(&uri, &name).await.unwrap();
        let db = Client::with_uri_str(&uri).await.unwrap().database(&name);
        Self { store, db }
    }

    /// Another store on the same database, like a second process.
    pub async fn second_process(&self) -> MongoStore {
        let uri = std::env::var("ORGSVC_TEST_MONGODB_URI").unwrap();
        MongoStore::connect(&uri, self.db.name()).await.unwrap()
    }

    /// The same test store creating organizations in `layout`.
    pub fn with_tenancy(mut self, layout: TenantLayout) -> Self {
        self.store = self.store.clone().with_tenancy(layout);
        self
    }

    /// The same test store with this lease timeout.
    pub fn with_lease_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.store = self.store.clone().with_lease_timeout(timeout);
        self
    }

    /// Inserts `n` tenant documents of `organization` into `collection`
    /// directly, in the stored shape (`{_id, organization_id, body,
    /// revision, created_at, updated_at}`), and returns their ids in order.
    pub async fn seed_documents(
        &self,
        collection: &str,
        organization: OrganizationId,
        n: usize,
    ) -> Vec<String> {
        let now = mongodb::bson::DateTime::now();
        let docs: Vec<Document> = (0..n)
            .map(|i| {
                doc! {
                    "_id": uuid::Uuid::now_v7().to_string(),
                    "organization_id": organization.to_string(),
                    "body": { "n": i as i64 },
                    "revision": 1_i64,
                    "created_at": now,
                    "updated_at": now,
                }
            })
            .collect();
        let tenant = self.db.collection::<Document>(collection);
        for chunk in docs.chunks(1_000) {
            tenant.insert_many(chunk).await.unwrap();
        }
        docs.iter()
            .map(|d| d.get_str("_id").unwrap().to_owned())
            .collect()
    }

    /// The ids of the documents in `collection` tagged with `organization`.
    pub async fn ids_of(&self, collection: &str, organization: OrganizationId) -> BTreeSet<String> {
        all(&self.db, collection)
            .await
            .iter()
            .filter(|d| d.get_str("organization_id").ok() == Some(&organization.to_string()))
            .map(|d| d.get_str("_id").unwrap().to_owned())
            .collect()
    }

    /// Inserts documents `{_id: i, value: "v<i>"}` for `i` in `ids` and an
    /// index on `value`.
    pub async fn seed(&self, collection: &str, ids: std::ops::Range<i32>) {
        let docs: Vec<Document> = ids
            .map(|i| doc! { "_id": i, "value": format!("v{i}") })
            .collect();
        let tenant = self.db.collection::<Document>(collection);
        for chunk in docs.chunks(1_000) {
            tenant.insert_many(chunk).await.unwrap();
        }
        tenant
            .create_index(IndexModel::builder().keys(doc! { "value": 1 }).build())
            .await
            .unwrap();
    }

    /// `docs` as a rename leaves them: tagged with their organization's id
    /// (seeded documents have none, as those written before tags existed).
    pub fn tagged(docs: &[Document], organization: OrganizationId) -> Vec<Document> {
        docs.iter()
            .map(|d| {
                let mut d = d.clone();
                d.insert("organization_id", organization.to_string());
                d
            })
            .collect()
    }

    /// Every document of a collection, ordered by `_id`.
    pub async fn documents(&self, collection: &str) -> Vec<Document> {
        let mut docs = all(&self.db, collection).await;
        docs.sort_by_key(|d| d.get_i32("_id").unwrap());
        docs
    }

    /// Whether the collection has an index on exactly `{field: 1}`.
    pub async fn has_index_on(&self, collection: &str, field: &str) -> bool {
        let indexes: Vec<IndexModel> = self
            .db
            .collection::<Document>(collection)
            .list_indexes()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        indexes.iter().any(|index| index.keys == doc! { field: 1 })
    }

    /// The tenant (`org_*`) collections that exist.
    pub async fn tenant_collections(&self) -> BTreeSet<String> {
        self.db
            .list_collection_names()
            .await
            .unwrap()
            .into_iter()
            .filter(|name| name.starts_with("org_"))
            .collect()
    }

    /// The raw documents of a master collection.
    pub async fn raw(&self, collection: &str) -> Vec<Document> {
        all(&self.db, collection).await
    }

    /// Checks the store's invariants once nothing is in progress: every
    /// organization active with its admin (an owner) and its collection, no
    /// admin without its organization or role, no half-done admin change or
    /// addition, no other tenant collection, and exactly one name claim per
    /// organization.
    pub async fn assert_consistent(&self) {
        let orgs = self.raw("organizations").await;
        let admins = self.raw("admins").await;
        let field = |d: &Document, key: &str| d.get_str(key).unwrap().to_owned();
        for org in &orgs {
            assert_eq!(field(org, "state"), "active", "{org:?}");
            assert!(!org.contains_key("pending"), "{org:?}");
            let admin_id = field(org, "admin_id");
            assert!(
                admins.iter().any(|a| field(a, "_id") == admin_id),
                "no admin for {org:?}"
            );
        }
        let org_ids: BTreeSet<String> = orgs.iter().map(|o| field(o, "_id")).collect();
        for admin in &admins {
            assert!(
                org_ids.contains(&field(admin, "organization_id")),
                "orphan admin {admin:?}"
            );
            assert!(
                !admin.contains_key("pending_since"),
                "unconfirmed admin {admin:?}"
            );
            assert!(
                matches!(admin.get_str("role"), Ok("owner" | "admin")),
                "admin without a role {admin:?}"
            );
        }
        // Every organization's primary admin is an owner (so it has one),
        // and no admin change is left half-done.
        for org in &orgs {
            assert!(!org.contains_key("admin_change"), "{org:?}");
            let primary = admins
                .iter()
                .find(|a| field(a, "_id") == field(org, "admin_id"))
                .unwrap();
            assert_eq!(field(primary, "role"), "owner", "{org:?} {primary:?}");
        }
        // A collection of its own for each organization in that layout
        // (records without `layout` predate it), none for the shared ones,
        // and the shared collection holds only shared organizations'
        // documents.
        let own = |o: &&Document| o.get_str("layout").unwrap_or("collection") == "collection";
        let collections: BTreeSet<String> = orgs
            .iter()
            .filter(own)
            .map(|o| field(o, "collection"))
            .collect();
        assert_eq!(self.tenant_collections().await, collections);
        let shared_orgs: BTreeSet<String> = orgs
            .iter()
            .filter(|o| !own(o))
            .map(|o| field(o, "_id"))
            .collect();
        for document in self.raw("tenant_documents").await {
            let owner = field(&document, "organization_id");
            assert!(
                shared_orgs.contains(&owner),
                "stray shared document {document:?}"
            );
            assert!(
                !document.contains_key("moving"),
                "claimed document {document:?}"
            );
            assert_eq!(document.get("id"), document.get("_id"), "{document:?}");
        }
        let claims: BTreeSet<(String, String)> = self
            .raw("organization_names")
            .await
            .iter()
            .map(|c| (field(c, "_id"), field(c, "organization_id")))
            .collect();
        let expected: BTreeSet<(String, String)> = orgs
            .iter()
            .map(|o| (field(o, "canonical"), field(o, "_id")))
            .collect();
        assert_eq!(claims, expected);
    }
}

async fn all(db: &Database, collection: &str) -> Vec<Document> {
    db.collection::<Document>(collection)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

impl Deref for TestStore {
    type Target = MongoStore;

    fn deref(&self) -> &MongoStore {
        &self.store
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        // Best effort: needs a multi-threaded runtime to block on.
        let Ok(handle) = Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
            let db = self.db.clone();
            let _ = tokio::task::block_in_place(|| handle.block_on(db.drop().into_future()));
        }
    }
}

impl ContractFixture for TestStore {
    fn store(&self) -> Arc<dyn TenantStore> {
        Arc::new(self.store.clone())
    }
}
