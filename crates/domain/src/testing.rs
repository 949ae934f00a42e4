//! The [`TenantStore`] contract suite (with its [`crate::SessionStore`],
//! [`crate::AuditLog`], [`crate::SigningKeyStore`], [`crate::OutboxStore`],
//! [`crate::AccountTokenStore`], [`crate::InvitationStore`] and
//! [`crate::OperatorKeyStore`] parts), shared by every adapter.
//!
//! An adapter's test crate expands [`tenant_store_contract_tests!`] with an
//! expression that yields a fresh, empty store as a [`ContractFixture`] (an
//! `Arc` of the store, or a fixture that also owns what the store needs,
//! such as a temporary directory, dropped when the test ends); each check
//! below becomes one `#[tokio::test]` there. The adapter's test crate needs
//! `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
//!
//! For tests of code that uses a store, rather than of a store: an
//! [`InMemoryStore`] (a fake with the stores' semantics, no infrastructure)
//! and a [`FaultyStore`] decorator that makes chosen operations fail, runs
//! an action before them (to stage races) and records the calls.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed check should panic

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

mod account_tokens;
mod faults;
mod invitations;
mod memory;
mod operator;
mod operator_keys;
mod security;
mod signing_keys;
pub use account_tokens::*;
pub use faults::{Failure, FaultyStore, Operation, Times};
pub use invitations::*;
pub use memory::{InMemoryStore, IN_MEMORY_DATABASE};
pub use operator::*;
pub use operator_keys::*;
pub use security::*;
pub use signing_keys::*;

use crate::{
    AdminEmail, AdminUpdate, CreateOrganizationError, DeleteOrganizationError, DocumentBody,
    DocumentError, DocumentId, DocumentQuery, MoveTenantError, NewOrganization, Organization,
    OrganizationId, OrganizationName, PageSize, PasswordHash, RenameOrganizationError,
    TenantDocument, TenantLayout, TenantStore, UpdateAdminError,
};

