//! Where a request comes from (its id and client IP), and recording what it
//! did in the audit log.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};
use orgsvc_domain::{Admin, AdminId, AuditAction, AuditEvent, AuditEventId, OrganizationId};
use tracing_actix_web::RequestId;

use crate::problem::ApiError;
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
        let trust_forwarded_for = req
            .app_data::<web::Data<AppState>>()
            .is_some_and(|state| state.security.trust_forwarded_for);
        Self {
            request_id: req.extensions().get::<RequestId>().map(|id| id.to_string()),
            client_ip: client_ip(req, trust_forwarded_for),
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

/// The client's IP address: the connection's peer or, when
/// `trust_forwarded_for` (the service runs behind a proxy that appends the
/// address it saw), the last entry of the last `X-Forwarded-For` header.
/// Earlier entries are client-supplied and never trusted.
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .last()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|addr| addr.ip())
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

/// The current time at millisecond precision, as the stores keep it.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}
