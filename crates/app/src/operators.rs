//! Operators (issue #17): the API keys of the people and machines that run
//! the service, and what they do through the operator API.
//!
//! The key management functions take the store alone, so that the
//! command line (`orgsvc operator-keys ...`) runs them without the rest of
//! the application; [`Application`]'s methods add what a request needs
//! (authentication, the scope check, the record of the action).
//!
//! Key management concerns no organization, so it is not an entry of the
//! (per-organization) audit log: each creation and revocation is logged at
//! `info` under the target `orgsvc::operator_audit`, naming the acting key
//! (or `cli`) and the managed key, never the key text or its hash. Operator
//! actions on an organization are recorded in the audit log with the key's
//! name ([`Application::audit_operator_action`]).

use std::time::Duration;

use orgsvc_auth::{hash_operator_key, OperatorApiKey};
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{
    last_use_due, AuditAction, CreateOperatorKeyError, OperatorKey, OperatorKeyId, OperatorKeyName,
    OperatorScope, OrganizationId, TenantStore,
};

use crate::audit::{AuditEntry, RequestOrigin};
use crate::{AppError, Application};

/// The largest `expires_in` accepted: 10 years, in seconds. Longer is
/// "never", which is said by leaving it out.
pub const MAX_OPERATOR_KEY_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The tracing target of key management records.
pub const OPERATOR_AUDIT_TARGET: &str = "orgsvc::operator_audit";

/// Who manages keys, for the record of the change: an operator key
/// (through the API) or the command line.
#[derive(Clone, Copy, Debug)]
pub enum KeyManager<'a> {
    /// An authenticated operator.
    Operator(&'a Operator),
    /// `orgsvc operator-keys ...` on the service's host.
    CommandLine,
}

impl KeyManager<'_> {
    fn name(&self) -> &str {
        match self {
            Self::Operator(operator) => operator.name.as_str(),
            Self::CommandLine => "cli",
        }
    }
}

/// An authenticated operator: the key that was presented, usable now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// The key's id.
    pub key_id: OperatorKeyId,
    /// The key's name: the actor recorded in the audit log.
    pub name: OperatorKeyName,
    /// What the key may do.
    pub scope: OperatorScope,
}

impl Operator {
    /// Checks that the key's scope covers `required`.
    ///
    /// # Errors
    /// [`AppError::OperatorScopeInsufficient`] (a `read` key on a write).
    pub fn require(&self, required: OperatorScope) -> Result<(), AppError> {
        if self.scope.allows(required) {
            Ok(())
        } else {
            Err(AppError::OperatorScopeInsufficient)
        }
    }
}

/// A key just created: the stored key and its text, to show once.
#[derive(Debug)]
pub struct CreatedOperatorKey {
    /// The stored key (its hash only).
    pub key: OperatorKey,
    /// The key text (`osk_...`); `Debug` redacts it.
    pub secret: OperatorApiKey,
}

/// Creates a key named `name` of `scope`, expiring `expires_in` from now
/// if given, and answers it with its text (shown once, stored nowhere).
///
/// # Errors
/// [`AppError::OperatorKeyNameTaken`] when any key (revoked ones included)
/// has the name; [`AppError::InvalidOperatorKeyExpiry`] when `expires_in` is
/// zero or above [`MAX_OPERATOR_KEY_TTL`]; the store's failures.
pub async fn create_operator_key(
    store: &dyn TenantStore,
    by: KeyManager<'_>,
    name: OperatorKeyName,
    scope: OperatorScope,
    expires_in: Option<Duration>,
) -> Result<CreatedOperatorKey, AppError> {
    if expires_in.is_some_and(|ttl| ttl.is_zero() || ttl > MAX_OPERATOR_KEY_TTL) {
        return Err(AppError::InvalidOperatorKeyExpiry);
    }
    let secret = OperatorApiKey::generate();
    let key = OperatorKey::create(name, scope, secret.hash(), now_millis(), expires_in);
    store
        .create_operator_key(key.clone())
        .await
        .map_err(|error| match error {
            CreateOperatorKeyError::NameTaken => AppError::OperatorKeyNameTaken,
            CreateOperatorKeyError::Store(error) => error.into(),
        })?;
    tracing::info!(
        target: OPERATOR_AUDIT_TARGET,
        by = by.name(),
        key = key.name.as_str(),
        scope = key.scope.as_str(),
        expires_at = ?key.expires_at,
        "operator key created"
    );
    Ok(CreatedOperatorKey { key, secret })
}

