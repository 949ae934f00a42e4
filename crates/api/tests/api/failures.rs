//! When the store fails: a generic 500 that leaks nothing, and readiness 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgsvc_api::config::Settings;
use orgsvc_domain::{
    AddAdminError, Admin, AdminCredentials, AdminEmail, AdminId, AdminRole, AdminUpdate,
    AuditEvent, AuditLog, AuditPage, AuditQuery, ChangeAdminError, CreateOrganizationError,
    DeleteOrganizationError, DocumentBody, DocumentError, DocumentId, DocumentPage, DocumentQuery,
    LoginAttempt, LoginThrottle, NewAdmin, NewOrganization, Organization, OrganizationId,
    OrganizationName, PasswordHash, ReconcileReport, RefreshToken, RefreshTokenHash,
    RefreshTokenUse, RenameOrganizationError, ReplaceKeySetError, SessionFamilyId, SessionStore,
    SigningKey, SigningKeyStore, StoreError, TenantDocument, TenantStore, UpdateAdminError,
    VersionedKeySet,
};
use serde_json::json;

use crate::helpers::TestApp;

const SECRET_DETAIL: &str = "connection to mongodb://user:hunter2@db.internal refused";

/// A store whose every call fails, except that with `hanging_reconcile`
/// reconciliation never ends (it counts its calls there instead); it records
/// the deadlines `begin_drain` is given.
#[derive(Debug, Default)]
pub struct BrokenStore {
    /// When set: reconciliation counts its calls here and never completes.
    pub hanging_reconcile: Option<Arc<AtomicUsize>>,
    /// The deadlines passed to `begin_drain`.
    pub drains: Arc<Mutex<Vec<Instant>>>,
    /// When set (and `hanging_reconcile` is not): what reconciliation
    /// reports having repaired, instead of failing.
    pub reconciled: Option<ReconcileReport>,
}

fn broken() -> StoreError {
    StoreError::new("store call failed", std::io::Error::other(SECRET_DETAIL))
}

