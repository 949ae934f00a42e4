//! Contract checks for admins with roles, sessions (refresh tokens, login
//! throttling) and the audit log.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::{create, email, hash, Store};
use crate::{
    AddAdminError, AdminId, AdminRole, AuditAction, AuditEvent, AuditEventId, AuditQuery,
    ChangeAdminError, LoginAttempt, LoginThrottle, NewAdmin, OrganizationId, PageSize,
    RefreshToken, RefreshTokenHash, RefreshTokenUse, SessionFamilyId,
};

fn now_ms() -> DateTime<Utc> {
    crate::clock::now_millis()
}

fn new_admin(address: &str, role: AdminRole) -> NewAdmin {
    NewAdmin::new(email(address), role, hash(address))
}

/// The creator is an owner; owners add admins, which are listed oldest first
/// and can log in.
pub async fn creator_is_owner_and_added_admins_are_listed(store: Store) {
    let org = create(&store, "Acme").await;
    let creator = store.admin_by_id(org.admin_id).await.unwrap().unwrap();
    assert_eq!(creator.role, AdminRole::Owner);

    let added = store
        .add_admin(org.id, new_admin("ops@acme.example", AdminRole::Admin))
        .await
        .unwrap();
    assert_eq!(added.organization_id, org.id);
    assert_eq!(added.role, AdminRole::Admin);
    assert_eq!(added.token_version, 0);
    assert_eq!(added.email.as_str(), "ops@acme.example");
    assert_eq!(
        store.admin_by_id(added.id).await.unwrap(),
        Some(added.clone())
    );

    let listed = store.admins_of(org.id).await.unwrap();
    assert_eq!(listed, vec![creator, added.clone()]);
    let credentials = store
        .admin_credentials_by_email(&email("ops@acme.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.admin, added);
    assert_eq!(credentials.password_hash, hash("ops@acme.example"));

    let other = create(&store, "Globex").await;
    assert_eq!(store.admins_of(other.id).await.unwrap().len(), 1);
    assert!(store
        .admins_of(OrganizationId::new())
        .await
        .unwrap()
        .is_empty());
}

/// Adding an admin with a taken email, or to an unknown organization,
/// stores nothing.
pub async fn add_admin_rejects_taken_email_and_unknown_organization(store: Store) {
    let org = create(&store, "Acme").await;
    let other = create(&store, "Globex").await;
    let taken = store
        .add_admin(org.id, new_admin("owner@globex.example", AdminRole::Admin))
        .await
        .unwrap_err();
    assert!(matches!(taken, AddAdminError::EmailTaken), "{taken:?}");
    let unknown = store
        .add_admin(
            OrganizationId::new(),
            new_admin("x@acme.example", AdminRole::Owner),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, AddAdminError::OrganizationNotFound),
        "{unknown:?}"
    );
    assert_eq!(store.admins_of(org.id).await.unwrap().len(), 1);
    assert_eq!(store.admins_of(other.id).await.unwrap().len(), 1);
    assert!(store
        .admin_credentials_by_email(&email("x@acme.example"))
        .await
        .unwrap()
        .is_none());
}

/// The only owner can be neither removed nor demoted; once another owner
/// exists, both work. Admins of other organizations are not found.
pub async fn last_owner_cannot_be_removed_or_demoted(store: Store) {
    let org = create(&store, "Acme").await;
    let other = create(&store, "Globex").await;
    let owner = org.admin_id;

    let removed = store.remove_admin(org.id, owner).await.unwrap_err();
    assert!(
        matches!(removed, ChangeAdminError::LastOwner),
        "{removed:?}"
    );
    let demoted = store
        .set_admin_role(org.id, owner, AdminRole::Admin)
        .await
        .unwrap_err();
    assert!(
        matches!(demoted, ChangeAdminError::LastOwner),
        "{demoted:?}"
    );
    assert_eq!(
        store.admin_by_id(owner).await.unwrap().unwrap().role,
        AdminRole::Owner
    );

    for id in [AdminId::new(), other.admin_id] {
        let err = store.remove_admin(org.id, id).await.unwrap_err();
        assert!(matches!(err, ChangeAdminError::NotFound), "{err:?}");
        let err = store
            .set_admin_role(org.id, id, AdminRole::Owner)
            .await
            .unwrap_err();
        assert!(matches!(err, ChangeAdminError::NotFound), "{err:?}");
    }

    let second = store
        .add_admin(org.id, new_admin("second@acme.example", AdminRole::Admin))
        .await
        .unwrap();
    let promoted = store
        .set_admin_role(org.id, second.id, AdminRole::Owner)
        .await
        .unwrap();
    assert_eq!(promoted.role, AdminRole::Owner);
    let demoted = store
        .set_admin_role(org.id, owner, AdminRole::Admin)
        .await
        .unwrap();
    assert_eq!(demoted.role, AdminRole::Admin);
    store.remove_admin(org.id, owner).await.unwrap();
    assert!(store.admin_by_id(owner).await.unwrap().is_none());
    let err = store.remove_admin(org.id, second.id).await.unwrap_err();
    assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");
}

/// Two owners removing or demoting each other at once: one change wins, one
/// owner stays.
pub async fn racing_changes_never_remove_the_last_owner(store: Store) {
    for round in 0..4 {
        let org = create(&store, &format!("Race {round}")).await;
        let second = store
            .add_admin(
                org.id,
                new_admin(&format!("second{round}@race.example"), AdminRole::Owner),
            )
            .await
            .unwrap();
        let (a, b) = (org.admin_id, second.id);
        let (s1, s2) = (store.clone(), store.clone());
        let org_id = org.id;
        let first = tokio::spawn(async move {
            if round % 2 == 0 {
                s1.remove_admin(org_id, a).await
            } else {
                s1.set_admin_role(org_id, a, AdminRole::Admin)
                    .await
                    .map(|_| ())
            }
        });
        let second = tokio::spawn(async move { s2.remove_admin(org_id, b).await });
        let results = [first.await.unwrap(), second.await.unwrap()];
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        for result in &results {
            if let Err(err) = result {
                assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");
            }
        }
        let owners = store
            .admins_of(org.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|admin| admin.role == AdminRole::Owner)
            .count();
        assert_eq!(owners, 1, "round {round}");
    }
}

/// Removing or demoting the primary admin makes the longest-standing
/// remaining owner primary; the removed admin's email is free again.
pub async fn primary_admin_passes_to_the_oldest_remaining_owner(store: Store) {
    let org = create(&store, "Acme").await;
    let plain = store
        .add_admin(org.id, new_admin("plain@acme.example", AdminRole::Admin))
        .await
        .unwrap();
    let older = store
        .add_admin(org.id, new_admin("older@acme.example", AdminRole::Owner))
        .await
        .unwrap();
    let newer = store
        .add_admin(org.id, new_admin("newer@acme.example", AdminRole::Owner))
        .await
        .unwrap();

    store.remove_admin(org.id, org.admin_id).await.unwrap();
    let org_now = store.organization_by_id(org.id).await.unwrap().unwrap();
    assert_eq!(org_now.admin_id, older.id);
    assert!(store
        .admin_credentials_by_email(&email("owner@acme.example"))
        .await
        .unwrap()
        .is_none());

    store
        .set_admin_role(org.id, older.id, AdminRole::Admin)
        .await
        .unwrap();
    let org_now = store.organization_by_id(org.id).await.unwrap().unwrap();
    assert_eq!(org_now.admin_id, newer.id);
    assert_ne!(org_now.admin_id, plain.id);

    store
        .add_admin(org.id, new_admin("owner@acme.example", AdminRole::Admin))
        .await
        .unwrap();
}

/// Deleting an organization removes every one of its admins.
pub async fn delete_removes_every_admin(store: Store) {
    let org = create(&store, "Acme").await;
    let added = store
        .add_admin(org.id, new_admin("ops@acme.example", AdminRole::Admin))
        .await
        .unwrap();
    store.delete_organization(org.id).await.unwrap();
    assert!(store.admin_by_id(added.id).await.unwrap().is_none());
    assert!(store
        .admin_credentials_by_email(&email("ops@acme.example"))
        .await
        .unwrap()
        .is_none());
    assert!(store.admins_of(org.id).await.unwrap().is_empty());
}

/// A rehash replaces the hash only while it is still the current one, and
/// leaves the token version and `updated_at` alone.
pub async fn rehash_replaces_only_the_current_hash(store: Store) {
    let org = create(&store, "Acme").await;
    let before = store.admin_by_id(org.admin_id).await.unwrap().unwrap();

    let stale = store
        .rehash_password(org.admin_id, &hash("not-current"), hash("rehashed"))
        .await
        .unwrap();
    assert!(!stale);
    let credentials = store
        .admin_credentials_by_email(&before.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.password_hash, hash("initial"));

    let replaced = store
        .rehash_password(org.admin_id, &hash("initial"), hash("rehashed"))
        .await
        .unwrap();
    assert!(replaced);
    let credentials = store
        .admin_credentials_by_email(&before.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.password_hash, hash("rehashed"));
    assert_eq!(credentials.admin, before);
    assert!(!store
        .rehash_password(AdminId::new(), &hash("initial"), hash("x"))
        .await
        .unwrap());
}

fn refresh_token(tag: &str, family: SessionFamilyId, expires_in: TimeDelta) -> RefreshToken {
    let issued_at = now_ms();
    RefreshToken {
        hash: RefreshTokenHash::from_hex(format!("{tag:0>64}")),
        family,
        admin_id: AdminId::new(),
        organization_id: OrganizationId::new(),
        token_version: 3,
        issued_at,
        expires_at: issued_at + expires_in,
    }
}

fn unknown_hash() -> RefreshTokenHash {
    RefreshTokenHash::from_hex("f".repeat(64))
}

/// A refresh token is fresh once, reused afterwards; unknown hashes are
/// invalid.
pub async fn refresh_token_is_fresh_once_then_reused(store: Store) {
    let token = refresh_token("a1", SessionFamilyId::new(), TimeDelta::days(1));
    store.save_refresh_token(token.clone()).await.unwrap();

    let first = store
        .use_refresh_token(&token.hash, now_ms())
        .await
        .unwrap();
    assert_eq!(first, RefreshTokenUse::Fresh(token.clone()));
    let second = store
        .use_refresh_token(&token.hash, now_ms())
        .await
        .unwrap();
    assert_eq!(second, RefreshTokenUse::Reused(token.clone()));
    let unknown = store
        .use_refresh_token(&unknown_hash(), now_ms())
        .await
        .unwrap();
    assert_eq!(unknown, RefreshTokenUse::Invalid);
}

/// Of many simultaneous uses of one token, exactly one is fresh.
pub async fn concurrent_uses_of_a_refresh_token_have_one_fresh(store: Store) {
    let token = refresh_token("b2", SessionFamilyId::new(), TimeDelta::days(1));
    store.save_refresh_token(token.clone()).await.unwrap();
    let uses: Vec<_> = (0..8)
        .map(|_| {
            let (store, hash) = (store.clone(), token.hash.clone());
            tokio::spawn(async move { store.use_refresh_token(&hash, now_ms()).await })
        })
        .collect();
    let mut fresh = 0;
    for handle in uses {
        match handle.await.unwrap().unwrap() {
            RefreshTokenUse::Fresh(found) => {
                assert_eq!(found, token);
                fresh += 1;
            }
            RefreshTokenUse::Reused(found) => assert_eq!(found, token),
            other => panic!("a known token of a live session was {other:?}"),
        }
    }
    assert_eq!(fresh, 1);
}

/// An unused token past its expiry is invalid.
pub async fn expired_refresh_token_is_invalid(store: Store) {
    let token = refresh_token("c3", SessionFamilyId::new(), TimeDelta::minutes(1));
    store.save_refresh_token(token.clone()).await.unwrap();
    let later = token.expires_at + TimeDelta::milliseconds(1);
    let found = store.use_refresh_token(&token.hash, later).await.unwrap();
    assert_eq!(found, RefreshTokenUse::Invalid);
}

/// Revoking a family invalidates its tokens, including one saved after the
/// revocation, and no other family's; a used one presented again then finds
/// its session ended (not a replay to act on).
pub async fn revoking_a_family_invalidates_present_and_future_tokens(store: Store) {
    let family = SessionFamilyId::new();
    let used = refresh_token("d4", family, TimeDelta::days(1));
    let unused = refresh_token("d5", family, TimeDelta::days(1));
    let other = refresh_token("d6", SessionFamilyId::new(), TimeDelta::days(1));
    for token in [&used, &unused, &other] {
        store.save_refresh_token(token.clone()).await.unwrap();
    }
    assert!(matches!(
        store.use_refresh_token(&used.hash, now_ms()).await.unwrap(),
        RefreshTokenUse::Fresh(_)
    ));

    store.revoke_family(family).await.unwrap();
    store.revoke_family(family).await.unwrap();
    let late = refresh_token("d7", family, TimeDelta::days(1));
    store.save_refresh_token(late.clone()).await.unwrap();

    for token in [&unused, &late] {
        let found = store
            .use_refresh_token(&token.hash, now_ms())
            .await
            .unwrap();
        assert_eq!(found, RefreshTokenUse::Invalid);
    }
    let replay = store.use_refresh_token(&used.hash, now_ms()).await.unwrap();
    assert_eq!(replay, RefreshTokenUse::Ended(used));
    let other_use = store
        .use_refresh_token(&other.hash, now_ms())
        .await
        .unwrap();
    assert_eq!(other_use, RefreshTokenUse::Fresh(other));
}

/// Purging forgets expired tokens (a used one is no longer even reported as
/// reused) and keeps live ones.
pub async fn purge_forgets_expired_refresh_tokens(store: Store) {
    let expiring = refresh_token("e8", SessionFamilyId::new(), TimeDelta::minutes(1));
    let live = refresh_token("e9", SessionFamilyId::new(), TimeDelta::days(1));
    store.save_refresh_token(expiring.clone()).await.unwrap();
    store.save_refresh_token(live.clone()).await.unwrap();
    store
        .use_refresh_token(&expiring.hash, now_ms())
        .await
        .unwrap();

    let later = expiring.expires_at + TimeDelta::seconds(1);
    let purged = store.purge_sessions(later, later).await.unwrap();
    assert!(purged >= 1, "purged {purged}");
    let found = store
        .use_refresh_token(&expiring.hash, later)
        .await
        .unwrap();
    assert_eq!(found, RefreshTokenUse::Invalid);
    let found = store.use_refresh_token(&live.hash, later).await.unwrap();
    assert_eq!(found, RefreshTokenUse::Fresh(live));
}

fn throttle() -> LoginThrottle {
    LoginThrottle {
        max_failures: 3,
        base_lock: Duration::from_secs(60),
        max_lock: Duration::from_secs(150),
    }
}

async fn attempt(store: &Store, address: &str, at: DateTime<Utc>) -> LoginAttempt {
    store
        .begin_login_attempt(&email(address), at, &throttle())
        .await
        .unwrap()
}

/// `max_failures` attempts pass, the next one locks; each further lock
/// without a success in between lasts twice as long (up to `max_lock`); a
/// success starts over.
pub async fn failed_logins_lock_for_growing_intervals(store: Store) {
    let who = "owner@acme.example";
    let t0 = now_ms();
    for _ in 0..3 {
        assert_eq!(attempt(&store, who, t0).await, LoginAttempt::Allowed);
    }
    let first_lock = t0 + TimeDelta::seconds(60);
    let expected = LoginAttempt::Locked {
        until: first_lock,
        just_locked: true,
    };
    assert_eq!(attempt(&store, who, t0).await, expected);
    let during = t0 + TimeDelta::seconds(59);
    let expected = LoginAttempt::Locked {
        until: first_lock,
        just_locked: false,
    };
    assert_eq!(attempt(&store, who, during).await, expected);

    let t1 = first_lock;
    for _ in 0..3 {
        assert_eq!(attempt(&store, who, t1).await, LoginAttempt::Allowed);
    }
    let expected = LoginAttempt::Locked {
        until: t1 + TimeDelta::seconds(120),
        just_locked: true,
    };
    assert_eq!(attempt(&store, who, t1).await, expected);

    let t2 = t1 + TimeDelta::seconds(120);
    for _ in 0..3 {
        assert_eq!(attempt(&store, who, t2).await, LoginAttempt::Allowed);
    }
    let expected = LoginAttempt::Locked {
        until: t2 + TimeDelta::seconds(150),
        just_locked: true,
    };
    assert_eq!(attempt(&store, who, t2).await, expected);

    let t3 = t2 + TimeDelta::seconds(150);
    assert_eq!(attempt(&store, who, t3).await, LoginAttempt::Allowed);
    store.login_succeeded(&email(who)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(attempt(&store, who, t3).await, LoginAttempt::Allowed);
    }
    let expected = LoginAttempt::Locked {
        until: t3 + TimeDelta::seconds(60),
        just_locked: true,
    };
    assert_eq!(attempt(&store, who, t3).await, expected);
}

/// Parallel attempts cannot slip past the limit: exactly `max_failures` are
/// allowed and exactly one of the others causes the lock.
pub async fn parallel_login_attempts_never_exceed_the_limit(store: Store) {
    let at = now_ms();
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { attempt(&store, "target@acme.example", at).await })
        })
        .collect();
    let (mut allowed, mut locking, mut refused) = (0, 0, 0);
    for handle in attempts {
        match handle.await.unwrap() {
            LoginAttempt::Allowed => allowed += 1,
            LoginAttempt::Locked {
                just_locked: true, ..
            } => locking += 1,
            LoginAttempt::Locked { .. } => refused += 1,
        }
    }
    assert_eq!((allowed, locking, refused), (3, 1, 12));
}

