//! Where a request comes from (its id and client IP), as the use cases
//! record it in the audit log.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use orgsvc_app::RequestOrigin;
use tracing_actix_web::RequestId;

use crate::config::SecuritySettings;
use crate::problem::ApiError;
use crate::proxies::resolve_client_ip;
use crate::state::AppState;

/// The request's [`RequestOrigin`]: the id `TracingLogger` gave it (as
/// answered in `x-request-id`) and its client's IP (see [`client_ip`]).
/// Never fails to extract.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin(pub RequestOrigin);

impl Origin {
    /// The origin of `req`.
    pub fn of(req: &HttpRequest) -> Self {
        let security = req
            .app_data::<web::Data<AppState>>()
            .map(|state| &state.security);
        Self(RequestOrigin {
            request_id: req.extensions().get::<RequestId>().map(|id| id.to_string()),
            client_ip: client_ip(req, security),
        })
    }
}

impl FromRequest for Origin {
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