#[async_trait]
impl TenantStore for BrokenStore {
    async fn create_organization(
        &self,
        _: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        Err(broken().into())
    }
    async fn organization_by_name(
        &self,
        _: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError> {
        Err(broken())
    }
    async fn organization_by_id(
        &self,
        _: OrganizationId,
    ) -> Result<Option<Organization>, StoreError> {
        Err(broken())
    }
    async fn rename_organization(
        &self,
        _: OrganizationId,
        _: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        Err(broken().into())
    }
    async fn rename_organization_from(
        &self,
        _: OrganizationId,
        _: &OrganizationName,
        _: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        Err(broken().into())
    }
    async fn delete_organization(&self, _: OrganizationId) -> Result<(), DeleteOrganizationError> {
        Err(broken().into())
    }
    async fn admin_by_id(&self, _: AdminId) -> Result<Option<Admin>, StoreError> {
        Err(broken())
    }
    async fn admin_credentials_by_email(
        &self,
        _: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError> {
        Err(broken())
    }
    async fn update_admin(&self, _: AdminId, _: AdminUpdate) -> Result<Admin, UpdateAdminError> {
        Err(broken().into())
    }
    async fn add_admin(&self, _: OrganizationId, _: NewAdmin) -> Result<Admin, AddAdminError> {
        Err(broken().into())
    }
    async fn admins_of(&self, _: OrganizationId) -> Result<Vec<Admin>, StoreError> {
        Err(broken())
    }
    async fn remove_admin(&self, _: OrganizationId, _: AdminId) -> Result<(), ChangeAdminError> {
        Err(broken().into())
    }
    async fn set_admin_role(
        &self,
        _: OrganizationId,
        _: AdminId,
        _: AdminRole,
    ) -> Result<Admin, ChangeAdminError> {
        Err(broken().into())
    }
    async fn rehash_password(
        &self,
        _: AdminId,
        _: &PasswordHash,
        _: PasswordHash,
    ) -> Result<bool, StoreError> {
        Err(broken())
    }
    async fn insert_document(
        &self,
        _: OrganizationId,
        _: DocumentBody,
    ) -> Result<TenantDocument, DocumentError> {
        Err(broken().into())
    }
    async fn find_document(
        &self,
        _: OrganizationId,
        _: DocumentId,
    ) -> Result<TenantDocument, DocumentError> {
        Err(broken().into())
    }
    async fn list_documents(
        &self,
        _: OrganizationId,
        _: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError> {
        Err(broken().into())
    }
    async fn replace_document(
        &self,
        _: OrganizationId,
        _: DocumentId,
        _: DocumentBody,
        _: Option<u64>,
    ) -> Result<TenantDocument, DocumentError> {
        Err(broken().into())
    }
    async fn delete_document(
        &self,
        _: OrganizationId,
        _: DocumentId,
        _: Option<u64>,
    ) -> Result<(), DocumentError> {
        Err(broken().into())
    }
    async fn reconcile(&self, _: Duration) -> Result<ReconcileReport, StoreError> {
        match &self.hanging_reconcile {
            Some(calls) => {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending().await
            }
            None => self.reconciled.ok_or_else(broken),
        }
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(broken())
    }
    fn begin_drain(&self, deadline: Instant) {
        self.drains.lock().unwrap().push(deadline);
    }
}

#[async_trait]
impl SessionStore for BrokenStore {
    async fn save_refresh_token(&self, _: RefreshToken) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn use_refresh_token(
        &self,
        _: &RefreshTokenHash,
        _: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError> {
        Err(broken())
    }
    async fn revoke_family(&self, _: SessionFamilyId) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn begin_login_attempt(
        &self,
        _: &AdminEmail,
        _: DateTime<Utc>,
        _: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        Err(broken())
    }
    async fn login_succeeded(&self, _: &AdminEmail) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn purge_sessions(&self, _: DateTime<Utc>, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Err(broken())
    }
}

#[async_trait]
impl AuditLog for BrokenStore {
    async fn record(&self, _: AuditEvent) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn audit_events(
        &self,
        _: OrganizationId,
        _: AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        Err(broken())
    }
    async fn purge_deleted_before(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Err(broken())
    }
}

#[async_trait]
impl SigningKeyStore for BrokenStore {
    async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError> {
        Err(broken())
    }
    async fn replace_signing_keys(
        &self,
        _: u64,
        _: Vec<SigningKey>,
    ) -> Result<u64, ReplaceKeySetError> {
        Err(broken().into())
    }
}

async fn broken_app() -> TestApp {
    let env = [
        ("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "256"),
        ("ORGSVC__AUTH__ARGON2__ITERATIONS", "1"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let settings = Settings::load_from(None, Some(env)).unwrap();
    TestApp::with_store(
        settings,
        Arc::new(BrokenStore::default()),
        tempfile::tempdir().unwrap(),
    )
    .await
}

#[actix_web::test]
async fn store_failures_answer_a_generic_500_that_leaks_nothing() {
    let app = broken_app().await;
    for request in [
        TestRequest::get().uri("/org/get?organization_name=Acme"),
        TestRequest::post().uri("/org/create").set_json(
            json!({"organization_name": "Acme", "email": "a@acme.example", "password": "long enough"}),
        ),
        TestRequest::post()
            .uri("/admin/login")
            .set_json(json!({"email": "a@acme.example", "password": "long enough"})),
    ] {
        let response = app.send_unchecked(request).await;
        let body = response.expect(500, Some("internal_error"));
        let text = body.to_string();
        assert!(!text.contains("hunter2") && !text.contains("mongodb"), "{text}");
        assert!(!text.contains("store call failed"), "{text}");
    }
}

#[actix_web::test]
async fn readiness_is_503_when_the_store_does_not_answer() {
    let app = broken_app().await;
    app.send_unchecked(TestRequest::get().uri("/health/ready"))
        .await
        .expect(503, Some("store_unavailable"));
    app.send(TestRequest::get().uri("/health/live"))
        .await
        .expect(200, None);
}

/// A MongoDB that cannot be reached (nothing listens on the port) answers
/// every store-backed call with 503 `store_unavailable` and `Retry-After`
/// once the server selection timeout has passed, not with a 500.
#[actix_web::test]
async fn an_unreachable_mongodb_is_a_503_to_retry_not_a_500() {
    let env = [
        ("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "256"),
        ("ORGSVC__AUTH__ARGON2__ITERATIONS", "1"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let settings = Settings::load_from(None, Some(env)).unwrap();
    let store = orgsvc_mongo::MongoStore::connect(
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300",
        "orgsvc_unreachable",
    )
    .await
    .unwrap();
    let app = TestApp::with_store(settings, Arc::new(store), tempfile::tempdir().unwrap()).await;
    for request in [
        TestRequest::get().uri("/org/get?organization_name=Acme"),
        TestRequest::post()
            .uri("/admin/login")
            .set_json(json!({"email": "a@acme.example", "password": "long enough"})),
    ] {
        let response = app.send_unchecked(request).await;
        assert_eq!(response.header("retry-after"), Some("5"), "{response:?}");
        response.expect(503, Some("store_unavailable"));
    }
}
