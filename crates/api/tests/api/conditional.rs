//! Conditional writes racing other writes: the decision on `If-Match` /
//! `If-None-Match` is made on a revision the store then compares, so a
//! change in between is never overwritten (RFC 9110 §13.2.2 with
//! optimistic concurrency).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
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

use crate::helpers::{TestApp, TestResponse};

store_suite!(a_conditional_write_decides_on_the_revision_the_store_compares,);

/// A store that, once armed, replaces the document itself (as another
/// client would) just before the next conditional replacement or deletion.
struct RacingStore {
    inner: Arc<dyn TenantStore>,
    armed: AtomicBool,
}

/// What the racing client writes.
const RACER: &str = "racer";

impl RacingStore {
    async fn race(&self, organization: OrganizationId, id: DocumentId, expected: Option<u64>) {
        if expected.is_some() && self.armed.swap(false, Ordering::SeqCst) {
            let body = DocumentBody::parse(json!({"by": RACER})).unwrap();
            self.inner
                .replace_document(organization, id, body, None)
                .await
                .unwrap();
        }
    }
}

#[async_trait]
impl TenantStore for RacingStore {
    async fn create_organization(
        &self,
        a0: NewOrganization,
    ) -> Result<Organization, CreateOrganizationError> {
        self.inner.create_organization(a0).await
    }
    async fn organization_by_name(
        &self,
        a0: &OrganizationName,
    ) -> Result<Option<Organization>, StoreError> {
        self.inner.organization_by_name(a0).await
    }
    async fn organization_by_id(
        &self,
        a0: OrganizationId,
    ) -> Result<Option<Organization>, StoreError> {
        self.inner.organization_by_id(a0).await
    }
    async fn rename_organization(
        &self,
        a0: OrganizationId,
        a1: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.inner.rename_organization(a0, a1).await
    }
    async fn rename_organization_from(
        &self,
        a0: OrganizationId,
        a1: &OrganizationName,
        a2: &OrganizationName,
    ) -> Result<Organization, RenameOrganizationError> {
        self.inner.rename_organization_from(a0, a1, a2).await
    }
    async fn delete_organization(&self, a0: OrganizationId) -> Result<(), DeleteOrganizationError> {
        self.inner.delete_organization(a0).await
    }
    async fn admin_by_id(&self, a0: AdminId) -> Result<Option<Admin>, StoreError> {
        self.inner.admin_by_id(a0).await
    }
    async fn admin_credentials_by_email(
        &self,
        a0: &AdminEmail,
    ) -> Result<Option<AdminCredentials>, StoreError> {
        self.inner.admin_credentials_by_email(a0).await
    }
    async fn update_admin(&self, a0: AdminId, a1: AdminUpdate) -> Result<Admin, UpdateAdminError> {
        self.inner.update_admin(a0, a1).await
    }
    async fn add_admin(&self, a0: OrganizationId, a1: NewAdmin) -> Result<Admin, AddAdminError> {
        self.inner.add_admin(a0, a1).await
    }
    async fn admins_of(&self, a0: OrganizationId) -> Result<Vec<Admin>, StoreError> {
        self.inner.admins_of(a0).await
    }
    async fn remove_admin(&self, a0: OrganizationId, a1: AdminId) -> Result<(), ChangeAdminError> {
        self.inner.remove_admin(a0, a1).await
    }
    async fn set_admin_role(
        &self,
        a0: OrganizationId,
        a1: AdminId,
        a2: AdminRole,
    ) -> Result<Admin, ChangeAdminError> {
        self.inner.set_admin_role(a0, a1, a2).await
    }
    async fn rehash_password(
        &self,
        a0: AdminId,
        a1: &PasswordHash,
        a2: PasswordHash,
    ) -> Result<bool, StoreError> {
        self.inner.rehash_password(a0, a1, a2).await
    }
    async fn insert_document(
        &self,
        a0: OrganizationId,
        a1: DocumentBody,
    ) -> Result<TenantDocument, DocumentError> {
        self.inner.insert_document(a0, a1).await
    }
    async fn find_document(
        &self,
        a0: OrganizationId,
        a1: DocumentId,
    ) -> Result<TenantDocument, DocumentError> {
        self.inner.find_document(a0, a1).await
    }
    async fn list_documents(
        &self,
        a0: OrganizationId,
        a1: DocumentQuery,
    ) -> Result<DocumentPage, DocumentError> {
        self.inner.list_documents(a0, a1).await
    }
    async fn replace_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        body: DocumentBody,
        expected: Option<u64>,
    ) -> Result<TenantDocument, DocumentError> {
        self.race(organization, id, expected).await;
        self.inner
            .replace_document(organization, id, body, expected)
            .await
    }
    async fn delete_document(
        &self,
        organization: OrganizationId,
        id: DocumentId,
        expected: Option<u64>,
    ) -> Result<(), DocumentError> {
        self.race(organization, id, expected).await;
        self.inner.delete_document(organization, id, expected).await
    }
    async fn reconcile(&self, a0: Duration) -> Result<ReconcileReport, StoreError> {
        self.inner.reconcile(a0).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn begin_drain(&self, deadline: Instant) {
        self.inner.begin_drain(deadline);
    }
}

