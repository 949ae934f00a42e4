//! Contract checks for the invitations ([`crate::InvitationStore`]).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::{email, hash as password, new_org, Store};
use crate::{
    AcceptInvitationError, AdminId, AdminRole, DeleteOrganizationError, Invitation,
    InvitationError, InvitationQuery, InvitationStatus, OrganizationId, OutboxMessage, PageSize,
    TokenHash, DEFAULT_INVITATION_TTL,
};

fn now_ms() -> DateTime<Utc> {
    crate::clock::now_millis()
}

fn token(n: u32) -> TokenHash {
    TokenHash::from_hex(format!("{:064x}", 0x1_0000_0000_u64 + u64::from(n)))
}

/// An organization `tag` with its owner; `(organization, owner)`.
async fn organization(store: &Store, tag: &str) -> (OrganizationId, AdminId) {
    let created = store
        .create_organization(new_org(
            &format!("Inviting {tag}"),
            &format!("owner@{tag}.example"),
        ))
        .await
        .unwrap();
    (created.id, created.admin_id)
}

fn message_for(invitation: &Invitation, n: u32, at: DateTime<Utc>) -> OutboxMessage {
    OutboxMessage::new(
        invitation.email.clone(),
        format!("Invitation {n}"),
        format!("Open https://app.example/invite?token=t{n}"),
        format!("<a href=\"https://app.example/invite?token=t{n}\">join</a>"),
        at,
    )
}

/// Creates an invitation of `to` with token `n`, created at `at` for `ttl`.
async fn invite(
    store: &Store,
    (organization, owner): (OrganizationId, AdminId),
    to: &str,
    n: u32,
    at: DateTime<Utc>,
    ttl: Duration,
) -> Invitation {
    let invitation = Invitation::new(organization, email(to), AdminRole::Admin, owner, at, ttl);
    let message = message_for(&invitation, n, at);
    store
        .create_invitation(invitation.clone(), token(n), message)
        .await
        .unwrap();
    invitation
}

/// Invitations come back as created, newest first, one organization's
/// only; following `next` visits each once.
pub async fn invitations_page_newest_first_per_organization(store: Store) {
    let org = organization(&store, "a").await;
    let other = organization(&store, "b").await;
    let now = now_ms();
    let mut created = Vec::new();
    for n in 0..5 {
        let to = format!("new{n}@a.example");
        created.push(invite(&store, org, &to, n, now, DEFAULT_INVITATION_TTL).await);
    }
    invite(
        &store,
        other,
        "new@b.example",
        9,
        now,
        DEFAULT_INVITATION_TTL,
    )
    .await;

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let query = InvitationQuery {
            limit: PageSize::parse(2).unwrap(),
            before,
        };
        let page = store.invitations_of(org.0, query).await.unwrap();
        assert!(page.invitations.len() <= 2);
        seen.extend(page.invitations);
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "newest first, each once, as created");
    assert_eq!(seen[0].status_at(now), InvitationStatus::Pending);
    let unknown = store
        .invitations_of(OrganizationId::new(), InvitationQuery::default())
        .await
        .unwrap();
    assert!(unknown.invitations.is_empty());
    let one = &seen[2];
    let found = store.invitation(org.0, one.id).await.unwrap();
    assert_eq!(found.as_ref(), Some(one));
    let foreign = store.invitation(other.0, one.id).await.unwrap();
    assert_eq!(foreign, None, "another organization's invitation");
}

