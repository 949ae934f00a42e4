//! Contract checks of what operators see (issue #17): the organization
//! listing and its search, suspension, usage and the audit log across
//! organizations.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::security::event;
use super::{body, create, email, hash, name, Store};
use crate::{
    AdminRole, AuditAction, AuditFilter, ChangeStateError, Invitation, NameFragment, NameMatch,
    NameSearch, NewAdmin, Organization, OrganizationId, OrganizationQuery, OrganizationState,
    OutboxMessage, PageSize, StateChange, StateFilter, Suspension, TokenHash,
};

fn search(raw: &str, mode: NameMatch) -> Option<NameSearch> {
    Some(NameSearch {
        fragment: NameFragment::parse(raw).unwrap(),
        mode,
    })
}

fn suspend(reason: &str) -> StateChange {
    StateChange::Suspend(Suspension::new(reason, crate::clock::now_millis()).unwrap())
}

/// Every page of `query`, following `next`; checks page sizes and ends.
async fn all_pages(store: &Store, mut query: OrganizationQuery) -> Vec<Organization> {
    let mut seen = Vec::new();
    loop {
        let page = store.list_organizations(&query).await.unwrap();
        assert!(page.organizations.len() <= query.limit.get());
        seen.extend(page.organizations);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
        assert!(seen.len() <= 100, "paging does not end");
    }
    seen
}

fn names(organizations: &[Organization]) -> Vec<&str> {
    organizations.iter().map(|o| o.name.as_str()).collect()
}

/// The listing is in canonical-name order, pages without gaps or repeats,
/// and its search matches canonical names (case- and separator-insensitive)
/// by prefix or substring.
pub async fn organizations_list_in_name_order_and_search_by_prefix_or_substring(store: Store) {
    for (n, raw) in [
        "Globex",
        "acme-labs",
        "Acme Corp",
        "Initech",
        "ACME_zeta",
        "Big Acme",
        "Acmex",
    ]
    .into_iter()
    .enumerate()
    {
        store
            .create_organization(super::new_org(raw, &format!("owner{n}@listing.example")))
            .await
            .unwrap();
    }
    let limit = PageSize::parse(2).unwrap();
    let everything = all_pages(
        &store,
        OrganizationQuery {
            limit,
            ..OrganizationQuery::default()
        },
    )
    .await;
    assert_eq!(
        names(&everything),
        [
            "Acme Corp",
            "acme-labs",
            "ACME_zeta",
            "Acmex",
            "Big Acme",
            "Globex",
            "Initech"
        ]
    );

    let prefix = all_pages(
        &store,
        OrganizationQuery {
            search: search("ACME-", NameMatch::Prefix),
            limit,
            ..OrganizationQuery::default()
        },
    )
    .await;
    assert_eq!(names(&prefix), ["Acme Corp", "acme-labs", "ACME_zeta"]);

    let respelled = all_pages(
        &store,
        OrganizationQuery {
            search: search(" acme _", NameMatch::Prefix),
            limit,
            ..OrganizationQuery::default()
        },
    )
    .await;
    assert_eq!(respelled, prefix);

    let substring = all_pages(
        &store,
        OrganizationQuery {
            search: search("acme", NameMatch::Substring),
            limit,
            ..OrganizationQuery::default()
        },
    )
    .await;
    assert_eq!(
        names(&substring),
        ["Acme Corp", "acme-labs", "ACME_zeta", "Acmex", "Big Acme"]
    );

    let none = store
        .list_organizations(&OrganizationQuery {
            search: search("zz", NameMatch::Substring),
            ..OrganizationQuery::default()
        })
        .await
        .unwrap();
    assert!(none.organizations.is_empty() && none.next.is_none());
}

