//! The claims an orgsvc access token carries (RFC 7519 §4.1 registered
//! claims, and orgsvc's own).

use orgsvc_domain::{AdminId, OrganizationId};
use serde::{Deserialize, Serialize};

/// The claims of an orgsvc access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The admin's id.
    pub sub: AdminId,
    /// The organization's immutable id (tokens survive renames).
    pub org_id: OrganizationId,
    /// The organization's name when the token was issued (informational).
    pub org_name: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Unique token id.
    pub jti: String,
    /// The admin's token version at issue time; a password change bumps the
    /// stored version and so invalidates this token.
    pub ver: u32,
}
