//! What other services need to verify orgsvc's access tokens themselves:
//! the JWK Set of the signing keys (RFC 7517 §5) and the authorization
//! server metadata (RFC 8414) that points to it.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use orgsvc_auth::Jwk;
use orgsvc_domain::PublicKeyParameters;
use serde::Serialize;
use utoipa::ToSchema;

use crate::routes::RouteTable;
use crate::state::AppState;

/// The path of the JWK Set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The media type of a JWK Set (RFC 7517 §8.5.1).
pub const JWK_SET_JSON: &str = "application/jwk-set+json";

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"keys": [{
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    "kid": "kV4b0I1G7C6tqZsGxJq9mA",
    "alg": "EdDSA",
    "use": "sig"
}]}))]
pub struct JsonWebKeySet {
    /// Every key that verifies tokens now or soon: the active key, a `next`
    /// key published before it signs, and retired keys until their last
    /// token expires. Empty when tokens are HS256 (`auth.signing.algorithm`).
    keys: Vec<JsonWebKey>,
}

/// A public JSON Web Key (RFC 7517 §4; members of RFC 7518 §6 and, for
/// Ed25519, RFC 8037 §2). Never carries a private member.
#[derive(Debug, Serialize, ToSchema)]
pub struct JsonWebKey {
    /// Key type: `OKP` (Ed25519), `EC` (P-256) or `RSA`.
    kty: &'static str,
    /// Curve (`OKP`, `EC`): `Ed25519` or `P-256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    /// Public key (`OKP`) or x coordinate (`EC`), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    /// y coordinate (`EC`), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    /// Modulus (`RSA`), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    /// Public exponent (`RSA`), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    /// Key id: the `kid` in the header of the tokens this key signs.
    kid: String,
    /// The only algorithm this key verifies: `EdDSA`, `ES256` or `RS256`.
    alg: &'static str,
    /// Always `sig`.
    #[serde(rename = "use")]
    use_: &'static str,
}

impl From<Jwk> for JsonWebKey {
    fn from(jwk: Jwk) -> Self {
        let mut key = Self {
            kty: "",
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: jwk.kid,
            alg: jwk.alg,
            use_: jwk.use_,
        };
        match jwk.public {
            PublicKeyParameters::Okp { crv, x } => {
                key.kty = "OKP";
                key.crv = Some(crv);
                key.x = Some(x);
            }
            PublicKeyParameters::Ec { crv, x, y } => {
                key.kty = "EC";
                key.crv = Some(crv);
                key.x = Some(x);
                key.y = Some(y);
            }
            PublicKeyParameters::Rsa { n, e } => {
                key.kty = "RSA";
                key.n = Some(n);
                key.e = Some(e);
            }
        }
        key
    }
}

/// Get the token signing keys
///
/// The public keys that verify orgsvc's access tokens, as a JWK Set: pick
/// the key whose `kid` is the token header's, and verify with that key's
/// own `alg` (never the token's `alg` alone). A new key appears here
/// `auth.signing.publish_ahead_secs` before it signs, and a retired key
/// stays until every token it signed has expired, so a verifier that
/// refetches at most every `max-age` (`Cache-Control`) always has the key
/// of any valid token.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "getJsonWebKeySet",
    tag = "well-known",
    responses(
        (status = 200, description = "The JWK Set (`application/jwk-set+json`).", body = JsonWebKeySet, content_type = "application/jwk-set+json", headers(
            ("Cache-Control" = String, description = "`public, max-age=<seconds>`: half the pre-publication lead time, at most an hour."),
        )),
    )
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let keys = state.app.jwks().keys.into_iter().map(Into::into).collect();
    let body = JsonWebKeySet { keys };
    let max_age = state.jwks_max_age.as_secs();
    let cache_control = if max_age == 0 {
        "no-cache".to_owned()
    } else {
        format!("public, max-age={max_age}")
    };
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, cache_control));
    match serde_json::to_vec(&body) {
        Ok(json) => response
            .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(JWK_SET_JSON)))
            .body(json),
        Err(error) => {
            tracing::error!(error = %error, "could not serialize the JWK Set");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Authorization server metadata in the shape of RFC 8414 §2, a subset:
/// orgsvc is not an OAuth server (its token endpoint takes an admin's email
/// and password as JSON, and `issuer` is `auth.issuer`, a URL only if
/// configured so), but verifiers find the keys and the issuer here.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "issuer": "orgsvc",
    "jwks_uri": "https://auth.example.com/.well-known/jwks.json",
    "token_endpoint": "https://auth.example.com/admin/login",
    "access_token_signing_alg_values_supported": ["EdDSA"]
}))]
pub struct AuthorizationServerMetadata {
    /// The `iss` of every access token (`auth.issuer`).
    issuer: String,
    /// Where the signing keys are published (absolute; from
    /// `server.public_url`, else `http://` and the request's `Host`).
    jwks_uri: String,
    /// Where admins get tokens: `POST /admin/login` (and `/admin/refresh`).
    token_endpoint: String,
    /// The `alg` values access tokens are signed with now or soon (an
    /// orgsvc extension, RFC 8414 §2 allows others).
    access_token_signing_alg_values_supported: Vec<&'static str>,
}

/// Get the authorization server metadata
///
/// RFC 8414 metadata for verifiers: the issuer, the JWK Set's URL, the
/// token endpoint and the signing algorithms in use.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    operation_id = "getAuthorizationServerMetadata",
    tag = "well-known",
    responses(
        (status = 200, description = "The metadata.", body = AuthorizationServerMetadata),
    )
)]
pub async fn metadata(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    // Without `server.public_url`, the request's own `Host` (this server
    // speaks plain HTTP); never `X-Forwarded-*` or `Forwarded`, which any
    // client can send: behind a proxy, set `server.public_url`.
    let base = match &state.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    let mut algorithms: Vec<&'static str> = Vec::new();
    for key in state.app.jwks().keys {
        if !algorithms.contains(&key.alg) {
            algorithms.push(key.alg);
        }
    }
    if algorithms.is_empty() {
        algorithms.push("HS256");
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(AuthorizationServerMetadata {
            issuer: state.app.token_issuer().to_owned(),
            jwks_uri: format!("{base}{JWKS_PATH}"),
            token_endpoint: format!("{base}/admin/login"),
            access_token_signing_alg_values_supported: algorithms,
        })
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(jwks, metadata))]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_jwks>(|route| route.to(jwks));
    table.operation::<__path_metadata>(|route| route.to(metadata));
}