/// Throttling is per email, known or not.
pub async fn login_throttling_is_per_email(store: Store) {
    let at = now_ms();
    for _ in 0..4 {
        attempt(&store, "nobody@nowhere.example", at).await;
    }
    assert!(matches!(
        attempt(&store, "nobody@nowhere.example", at).await,
        LoginAttempt::Locked { .. }
    ));
    assert_eq!(
        attempt(&store, "someone@nowhere.example", at).await,
        LoginAttempt::Allowed
    );
}

/// Purging forgets the failures of idle emails but keeps running locks.
pub async fn purge_forgets_idle_login_failures_but_keeps_locks(store: Store) {
    let t0 = now_ms();
    for _ in 0..3 {
        attempt(&store, "idle@acme.example", t0).await;
        attempt(&store, "locked@acme.example", t0).await;
    }
    attempt(&store, "locked@acme.example", t0).await; // locks for 60 s
    let now = t0 + TimeDelta::seconds(30);
    store
        .purge_sessions(now, t0 + TimeDelta::seconds(1))
        .await
        .unwrap();

    for _ in 0..3 {
        assert_eq!(
            attempt(&store, "idle@acme.example", now).await,
            LoginAttempt::Allowed
        );
    }
    assert_eq!(
        attempt(&store, "locked@acme.example", now).await,
        LoginAttempt::Locked {
            until: t0 + TimeDelta::seconds(60),
            just_locked: false
        }
    );
}

