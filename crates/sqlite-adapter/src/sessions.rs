//! The [`SessionStore`] part of [`SqliteStore`]: refresh tokens
//! (`refresh_tokens.rs`) and login throttling (`login_throttles.rs`), all
//! written on the writer connection, so each operation is atomic with
//! respect to every other write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgsvc_domain::{
    AdminEmail, LoginAttempt, LoginThrottle, RefreshToken, RefreshTokenHash, RefreshTokenUse,
    SessionFamilyId, SessionStore, StoreError,
};

use crate::connection::{begin, commit};
use crate::{login_throttles, refresh_tokens, SqliteStore};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn save_refresh_token(&self, token: RefreshToken) -> Result<(), StoreError> {
        self.connections()
            .write(move |connection| refresh_tokens::save(connection, &token))
            .await
    }

    async fn use_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError> {
        let hash = hash.clone();
        self.connections()
            .write(move |connection| refresh_tokens::use_token(connection, &hash, now))
            .await
    }

    async fn revoke_family(&self, family: SessionFamilyId) -> Result<(), StoreError> {
        self.connections()
            .write(move |connection| refresh_tokens::revoke_family(connection, family))
            .await
    }

    async fn begin_login_attempt(
        &self,
        email: &AdminEmail,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        let (email, throttle) = (email.clone(), *throttle);
        self.connections()
            .write(move |connection| {
                login_throttles::begin_attempt(connection, &email, now, &throttle)
            })
            .await
    }

    async fn login_succeeded(&self, email: &AdminEmail) -> Result<(), StoreError> {
        let email = email.clone();
        self.connections()
            .write(move |connection| login_throttles::succeeded(connection, &email))
            .await
    }

    /// One transaction: expired tokens, then revoked families left without a
    /// token, then idle throttling state.
    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.connections()
            .write(move |connection| {
                const WHAT: &str = "purging sessions";
                let transaction = begin(connection, WHAT)?;
                let tokens = refresh_tokens::purge(&transaction, now)?;
                let throttles = login_throttles::purge(&transaction, now, idle_since)?;
                commit(transaction, WHAT)?;
                Ok(tokens.saturating_add(throttles))
            })
            .await
    }
}