/// Expands to one `#[tokio::test]` per contract check, each evaluating
/// `$store` (a fresh [`ContractFixture`]) for its store.
#[macro_export]
macro_rules! tenant_store_contract_tests {
    ($store:expr) => {
        $crate::tenant_store_contract_tests!(@tests $store;
            create_then_find_by_name_and_id,
            lookup_by_name_ignores_case_and_separators,
            create_rejects_a_taken_canonical_name,
            create_rejects_a_taken_email_and_stores_nothing,
            concurrent_creates_of_one_name_have_one_winner,
            credentials_are_found_by_email,
            rename_changes_name_and_collection_but_not_id,
            rename_to_a_respelling_keeps_the_collection,
            rename_rejects_a_taken_name,
            rename_of_unknown_organization_is_not_found,
            rename_from_a_name_that_changed_meanwhile_changes_nothing,
            concurrent_renames_to_one_name_have_one_winner,
            delete_removes_organization_and_admin_and_frees_names,
            delete_of_unknown_organization_is_not_found,
            password_change_bumps_token_version,
            email_change_keeps_token_version_and_rejects_taken_email,
            update_of_unknown_admin_is_not_found,
            reconcile_on_a_consistent_store_repairs_nothing,
            ping_answers,
            documents_round_trip_unchanged,
            documents_of_one_organization_are_invisible_to_another,
            documents_of_an_unknown_organization_are_refused,
            listing_pages_in_creation_order_without_gaps_or_repeats,
            listing_filters_on_top_level_field_equality,
            replace_checks_and_increments_the_revision,
            delete_checks_the_revision,
            documents_follow_a_rename,
            moving_between_layouts_keeps_every_document,
            writes_racing_a_rename_are_applied_or_refused_never_lost,
            deleting_an_organization_deletes_its_documents,
            creator_is_owner_and_added_admins_are_listed,
            add_admin_rejects_taken_email_and_unknown_organization,
            last_owner_cannot_be_removed_or_demoted,
            racing_changes_never_remove_the_last_owner,
            primary_admin_passes_to_the_oldest_remaining_owner,
            delete_removes_every_admin,
            rehash_replaces_only_the_current_hash,
            refresh_token_is_fresh_once_then_reused,
            concurrent_uses_of_a_refresh_token_have_one_fresh,
            expired_refresh_token_is_invalid,
            revoking_a_family_invalidates_present_and_future_tokens,
            purge_forgets_expired_refresh_tokens,
            failed_logins_lock_for_growing_intervals,
            parallel_login_attempts_never_exceed_the_limit,
            login_throttling_is_per_email,
            purge_forgets_idle_login_failures_but_keeps_locks,
            audit_events_page_newest_first_per_organization,
            purge_removes_entries_of_long_deleted_organizations_only,
            signing_keys_start_empty,
            signing_keys_round_trip,
            signing_keys_refuse_a_stale_version,
            concurrent_signing_key_replaces_have_one_winner,
            sealed_private_keys_come_back_unchanged,
            account_token_is_used_once_for_its_purpose,
            concurrent_uses_of_an_account_token_have_one_winner,
            expired_account_token_is_refused,
            account_token_and_its_message_are_stored_together,
            outbox_claims_are_exclusive_until_they_expire,
            concurrent_outbox_claims_are_disjoint,
            notices_are_delivered_and_purged_like_any_message,
            purges_forget_expired_tokens_and_sent_messages,
            email_verification_follows_the_admins_email,
            invitations_page_newest_first_per_organization,
            invitation_and_its_message_are_stored_together,
            invitation_is_accepted_once,
            concurrent_accepts_of_an_invitation_have_one_winner,
            expired_or_revoked_invitation_is_refused,
            resending_an_invitation_kills_its_old_token,
            accepting_with_a_taken_email_creates_nothing,
            deleting_an_organization_deletes_its_invitations,
            purge_forgets_long_expired_invitations,
            organizations_list_in_name_order_and_search_by_prefix_or_substring,
            organizations_list_filters_on_creation_time_and_state,
            suspension_is_idempotent_and_kept_across_a_rename,
            state_change_of_a_deleted_organization_is_not_found,
            suspension_racing_a_rename_loses_neither,
            usage_counts_admins_invitations_documents_and_bytes,
            audit_across_organizations_pages_newest_first_with_filters,
            operator_keys_are_created_listed_and_revoked,
            operator_key_names_are_unique,
            operator_keys_are_found_by_hash,
            expired_and_revoked_operator_keys_are_not_found,
            operator_key_last_use_is_recorded,
        );
    };
    (@tests $store:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $store;
                let store = $crate::testing::ContractFixture::store(&fixture);
                $crate::testing::$name(store).await;
                drop(fixture);
            }
        )+
    };
}

/// A store under test.
pub type Store = Arc<dyn TenantStore>;

/// A fresh store for one contract test, together with whatever it needs to
/// outlive the test (dropped when the test ends).
pub trait ContractFixture {
    /// The store under test.
    fn store(&self) -> Store;
}

impl<S: TenantStore> ContractFixture for Arc<S> {
    fn store(&self) -> Store {
        self.clone()
    }
}

impl ContractFixture for Store {
    fn store(&self) -> Store {
        self.clone()
    }
}

/// A new organization with this name and admin email (and a dummy hash).
pub fn new_org(name: &str, email: &str) -> NewOrganization {
    NewOrganization::new(
        OrganizationName::parse(name).unwrap(),
        AdminEmail::parse(email).unwrap(),
        hash("initial"),
    )
}

fn hash(tag: &str) -> PasswordHash {
    PasswordHash::from_phc_string(format!("$argon2id$v=19$m=8,t=1,p=1$dGVzdA$dummy-{tag}"))
}

fn name(raw: &str) -> OrganizationName {
    OrganizationName::parse(raw).unwrap()
}

fn email(raw: &str) -> AdminEmail {
    AdminEmail::parse(raw).unwrap()
}

/// Create returns the stored organization, found again by name and by id.
pub async fn create_then_find_by_name_and_id(store: Store) {
    let new = new_org("Acme Corp", "owner@acme.example");
    let (org_id, admin_id) = (new.id, new.owner.id);
    let created = store.create_organization(new).await.unwrap();

    assert_eq!(created.id, org_id);
    assert_eq!(created.admin_id, admin_id);
    assert_eq!(created.name.as_str(), "Acme Corp");
    assert_eq!(created.location.collection.as_str(), "org_acme_corp");
    assert_eq!(created.created_at, created.updated_at);

    let by_name = store
        .organization_by_name(&name("Acme Corp"))
        .await
        .unwrap();
    assert_eq!(by_name.as_ref(), Some(&created));
    let by_id = store.organization_by_id(org_id).await.unwrap();
    assert_eq!(by_id.as_ref(), Some(&created));
    assert!(store
        .organization_by_id(OrganizationId::new())
        .await
        .unwrap()
        .is_none());
    assert!(store
        .organization_by_name(&name("Other"))
        .await
        .unwrap()
        .is_none());
}