pub(super) fn event(
    organization: OrganizationId,
    action: AuditAction,
    target: &str,
    at: DateTime<Utc>,
) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::new(),
        organization_id: organization,
        actor: Some(AdminId::new()),
        operator: None,
        action,
        target: target.to_owned(),
        at,
        request_id: Some(format!("req-{target}")),
        client_ip: Some("192.0.2.7".to_owned()),
    }
}

/// An organization's entries page newest first, unchanged, without gaps or
/// repeats, and without another organization's entries.
pub async fn audit_events_page_newest_first_per_organization(store: Store) {
    let (a, b) = (OrganizationId::new(), OrganizationId::new());
    let mut recorded = Vec::new();
    for i in 0..5 {
        let mut entry = event(a, AuditAction::ALL[i], &format!("a{i}"), now_ms());
        if i == 2 {
            entry.actor = None;
            entry.request_id = None;
            entry.client_ip = None;
        }
        store.record(entry.clone()).await.unwrap();
        recorded.push(entry);
        let noise = event(b, AuditAction::LoginFailed, &format!("b{i}"), now_ms());
        store.record(noise).await.unwrap();
    }
    recorded.reverse();

    let limit = PageSize::parse(2).unwrap();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .audit_events(a, AuditQuery { limit, before })
            .await
            .unwrap();
        assert!(page.events.len() <= 2);
        seen.extend(page.events);
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
        assert!(seen.len() <= 5, "paging does not end");
    }
    assert_eq!(seen, recorded);
    let ids: HashSet<_> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 5);
}

