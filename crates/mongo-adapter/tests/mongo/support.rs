//! A fresh, migrated store per test, and ways to look at what it stored.

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::{Client, Database, IndexModel};
use orgsvc_domain::{
    Admin, AdminCredentials, AdminEmail, AdminId, AdminUpdate, CreateOrganizationError,
    DeleteOrganizationError, NewOrganization, Organization, OrganizationId, OrganizationName,
    ReconcileReport, RenameOrganizationError, StoreError, TenantStore, UpdateAdminError,
};
use orgsvc_mongo::MongoStore;
use tokio::runtime::{Handle, RuntimeFlavor};

pub use orgsvc_domain::testing::new_org;

/// A fresh store for the contract suite.
pub async fn fresh_store() -> Arc<dyn TenantStore> {
    Arc::new(TestStore::new().await)
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
    /// organization active with its admin and its collection, no admin
    /// without its organization, no other tenant collection, and exactly one
    /// name claim per organization.
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
        }
        let collections: BTreeSet<String> = orgs.iter().map(|o| field(o, "collection")).collect();
        assert_eq!(self.tenant_collections().await, collections);
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

#[async_trait]
impl TenantStore for TestStore {
    async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        self.store.create_organization(new).await
    }

    async fn organization_by_name(
        &self,
        name: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError> {
        self.store.organization_by_name(name).await
    }

    async fn organization_by_id(
        &self,
        id: OrganizationId,
    ) -> Result<Option<Organization>, StoreError> {
        self.store.organization_by_id(id).await
    }

    async fn rename_organization(
        &self,
        id: OrganizationId,
        new_name: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.store.rename_organization(id, new_name).await
    }

    async fn delete_organization(&self, id: OrganizationId) -> Result<(), DeleteOrganizationError> {
        self.store.delete_organization(id).await
    }

    async fn admin_by_id(&self, id: AdminId) -> Result<Option<Admin>, StoreError> {
        self.store.admin_by_id(id).await
    }

    async fn admin_credentials_by_email(
        &self,
        email: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError> {
        self.store.admin_credentials_by_email(email).await
    }

    async fn update_admin(
        &self,
        id: AdminId,
        update: AdminUpdate,
    ) -> Result<Admin, UpdateAdminError> {
        self.store.update_admin(id, update).await
    }

    async fn reconcile(&self, stale_after: Duration) -> Result<ReconcileReport, StoreError> {
        self.store.reconcile(stale_after).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    async fn insert_document(
        &self,
        organization: OrganizationId,
        body: orgsvc_domain::DocumentBody,
    ) -> Result<orgsvc_domain::TenantDocument, orgsvc_domain::DocumentError> {
        self.store.insert_document(organization, body).await
    }

    async fn find_document(
        &self,
        organization: OrganizationId,
        id: orgsvc_domain::DocumentId,
    ) -> Result<orgsvc_domain::TenantDocument, orgsvc_domain::DocumentError> {
        self.store.find_document(organization, id).await
    }

    async fn list_documents(
        &self,
        organization: OrganizationId,
        query: orgsvc_domain::DocumentQuery,
    ) -> Result<orgsvc_domain::DocumentPage, orgsvc_domain::DocumentError> {
        self.store.list_documents(organization, query).await
    }

    async fn replace_document(
        &self,
        organization: OrganizationId,
        id: orgsvc_domain::DocumentId,
        body: orgsvc_domain::DocumentBody,
        expected_revision: Option<u64>,
    ) -> Result<orgsvc_domain::TenantDocument, orgsvc_domain::DocumentError> {
        self.store
            .replace_document(organization, id, body, expected_revision)
            .await
    }

    async fn delete_document(
        &self,
        organization: OrganizationId,
        id: orgsvc_domain::DocumentId,
        expected_revision: Option<u64>,
    ) -> Result<(), orgsvc_domain::DocumentError> {
        self.store
            .delete_document(organization, id, expected_revision)
            .await
    }
}
