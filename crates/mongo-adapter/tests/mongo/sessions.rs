//! Refresh tokens, login throttles and the audit log: what the contract
//! suite leaves to the adapter (retries, what purges keep, stored shapes).

use chrono::{DateTime, TimeDelta, Utc};
use orgsvc_domain::{
    AdminId, AuditAction, AuditEvent, AuditEventId, AuditLog, AuditQuery, OperatorKeyName,
    OrganizationId, RefreshToken, RefreshTokenHash, RefreshTokenUse, SessionFamilyId, SessionStore,
    TenantStore,
};

use crate::support::{new_org, TestStore};

fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn token(tag: &str, family: SessionFamilyId, expires_in: TimeDelta) -> RefreshToken {
    let issued_at = now_ms();
    RefreshToken {
        hash: RefreshTokenHash::from_hex(format!("{tag:0>64}")),
        family,
        admin_id: AdminId::new(),
        organization_id: OrganizationId::new(),
        token_version: 1,
        issued_at,
        expires_at: issued_at + expires_in,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_token_again_does_not_make_it_fresh_again() {
    let t = TestStore::new().await;
    let saved = token("a", SessionFamilyId::new(), TimeDelta::days(1));
    t.save_refresh_token(saved.clone()).await.unwrap();
    let first = t.use_refresh_token(&saved.hash, now_ms()).await.unwrap();
    assert_eq!(first, RefreshTokenUse::Fresh(saved.clone()));
    t.save_refresh_token(saved.clone()).await.unwrap();
    let again = t.use_refresh_token(&saved.hash, now_ms()).await.unwrap();
    assert_eq!(again, RefreshTokenUse::Reused(saved));
    assert_eq!(t.raw("refresh_tokens").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_token_of_a_revoked_family_stays_invalid_and_unused() {
    let t = TestStore::new().await;
    let family = SessionFamilyId::new();
    let unused = token("b", family, TimeDelta::days(1));
    t.save_refresh_token(unused.clone()).await.unwrap();
    t.revoke_family(family).await.unwrap();
    for _ in 0..2 {
        let found = t.use_refresh_token(&unused.hash, now_ms()).await.unwrap();
        assert_eq!(found, RefreshTokenUse::Invalid);
    }
    let stored = t.raw("refresh_tokens").await;
    assert_eq!(stored[0].get_i32("used").unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_purged_only_once_its_family_has_no_token_left() {
    let t = TestStore::new().await;
    let family = SessionFamilyId::new();
    let short = token("c", family, TimeDelta::minutes(1));
    let long = token("d", family, TimeDelta::minutes(10));
    t.save_refresh_token(short.clone()).await.unwrap();
    t.save_refresh_token(long.clone()).await.unwrap();
    t.revoke_family(family).await.unwrap();

    let after_short = short.expires_at + TimeDelta::seconds(1);
    assert_eq!(t.purge_sessions(after_short, after_short).await.unwrap(), 1);
    assert_eq!(t.raw("revoked_session_families").await.len(), 1);
    // A token saved now (a rotation racing the logout) is still refused.
    let late = token("e", family, TimeDelta::minutes(5));
    t.save_refresh_token(late.clone()).await.unwrap();
    let found = t.use_refresh_token(&late.hash, now_ms()).await.unwrap();
    assert_eq!(found, RefreshTokenUse::Invalid);

    let after_all = long.expires_at + TimeDelta::seconds(1);
    assert_eq!(t.purge_sessions(after_all, after_all).await.unwrap(), 3);
    assert!(t.raw("refresh_tokens").await.is_empty());
    assert!(t.raw("revoked_session_families").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_stops_working_at_its_expiry() {
    let t = TestStore::new().await;
    let expiring = token("f", SessionFamilyId::new(), TimeDelta::minutes(1));
    t.save_refresh_token(expiring.clone()).await.unwrap();
    let found = t
        .use_refresh_token(&expiring.hash, expiring.expires_at)
        .await
        .unwrap();
    assert_eq!(found, RefreshTokenUse::Invalid);
    let before = expiring.expires_at - TimeDelta::milliseconds(1);
    let found = t.use_refresh_token(&expiring.hash, before).await.unwrap();
    assert_eq!(found, RefreshTokenUse::Fresh(expiring));
}

fn event(organization: OrganizationId, action: AuditAction, days_ago: i64) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::new(),
        organization_id: organization,
        actor: None,
        operator: None,
        action,
        target: "Acme".into(),
        at: now_ms() - TimeDelta::days(days_ago),
        request_id: None,
        client_ip: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_entries_name_their_operator_and_older_ones_have_none() {
    let t = TestStore::new().await;
    let organization = OrganizationId::new();
    let old = AuditEventId::new();
    t.db.collection::<mongodb::bson::Document>("audit_events")
        .insert_one(mongodb::bson::doc! {
            "id": old.to_string(),
            "organization_id": organization.to_string(),
            "action": "organization.created",
            "target": "Acme",
            "at": mongodb::bson::DateTime::from_millis(now_ms().timestamp_millis()),
        })
        .await
        .unwrap();
    let by_operator = AuditEvent {
        operator: Some(OperatorKeyName::parse("support-bot").unwrap()),
        ..event(organization, AuditAction::OrganizationRenamed, 0)
    };
    t.record(by_operator.clone()).await.unwrap();
    let page = t
        .audit_events(organization, AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
    assert_eq!(page.events[0], by_operator);
    assert_eq!(page.events[1].id, old);
    assert_eq!(page.events[1].operator, None);
    let stored = t.raw("audit_events").await;
    assert!(stored
        .iter()
        .any(|doc| doc.get_str("operator") == Ok("support-bot")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_the_same_audit_event_twice_keeps_one() {
    let t = TestStore::new().await;
    let entry = event(OrganizationId::new(), AuditAction::LoginFailed, 0);
    t.record(entry.clone()).await.unwrap();
    t.record(entry.clone()).await.unwrap();
    let page = t
        .audit_events(entry.organization_id, AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(page.events, [entry]);
    assert!(page.next.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_purge_spares_an_organization_that_exists_whatever_its_log_says() {
    let t = TestStore::new().await;
    let acme = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    t.record(event(acme.id, AuditAction::OrganizationCreated, 60))
        .await
        .unwrap();
    t.record(event(acme.id, AuditAction::OrganizationDeleted, 40))
        .await
        .unwrap();
    let cutoff = now_ms() - TimeDelta::days(30);
    assert_eq!(t.purge_deleted_before(cutoff).await.unwrap(), 0);

    t.delete_organization(acme.id).await.unwrap();
    assert_eq!(t.purge_deleted_before(cutoff).await.unwrap(), 2);
    assert!(t.raw("audit_events").await.is_empty());
}