/// Names are looked up by their canonical form.
pub async fn lookup_by_name_ignores_case_and_separators(store: Store) {
    let created = store
        .create_organization(new_org("Acme Corp", "owner@acme.example"))
        .await
        .unwrap();
    for spelling in ["acme corp", "ACME-CORP", "acme__corp"] {
        let found = store.organization_by_name(&name(spelling)).await.unwrap();
        assert_eq!(found.map(|o| o.id), Some(created.id), "{spelling}");
    }
}

/// A second organization whose canonical name collides is refused.
pub async fn create_rejects_a_taken_canonical_name(store: Store) {
    store
        .create_organization(new_org("Acme Corp", "a@acme.example"))
        .await
        .unwrap();
    let err = store
        .create_organization(new_org("ACME-corp", "b@acme.example"))
        .await
        .unwrap_err();
    assert!(matches!(err, CreateOrganizationError::NameTaken), "{err:?}");
    assert!(store
        .admin_credentials_by_email(&email("b@acme.example"))
        .await
        .unwrap()
        .is_none());
}

/// A taken email is refused and leaves no organization behind.
pub async fn create_rejects_a_taken_email_and_stores_nothing(store: Store) {
    store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let err = store
        .create_organization(new_org("Globex", "OWNER@acme.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CreateOrganizationError::EmailTaken),
        "{err:?}"
    );
    assert!(store
        .organization_by_name(&name("Globex"))
        .await
        .unwrap()
        .is_none());
    // The name is still free.
    store
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();
}

/// Racing creates of the same name: exactly one succeeds.
pub async fn concurrent_creates_of_one_name_have_one_winner(store: Store) {
    let attempts = (0..4).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_organization(new_org("Race", &format!("admin{i}@race.example")))
                .await
        })
    });
    let mut wins = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => wins += 1,
            Err(CreateOrganizationError::NameTaken) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