/// `created_after` and `created_before` are exclusive bounds on the creation
/// time, exact also when finer than the stored millisecond; the state
/// filter keeps active or suspended organizations only.
pub async fn organizations_list_filters_on_creation_time_and_state(store: Store) {
    let first = create(&store, "First").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = create(&store, "Second").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let third = create(&store, "Third").await;
    let listed = |query: OrganizationQuery| {
        let store = store.clone();
        async move { all_pages(&store, query).await }
    };

    let middle = listed(OrganizationQuery {
        created_after: Some(first.created_at),
        created_before: Some(third.created_at),
        ..OrganizationQuery::default()
    })
    .await;
    assert_eq!(middle, std::slice::from_ref(&second));
    let later = listed(OrganizationQuery {
        created_after: Some(first.created_at - TimeDelta::milliseconds(1)),
        ..OrganizationQuery::default()
    })
    .await;
    assert_eq!(later.len(), 3);
    // Bounds finer than a millisecond, just past the first's creation.
    let fraction = TimeDelta::microseconds(100);
    let until_just_after_first = listed(OrganizationQuery {
        created_before: Some(first.created_at + fraction),
        ..OrganizationQuery::default()
    })
    .await;
    assert_eq!(until_just_after_first, std::slice::from_ref(&first));
    let from_just_after_first = listed(OrganizationQuery {
        created_after: Some(first.created_at + fraction),
        ..OrganizationQuery::default()
    })
    .await;
    assert_eq!(from_just_after_first.len(), 2);
    assert!(!from_just_after_first.contains(&first));

    let suspended = store
        .change_organization_state(second.id, &suspend("unpaid"))
        .await
        .unwrap();
    let only_suspended = listed(OrganizationQuery {
        state: Some(StateFilter::Suspended),
        ..OrganizationQuery::default()
    })
    .await;
    assert_eq!(only_suspended, [suspended]);
    let only_active = listed(OrganizationQuery {
        state: Some(StateFilter::Active),
        ..OrganizationQuery::default()
    })
    .await;
    assert_eq!(names(&only_active), ["First", "Third"]);
}

/// Suspension is stored with its reason and time, kept by a second suspend
/// (idempotent), by renames and by lookups, and undone by resume; neither
/// changes `updated_at` or anything else.
pub async fn suspension_is_idempotent_and_kept_across_a_rename(store: Store) {
    let org = create(&store, "Acme").await;
    assert_eq!(org.state, OrganizationState::Active);

    let first = suspend("unpaid invoice");
    let suspended = store
        .change_organization_state(org.id, &first)
        .await
        .unwrap();
    let StateChange::Suspend(expected) = &first else {
        unreachable!()
    };
    assert_eq!(
        suspended.state,
        OrganizationState::Suspended(expected.clone())
    );
    assert_eq!(
        suspended,
        Organization {
            state: suspended.state.clone(),
            ..org.clone()
        }
    );

    let again = store
        .change_organization_state(org.id, &suspend("another reason"))
        .await
        .unwrap();
    assert_eq!(again, suspended, "a second suspend changed the first");
    assert_eq!(
        store.organization_by_id(org.id).await.unwrap(),
        Some(suspended.clone())
    );

    let renamed = store
        .rename_organization(org.id, &name("Acme Renamed"))
        .await
        .unwrap();
    assert_eq!(renamed.state, suspended.state);
    assert_eq!(
        store
            .organization_by_name(&name("acme renamed"))
            .await
            .unwrap()
            .map(|o| o.state),
        Some(suspended.state.clone())
    );

    let resumed = store
        .change_organization_state(org.id, &StateChange::Resume)
        .await
        .unwrap();
    assert_eq!(resumed.state, OrganizationState::Active);
    assert_eq!(resumed.name, renamed.name);
    let again = store
        .change_organization_state(org.id, &StateChange::Resume)
        .await
        .unwrap();
    assert_eq!(again, resumed);
}

/// A state change never brings back a deleted (or unknown) organization.
pub async fn state_change_of_a_deleted_organization_is_not_found(store: Store) {
    let org = create(&store, "Acme").await;
    store.delete_organization(org.id).await.unwrap();
    for change in [suspend("late"), StateChange::Resume] {
        let changed = store.change_organization_state(org.id, &change).await;
        assert!(
            matches!(changed, Err(ChangeStateError::NotFound)),
            "{changed:?}"
        );
    }
    assert_eq!(store.organization_by_id(org.id).await.unwrap(), None);
    let unknown = store
        .change_organization_state(OrganizationId::new(), &suspend("x"))
        .await;
    assert!(
        matches!(unknown, Err(ChangeStateError::NotFound)),
        "{unknown:?}"
    );
    let listed = store
        .list_organizations(&OrganizationQuery::default())
        .await
        .unwrap();
    assert!(listed.organizations.is_empty());
}

/// A suspension racing a rename loses neither: the organization ends renamed
/// and suspended.
pub async fn suspension_racing_a_rename_loses_neither(store: Store) {
    for round in 0..5 {
        let org = create(&store, &format!("Racer {round}")).await;
        let new_name = name(&format!("Racer {round} Renamed"));
        let rename = {
            let store = store.clone();
            let new_name = new_name.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    match store.rename_organization(org.id, &new_name).await {
                        Err(crate::RenameOrganizationError::Busy) => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        other => return other.map(|_| ()),
                    }
                }
                Err(crate::RenameOrganizationError::Busy)
            })
        };
        let suspended = store
            .change_organization_state(org.id, &suspend("racing"))
            .await;
        rename.await.unwrap().unwrap();
        assert!(suspended.is_ok(), "{suspended:?}");
        let stored = store.organization_by_id(org.id).await.unwrap().unwrap();
        assert_eq!(stored.name, new_name, "round {round}: the rename was lost");
        assert!(
            stored.state.is_suspended(),
            "round {round}: the suspension was lost"
        );
    }
}