/// The invitation's email is queued with it; an invitation of an email
/// that an admin (of any organization) has, or to an unknown organization,
/// stores nothing.
pub async fn invitation_and_its_message_are_stored_together(store: Store) {
    let org = organization(&store, "a").await;
    organization(&store, "b").await;
    let now = now_ms();
    let invitation = invite(&store, org, "new@a.example", 1, now, DEFAULT_INVITATION_TTL).await;
    let claimed = store
        .claim_due_messages(now, now + TimeDelta::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].to, invitation.email);
    assert_eq!(
        claimed[0].text_body,
        "Open https://app.example/invite?token=t1"
    );

    for (to, n) in [("owner@b.example", 2), ("owner@a.example", 3)] {
        let taken = Invitation::new(
            org.0,
            email(to),
            AdminRole::Admin,
            org.1,
            now,
            DEFAULT_INVITATION_TTL,
        );
        let message = message_for(&taken, n, now);
        let refused = store.create_invitation(taken, token(n), message).await;
        assert!(matches!(refused, Err(InvitationError::EmailTaken)), "{to}");
    }
    let orphan = Invitation::new(
        OrganizationId::new(),
        email("x@example.com"),
        AdminRole::Admin,
        org.1,
        now,
        DEFAULT_INVITATION_TTL,
    );
    let message = message_for(&orphan, 4, now);
    let refused = store.create_invitation(orphan, token(4), message).await;
    assert!(matches!(refused, Err(InvitationError::NotFound)));
    let later = now + TimeDelta::minutes(2);
    let nothing_else = store
        .claim_due_messages(later, later + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert!(
        nothing_else.is_empty(),
        "refused invitations queue no email"
    );
    let page = store
        .invitations_of(org.0, InvitationQuery::default())
        .await
        .unwrap();
    assert_eq!(page.invitations, vec![invitation]);
}

/// Accepting creates the invited admin (email, role, the given password)
/// and marks the invitation accepted; the token then is dead.
pub async fn invitation_is_accepted_once(store: Store) {
    let org = organization(&store, "a").await;
    let now = now_ms();
    let mut invitation = Invitation::new(
        org.0,
        email("new@a.example"),
        AdminRole::Owner,
        org.1,
        now,
        DEFAULT_INVITATION_TTL,
    );
    let message = message_for(&invitation, 1, now);
    store
        .create_invitation(invitation.clone(), token(1), message)
        .await
        .unwrap();
    let unknown = store
        .accept_invitation(&token(99), now, password("new"))
        .await;
    assert!(matches!(unknown, Err(AcceptInvitationError::InvalidToken)));

    let at = now + TimeDelta::seconds(3);
    let (accepted, admin) = store
        .accept_invitation(&token(1), at, password("new"))
        .await
        .unwrap();
    assert_eq!(admin.email, invitation.email);
    assert_eq!(admin.role, AdminRole::Owner);
    assert_eq!(admin.organization_id, org.0);
    assert_eq!(admin.token_version, 0);
    assert!(
        admin.email_verified,
        "the token reached the invited address"
    );
    invitation.accepted = Some((at, admin.id));
    assert_eq!(accepted, invitation);
    assert_eq!(accepted.status_at(at), InvitationStatus::Accepted);
    let credentials = store
        .admin_credentials_by_email(&invitation.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.admin, admin);
    assert_eq!(credentials.password_hash, password("new"));

    let again = store.accept_invitation(&token(1), at, password("x")).await;
    assert!(matches!(again, Err(AcceptInvitationError::InvalidToken)));
    let page = store
        .invitations_of(org.0, InvitationQuery::default())
        .await
        .unwrap();
    assert_eq!(page.invitations, vec![invitation]);
    let revoked = store.revoke_invitation(org.0, accepted.id, at).await;
    assert!(matches!(
        revoked,
        Err(InvitationError::NotPending(InvitationStatus::Accepted))
    ));
}