/// Credentials are found by (case-insensitive) email, with the stored hash.
pub async fn credentials_are_found_by_email(store: Store) {
    let new = new_org("Acme", "owner@acme.example");
    let expected_hash = new.owner.password_hash.clone();
    let created = store.create_organization(new).await.unwrap();

    let credentials = store
        .admin_credentials_by_email(&email("Owner@ACME.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.admin.id, created.admin_id);
    assert_eq!(credentials.admin.organization_id, created.id);
    assert_eq!(credentials.admin.email.as_str(), "owner@acme.example");
    assert_eq!(credentials.password_hash, expected_hash);
    assert_eq!(credentials.admin.token_version, 0);

    let admin = store.admin_by_id(created.admin_id).await.unwrap().unwrap();
    assert_eq!(admin, credentials.admin);
    assert!(store
        .admin_credentials_by_email(&email("nobody@acme.example"))
        .await
        .unwrap()
        .is_none());
}

/// Rename changes name and collection; the id and creation time stay.
pub async fn rename_changes_name_and_collection_but_not_id(store: Store) {
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let renamed = store
        .rename_organization(created.id, &name("Acme Labs"))
        .await
        .unwrap();

    assert_eq!(renamed.id, created.id);
    assert_eq!(renamed.admin_id, created.admin_id);
    assert_eq!(renamed.name.as_str(), "Acme Labs");
    assert_eq!(renamed.location.collection.as_str(), "org_acme_labs");
    assert_eq!(renamed.location.database, created.location.database);
    assert_eq!(renamed.created_at, created.created_at);
    assert!(renamed.updated_at > created.updated_at);

    assert!(store
        .organization_by_name(&name("Acme"))
        .await
        .unwrap()
        .is_none());
    let found = store
        .organization_by_name(&name("acme labs"))
        .await
        .unwrap();
    assert_eq!(found, Some(renamed.clone()));
    assert_eq!(
        store.organization_by_id(created.id).await.unwrap(),
        Some(renamed)
    );
    // The old name is free again.
    store
        .create_organization(new_org("Acme", "other@acme.example"))
        .await
        .unwrap();
}

/// Changing only case or separators keeps the collection.
pub async fn rename_to_a_respelling_keeps_the_collection(store: Store) {
    let created = store
        .create_organization(new_org("acme corp", "owner@acme.example"))
        .await
        .unwrap();
    let renamed = store
        .rename_organization(created.id, &name("Acme-Corp"))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Acme-Corp");
    assert_eq!(renamed.location, created.location);
}

/// Renaming onto another organization's name is refused and changes nothing.
pub async fn rename_rejects_a_taken_name(store: Store) {
    let acme = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();
    let err = store
        .rename_organization(acme.id, &name("GLOBEX"))
        .await
        .unwrap_err();
    assert!(matches!(err, RenameOrganizationError::NameTaken), "{err:?}");
    assert_eq!(store.organization_by_id(acme.id).await.unwrap(), Some(acme));
}

/// Renaming an unknown organization reports it.
/// A rename decided on a name read earlier is refused once another rename
/// changed the name (the racing pair of renames from one name has one
/// winner), and goes ahead from the current name.
pub async fn rename_from_a_name_that_changed_meanwhile_changes_nothing(store: Store) {
    let org = create(&store, "Acme").await;
    store
        .rename_organization_from(org.id, &name("Acme"), &name("Beta"))
        .await
        .unwrap();
    let stale = store
        .rename_organization_from(org.id, &name("Acme"), &name("Gamma"))
        .await;
    assert!(
        matches!(stale, Err(RenameOrganizationError::NameChanged)),
        "{stale:?}"
    );
    let found = store.organization_by_id(org.id).await.unwrap().unwrap();
    assert_eq!(found.name.as_str(), "Beta");
    assert!(store
        .organization_by_name(&name("Gamma"))
        .await
        .unwrap()
        .is_none());
    // The expected name compares like names do: ignoring case and separators.
    let renamed = store
        .rename_organization_from(org.id, &name("BETA"), &name("Gamma"))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Gamma");
}

pub async fn rename_of_unknown_organization_is_not_found(store: Store) {
    let err = store
        .rename_organization(OrganizationId::new(), &name("Anything"))
        .await
        .unwrap_err();
    assert!(matches!(err, RenameOrganizationError::NotFound), "{err:?}");
}

/// Two organizations racing to rename to one name: exactly one wins.
pub async fn concurrent_renames_to_one_name_have_one_winner(store: Store) {
    let a = store
        .create_organization(new_org("Alpha", "a@alpha.example"))
        .await
        .unwrap();
    let b = store
        .create_organization(new_org("Beta", "b@beta.example"))
        .await
        .unwrap();
    let rename = |id| {
        let store = store.clone();
        tokio::spawn(async move { store.rename_organization(id, &name("Gamma")).await })
    };
    let (ra, rb) = (rename(a.id), rename(b.id));
    let results = [ra.await.unwrap(), rb.await.unwrap()];
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(RenameOrganizationError::NameTaken))));
    let gamma = store
        .organization_by_name(&name("Gamma"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gamma.id, winners[0].id);
    // The loser kept its name.
    let loser = if gamma.id == a.id { b } else { a };
    assert_eq!(
        store.organization_by_id(loser.id).await.unwrap(),
        Some(loser)
    );
}

/// Delete removes the organization and its admin and frees name and email.
pub async fn delete_removes_organization_and_admin_and_frees_names(store: Store) {
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store.delete_organization(created.id).await.unwrap();

    assert!(store
        .organization_by_id(created.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .organization_by_name(&name("Acme"))
        .await
        .unwrap()
        .is_none());
    assert!(store.admin_by_id(created.admin_id).await.unwrap().is_none());
    assert!(store
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .is_none());
    store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let err = store.delete_organization(created.id).await.unwrap_err();
    assert!(matches!(err, DeleteOrganizationError::NotFound), "{err:?}");
}

/// Deleting an unknown organization reports it.
pub async fn delete_of_unknown_organization_is_not_found(store: Store) {
    let err = store
        .delete_organization(OrganizationId::new())
        .await
        .unwrap_err();
    assert!(matches!(err, DeleteOrganizationError::NotFound), "{err:?}");
}

/// A new password hash replaces the old one and bumps the token version.
pub async fn password_change_bumps_token_version(store: Store) {
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let update = AdminUpdate {
        email: None,
        password_hash: Some(hash("changed")),
    };
    let admin = store.update_admin(created.admin_id, update).await.unwrap();
    assert_eq!(admin.token_version, 1);
    let credentials = store
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.password_hash, hash("changed"));
    assert_eq!(credentials.admin, admin);
}