/// Purging removes the entries of organizations deleted before the cutoff,
/// and only those.
pub async fn purge_removes_entries_of_long_deleted_organizations_only(store: Store) {
    let now = now_ms();
    let days = |n: i64| now - TimeDelta::days(n);
    let (gone, recent, live) = (
        OrganizationId::new(),
        OrganizationId::new(),
        OrganizationId::new(),
    );
    let entries = [
        event(gone, AuditAction::OrganizationCreated, "gone", days(40)),
        event(gone, AuditAction::LoginSucceeded, "gone", days(35)),
        event(gone, AuditAction::OrganizationDeleted, "gone", days(31)),
        event(recent, AuditAction::OrganizationCreated, "recent", days(40)),
        event(recent, AuditAction::OrganizationDeleted, "recent", days(2)),
        event(live, AuditAction::OrganizationCreated, "live", days(400)),
    ];
    for entry in &entries {
        store.record(entry.clone()).await.unwrap();
    }

    let purged = store.purge_deleted_before(days(30)).await.unwrap();
    assert_eq!(purged, 3);
    let count = |org| {
        let store = store.clone();
        async move {
            store
                .audit_events(org, AuditQuery::default())
                .await
                .unwrap()
                .events
                .len()
        }
    };
    assert_eq!(count(gone).await, 0);
    assert_eq!(count(recent).await, 2);
    assert_eq!(count(live).await, 1);
}
