//! An [`Application`] over a [`FaultyStore`] around a fresh in-memory
//! store, with cheap argon2 parameters.

use std::sync::Arc;
use std::time::Duration;

use orgsvc_app::organizations::CreateOrganization;
use orgsvc_app::{AppSettings, Application, EmailLinks, LinkTemplate, RequestOrigin, TokenPair};
use orgsvc_auth::{Argon2Params, PasswordHasher, TokenService, TokenSettings};
use orgsvc_domain::testing::FaultyStore;
use orgsvc_domain::{
    AdminEmail, AuditAction, AuditQuery, LoginThrottle, Organization, OrganizationId,
    OrganizationName, PageSize, Password, TenantStore,
};

fn link(template: &str) -> LinkTemplate {
    LinkTemplate::parse(template).unwrap()
}

/// The password every fixture admin has.
pub const PASSWORD: &str = "correct horse battery staple";

/// Failed logins before an email locks, in these tests.
pub const MAX_FAILURES: u32 = 3;

pub struct Fixture {
    pub app: Application,
    pub store: Arc<FaultyStore>,
    pub origin: RequestOrigin,
}

impl Fixture {
    pub fn new() -> Self {
        let store = Arc::new(FaultyStore::in_memory());
        let hasher = PasswordHasher::new(
            Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap();
        let tokens = TokenService::new(TokenSettings {
            secret: orgsvc_auth::generate_secret(),
            issuer: "orgsvc-test".into(),
            audience: "orgsvc-test".into(),
            ttl: Duration::from_secs(900),
        })
        .unwrap();
        let settings = AppSettings {
            refresh_token_ttl: Duration::from_secs(3600),
            login_throttle: LoginThrottle {
                max_failures: MAX_FAILURES,
                base_lock: Duration::from_secs(60),
                max_lock: Duration::from_secs(3600),
            },
            email_links: EmailLinks {
                invitation: link("https://app.example/invite?token={token}"),
                password_reset: link("https://app.example/reset?token={token}"),
                email_verification: link("https://app.example/verify?token={token}"),
            },
            password_reset_ttl: Duration::from_secs(1800),
            email_verification_ttl: Duration::from_secs(86_400),
            require_verified_email: false,
        };
        let app = Application::new(store.clone(), hasher, tokens, settings);
        Self {
            app,
            store,
            origin: RequestOrigin {
                request_id: Some("req-1".into()),
                client_ip: Some([192, 0, 2, 7].into()),
            },
        }
    }

    /// Creates `name` with the owner `email` (password [`PASSWORD`]).
    pub async fn organization(&self, name: &str, email: &str) -> Organization {
        self.app
            .create_organization(
                &self.origin,
                CreateOrganization {
                    name: OrganizationName::parse(name).unwrap(),
                    email: AdminEmail::parse(email).unwrap(),
                    password: Password::parse(PASSWORD).unwrap(),
                },
            )
            .await
            .unwrap()
    }

    /// Logs `email` in with [`PASSWORD`].
    pub async fn log_in(&self, email: &str) -> TokenPair {
        self.app
            .log_in(&self.origin, email, PASSWORD)
            .await
            .unwrap()
    }

    /// The store without the decorator (its calls are not recorded).
    pub fn inner(&self) -> Arc<dyn TenantStore> {
        self.store.inner()
    }

    /// The organization's audit actions, oldest first.
    pub async fn audit_actions(&self, organization: OrganizationId) -> Vec<AuditAction> {
        let query = AuditQuery {
            limit: PageSize::parse(100).unwrap(),
            before: None,
        };
        let page = self
            .inner()
            .audit_events(organization, query)
            .await
            .unwrap();
        page.events.iter().rev().map(|event| event.action).collect()
    }

    /// Waits (up to 5 s) until the organization's audit log holds `action`
    /// (recorded in the background).
    pub async fn audited_eventually(&self, organization: OrganizationId, action: AuditAction) {
        for _ in 0..500 {
            if self.audit_actions(organization).await.contains(&action) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{action:?} was never recorded");
    }
}
