//! Documents, and conditional writes made atomic by the store's revision
//! compare.

use orgsvc_app::documents::WRITE_ATTEMPTS;
use orgsvc_app::AppError;
use orgsvc_domain::preconditions::Preconditions;
use orgsvc_domain::testing::{Operation, Times};
use orgsvc_domain::{Admin, DocumentBody, TenantDocument};
use serde_json::json;

use crate::fixture::Fixture;

fn body(value: serde_json::Value) -> DocumentBody {
    DocumentBody::parse(value).unwrap()
}

fn conditions(if_match: Option<&str>, if_none_match: Option<&str>) -> Preconditions {
    Preconditions::from_field_lines(if_match.map(Some), if_none_match.map(Some))
}

async fn admin_with_document(f: &Fixture) -> (Admin, TenantDocument) {
    let org = f.organization("Acme", "owner@acme.example").await;
    let admin = f.inner().admin_by_id(org.admin_id).await.unwrap().unwrap();
    let document = f
        .app
        .create_document(&admin, body(json!({"n": 0})))
        .await
        .unwrap();
    (admin, document)
}

/// Before each of the next `times` replacements, another client replaces
/// the document first.
fn another_writer_first(f: &Fixture, admin: &Admin, document: &TenantDocument, times: Times) {
    let (organization, id) = (admin.organization_id, document.id);
    f.store
        .before(Operation::ReplaceDocument, times, move |store| async move {
            let theirs = DocumentBody::parse(json!({"theirs": true})).unwrap();
            store
                .replace_document(organization, id, theirs, None)
                .await
                .unwrap();
        });
}

#[tokio::test]
async fn a_stale_if_match_fails_with_the_current_revision_and_writes_nothing() {
    let f = Fixture::new();
    let (admin, document) = admin_with_document(&f).await;
    let stale = f
        .app
        .replace_document(
            &admin,
            document.id,
            body(json!({"n": 1})),
            &conditions(Some("\"7\""), None),
        )
        .await;
    assert!(
        matches!(stale, Err(AppError::PreconditionFailed { current: 1 })),
        "{stale:?}"
    );
    let kept = f.app.document(&admin, document.id).await.unwrap();
    assert_eq!(kept.revision, 1);
}

#[tokio::test]
async fn a_condition_decided_on_a_revision_that_changed_is_decided_again() {
    let f = Fixture::new();
    let (admin, document) = admin_with_document(&f).await;
    // "Not revision 9": holds for any revision here, but names none, so the
    // write is made against the revision read, which another writer moves
    // on once: the second try, on revision 2, goes through.
    another_writer_first(&f, &admin, &document, Times::Once);
    let replaced = f
        .app
        .replace_document(
            &admin,
            document.id,
            body(json!({"n": 1})),
            &conditions(None, Some("\"9\"")),
        )
        .await
        .unwrap();
    assert_eq!(replaced.revision, 3);
    assert_eq!(f.store.calls_to(Operation::ReplaceDocument), 2);
}

#[tokio::test]
async fn a_document_that_keeps_changing_fails_after_the_last_attempt() {
    let f = Fixture::new();
    let (admin, document) = admin_with_document(&f).await;
    another_writer_first(&f, &admin, &document, Times::Always);
    let failed = f
        .app
        .replace_document(
            &admin,
            document.id,
            body(json!({"n": 1})),
            &conditions(None, Some("\"9\"")),
        )
        .await;
    let attempts = u64::try_from(WRITE_ATTEMPTS).unwrap();
    let Err(AppError::PreconditionFailed { current }) = failed else {
        panic!("{failed:?}");
    };
    assert_eq!(current, 1 + attempts, "the latest revision is answered");
    assert_eq!(f.store.calls_to(Operation::ReplaceDocument), WRITE_ATTEMPTS);
    let theirs = f.app.document(&admin, document.id).await.unwrap();
    assert_eq!(theirs.body.into_value(), json!({"theirs": true}));
}

#[tokio::test]
async fn unconditional_and_pinned_writes_do_not_read_first() {
    let f = Fixture::new();
    let (admin, document) = admin_with_document(&f).await;
    f.app
        .replace_document(
            &admin,
            document.id,
            body(json!({"n": 1})),
            &conditions(Some("\"1\""), None),
        )
        .await
        .unwrap();
    f.app
        .delete_document(&admin, document.id, &conditions(None, None))
        .await
        .unwrap();
    assert_eq!(f.store.calls_to(Operation::FindDocument), 0);
    let gone = f.app.document(&admin, document.id).await;
    assert!(matches!(gone, Err(AppError::DocumentNotFound)), "{gone:?}");
}

#[tokio::test]
async fn another_organizations_documents_are_not_found() {
    let f = Fixture::new();
    let (_, document) = admin_with_document(&f).await;
    let other = f.organization("Other", "owner@other.example").await;
    let outsider = f
        .inner()
        .admin_by_id(other.admin_id)
        .await
        .unwrap()
        .unwrap();
    let hidden = f.app.document(&outsider, document.id).await;
    assert!(
        matches!(hidden, Err(AppError::DocumentNotFound)),
        "{hidden:?}"
    );
    let hidden = f
        .app
        .delete_document(&outsider, document.id, &conditions(None, None))
        .await;
    assert!(
        matches!(hidden, Err(AppError::DocumentNotFound)),
        "{hidden:?}"
    );
}