/// Of racing accepts of one invitation exactly one creates the admin.
pub async fn concurrent_accepts_of_an_invitation_have_one_winner(store: Store) {
    let org = organization(&store, "a").await;
    let now = now_ms();
    for round in 0..3 {
        let to = format!("new{round}@a.example");
        invite(&store, org, &to, round, now, DEFAULT_INVITATION_TTL).await;
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .accept_invitation(&token(round), now, password("new"))
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => winners += 1,
                Err(AcceptInvitationError::InvalidToken) => {}
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    let admins = store.admins_of(org.0).await.unwrap();
    assert_eq!(admins.len(), 4, "the owner and one admin per round");
}

/// Expired and revoked invitations are refused; revoking acts on a pending
/// invitation of that organization only.
pub async fn expired_or_revoked_invitation_is_refused(store: Store) {
    let org = organization(&store, "a").await;
    let other = organization(&store, "b").await;
    let now = now_ms();
    let hour = Duration::from_secs(3600);
    let expired = invite(
        &store,
        org,
        "late@a.example",
        1,
        now - TimeDelta::hours(1),
        hour,
    )
    .await;
    assert_eq!(expired.expires_at, now);
    let refused = store.accept_invitation(&token(1), now, password("p")).await;
    assert!(matches!(refused, Err(AcceptInvitationError::InvalidToken)));
    let revoked = store.revoke_invitation(org.0, expired.id, now).await;
    assert!(matches!(
        revoked,
        Err(InvitationError::NotPending(InvitationStatus::Expired))
    ));

    let pending = invite(&store, org, "new@a.example", 2, now, hour).await;
    let foreign = store.revoke_invitation(other.0, pending.id, now).await;
    assert!(matches!(foreign, Err(InvitationError::NotFound)));
    let revoked = store
        .revoke_invitation(org.0, pending.id, now)
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(now));
    assert_eq!(revoked.status_at(now), InvitationStatus::Revoked);
    let refused = store.accept_invitation(&token(2), now, password("p")).await;
    assert!(matches!(refused, Err(AcceptInvitationError::InvalidToken)));
    let twice = store.revoke_invitation(org.0, pending.id, now).await;
    assert!(matches!(
        twice,
        Err(InvitationError::NotPending(InvitationStatus::Revoked))
    ));
    // Usable until just before it expires: the store compares the times.
    let start = now - TimeDelta::hours(1) + TimeDelta::milliseconds(10);
    let almost = invite(&store, org, "almost@a.example", 3, start, hour).await;
    let last_moment = almost.expires_at - TimeDelta::milliseconds(1);
    store
        .accept_invitation(&token(3), last_moment, password("p"))
        .await
        .unwrap();
}

