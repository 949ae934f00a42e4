//! [`SessionStore`] on MongoDB: refresh tokens (see `refresh_tokens.rs`) and
//! login throttling (see `login_throttle.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgsvc_domain::{
    AdminEmail, LoginAttempt, LoginThrottle, RefreshToken, RefreshTokenHash, RefreshTokenUse,
    SessionFamilyId, SessionStore, StoreError,
};

use crate::store::MongoStore;

#[async_trait]
impl SessionStore for MongoStore {
    async fn save_refresh_token(&self, token: RefreshToken) -> Result<(), StoreError> {
        self.save_refresh_token(token).await
    }

    async fn use_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<RefreshTokenUse, StoreError> {
        self.use_refresh_token(hash, now).await
    }

    async fn revoke_family(&self, family: SessionFamilyId) -> Result<(), StoreError> {
        self.revoke_family(family).await
    }

    async fn begin_login_attempt(
        &self,
        email: &AdminEmail,
        now: DateTime<Utc>,
        throttle: &LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        self.begin_login_attempt(email, now, throttle).await
    }

    async fn login_succeeded(&self, email: &AdminEmail) -> Result<(), StoreError> {
        self.login_succeeded(email).await
    }

    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let tokens = self.purge_refresh_tokens(now).await?;
        let throttles = self.purge_login_throttles(now, idle_since).await?;
        Ok(tokens + throttles)
    }
}