/// An email change keeps the token version; a taken email is refused.
pub async fn email_change_keeps_token_version_and_rejects_taken_email(store: Store) {
    let acme = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store
        .create_organization(new_org("Globex", "owner@globex.example"))
        .await
        .unwrap();

    let moved = AdminUpdate {
        email: Some(email("boss@acme.example")),
        password_hash: None,
    };
    let admin = store.update_admin(acme.admin_id, moved).await.unwrap();
    assert_eq!(admin.email.as_str(), "boss@acme.example");
    assert_eq!(admin.token_version, 0);
    assert!(store
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .is_none());

    let clash = AdminUpdate {
        email: Some(email("owner@globex.example")),
        password_hash: Some(hash("never-applied")),
    };
    let err = store.update_admin(acme.admin_id, clash).await.unwrap_err();
    assert!(matches!(err, UpdateAdminError::EmailTaken), "{err:?}");
    let unchanged = store.admin_by_id(acme.admin_id).await.unwrap().unwrap();
    assert_eq!(unchanged, admin);
}

/// Updating an unknown admin reports it.
pub async fn update_of_unknown_admin_is_not_found(store: Store) {
    let update = AdminUpdate {
        email: Some(email("x@y.example")),
        password_hash: None,
    };
    let err = store
        .update_admin(crate::AdminId::new(), update)
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateAdminError::NotFound), "{err:?}");
}

/// A store whose operations all completed has nothing to repair.
pub async fn reconcile_on_a_consistent_store_repairs_nothing(store: Store) {
    let created = store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    store
        .rename_organization(created.id, &name("Acme Two"))
        .await
        .unwrap();
    let report = store.reconcile(Duration::ZERO).await.unwrap();
    assert!(report.is_empty(), "{report:?}");
    assert!(store
        .organization_by_id(created.id)
        .await
        .unwrap()
        .is_some());
}

/// The readiness check succeeds against a working store.
pub async fn ping_answers(store: Store) {
    store.ping().await.unwrap();
}

fn body(value: Value) -> DocumentBody {
    DocumentBody::parse(value).unwrap()
}

async fn create(store: &Store, org_name: &str) -> Organization {
    let email = format!(
        "owner@{}.example",
        org_name.to_ascii_lowercase().replace(' ', "-")
    );
    store
        .create_organization(new_org(org_name, &email))
        .await
        .unwrap()
}

/// Every document of the organization, following cursors page by page.
pub async fn all_documents(store: &Store, organization: OrganizationId) -> Vec<TenantDocument> {
    let mut query = DocumentQuery {
        limit: PageSize::parse(100).unwrap(),
        ..DocumentQuery::default()
    };
    let mut documents = Vec::new();
    loop {
        let page = store
            .list_documents(organization, query.clone())
            .await
            .unwrap();
        documents.extend(page.documents);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return documents,
        }
    }
}

/// Bodies come back exactly as stored: nesting, arrays, numbers, unicode, field order.
pub async fn documents_round_trip_unchanged(store: Store) {
    let org = create(&store, "Acme").await;
    let value = json!({
        "title": "Zoë's café ☕ — 東京 🚀",
        "zeta": 1,
        "alpha": -9_223_372_036_854_775_808_i64,
        "max": 9_223_372_036_854_775_807_i64,
        "ratio": 0.1,
        "tiny": 1.5e-300,
        "float_one": 1.0,
        "nested": {"list": [1, "two", null, true, false, {"deep": [[]]}], "empty": {}},
        "_id": "a client field named _id is just data"
    });
    let stored = store
        .insert_document(org.id, body(value.clone()))
        .await
        .unwrap();
    assert_eq!(stored.revision, 1);
    assert_eq!(stored.created_at, stored.updated_at);
    assert_eq!(stored.body.clone().into_value(), value);

    let found = store.find_document(org.id, stored.id).await.unwrap();
    assert_eq!(found, stored);
    let found_value = found.body.into_value();
    assert_eq!(
        serde_json::to_string(&found_value).unwrap(),
        serde_json::to_string(&value).unwrap(),
        "field order or number formatting changed"
    );
}