/// Usage counts admins, pending invitations (not expired, revoked or
/// accepted ones), documents and their bytes as compact JSON.
pub async fn usage_counts_admins_invitations_documents_and_bytes(store: Store) {
    let org = create(&store, "Acme").await;
    let now = crate::clock::now_millis();
    let empty = store
        .organization_usage(org.id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        empty,
        crate::OrganizationUsage {
            admins: 1,
            ..Default::default()
        }
    );

    store
        .add_admin(
            org.id,
            NewAdmin::new(email("second@acme.example"), AdminRole::Admin, hash("x")),
        )
        .await
        .unwrap();
    let mut bytes = 0;
    for value in [json!({"a": 1}), json!({"name": "Zoë", "tags": ["x", "y"]})] {
        let document = body(value);
        bytes += document.json_len();
        store.insert_document(org.id, document).await.unwrap();
    }
    assert_eq!(bytes, 7 + 32);
    for (n, (at, ttl)) in [
        (now, Duration::from_secs(3600)),
        (now - TimeDelta::hours(2), Duration::from_secs(3600)),
    ]
    .into_iter()
    .enumerate()
    {
        let invitation = Invitation::new(
            org.id,
            email(&format!("invitee{n}@acme.example")),
            AdminRole::Admin,
            org.admin_id,
            at,
            ttl,
        );
        let message = OutboxMessage::new(
            invitation.email.clone(),
            "Invitation".to_owned(),
            "text".to_owned(),
            "<p>html</p>".to_owned(),
            at,
        );
        let token = TokenHash::from_hex(format!("{:064x}", 0xabc0 + n));
        store
            .create_invitation(invitation, token, message)
            .await
            .unwrap();
    }

    let usage = store
        .organization_usage(org.id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        usage,
        crate::OrganizationUsage {
            admins: 2,
            pending_invitations: 1,
            documents: 2,
            bytes,
        }
    );
    assert_eq!(
        store
            .organization_usage(OrganizationId::new(), now)
            .await
            .unwrap(),
        None
    );
}

/// The audit log across organizations pages newest first, filtered by
/// organization and action, without gaps or repeats.
pub async fn audit_across_organizations_pages_newest_first_with_filters(store: Store) {
    let (a, b) = (OrganizationId::new(), OrganizationId::new());
    let at: DateTime<Utc> = crate::clock::now_millis();
    let mut recorded = Vec::new();
    for i in 0..6 {
        let (org, action) = if i % 2 == 0 {
            (a, AuditAction::LoginSucceeded)
        } else {
            (b, AuditAction::AdminAdded)
        };
        let entry = event(org, action, &format!("e{i}"), at);
        store.record(entry.clone()).await.unwrap();
        recorded.push(entry);
    }
    recorded.reverse();

    let pages = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            let mut filter = filter;
            let mut seen = Vec::new();
            loop {
                let page = store.all_audit_events(&filter).await.unwrap();
                assert!(page.events.len() <= filter.limit.get());
                seen.extend(page.events);
                match page.next {
                    Some(next) => filter.before = Some(next),
                    None => break,
                }
                assert!(seen.len() <= 6, "paging does not end");
            }
            seen
        }
    };
    let limit = PageSize::parse(2).unwrap();
    let all = pages(AuditFilter {
        limit,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(all, recorded);
    assert_eq!(all.iter().map(|e| e.id).collect::<HashSet<_>>().len(), 6);

    let of_b = pages(AuditFilter {
        organization: Some(b),
        limit,
        ..AuditFilter::default()
    })
    .await;
    let expected: Vec<_> = recorded
        .iter()
        .filter(|e| e.organization_id == b)
        .cloned()
        .collect();
    assert_eq!(of_b, expected);

    let logins = pages(AuditFilter {
        action: Some(AuditAction::LoginSucceeded),
        organization: Some(a),
        limit,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(logins.len(), 3);
    assert!(logins.iter().all(|e| e.organization_id == a));
    let none = pages(AuditFilter {
        action: Some(AuditAction::AdminAdded),
        organization: Some(a),
        limit,
        ..AuditFilter::default()
    })
    .await;
    assert!(none.is_empty());
}
