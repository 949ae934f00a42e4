//! The OpenAPI 3.1 document, served at `/openapi.json` (Swagger UI at `/docs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::{responses, FieldError, Problem};
use crate::routes;

/// The API's OpenAPI document: [`ApiDoc`]'s info, shared components and
/// tags, then each route module's operations
/// ([`routes::documented_operations`], registered next to the routes that
/// serve them), then the modifiers that apply to every operation.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    for operations in routes::documented_operations() {
        document.merge(operations);
    }
    let modifiers: [&dyn Modify; 4] = [
        &BearerSecurity,
        &TransportResponses,
        &StoreResponses,
        &OrganizationNamePattern,
    ];
    for modifier in modifiers {
        modifier.modify(&mut document);
    }
    document
}

/// What the document holds besides the operations: its info, the shared
/// components (problem documents and responses) and the tags.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "orgsvc",
        description = "Multi-tenant organization management: each organization gets its own \
            tenant collection and an admin who authenticates with a bearer access token.\n\n\
            Every error is an RFC 9457 `application/problem+json` document with a stable \
            machine-readable `code`, the HTTP layer's own refusals included: every \
            operation may answer 400 `malformed_request`, 408 `request_timeout` (header fields \
            or body too slow), 429 `too_many_connections` (`server.max_connections_per_ip`) \
            and 431 `header_fields_too_large`; each closes the connection."
    ),
    components(
        schemas(Problem, FieldError),
        responses(
            responses::BadRequestBody,
            responses::Unauthorized,
            responses::InvalidCredentials,
            responses::OrganizationNotFound,
            responses::CreateConflict,
            responses::UpdateConflict,
            responses::DeleteConflict,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::ValidationFailed,
            responses::InternalError,
            responses::NotReady,
            responses::DocumentNotFound,
            responses::PreconditionFailed,
            responses::DocumentTooLarge,
            responses::InvalidDocument,
            responses::InvalidListing,
            responses::OrganizationBusy,
            responses::InvalidRefreshToken,
            responses::LoginThrottled,
            responses::RateLimited,
            responses::EmailUnverified,
            responses::OwnerRequired,
            responses::DeleteForbidden,
            responses::AccountTokenUnusable,
            responses::EmailLinksThrottled,
            responses::AdminNotFound,
            responses::AddAdminConflict,
            responses::LastOwner,
            responses::InvalidAuditListing,
            responses::InviteConflict,
            responses::AcceptInvitationConflict,
            responses::InvitationNotFound,
            responses::InvitationNotPending,
            responses::InvitationUnusable,
            responses::InvalidInvitationListing,
            responses::MalformedRequest,
            responses::RequestTimeout,
            responses::TooManyConnections,
            responses::StoreUnavailable,
            responses::HeaderFieldsTooLarge,
            responses::OperatorUnauthorized,
            responses::OperatorScopeInsufficient,
            responses::OperatorKeyNameTaken,
            responses::OperatorKeyNotFound,
            responses::OperatorRateLimited,
            responses::OrganizationSuspended,
            responses::InvalidOrganizationListing,
            responses::InvalidOperatorAuditListing,
        )
    ),
    tags(
        (name = "organizations", description = "Organizations (tenants) and their collections."),
        (name = "data", description = "The caller's organization's own documents (its tenant collection)."),
        (name = "admins", description = "The organization's admins and their roles (`owner` or `admin`); owners only."),
        (name = "audit", description = "The organization's audit log; owners only."),
        (name = "invitations", description = "Invitations: owners invite an email with a role; the invitee accepts with the emailed token and a password of their own."),
        (name = "admin", description = "Admin authentication: login, refresh-token rotation and logout; password reset and email verification by emailed links."),
        (name = "health", description = "Probes for orchestrators."),
        (name = "operator", description = "The operator API, for the people and machines that run the service: operator API keys (`osk_...`, security scheme `operator_key`); every organization listed and searched, with its usage; suspension, resumption and deletion of organizations; the audit log across organizations. Admins' access tokens are refused here, and operator keys on every other route."),
        (name = "well-known", description = "For services that verify orgsvc's access tokens themselves: the signing keys (JWK Set) and the authorization server metadata."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer_auth` and `operator_key` security schemes the protected
/// operations refer to.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Access token (a JWT signed with `auth.signing.algorithm`, EdDSA by \
                         default, its `kid` naming a key of `/.well-known/jwks.json`; valid \
                         `auth.access_token_ttl` seconds) from `POST /admin/login` or `POST \
                         /admin/refresh`. Refused once the admin's password changes, the admin is \
                         removed or the organization is deleted.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("osk_")
                    .description(Some(
                        "Operator API key (`osk_` and 43 URL-safe base64 characters, 256 random \
                         bits), sent as `Authorization: Bearer osk_...` (RFC 6750 §2.1) on the \
                         `/operator/*` routes only. Created with `orgsvc operator-keys create` \
                         (the first one) or `POST /operator/keys`; scope `read` or `write`; \
                         refused once revoked or expired, on every instance at once.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The `pattern` of every `organization_name` input: `OrganizationName::parse`'s
/// rule on the value with its surrounding whitespace (what `str::trim`
/// removes: Unicode White_Space) allowed, so the document accepts exactly
/// what the server does (`tests/api/openapi.rs` checks it against the
/// parser).
pub const ORGANIZATION_NAME_PATTERN: &str = r"^[\t\n\x0B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[A-Za-z0-9][A-Za-z0-9 _-]{0,62}[A-Za-z0-9][\t\n\x0B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$";

/// The input field or query parameter that carries an organization name.
const ORGANIZATION_NAME_FIELD: &str = "organization_name";

/// Sets [`ORGANIZATION_NAME_PATTERN`] on every `organization_name` property
/// of a request body schema (`*Request`) and every `organization_name`
/// parameter, so the rule is written once instead of in each route's
/// attributes.
struct OrganizationNamePattern;

impl Modify for OrganizationNamePattern {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};

        fn set_pattern(schema: &mut RefOr<Schema>) {
            if let RefOr::T(Schema::Object(object)) = schema {
                object.pattern = Some(ORGANIZATION_NAME_PATTERN.to_owned());
            }
        }

        if let Some(components) = openapi.components.as_mut() {
            // Request bodies only: answers echo names as they are stored.
            let requests = components
                .schemas
                .iter_mut()
                .filter(|(name, _)| name.ends_with("Request"))
                .map(|(_, schema)| schema);
            for schema in requests {
                if let RefOr::T(Schema::Object(object)) = schema {
                    if let Some(property) = object.properties.get_mut(ORGANIZATION_NAME_FIELD) {
                        set_pattern(property);
                    }
                }
            }
        }
        for operation in operations_mut(openapi) {
            let parameters = operation.parameters.iter_mut().flatten();
            for parameter in parameters.filter(|p| p.name == ORGANIZATION_NAME_FIELD) {
                if let Some(schema) = parameter.schema.as_mut() {
                    set_pattern(schema);
                }
            }
        }
    }
}

/// Every operation of the document, whatever its method.
fn operations_mut(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// Documents on every operation the answers of the HTTP layer (see
/// [`crate::transport`]), where the operation has none of its own for the
/// status: 400, 408, 429 and 431.
struct TransportResponses;

impl Modify for TransportResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Ref;
        let shared = [
            ("400", "MalformedRequest"),
            ("408", "RequestTimeout"),
            ("429", "TooManyConnections"),
            ("431", "HeaderFieldsTooLarge"),
        ];
        for operation in operations_mut(openapi) {
            for (status, name) in shared {
                if !operation.responses.responses.contains_key(status) {
                    operation
                        .responses
                        .responses
                        .insert(status.into(), Ref::from_response_name(name).into());
                }
            }
        }
    }
}

/// Documents 503 `store_unavailable` on every operation that uses the store
/// (all but the health probes, whose readiness documents its own 503, and
/// the well-known documents, served from memory), where the operation has
/// no 503 of its own (those mention it).
struct StoreResponses;

impl Modify for StoreResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Ref;
        for operation in operations_mut(openapi) {
            let storeless = operation
                .tags
                .iter()
                .flatten()
                .any(|tag| tag == "health" || tag == "well-known");
            if !storeless && !operation.responses.responses.contains_key("503") {
                operation.responses.responses.insert(
                    "503".into(),
                    Ref::from_response_name("StoreUnavailable").into(),
                );
            }
        }
    }
}