/// No operation through organization B reaches organization A's documents.
pub async fn documents_of_one_organization_are_invisible_to_another(store: Store) {
    let a = create(&store, "Acme").await;
    let b = create(&store, "Globex").await;
    let doc = store
        .insert_document(a.id, body(json!({"secret": "A's"})))
        .await
        .unwrap();

    let found = store.find_document(b.id, doc.id).await;
    assert!(matches!(found, Err(DocumentError::NotFound)), "{found:?}");
    let replaced = store
        .replace_document(b.id, doc.id, body(json!({"stolen": true})), None)
        .await;
    assert!(
        matches!(replaced, Err(DocumentError::NotFound)),
        "{replaced:?}"
    );
    let deleted = store.delete_document(b.id, doc.id, None).await;
    assert!(
        matches!(deleted, Err(DocumentError::NotFound)),
        "{deleted:?}"
    );
    assert!(all_documents(&store, b.id).await.is_empty());

    assert_eq!(store.find_document(a.id, doc.id).await.unwrap(), doc);
}

/// Data operations on an unknown organization say so.
pub async fn documents_of_an_unknown_organization_are_refused(store: Store) {
    let unknown = OrganizationId::new();
    let inserted = store.insert_document(unknown, body(json!({}))).await;
    assert!(
        matches!(inserted, Err(DocumentError::OrganizationNotFound)),
        "{inserted:?}"
    );
    let found = store.find_document(unknown, DocumentId::new()).await;
    assert!(
        matches!(found, Err(DocumentError::OrganizationNotFound)),
        "{found:?}"
    );
    let listed = store
        .list_documents(unknown, DocumentQuery::default())
        .await;
    assert!(
        matches!(listed, Err(DocumentError::OrganizationNotFound)),
        "{listed:?}"
    );
}