/// Every key, revoked ones included, oldest first.
///
/// # Errors
/// The store's failures.
pub async fn list_operator_keys(store: &dyn TenantStore) -> Result<Vec<OperatorKey>, AppError> {
    Ok(store.operator_keys().await?)
}

/// Revokes the key named `name` now (a key revoked before stays revoked
/// since then) and answers it. Every instance refuses it from its next
/// request on.
///
/// # Errors
/// [`AppError::OperatorKeyNotFound`] when no key has the name; the store's
/// failures.
pub async fn revoke_operator_key(
    store: &dyn TenantStore,
    by: KeyManager<'_>,
    name: &OperatorKeyName,
) -> Result<OperatorKey, AppError> {
    let key = store
        .revoke_operator_key(name, now_millis())
        .await?
        .ok_or(AppError::OperatorKeyNotFound)?;
    tracing::info!(
        target: OPERATOR_AUDIT_TARGET,
        by = by.name(),
        key = key.name.as_str(),
        "operator key revoked"
    );
    Ok(key)
}

/// The operator whose key is `presented` (a bearer token, RFC 6750), if
/// the key is known, not revoked and not expired. Records the key's last
/// use when [`last_use_due`] says so; a failure to record is logged, not
/// answered.
///
/// # Errors
/// [`AppError::InvalidOperatorKey`] for anything but a usable key
/// (malformed, unknown, revoked, expired: one answer, so keys cannot be
/// probed); the store's failures.
pub async fn authenticate_operator(
    store: &dyn TenantStore,
    presented: &str,
) -> Result<Operator, AppError> {
    let hash = hash_operator_key(presented).ok_or(AppError::InvalidOperatorKey)?;
    let now = now_millis();
    let key = store
        .operator_key_by_hash(&hash, now)
        .await?
        .ok_or(AppError::InvalidOperatorKey)?;
    if last_use_due(key.last_used_at, now) {
        if let Err(error) = store.record_operator_key_use(key.id, now).await {
            tracing::warn!(error = %error, key = key.name.as_str(), "could not record an operator key's use");
        }
    }
    Ok(Operator {
        key_id: key.id,
        name: key.name,
        scope: key.scope,
    })
}

impl Application {
    /// [`authenticate_operator`] over the application's store.
    ///
    /// # Errors
    /// As [`authenticate_operator`].
    pub async fn authenticate_operator(&self, presented: &str) -> Result<Operator, AppError> {
        authenticate_operator(self.store.as_ref(), presented).await
    }

    /// [`create_operator_key`] by `operator`, which needs the `write` scope.
    ///
    /// # Errors
    /// [`AppError::OperatorScopeInsufficient`], then as
    /// [`create_operator_key`].
    pub async fn create_operator_key(
        &self,
        operator: &Operator,
        name: OperatorKeyName,
        scope: OperatorScope,
        expires_in: Option<Duration>,
    ) -> Result<CreatedOperatorKey, AppError> {
        operator.require(OperatorScope::Write)?;
        create_operator_key(
            self.store.as_ref(),
            KeyManager::Operator(operator),
            name,
            scope,
            expires_in,
        )
        .await
    }

    /// [`list_operator_keys`] for `operator`, which needs the `write` scope
    /// (issue #17: key management is write-scoped, listing included).
    ///
    /// # Errors
    /// [`AppError::OperatorScopeInsufficient`], then the store's failures.
    pub async fn operator_keys(&self, operator: &Operator) -> Result<Vec<OperatorKey>, AppError> {
        operator.require(OperatorScope::Write)?;
        list_operator_keys(self.store.as_ref()).await
    }

    /// [`revoke_operator_key`] by `operator`, which needs the `write` scope.
    /// An operator may revoke its own key.
    ///
    /// # Errors
    /// [`AppError::OperatorScopeInsufficient`], then as
    /// [`revoke_operator_key`].
    pub async fn revoke_operator_key(
        &self,
        operator: &Operator,
        name: &OperatorKeyName,
    ) -> Result<OperatorKey, AppError> {
        operator.require(OperatorScope::Write)?;
        revoke_operator_key(self.store.as_ref(), KeyManager::Operator(operator), name).await
    }

