//! Where a request comes from (its id and client IP), and recording what it
//! did in the audit log.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use orgsvc_domain::{Admin, AdminId, AuditAction, AuditEvent, AuditEventId, OrganizationId};
use tracing_actix_web::RequestId;

use crate::config::SecuritySettings;
use crate::problem::ApiError;
use crate::proxies::resolve_client_ip;
use crate::state::AppState;

/// The request's id (as answered in `x-request-id`) and its client's IP.
/// Never fails to extract.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The id `TracingLogger` gave the request.
    pub request_id: Option<String>,
    /// The client's address; see [`client_ip`].
    pub client_ip: Option<IpAddr>,
}

impl RequestOrigin {
    /// The origin of `req`.
    pub fn of(req: &HttpRequest) -> Self {
        let security = req
            .app_data::<web::Data<AppState>>()
            .map(|state| &state.security);
        Self {
            request_id: req.extensions().get::<RequestId>().map(|id| id.to_string()),
            client_ip: client_ip(req, security),
        }
    }
}

impl FromRequest for RequestOrigin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

/// The client's IP address: the connection's peer or, when it is a trusted
/// proxy (`security.trusted_proxies`), the address its forwarding headers
/// name; see [`resolve_client_ip`]. Without settings, the peer.
pub fn client_ip(req: &HttpRequest, security: Option<&SecuritySettings>) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|addr| addr.ip());
    match security {
        Some(security) => resolve_client_ip(
            peer,
            req.headers(),
            &security.trusted_proxies,
            security.trust_forwarded_for,
        ),
        None => peer,
    }
}

/// One thing to record in the audit log.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// The organization it concerns.
    pub organization: OrganizationId,
    /// The signed-in admin who acted, if any.
    pub actor: Option<AdminId>,
    /// What happened.
    pub action: AuditAction,
    /// What it happened to (an admin id, an organization name).
    pub target: String,
}

impl AuditEntry {
    /// `action` on `target`, done by the signed-in `actor` in its own
    /// organization.
    pub fn by(actor: &Admin, action: AuditAction, target: impl Into<String>) -> Self {
        Self {
            organization: actor.organization_id,
            actor: Some(actor.id),
            action,
            target: target.into(),
        }
    }
}

impl AppState {
    /// Records `entry` as done now by the request from `origin`.
    ///
    /// The change it describes has already happened, so a failure to record
    /// is logged (with the entry) rather than failing the request.
    pub async fn audit(&self, origin: &RequestOrigin, entry: AuditEntry) {
        let event = AuditEvent {
            id: AuditEventId::new(),
            organization_id: entry.organization,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            at: now_millis(),
            request_id: origin.request_id.clone(),
            client_ip: origin.client_ip.map(|ip| ip.to_string()),
        };
        if let Err(error) = self.store.record(event.clone()).await {
            tracing::error!(
                error = %error,
                organization = %event.organization_id,
                action = event.action.as_str(),
                target = %event.target,
                "could not record an audit event"
            );
        }
    }
}

pub use orgsvc_domain::clock::now_millis;
