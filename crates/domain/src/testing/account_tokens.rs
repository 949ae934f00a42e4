//! Contract checks for the email outbox ([`crate::OutboxStore`]) and the
//! single-use account tokens ([`crate::AccountTokenStore`]).

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::Store;
use crate::{
    AccountToken, AccountTokenPurpose, AdminEmail, AdminId, OutboxMessage, OutboxMessageId,
    TokenHash,
};

fn now_ms() -> DateTime<Utc> {
    crate::clock::now_millis()
}

fn hash(n: u32) -> TokenHash {
    TokenHash::from_hex(format!("{n:064x}"))
}

/// A token `n` of `purpose` issued at `at` for `ttl`, with its message.
fn issued(
    n: u32,
    purpose: AccountTokenPurpose,
    at: DateTime<Utc>,
    ttl: TimeDelta,
) -> (AccountToken, OutboxMessage) {
    let email = AdminEmail::parse(&format!("admin{n}@example.com")).unwrap();
    let token = AccountToken::issue(
        hash(n),
        purpose,
        AdminId::new(),
        email.clone(),
        at,
        ttl.to_std().unwrap(),
    );
    let message = OutboxMessage::new(
        email,
        format!("Message {n}"),
        format!("Open https://orgsvc.example/reset#token-{n}\nÜñïçødé ✓"),
        format!("<p><a href=\"https://orgsvc.example/reset#token-{n}\">reset</a></p>"),
        at,
    );
    (token, message)
}

async fn issue(store: &Store, n: u32, at: DateTime<Utc>, ttl: TimeDelta) -> OutboxMessage {
    let (token, message) = issued(n, AccountTokenPurpose::PasswordReset, at, ttl);
    store
        .issue_account_token(token, message.clone())
        .await
        .unwrap();
    message
}

fn ids(messages: &[OutboxMessage]) -> BTreeSet<OutboxMessageId> {
    messages.iter().map(|m| m.id).collect()
}

/// A token is used once, for its purpose only, and comes back as issued
/// with `used_at` set; then it is gone.
pub async fn account_token_is_used_once_for_its_purpose(store: Store) {
    let now = now_ms();
    let (token, message) = issued(
        1,
        AccountTokenPurpose::EmailVerification,
        now,
        TimeDelta::hours(1),
    );
    store
        .issue_account_token(token.clone(), message)
        .await
        .unwrap();
    let wrong = store
        .use_account_token(&token.hash, AccountTokenPurpose::PasswordReset, now)
        .await
        .unwrap();
    assert_eq!(wrong, None, "used for another purpose");
    let unknown = store
        .use_account_token(&hash(99), AccountTokenPurpose::EmailVerification, now)
        .await
        .unwrap();
    assert_eq!(unknown, None);

    let at = now + TimeDelta::seconds(5);
    let used = store
        .use_account_token(&token.hash, AccountTokenPurpose::EmailVerification, at)
        .await
        .unwrap();
    let mut expected = token.clone();
    expected.used_at = Some(at);
    assert_eq!(used, Some(expected));
    let again = store
        .use_account_token(&token.hash, AccountTokenPurpose::EmailVerification, at)
        .await
        .unwrap();
    assert_eq!(again, None, "a token is single use");
}

