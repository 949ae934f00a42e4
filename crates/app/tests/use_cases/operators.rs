//! Operators: key management scopes and the audit of operator actions.

use orgsvc_app::operators::{create_operator_key, KeyManager};
use orgsvc_app::AppError;
use orgsvc_domain::{AuditAction, AuditLog, AuditQuery, OperatorKeyName, OperatorScope, PageSize};

use crate::fixture::Fixture;

fn name(raw: &str) -> OperatorKeyName {
    OperatorKeyName::parse(raw).unwrap()
}

#[tokio::test]
async fn an_operator_action_is_audited_with_the_keys_name_and_no_admin() {
    let f = Fixture::new();
    let org = f.organization("Acme", "owner@acme.example").await;
    let created = create_operator_key(
        f.store.as_ref(),
        KeyManager::CommandLine,
        name("support-bot"),
        OperatorScope::Write,
        None,
    )
    .await
    .unwrap();
    let operator = f
        .app
        .authenticate_operator(created.secret.expose())
        .await
        .unwrap();
    f.app
        .audit_operator_action(
            &f.origin,
            &operator,
            org.id,
            AuditAction::OrganizationRenamed,
            "Acme -> Acme Two",
        )
        .await;
    let query = AuditQuery {
        limit: PageSize::parse(10).unwrap(),
        before: None,
    };
    let page = f.store.audit_events(org.id, query).await.unwrap();
    let event = &page.events[0];
    assert_eq!(event.operator, Some(name("support-bot")));
    assert_eq!(event.actor, None);
    assert_eq!(event.action, AuditAction::OrganizationRenamed);
    assert_eq!(event.target, "Acme -> Acme Two");
    assert_eq!(event.request_id.as_deref(), Some("req-1"));
    // Admin actions name no operator.
    assert!(page.events[1..].iter().all(|e| e.operator.is_none()));
}

#[tokio::test]
async fn key_management_needs_the_write_scope() {
    let f = Fixture::new();
    let reader = create_operator_key(
        f.store.as_ref(),
        KeyManager::CommandLine,
        name("reader"),
        OperatorScope::Read,
        None,
    )
    .await
    .unwrap();
    let reader = f
        .app
        .authenticate_operator(reader.secret.expose())
        .await
        .unwrap();
    assert!(matches!(
        f.app.operator_keys(&reader).await,
        Err(AppError::OperatorScopeInsufficient)
    ));
    assert!(matches!(
        f.app
            .create_operator_key(&reader, name("other"), OperatorScope::Write, None)
            .await,
        Err(AppError::OperatorScopeInsufficient)
    ));
    assert!(matches!(
        f.app.revoke_operator_key(&reader, &name("reader")).await,
        Err(AppError::OperatorScopeInsufficient)
    ));

    let writer = create_operator_key(
        f.store.as_ref(),
        KeyManager::CommandLine,
        name("writer"),
        OperatorScope::Write,
        None,
    )
    .await
    .unwrap();
    let writer = f
        .app
        .authenticate_operator(writer.secret.expose())
        .await
        .unwrap();
    let made = f
        .app
        .create_operator_key(&writer, name("other"), OperatorScope::Read, None)
        .await
        .unwrap();
    let names: Vec<_> = f
        .app
        .operator_keys(&writer)
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.name)
        .collect();
    assert_eq!(names, [name("reader"), name("writer"), name("other")]);
    f.app
        .revoke_operator_key(&writer, &name("other"))
        .await
        .unwrap();
    assert!(matches!(
        f.app.authenticate_operator(made.secret.expose()).await,
        Err(AppError::InvalidOperatorKey)
    ));
}
