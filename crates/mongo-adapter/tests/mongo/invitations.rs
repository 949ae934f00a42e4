//! Invitations on MongoDB: the stored shape, and the recovery of the two
//! multi-step paths (moving a waiting email to the outbox, accepting)
//! after a process died part-way.

use chrono::TimeDelta;
use mongodb::bson::{doc, Bson, Document};
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{
    AcceptInvitationError, AdminId, AdminRole, Invitation, InvitationStore, NewAdmin,
    OutboxMessage, OutboxStore, PasswordHash, TenantStore, TokenHash, DEFAULT_INVITATION_TTL,
};

use crate::support::{email, new_org, TestStore};

fn hash(tag: &str) -> PasswordHash {
    PasswordHash::from_phc_string(format!("$argon2id$v=19$m=8,t=1,p=1$dGVzdA$dummy-{tag}"))
}

fn token() -> TokenHash {
    TokenHash::from_hex("ab".repeat(32))
}

/// An organization with a pending invitation of `new@acme.example`.
async fn invited(t: &TestStore) -> Invitation {
    let org = t
        .create_organization(new_org("Acme", "owner@acme.example"))
        .await
        .unwrap();
    let now = now_millis();
    let invitation = Invitation::new(
        org.id,
        email("new@acme.example"),
        AdminRole::Admin,
        org.admin_id,
        now,
        DEFAULT_INVITATION_TTL,
    );
    let message = OutboxMessage::new(
        invitation.email.clone(),
        "Invitation",
        "https://app.example/invite?token=t",
        "<a>join</a>",
        now,
    );
    t.create_invitation(invitation.clone(), token(), message)
        .await
        .unwrap();
    invitation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_is_one_document_with_its_waiting_email_and_times_as_longs() {
    let t = TestStore::new().await;
    let invitation = invited(&t).await;
    let stored = t.raw("invitations").await;
    assert_eq!(stored.len(), 1);
    let record = &stored[0];
    assert_eq!(record.get_str("_id").unwrap(), invitation.id.to_string());
    assert_eq!(
        record.get("expires_ms"),
        Some(&Bson::Int64(invitation.expires_at.timestamp_millis()))
    );
    assert_eq!(record.get_str("token_hash").unwrap(), "ab".repeat(32));
    assert_eq!(record.get("accepted_ms"), Some(&Bson::Null));
    let outgoing = record.get_document("outgoing").unwrap();
    assert_eq!(
        outgoing.get_str("invitation_id").unwrap(),
        invitation.id.to_string()
    );
    assert!(t.raw("outbox").await.is_empty(), "waits until a claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cut_short_after_the_outbox_insert_queues_the_email_once() {
    let t = TestStore::new().await;
    invited(&t).await;
    // A process died after copying the email to the outbox, before clearing
    // it from the invitation.
    let record = t.raw("invitations").await.remove(0);
    let outgoing: Document = record.get_document("outgoing").unwrap().clone();
    t.db.collection::<Document>("outbox")
        .insert_one(outgoing)
        .await
        .unwrap();
    let now = now_millis();
    let claimed = t
        .claim_due_messages(now, now + TimeDelta::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(t.raw("outbox").await.len(), 1);
    let record = t.raw("invitations").await.remove(0);
    assert_eq!(record.get("outgoing"), Some(&Bson::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_that_died_after_creating_the_admin_is_completed_by_the_next() {
    let t = TestStore::new().await;
    let invitation = invited(&t).await;
    // The first accept claimed the invitation for admin `earlier`, created
    // it and died; its claim has expired.
    let earlier = AdminId::new();
    t.db.collection::<Document>("invitations")
        .update_one(
            doc! { "_id": invitation.id.to_string() },
            doc! { "$set": { "claim_until_ms": 1_i64, "claim_admin_id": earlier.to_string() } },
        )
        .await
        .unwrap();
    t.add_admin(
        invitation.organization_id,
        NewAdmin {
            id: earlier,
            email: invitation.email.clone(),
            role: invitation.role,
            password_hash: hash("first"),
        },
    )
    .await
    .unwrap();

    let again = t
        .accept_invitation(&token(), now_millis(), hash("second"))
        .await;
    assert!(matches!(again, Err(AcceptInvitationError::InvalidToken)));
    let found = t
        .invitation(invitation.organization_id, invitation.id)
        .await;
    let accepted = found.unwrap().unwrap().accepted;
    assert_eq!(accepted.map(|(_, admin)| admin), Some(earlier));
    let admins = t.admins_of(invitation.organization_id).await.unwrap();
    assert_eq!(admins.len(), 2, "no second admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_email_releases_the_claim_so_a_later_accept_can_try_again() {
    let t = TestStore::new().await;
    let invitation = invited(&t).await;
    let other = t
        .create_organization(new_org("Other", "new@acme.example"))
        .await
        .unwrap();
    let refused = t.accept_invitation(&token(), now_millis(), hash("p")).await;
    assert!(matches!(refused, Err(AcceptInvitationError::EmailTaken)));
    let record = t.raw("invitations").await.remove(0);
    // (The stand-in stores a `$set` long as an int: compare the number.)
    let claim_until = match record.get("claim_until_ms") {
        Some(Bson::Int64(ms)) => Some(*ms),
        Some(Bson::Int32(ms)) => Some(i64::from(*ms)),
        _ => None,
    };
    assert_eq!(claim_until, Some(0), "the claim was released");
    t.delete_organization(other.id).await.unwrap();
    let (accepted, admin) = t
        .accept_invitation(&token(), now_millis(), hash("p"))
        .await
        .unwrap();
    assert_eq!(accepted.id, invitation.id);
    assert_eq!(admin.email, invitation.email);
}
