//! Admin security (issue #5) as only the SQLite store shows it: the rows it
//! keeps, the foreign keys it must satisfy, and state surviving a reopen.

use chrono::{DateTime, TimeDelta, Utc};
use orgsvc_domain::testing::new_org;
use orgsvc_domain::{
    AdminEmail, AdminId, AdminRole, AuditAction, AuditEvent, AuditEventId, AuditLog, AuditQuery,
    LoginAttempt, LoginThrottle, NewAdmin, OrganizationId, PasswordHash, RefreshToken,
    RefreshTokenHash, RefreshTokenUse, SessionFamilyId, SessionStore, TenantStore,
};
use orgsvc_sqlite::SqliteStore;

use crate::support::{connect, migrated_store};

fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn token(tag: &str, family: SessionFamilyId, expires_at: DateTime<Utc>) -> RefreshToken {
    RefreshToken {
        hash: RefreshTokenHash::from_hex(format!("{tag:0>64}")),
        family,
        admin_id: AdminId::new(),
        organization_id: OrganizationId::new(),
        token_version: 0,
        issued_at: expires_at - TimeDelta::hours(1),
        expires_at,
    }
}

fn event(organization: OrganizationId, action: AuditAction, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::new(),
        organization_id: organization,
        actor: None,
        operator: None,
        action,
        target: organization.to_string(),
        at,
        request_id: None,
        client_ip: None,
    }
}

fn throttle() -> LoginThrottle {
    LoginThrottle {
        max_failures: 1,
        base_lock: std::time::Duration::from_secs(60),
        max_lock: std::time::Duration::from_secs(600),
    }
}

#[tokio::test]
async fn sessions_throttling_and_audit_survive_reopening_the_file() {
    let test = migrated_store().await;
    let now = now_ms();
    let saved = token("a1", SessionFamilyId::new(), now + TimeDelta::days(1));
    test.store.save_refresh_token(saved.clone()).await.unwrap();
    let recorded = event(OrganizationId::new(), AuditAction::LoginFailed, now);
    test.store.record(recorded.clone()).await.unwrap();
    let email = AdminEmail::parse("owner@acme.example").unwrap();
    for _ in 0..2 {
        test.store
            .begin_login_attempt(&email, now, &throttle())
            .await
            .unwrap();
    }
    drop(test.store);

    let reopened = SqliteStore::open(&test.path).await.unwrap();

    assert_eq!(
        reopened.use_refresh_token(&saved.hash, now).await.unwrap(),
        RefreshTokenUse::Fresh(saved)
    );
    let page = reopened
        .audit_events(recorded.organization_id, AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(page.events, [recorded]);
    assert_eq!(
        reopened
            .begin_login_attempt(&email, now, &throttle())
            .await
            .unwrap(),
        LoginAttempt::Locked {
            until: now + TimeDelta::seconds(60),
            just_locked: false
        }
    );
}

#[tokio::test]
async fn purging_forgets_a_revoked_family_once_it_has_no_token_left() {
    let test = migrated_store().await;
    let now = now_ms();
    let (expired, live) = (SessionFamilyId::new(), SessionFamilyId::new());
    let expiring = token("b1", expired, now + TimeDelta::minutes(1));
    let lasting = token("b2", live, now + TimeDelta::days(1));
    for saved in [&expiring, &lasting] {
        test.store.save_refresh_token(saved.clone()).await.unwrap();
    }
    for family in [expired, live] {
        test.store.revoke_family(family).await.unwrap();
    }

    let later = now + TimeDelta::minutes(2);
    let purged = test.store.purge_sessions(later, now).await.unwrap();

    assert_eq!(purged, 2, "one token and its family");
    let revoked: Vec<String> = connect(&test.path)
        .prepare("SELECT family FROM revoked_families")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(revoked, [live.to_string()]);
    assert_eq!(
        test.store
            .use_refresh_token(&lasting.hash, later)
            .await
            .unwrap(),
        RefreshTokenUse::Invalid
    );
}

#[tokio::test]
async fn the_retention_purge_spares_organizations_that_still_exist() {
    let test = migrated_store().await;
    let existing = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let long_ago = now_ms() - TimeDelta::days(400);
    for action in [
        AuditAction::OrganizationCreated,
        AuditAction::OrganizationDeleted,
    ] {
        let entry = event(existing.id, action, long_ago);
        test.store.record(entry).await.unwrap();
    }

    let purged = test.store.purge_deleted_before(now_ms()).await.unwrap();

    assert_eq!(purged, 0);
    let page = test
        .store
        .audit_events(existing.id, AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
}

#[tokio::test]
async fn handing_over_the_primary_admin_keeps_the_foreign_keys_satisfied() {
    let test = migrated_store().await;
    let created = test
        .store
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let second = test
        .store
        .add_admin(
            created.id,
            NewAdmin::new(
                AdminEmail::parse("second@acme.example").unwrap(),
                AdminRole::Owner,
                PasswordHash::from_phc_string("$argon2id$v=19$m=8,t=1,p=1$dGVzdA$x".to_owned()),
            ),
        )
        .await
        .unwrap();

    test.store
        .remove_admin(created.id, created.admin_id)
        .await
        .unwrap();

    let connection = connect(&test.path);
    let violations: i64 = connection
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(violations, 0);
    let primary: String = connection
        .query_row(
            "SELECT admin_id FROM organizations WHERE id = ?1",
            [created.id.to_string()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(primary, second.id.to_string());
}