/// Of racing uses of one token exactly one gets it.
pub async fn concurrent_uses_of_an_account_token_have_one_winner(store: Store) {
    let now = now_ms();
    for round in 0..3 {
        let (token, message) = issued(
            round,
            AccountTokenPurpose::PasswordReset,
            now,
            TimeDelta::minutes(30),
        );
        store
            .issue_account_token(token.clone(), message)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (store, hash) = (store.clone(), token.hash.clone());
                tokio::spawn(async move {
                    store
                        .use_account_token(&hash, AccountTokenPurpose::PasswordReset, now)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if task.await.unwrap().is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

/// The store enforces expiry: at `expires_at` and later a token is refused
/// (and stays unused), just before it works.
pub async fn expired_account_token_is_refused(store: Store) {
    let now = now_ms();
    let (token, message) = issued(
        1,
        AccountTokenPurpose::PasswordReset,
        now - TimeDelta::minutes(30),
        TimeDelta::minutes(30),
    );
    assert_eq!(token.expires_at, now);
    store
        .issue_account_token(token.clone(), message)
        .await
        .unwrap();
    let purpose = AccountTokenPurpose::PasswordReset;
    for at in [now, now + TimeDelta::days(1)] {
        let result = store.use_account_token(&token.hash, purpose, at).await;
        assert_eq!(result.unwrap(), None, "used at {at}");
    }
    let just_before = now - TimeDelta::milliseconds(1);
    let result = store
        .use_account_token(&token.hash, purpose, just_before)
        .await;
    assert!(result.unwrap().is_some());
}

/// A token's message is stored with it, unchanged, and due at once; a
/// second issue of a stored hash fails and stores neither its token nor its
/// message.
pub async fn account_token_and_its_message_are_stored_together(store: Store) {
    let now = now_ms();
    let first = issue(&store, 1, now, TimeDelta::hours(1)).await;
    let (mut token, mut message) = issued(
        2,
        AccountTokenPurpose::PasswordReset,
        now,
        TimeDelta::hours(1),
    );
    token.hash = hash(1);
    message.subject = "Duplicate".into();
    let duplicate = store.issue_account_token(token, message).await;
    assert!(duplicate.is_err(), "a stored hash was issued again");

    let claimed = store
        .claim_due_messages(now, now + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed, vec![first]);
    // The first token still works once, and only once.
    let purpose = AccountTokenPurpose::PasswordReset;
    assert!(store
        .use_account_token(&hash(1), purpose, now)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .use_account_token(&hash(1), purpose, now)
        .await
        .unwrap()
        .is_none());
}

/// A claimed message is not claimed again until its claim expires or its
/// delivery failed and is due again; sent messages are never claimed.
/// Claims come oldest `next_attempt_at` first and respect the limit.
pub async fn outbox_claims_are_exclusive_until_they_expire(store: Store) {
    let now = now_ms();
    let hour = TimeDelta::hours(1);
    let a = issue(&store, 1, now - TimeDelta::seconds(3), hour).await;
    let b = issue(&store, 2, now - TimeDelta::seconds(2), hour).await;
    let c = issue(&store, 3, now - TimeDelta::seconds(1), hour).await;
    let not_yet = issue(&store, 4, now + TimeDelta::seconds(10), hour).await;

    let until = now + TimeDelta::minutes(1);
    let first = store.claim_due_messages(now, until, 2).await.unwrap();
    assert_eq!(first, vec![a.clone(), b.clone()], "oldest first, limited");
    let second = store.claim_due_messages(now, until, 10).await.unwrap();
    assert_eq!(second, vec![c.clone()], "claimed messages are held");
    let none = store
        .claim_due_messages(now + TimeDelta::seconds(5), until, 10)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    assert!(store.mark_sent(a.id, now).await.unwrap());
    assert!(!store.mark_sent(a.id, now).await.unwrap(), "sent twice");
    assert!(
        !store.mark_failed(a.id, now).await.unwrap(),
        "sent, then failed"
    );
    let retry_at = now + TimeDelta::minutes(5);
    assert!(store.mark_failed(b.id, retry_at).await.unwrap());
    assert!(!store.mark_sent(OutboxMessageId::new(), now).await.unwrap());

    // At `until` the claim on c has expired; b waits for its retry, a was
    // sent, the fourth is due.
    let later = store
        .claim_due_messages(until, until + TimeDelta::minutes(10), 10)
        .await
        .unwrap();
    assert_eq!(later, vec![c.clone(), not_yet.clone()]);
    let retried = store
        .claim_due_messages(retry_at, retry_at + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    let mut expected_b = b.clone();
    expected_b.attempts = 1;
    expected_b.next_attempt_at = retry_at;
    assert_eq!(retried, vec![expected_b]);
}

/// Racing claims never hand one message to two senders, and together
/// they take every due message.
pub async fn concurrent_outbox_claims_are_disjoint(store: Store) {
    let now = now_ms();
    let mut all = BTreeSet::new();
    for n in 0..12 {
        all.insert(issue(&store, n, now, TimeDelta::hours(1)).await.id);
    }
    let until = now + TimeDelta::minutes(1);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_due_messages(now, until, 5).await.unwrap() })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for task in tasks {
        for message in task.await.unwrap() {
            assert!(seen.insert(message.id), "claimed twice: {:?}", message.id);
        }
    }
    let rest = store.claim_due_messages(now, until, 20).await.unwrap();
    seen.extend(ids(&rest));
    assert_eq!(seen, all);
}

/// A notice (a message without a token) is claimed, sent and purged like
/// any message; its id cannot be stored twice.
pub async fn notices_are_delivered_and_purged_like_any_message(store: Store) {
    let now = now_ms();
    let notice = OutboxMessage::new(
        AdminEmail::parse("old@notice.example").unwrap(),
        "Your sign-in email was changed",
        "text",
        "<p>html</p>",
        now,
    );
    store.enqueue_message(notice.clone()).await.unwrap();
    assert!(store.enqueue_message(notice.clone()).await.is_err());
    let claimed = store
        .claim_due_messages(now, now + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed, vec![notice.clone()]);
    assert!(store.mark_sent(notice.id, now).await.unwrap());
    let later = now + TimeDelta::days(1);
    assert_eq!(store.purge_sent_messages(later).await.unwrap(), 1);
    assert!(store
        .claim_due_messages(later, later, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Purging expired tokens takes their messages too; purging sent messages
/// keeps those whose token still lives and every unsent one.
pub async fn purges_forget_expired_tokens_and_sent_messages(store: Store) {
    let now = now_ms();
    let hour = TimeDelta::hours(1);
    let old = issue(&store, 1, now - TimeDelta::hours(2), hour).await; // expired
    let live_sent = issue(&store, 2, now, hour).await;
    let live_unsent = issue(&store, 3, now, hour).await;
    let expiring = issue(&store, 4, now - TimeDelta::minutes(30), hour).await;
    for id in [old.id, live_sent.id, expiring.id] {
        assert!(store.mark_sent(id, now).await.unwrap());
    }

    // Sent before the cutoff: the live token's message stays, the expired
    // one's goes; the one expiring after the cutoff stays too.
    let cutoff = now + TimeDelta::milliseconds(1);
    assert_eq!(store.purge_sent_messages(cutoff).await.unwrap(), 1);
    assert_eq!(store.purge_sent_messages(cutoff).await.unwrap(), 0);

    // The expired token went with its message; at +30 min the one issued
    // 30 minutes ago goes, with its (sent) message.
    assert_eq!(store.purge_account_tokens(now).await.unwrap(), 0);
    let purpose = AccountTokenPurpose::PasswordReset;
    assert!(store
        .use_account_token(&hash(1), purpose, now - TimeDelta::hours(2))
        .await
        .unwrap()
        .is_none());
    let half_hour = now + TimeDelta::minutes(30);
    assert_eq!(store.purge_account_tokens(half_hour).await.unwrap(), 1);
    assert_eq!(store.purge_sent_messages(half_hour).await.unwrap(), 0);
    assert!(store
        .use_account_token(&hash(2), purpose, now)
        .await
        .unwrap()
        .is_some());

    // The unsent message of a live token is still claimable.
    let claimed = store
        .claim_due_messages(now, now + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed, vec![live_unsent]);

    // Once every token expired, everything goes.
    let end = now + TimeDelta::hours(2);
    assert_eq!(store.purge_account_tokens(end).await.unwrap(), 2);
    assert!(store
        .claim_due_messages(end, end + TimeDelta::minutes(1), 10)
        .await
        .unwrap()
        .is_empty());
}

/// New admins are unverified; marking the email verified needs the email
/// the token was sent to, survives password changes and an update to the
/// same email, and an email change clears it.
pub async fn email_verification_follows_the_admins_email(store: Store) {
    let org = store
        .create_organization(super::new_org("Verify Corp", "owner@verify.example"))
        .await
        .unwrap();
    let id = org.admin_id;
    let owner = |raw: &str| AdminEmail::parse(raw).unwrap();
    let verified = |store: Store| async move {
        let admin = store.admin_by_id(id).await.unwrap().unwrap();
        let by_email = store
            .admin_credentials_by_email(&admin.email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_email.admin.email_verified, admin.email_verified);
        admin.email_verified
    };
    assert!(
        !verified(store.clone()).await,
        "new admins start unverified"
    );

    let other = owner("other@verify.example");
    assert!(!store.mark_email_verified(id, &other).await.unwrap());
    assert!(!store
        .mark_email_verified(AdminId::new(), &owner("owner@verify.example"))
        .await
        .unwrap());
    assert!(!verified(store.clone()).await);

    let current = owner("owner@verify.example");
    assert!(store.mark_email_verified(id, &current).await.unwrap());
    assert!(verified(store.clone()).await);
    assert!(store.mark_email_verified(id, &current).await.unwrap());

    let same_email = crate::AdminUpdate {
        email: Some(current.clone()),
        password_hash: Some(crate::PasswordHash::from_phc_string(
            "$argon2id$v=19$m=8,t=1,p=1$dGVzdA$dummy-verify".into(),
        )),
    };
    let updated = store.update_admin(id, same_email).await.unwrap();
    assert!(
        updated.email_verified,
        "same email, new password: still verified"
    );

    let changed = crate::AdminUpdate {
        email: Some(owner("new@verify.example")),
        password_hash: None,
    };
    let updated = store.update_admin(id, changed).await.unwrap();
    assert!(!updated.email_verified, "a new email is unverified");
    assert!(!verified(store.clone()).await);
    assert!(!store.mark_email_verified(id, &current).await.unwrap());
}