/// Pages follow insertion order; together they hold every document once.
pub async fn listing_pages_in_creation_order_without_gaps_or_repeats(store: Store) {
    let org = create(&store, "Acme").await;
    let mut inserted = Vec::new();
    for n in 0..25 {
        let doc = store
            .insert_document(org.id, body(json!({ "n": n })))
            .await
            .unwrap();
        inserted.push(doc.id);
    }
    let mut query = DocumentQuery {
        limit: PageSize::parse(10).unwrap(),
        ..DocumentQuery::default()
    };
    let mut sizes = Vec::new();
    let mut listed = Vec::new();
    loop {
        let page = store.list_documents(org.id, query.clone()).await.unwrap();
        sizes.push(page.documents.len());
        listed.extend(page.documents.iter().map(|d| d.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, inserted);
    assert_eq!(&sizes[..3], &[10, 10, 5]);
    assert!(
        sizes.len() <= 4 && sizes[3..].iter().all(|&s| s == 0),
        "{sizes:?}"
    );
}

/// Filters are equalities on top-level fields, all of which must hold.
pub async fn listing_filters_on_top_level_field_equality(store: Store) {
    let org = create(&store, "Acme").await;
    let docs = [
        json!({"name": "a", "status": "active", "age": 30, "vip": true, "note": null}),
        json!({"name": "b", "status": "active", "age": 30.0, "vip": false}),
        json!({"name": "c", "status": "closed", "age": 41, "vip": true, "note": "x"}),
        json!({"name": "d", "status": "30", "nested": {"status": "active"}}),
    ];
    for doc in docs {
        store.insert_document(org.id, body(doc)).await.unwrap();
    }
    let names = |filter: Value| {
        let store = store.clone();
        async move {
            let query = DocumentQuery {
                filters: DocumentQuery::parse_filters(filter).unwrap(),
                ..DocumentQuery::default()
            };
            let page = store.list_documents(org.id, query).await.unwrap();
            page.documents
                .into_iter()
                .map(|d| d.body.as_map()["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(json!({"status": "active"})).await, ["a", "b"]);
    assert_eq!(
        names(json!({"age": 30})).await,
        ["a", "b"],
        "30 equals 30.0"
    );
    assert_eq!(
        names(json!({"status": "30"})).await,
        ["d"],
        "strings are not numbers"
    );
    assert_eq!(names(json!({"vip": true, "status": "active"})).await, ["a"]);
    assert_eq!(
        names(json!({"note": null})).await,
        ["a", "b", "d"],
        "null matches null or missing"
    );
    assert!(names(json!({"status": "none"})).await.is_empty());
    assert_eq!(names(json!({})).await.len(), 4);
}

/// Replacement bumps the revision and honours the expected one.
pub async fn replace_checks_and_increments_the_revision(store: Store) {
    let org = create(&store, "Acme").await;
    let doc = store
        .insert_document(org.id, body(json!({"v": 1})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let replaced = store
        .replace_document(org.id, doc.id, body(json!({"v": 2, "new": [1]})), Some(1))
        .await
        .unwrap();
    assert_eq!(replaced.id, doc.id);
    assert_eq!(replaced.revision, 2);
    assert_eq!(replaced.created_at, doc.created_at);
    assert!(replaced.updated_at > doc.updated_at);
    assert_eq!(
        replaced.body.clone().into_value(),
        json!({"v": 2, "new": [1]})
    );

    let stale = store
        .replace_document(org.id, doc.id, body(json!({"v": 3})), Some(1))
        .await;
    assert!(
        matches!(stale, Err(DocumentError::RevisionMismatch { current: 2 })),
        "{stale:?}"
    );
    assert_eq!(store.find_document(org.id, doc.id).await.unwrap(), replaced);

    let unconditional = store
        .replace_document(org.id, doc.id, body(json!({"v": 4})), None)
        .await
        .unwrap();
    assert_eq!(unconditional.revision, 3);
    let missing = store
        .replace_document(org.id, DocumentId::new(), body(json!({})), None)
        .await;
    assert!(
        matches!(missing, Err(DocumentError::NotFound)),
        "{missing:?}"
    );
}

/// Deletion honours the expected revision.
pub async fn delete_checks_the_revision(store: Store) {
    let org = create(&store, "Acme").await;
    let doc = store
        .insert_document(org.id, body(json!({"v": 1})))
        .await
        .unwrap();
    let stale = store.delete_document(org.id, doc.id, Some(7)).await;
    assert!(
        matches!(stale, Err(DocumentError::RevisionMismatch { current: 1 })),
        "{stale:?}"
    );
    assert!(store.find_document(org.id, doc.id).await.is_ok());

    store
        .delete_document(org.id, doc.id, Some(1))
        .await
        .unwrap();
    let found = store.find_document(org.id, doc.id).await;
    assert!(matches!(found, Err(DocumentError::NotFound)), "{found:?}");
    let again = store.delete_document(org.id, doc.id, None).await;
    assert!(matches!(again, Err(DocumentError::NotFound)), "{again:?}");
}

/// After a rename the documents are there with the same ids, bodies and revisions.
pub async fn documents_follow_a_rename(store: Store) {
    let org = create(&store, "Acme").await;
    let mut before = Vec::new();
    for n in 0..50 {
        before.push(
            store
                .insert_document(org.id, body(json!({ "n": n, "tags": ["x", n] })))
                .await
                .unwrap(),
        );
    }
    store
        .replace_document(org.id, before[0].id, body(json!({"n": "changed"})), None)
        .await
        .unwrap();
    before[0] = store.find_document(org.id, before[0].id).await.unwrap();

    store
        .rename_organization(org.id, &name("Acme Renamed"))
        .await
        .unwrap();
    assert_eq!(all_documents(&store, org.id).await, before);
}

/// Moving an organization's documents to the other layout and back keeps
/// every document unchanged and the other organizations' apart; a move to
/// the current layout is a no-op; documents, renames and deletions work in
/// either layout. Stores with one layout answer `NotApplicable`.
pub async fn moving_between_layouts_keeps_every_document(store: Store) {
    let org = create(&store, "Acme").await;
    let other = create(&store, "Other").await;
    let mut documents = Vec::new();
    for n in 0..30 {
        let document = body(json!({ "n": n }));
        documents.push(store.insert_document(org.id, document).await.unwrap());
    }
    let theirs = store
        .insert_document(other.id, body(json!({ "theirs": true })))
        .await
        .unwrap();
    let start = org.location.layout;
    let target = match start {
        TenantLayout::Collection => TenantLayout::Shared,
        TenantLayout::Shared => TenantLayout::Collection,
    };
    let moved = match store.move_tenant(org.id, target).await {
        Err(MoveTenantError::NotApplicable(_)) => return,
        other => other.unwrap(),
    };
    assert!(moved.moved);
    assert_eq!(moved.documents, 30);
    assert_eq!(moved.organization.location.layout, target);
    assert_eq!(moved.organization.name, org.name);
    assert_eq!(
        moved.organization.location.collection,
        org.location.collection
    );
    let found = store.organization_by_id(org.id).await.unwrap().unwrap();
    assert_eq!(found.location.layout, target);
    assert_eq!(all_documents(&store, org.id).await, documents);
    assert_eq!(all_documents(&store, other.id).await, vec![theirs.clone()]);

    let again = store.move_tenant(org.id, target).await.unwrap();
    assert!(!again.moved);
    assert_eq!(again.organization.location.layout, target);

    documents.push(
        store
            .insert_document(org.id, body(json!({ "after": "move" })))
            .await
            .unwrap(),
    );
    let renamed = store
        .rename_organization(org.id, &name("Acme Moved"))
        .await
        .unwrap();
    assert_eq!(renamed.location.layout, target);
    assert_eq!(all_documents(&store, org.id).await, documents);

    let back = store.move_tenant(org.id, start).await.unwrap();
    assert!(back.moved);
    assert_eq!(back.documents, 31);
    assert_eq!(back.organization.location.layout, start);
    assert_eq!(all_documents(&store, org.id).await, documents);
    assert_eq!(all_documents(&store, other.id).await, vec![theirs]);

    store.move_tenant(org.id, target).await.unwrap();
    store.delete_organization(org.id).await.unwrap();
    let again = create(&store, "Acme Moved").await;
    assert!(all_documents(&store, again.id).await.is_empty());
    assert!(matches!(
        store.move_tenant(org.id, start).await,
        Err(MoveTenantError::NotFound)
    ));
    assert_eq!(all_documents(&store, other.id).await.len(), 1);
}

/// Writes running while the organization is renamed are either applied (and
/// then found after the rename) or refused as `Busy` (and then absent).
pub async fn writes_racing_a_rename_are_applied_or_refused_never_lost(store: Store) {
    let org = create(&store, "Acme").await;
    for n in 0..200 {
        store
            .insert_document(org.id, body(json!({ "seed": n })))
            .await
            .unwrap();
    }
    let renamed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, renamed) = (store.clone(), renamed.clone());
        tokio::spawn(async move {
            let (mut acknowledged, mut refused) = (Vec::new(), 0_u32);
            let mut extra_after_rename = 20;
            for n in 0..5_000 {
                match store
                    .insert_document(org.id, body(json!({ "write": n })))
                    .await
                {
                    Ok(doc) => acknowledged.push(doc.id),
                    Err(DocumentError::Busy) => refused += 1,
                    Err(other) => panic!("write {n} failed: {other:?}"),
                }
                if renamed.load(std::sync::atomic::Ordering::SeqCst) {
                    extra_after_rename -= 1;
                    if extra_after_rename == 0 {
                        break;
                    }
                }
            }
            (acknowledged, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut attempts = 0;
    loop {
        match store.rename_organization(org.id, &name("Acme Moved")).await {
            Ok(_) => break,
            Err(RenameOrganizationError::Busy) if attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(other) => panic!("rename failed: {other:?}"),
        }
    }
    renamed.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acknowledged, _refused) = writer.await.unwrap();

    let stored: Vec<_> = all_documents(&store, org.id).await;
    let written: Vec<_> = stored
        .iter()
        .filter(|d| d.body.as_map().contains_key("write"))
        .map(|d| d.id)
        .collect();
    assert_eq!(
        written, acknowledged,
        "acknowledged writes lost or refused writes stored"
    );
    assert_eq!(stored.len() - written.len(), 200, "seed documents lost");
    assert!(!acknowledged.is_empty());
}

/// Deleting an organization deletes its documents with it.
pub async fn deleting_an_organization_deletes_its_documents(store: Store) {
    let org = create(&store, "Acme").await;
    store
        .insert_document(org.id, body(json!({"v": 1})))
        .await
        .unwrap();
    store.delete_organization(org.id).await.unwrap();
    let again = create(&store, "Acme").await;
    assert!(all_documents(&store, again.id).await.is_empty());
}