#[async_trait]
impl SessionStore for RacingStore {
    async fn save_refresh_token(&self, a0: RefreshToken) -> Result<(), StoreError> {
        self.inner.save_refresh_token(a0).await
    }
    async fn use_refresh_token(
        &self,
        a0: &RefreshTokenHash,
        a1: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError> {
        self.inner.use_refresh_token(a0, a1).await
    }
    async fn revoke_family(&self, a0: SessionFamilyId) -> Result<(), StoreError> {
        self.inner.revoke_family(a0).await
    }
    async fn begin_login_attempt(
        &self,
        a0: &AdminEmail,
        a1: DateTime<Utc>,
        a2: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        self.inner.begin_login_attempt(a0, a1, a2).await
    }
    async fn login_succeeded(&self, a0: &AdminEmail) -> Result<(), StoreError> {
        self.inner.login_succeeded(a0).await
    }
    async fn purge_sessions(
        &self,
        a0: DateTime<Utc>,
        a1: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.purge_sessions(a0, a1).await
    }
}

#[async_trait]
impl AuditLog for RacingStore {
    async fn record(&self, a0: AuditEvent) -> Result<(), StoreError> {
        self.inner.record(a0).await
    }
    async fn audit_events(
        &self,
        a0: OrganizationId,
        a1: AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        self.inner.audit_events(a0, a1).await
    }
    async fn purge_deleted_before(&self, a0: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.purge_deleted_before(a0).await
    }
}

#[async_trait]
impl SigningKeyStore for RacingStore {
    async fn load_signing_keys(&self) -> Result<VersionedKeySet, StoreError> {
        self.inner.load_signing_keys().await
    }
    async fn replace_signing_keys(
        &self,
        a0: u64,
        a1: Vec<SigningKey>,
    ) -> Result<u64, ReplaceKeySetError> {
        self.inner.replace_signing_keys(a0, a1).await
    }
}

/// Between the handler's read (revision 1) and its write, another client
/// makes revision 2: the write is decided again on revision 2, never
/// applied over it unchecked.
async fn a_conditional_write_decides_on_the_revision_the_store_compares(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let store = Arc::new(RacingStore {
        inner: app.store.clone(),
        armed: AtomicBool::new(false),
    });
    let racing = TestApp::with_store(
        app.settings.clone(),
        store.clone(),
        tempfile::tempdir().unwrap(),
    )
    .await;
    // (method, If-Match, If-None-Match, status, the document's `by` after)
    let cases = [
        // Revision 2 still meets the conditions: the write applies over it.
        ("PUT", None, Some("\"7\""), 200, Some("us")),
        ("PUT", Some("\"1\", \"2\""), None, 200, Some("us")),
        ("DELETE", None, Some("\"7\""), 204, None),
        ("DELETE", Some("\"1\", \"2\""), None, 204, None),
        // Revision 2 fails them: 412, the racer's write stays.
        ("PUT", None, Some("\"2\""), 412, Some(RACER)),
        ("PUT", Some("\"1\", \"7\""), None, 412, Some(RACER)),
        ("DELETE", None, Some("\"2\""), 412, Some(RACER)),
        ("DELETE", Some("\"1\", \"7\""), None, 412, Some(RACER)),
    ];
    for (method, if_match, if_none_match, status, after) in cases {
        let created = racing
            .send(
                TestRequest::post()
                    .uri("/org/data")
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .set_json(json!({"by": "creator"})),
            )
            .await
            .expect(201, None);
        let uri = format!("/org/data/{}", created["id"].as_str().unwrap());
        store.armed.store(true, Ordering::SeqCst);
        let mut request = match method {
            "PUT" => TestRequest::put().uri(&uri).set_json(json!({"by": "us"})),
            _ => TestRequest::delete().uri(&uri),
        }
        .insert_header(("Authorization", format!("Bearer {token}")));
        if let Some(tags) = if_match {
            request = request.insert_header(("If-Match", tags));
        }
        if let Some(tags) = if_none_match {
            request = request.insert_header(("If-None-Match", tags));
        }
        let case = format!("{method} If-Match: {if_match:?} If-None-Match: {if_none_match:?}");
        let response: TestResponse = racing.send(request).await;
        assert_eq!(response.status, status, "{case}: {:?}", response.body);
        assert!(
            !store.armed.load(Ordering::SeqCst),
            "{case}: no race happened"
        );
        if status == 412 {
            assert_eq!(response.header("etag"), Some("\"2\""), "{case}");
        }
        let found = racing
            .send(
                TestRequest::get()
                    .uri(&uri)
                    .insert_header(("Authorization", format!("Bearer {token}"))),
            )
            .await;
        match after {
            Some(by) => assert_eq!(found.expect(200, None)["data"]["by"], by, "{case}"),
            None => {
                found.expect(404, Some("document_not_found"));
            }
        }
    }
}