    /// Records in `organization`'s audit log that `operator` did `action`
    /// to `target`, now, from `origin`: the entry names the operator key
    /// (`operator`) and no admin (`actor` is `None`). For the use cases of
    /// the operator API; a failure to record is logged, not answered (the
    /// change has happened).
    pub async fn audit_operator_action(
        &self,
        origin: &RequestOrigin,
        operator: &Operator,
        organization: OrganizationId,
        action: AuditAction,
        target: impl Into<String>,
    ) {
        let entry = AuditEntry {
            organization,
            actor: None,
            operator: Some(operator.name.clone()),
            action,
            target: target.into(),
        };
        self.audit(origin, entry).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use orgsvc_domain::testing::{Failure, FaultyStore, InMemoryStore, Operation, Times};
    use orgsvc_domain::OperatorKeyStore;

    use super::*;

    fn name(raw: &str) -> OperatorKeyName {
        OperatorKeyName::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn a_created_key_authenticates_until_revoked() {
        let store = InMemoryStore::new();
        let created = create_operator_key(
            &store,
            KeyManager::CommandLine,
            name("ci"),
            OperatorScope::Read,
            None,
        )
        .await
        .unwrap();
        assert!(created.secret.expose().starts_with("osk_"));
        assert_eq!(created.key.hash, created.secret.hash());
        let operator = authenticate_operator(&store, created.secret.expose())
            .await
            .unwrap();
        assert_eq!(operator.name, name("ci"));
        assert_eq!(operator.scope, OperatorScope::Read);
        assert!(operator.require(OperatorScope::Read).is_ok());
        assert!(matches!(
            operator.require(OperatorScope::Write),
            Err(AppError::OperatorScopeInsufficient)
        ));

        revoke_operator_key(&store, KeyManager::CommandLine, &name("ci"))
            .await
            .unwrap();
        assert!(matches!(
            authenticate_operator(&store, created.secret.expose()).await,
            Err(AppError::InvalidOperatorKey)
        ));
        assert!(matches!(
            revoke_operator_key(&store, KeyManager::CommandLine, &name("nobody")).await,
            Err(AppError::OperatorKeyNotFound)
        ));
    }

    #[tokio::test]
    async fn malformed_unknown_and_taken_are_refused() {
        let store = InMemoryStore::new();
        for presented in [
            "",
            "osk_",
            "eyJhbGciOiJIUzI1NiJ9.e30.x",
            &format!("osk_{}", "A".repeat(43)),
        ] {
            assert!(matches!(
                authenticate_operator(&store, presented).await,
                Err(AppError::InvalidOperatorKey)
            ));
        }
        create_operator_key(
            &store,
            KeyManager::CommandLine,
            name("ci"),
            OperatorScope::Write,
            None,
        )
        .await
        .unwrap();
        assert!(matches!(
            create_operator_key(
                &store,
                KeyManager::CommandLine,
                name("ci"),
                OperatorScope::Read,
                None
            )
            .await,
            Err(AppError::OperatorKeyNameTaken)
        ));
        for ttl in [
            Duration::ZERO,
            MAX_OPERATOR_KEY_TTL + Duration::from_secs(1),
        ] {
            assert!(matches!(
                create_operator_key(
                    &store,
                    KeyManager::CommandLine,
                    name("ttl"),
                    OperatorScope::Read,
                    Some(ttl)
                )
                .await,
                Err(AppError::InvalidOperatorKeyExpiry)
            ));
        }
    }

    #[tokio::test]
    async fn last_use_is_written_at_most_once_a_minute() {
        let memory = Arc::new(InMemoryStore::new());
        let store = FaultyStore::new(memory.clone());
        let created = create_operator_key(
            &store,
            KeyManager::CommandLine,
            name("ci"),
            OperatorScope::Write,
            None,
        )
        .await
        .unwrap();
        for _ in 0..3 {
            authenticate_operator(&store, created.secret.expose())
                .await
                .unwrap();
        }
        assert_eq!(store.calls_to(Operation::RecordOperatorKeyUse), 1);
        let stored = memory.operator_keys().await.unwrap();
        assert!(stored[0].last_used_at.is_some());

        // A failure to record the use does not refuse the request.
        store.fail(
            Operation::RecordOperatorKeyUse,
            Times::Always,
            Failure::store_msg("down"),
        );
        let fresh = create_operator_key(
            &store,
            KeyManager::CommandLine,
            name("fresh"),
            OperatorScope::Write,
            None,
        )
        .await
        .unwrap();
        assert!(authenticate_operator(&store, fresh.secret.expose())
            .await
            .is_ok());
    }
}