/// A resend replaces the token (the old one dies at once), queues a new
/// email and sets the new expiry; only pending invitations are resent.
pub async fn resending_an_invitation_kills_its_old_token(store: Store) {
    let org = organization(&store, "a").await;
    let now = now_ms();
    let invitation = invite(&store, org, "new@a.example", 1, now, DEFAULT_INVITATION_TTL).await;
    store
        .claim_due_messages(now, now + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    let later = now + TimeDelta::seconds(10);
    let expires_at = later + TimeDelta::days(2);
    let resent_message = message_for(&invitation, 2, later);
    let resent = store
        .replace_invitation_token(
            org.0,
            invitation.id,
            token(2),
            resent_message,
            expires_at,
            later,
        )
        .await
        .unwrap();
    assert_eq!(resent.expires_at, expires_at);
    assert_eq!(resent.created_at, invitation.created_at);
    let claimed = store
        .claim_due_messages(later, later + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one new email");
    assert_eq!(
        claimed[0].text_body,
        "Open https://app.example/invite?token=t2"
    );

    let old = store
        .accept_invitation(&token(1), later, password("p"))
        .await;
    assert!(matches!(old, Err(AcceptInvitationError::InvalidToken)));
    let (accepted, _) = store
        .accept_invitation(&token(2), later, password("p"))
        .await
        .unwrap();
    assert_eq!(accepted.id, invitation.id);
    let message = message_for(&invitation, 3, later);
    let again = store
        .replace_invitation_token(org.0, invitation.id, token(3), message, expires_at, later)
        .await;
    assert!(matches!(
        again,
        Err(InvitationError::NotPending(InvitationStatus::Accepted))
    ));
    let message = message_for(&invitation, 4, later);
    let unknown = store
        .replace_invitation_token(
            org.0,
            crate::InvitationId::new(),
            token(4),
            message,
            expires_at,
            later,
        )
        .await;
    assert!(matches!(unknown, Err(InvitationError::NotFound)));
}

/// When the invited email became an admin's since, accepting is refused,
/// creates nothing and leaves the invitation pending.
pub async fn accepting_with_a_taken_email_creates_nothing(store: Store) {
    let org = organization(&store, "a").await;
    let now = now_ms();
    let invitation = invite(&store, org, "new@b.example", 1, now, DEFAULT_INVITATION_TTL).await;
    organization(&store, "b").await; // owner@b.example: not the invited email
    store
        .create_organization(new_org("Taker", "new@b.example"))
        .await
        .unwrap();
    let refused = store.accept_invitation(&token(1), now, password("p")).await;
    assert!(matches!(refused, Err(AcceptInvitationError::EmailTaken)));
    assert_eq!(store.admins_of(org.0).await.unwrap().len(), 1);
    let page = store
        .invitations_of(org.0, InvitationQuery::default())
        .await
        .unwrap();
    assert_eq!(page.invitations, vec![invitation]);
    assert_eq!(
        page.invitations[0].status_at(now),
        InvitationStatus::Pending
    );
}

/// Deleting an organization deletes its invitations (their tokens die)
/// and their unsent emails; other organizations' stay.
pub async fn deleting_an_organization_deletes_its_invitations(store: Store) {
    let org = organization(&store, "a").await;
    let other = organization(&store, "b").await;
    let now = now_ms();
    invite(&store, org, "new@a.example", 1, now, DEFAULT_INVITATION_TTL).await;
    let kept = invite(
        &store,
        other,
        "new@b.example",
        2,
        now,
        DEFAULT_INVITATION_TTL,
    )
    .await;
    store.delete_organization(org.0).await.unwrap();
    assert!(matches!(
        store.delete_organization(org.0).await,
        Err(DeleteOrganizationError::NotFound)
    ));
    let gone = store
        .invitations_of(org.0, InvitationQuery::default())
        .await
        .unwrap();
    assert!(gone.invitations.is_empty());
    let refused = store.accept_invitation(&token(1), now, password("p")).await;
    assert!(refused.is_err(), "a deleted organization's token is dead");
    let claimed = store
        .claim_due_messages(now, now + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "only the other organization's email");
    assert_eq!(claimed[0].to, kept.email);
    let page = store
        .invitations_of(other.0, InvitationQuery::default())
        .await
        .unwrap();
    assert_eq!(page.invitations, vec![kept]);
}

/// The purge deletes invitations that expired before the cutoff, whatever
/// their status, and keeps the others.
pub async fn purge_forgets_long_expired_invitations(store: Store) {
    let org = organization(&store, "a").await;
    let now = now_ms();
    let hour = Duration::from_secs(3600);
    let old = invite(
        &store,
        org,
        "old@a.example",
        1,
        now - TimeDelta::days(40),
        hour,
    )
    .await;
    let recent = invite(
        &store,
        org,
        "recent@a.example",
        2,
        now - TimeDelta::days(2),
        hour,
    )
    .await;
    let pending = invite(&store, org, "new@a.example", 3, now, hour).await;
    let cutoff = now - TimeDelta::days(30);
    assert!(old.expires_at < cutoff && recent.expires_at > cutoff);
    assert_eq!(store.purge_invitations(cutoff).await.unwrap(), 1);
    let page = store
        .invitations_of(org.0, InvitationQuery::default())
        .await
        .unwrap();
    assert_eq!(page.invitations, vec![pending, recent]);
    assert_eq!(store.purge_invitations(cutoff).await.unwrap(), 0);
}
