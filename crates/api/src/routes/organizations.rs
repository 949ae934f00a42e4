//! Organizations over HTTP: create, get, update (rename and credentials),
//! delete (the use cases are [`orgsvc_app::organizations`]).
//!
//! Roles: anyone may create an organization (its creator becomes its first
//! owner) and read one; renaming and deleting take an owner (403
//! `owner_required` for an `admin`), while every admin may change its own
//! email and password. Each change is recorded in the audit log.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use orgsvc_app::organizations::{CreateOrganization, UpdateOrganization};
use orgsvc_domain::{AdminEmail, Organization, OrganizationName, Password, TenantLocation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extractors::auth::AuthenticatedAdmin;
use crate::extractors::auth::OwnerCaller;
use crate::extractors::body::{json_body, optional_json, JsonObject};
use crate::problem::responses::{
    BadRequestBody, CreateConflict, DeleteConflict, DeleteForbidden, InternalError,
    OrganizationBusy, OrganizationNotFound, OwnerRequired, PayloadTooLarge, Unauthorized,
    UnsupportedMediaType, UpdateConflict, ValidationFailed,
};
use crate::problem::ApiError;
use crate::request_origin::Origin;
use crate::routes::RouteTable;
use crate::state::AppState;
use crate::validation::FieldErrors;

// The `pattern` of every `organization_name` input is set once, by
// `openapi::OrganizationNamePattern` (see `ORGANIZATION_NAME_PATTERN`).

/// Body of `POST /org/create`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "organization_name": "Acme Corp",
    "email": "admin@acme.example",
    "password": "correct horse battery staple"
}))]
pub struct CreateOrganizationRequest {
    /// 2 to 64 ASCII letters, digits, spaces, hyphens and underscores, starting
    /// and ending with a letter or digit (surrounding whitespace is trimmed).
    /// Unique ignoring case and separators.
    #[schema(value_type = String, required = true)]
    organization_name: Option<Value>,
    /// The first admin's login email (unique across organizations, compared
    /// ignoring case).
    #[schema(value_type = String, format = Email, required = true, max_length = 254)]
    email: Option<Value>,
    /// The first admin's password, 8 to 128 characters.
    #[schema(value_type = String, format = Password, required = true, min_length = 8, max_length = 128)]
    password: Option<Value>,
}

/// A `POST /org/create` body as the use case's command; every offending
/// field is reported.
fn create_command(request: CreateOrganizationRequest) -> Result<CreateOrganization, ApiError> {
    let mut errors = FieldErrors::default();
    let name = errors.required(
        "organization_name",
        request.organization_name.as_ref(),
        OrganizationName::parse,
    );
    let email = errors.required("email", request.email.as_ref(), AdminEmail::parse);
    let password = errors.required("password", request.password.as_ref(), Password::parse);
    match (name, email, password) {
        (Some(name), Some(email), Some(password)) => Ok(CreateOrganization {
            name,
            email,
            password,
        }),
        _ => Err(errors.into_error()),
    }
}

/// Answer of `POST /org/create`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-8a4b-7c5d-9e6f-0a1b2c3d4e5f",
    "organization_name": "Acme Corp",
    "collection_name": "org_acme_corp",
    "admin_id": "01936f3e-8a4b-7c5d-9e6f-1a2b3c4d5e6f",
    "created_at": "2025-01-31T12:00:00.123Z"
}))]
pub struct CreatedOrganization {
    /// Immutable id of the organization.
    id: Uuid,
    /// The name as spelled at creation.
    organization_name: String,
    /// The tenant collection: `org_` + the canonical name.
    collection_name: String,
    /// Id of the first admin, the organization's first owner.
    admin_id: Uuid,
    /// Creation time.
    created_at: DateTime<Utc>,
}

/// An organization's metadata (never a credential).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-8a4b-7c5d-9e6f-0a1b2c3d4e5f",
    "organization_name": "Acme Corp",
    "collection_name": "org_acme_corp",
    "database": "orgsvc_master",
    "admin_id": "01936f3e-8a4b-7c5d-9e6f-1a2b3c4d5e6f",
    "created_at": "2025-01-31T12:00:00.123Z",
    "updated_at": "2025-02-01T08:30:00.456Z",
    "state": "active",
    "storage": {"database": "orgsvc_master", "collection": "org_acme_corp", "layout": "collection"}
}))]
pub struct OrganizationMetadata {
    /// Immutable id; survives renames.
    id: Uuid,
    /// Current name.
    organization_name: String,
    /// The tenant collection: `org_` + the canonical name.
    collection_name: String,
    /// The database holding the tenant collection.
    database: String,
    /// Id of the organization's primary admin: the owner who created it or,
    /// once that admin is removed or demoted, the longest-standing owner.
    admin_id: Uuid,
    /// Creation time.
    created_at: DateTime<Utc>,
    /// Last change of name.
    updated_at: DateTime<Utc>,
    /// `active`, or `suspended` by an operator (its admins cannot log in or
    /// use their tokens until it is resumed; the reason is for operators).
    #[schema(example = "active", pattern = "^(active|suspended)$")]
    state: &'static str,
    /// Where the organization's documents are physically stored.
    storage: StorageView,
}

/// Where an organization's documents are stored (issue #16): `collection_name`
/// stays the organization's logical collection whatever the layout.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"database": "orgsvc_master", "collection": "tenant_documents", "layout": "shared"}))]
pub struct StorageView {
    /// The database holding the documents (`main` on the embedded store:
    /// SQLite's name for the store's file).
    database: String,
    /// The collection (or table) holding the documents: `collection_name`
    /// itself in the `collection` layout, `tenant_documents` in `shared`.
    collection: String,
    /// `collection`: a collection of its own, renamed with the
    /// organization; `shared`: one collection for many organizations, each
    /// document keyed by organization id, so a rename moves nothing.
    #[schema(example = "collection", pattern = "^(collection|shared)$")]
    layout: &'static str,
}

impl From<&TenantLocation> for StorageView {
    fn from(location: &TenantLocation) -> Self {
        Self {
            database: location.database.clone(),
            collection: location.physical_collection().to_owned(),
            layout: location.layout.as_str(),
        }
    }
}

impl From<Organization> for OrganizationMetadata {
    fn from(organization: Organization) -> Self {
        Self {
            id: organization.id.as_uuid(),
            organization_name: organization.name.as_str().to_owned(),
            collection_name: organization.location.collection.as_str().to_owned(),
            storage: StorageView::from(&organization.location),
            database: organization.location.database,
            admin_id: organization.admin_id.as_uuid(),
            created_at: organization.created_at,
            updated_at: organization.updated_at,
            state: organization.state.as_str(),
        }
    }
}

/// Create an organization
///
/// Registers an organization, its first admin and its (empty) tenant
/// collection `org_<canonical name>`. Names are unique ignoring case, spaces,
/// hyphens and underscores: `Acme Corp` and `acme-corp` are the same name.
/// The first admin is the organization's first `owner`.
#[utoipa::path(
    post,
    path = "/org/create",
    operation_id = "createOrganization",
    tag = "organizations",
    request_body = CreateOrganizationRequest,
    responses(
        (status = 201, description = "The organization was created.", body = CreatedOrganization),
        (status = 400, response = BadRequestBody),
        (status = 409, response = CreateConflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
        (status = 503, response = OrganizationBusy),
    )
)]
#[tracing::instrument(skip_all, fields(org = tracing::field::Empty))]
pub async fn create(
    state: web::Data<AppState>,
    Origin(origin): Origin,
    body: JsonObject<CreateOrganizationRequest>,
) -> Result<HttpResponse, ApiError> {
    let command = create_command(body.into_inner())?;
    tracing::Span::current().record("org", command.name.as_str());
    let organization = state.app.create_organization(&origin, command).await?;
    Ok(HttpResponse::Created().json(CreatedOrganization {
        id: organization.id.as_uuid(),
        organization_name: organization.name.as_str().to_owned(),
        collection_name: organization.location.collection.as_str().to_owned(),
        admin_id: organization.admin_id.as_uuid(),
        created_at: organization.created_at,
    }))
}

/// Query of `GET /org/get` (and `DELETE /org/delete`, where a body may give the name instead).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganizationNameQuery {
    /// The organization's name (case, spaces, hyphens and underscores do not matter).
    #[param(required = true, example = "Acme Corp")]
    organization_name: Option<String>,
}

/// Get an organization
///
/// Returns the metadata of the organization with this name, compared
/// ignoring case, spaces, hyphens and underscores.
#[utoipa::path(
    get,
    path = "/org/get",
    operation_id = "getOrganization",
    tag = "organizations",
    params(OrganizationNameQuery),
    responses(
        (status = 200, description = "The organization's metadata.", body = OrganizationMetadata),
        (status = 404, response = OrganizationNotFound),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    query: web::Query<OrganizationNameQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = parse_name(query.into_inner().organization_name.map(Value::String))?;
    let organization = state.app.organization(&name).await?;
    Ok(HttpResponse::Ok().json(OrganizationMetadata::from(organization)))
}

fn parse_name(raw: Option<Value>) -> Result<OrganizationName, ApiError> {
    let mut errors = FieldErrors::default();
    errors
        .required("organization_name", raw.as_ref(), OrganizationName::parse)
        .ok_or_else(|| errors.into_error())
}

/// Body of `PUT /org/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "organization_name": "Acme Industries",
    "email": "owner@acme.example",
    "password": "a new long passphrase"
}))]
pub struct UpdateOrganizationRequest {
    /// The new name of the caller's organization (may be a respelling of the
    /// current one); same rules as at creation. Only an owner may change it:
    /// an `admin` must send the current name, spelled as it is.
    #[schema(value_type = String, required = true)]
    organization_name: Option<Value>,
    /// A new login email for the caller; `null` or absent keeps the current one.
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    email: Option<Value>,
    /// A new password for the caller, 8 to 128 characters; `null` or absent
    /// keeps the current one. Revokes every access token issued before.
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 128)]
    password: Option<Value>,
}

/// A `PUT /org/update` body as the use case's command; every offending
/// field is reported.
fn update_command(request: UpdateOrganizationRequest) -> Result<UpdateOrganization, ApiError> {
    let mut errors = FieldErrors::default();
    let name = errors.required(
        "organization_name",
        request.organization_name.as_ref(),
        OrganizationName::parse,
    );
    let email = errors.optional("email", request.email.as_ref(), AdminEmail::parse);
    let password = errors.optional("password", request.password.as_ref(), Password::parse);
    match (name, email, password) {
        (Some(name), Some(email), Some(password)) => Ok(UpdateOrganization {
            name,
            email,
            password,
        }),
        _ => Err(errors.into_error()),
    }
}

/// Update your organization
///
/// Renames the caller's organization (from the access token) and moves its
/// tenant collection to the new name's collection; optionally changes the
/// caller's email and/or password. Access tokens stay valid across a rename.
///
/// Renaming (any change of `organization_name`, a respelling included) takes
/// an owner: an `admin` gets 403 `owner_required` and changes only its own
/// credentials by sending the current name unchanged.
///
/// **A password change revokes every access token issued before it,
/// including the one used for this request: log in again with the new
/// password.**
#[utoipa::path(
    put,
    path = "/org/update",
    operation_id = "updateOrganization",
    tag = "organizations",
    request_body = UpdateOrganizationRequest,
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The organization's metadata under its new name.", body = OrganizationMetadata),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 404, response = OrganizationNotFound),
        (status = 409, response = UpdateConflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.organization_id))]
pub async fn update(
    state: web::Data<AppState>,
    caller: AuthenticatedAdmin,
    Origin(origin): Origin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let AuthenticatedAdmin(admin) = caller;
    let body: UpdateOrganizationRequest = json_body(&req, payload, state.max_body_bytes).await?;
    let command = update_command(body)?;
    let organization = state
        .app
        .update_organization(&origin, &admin, command)
        .await?;
    Ok(HttpResponse::Ok().json(OrganizationMetadata::from(organization)))
}

/// Optional body of `DELETE /org/delete`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"organization_name": "Acme Corp"}))]
pub struct DeleteOrganizationRequest {
    /// The caller's organization name (alternative to the query parameter).
    #[schema(value_type = String, required = true)]
    organization_name: Option<Value>,
}

/// Answer of `DELETE /org/delete`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"deleted": true, "organization_name": "Acme Corp"}))]
pub struct DeletedOrganization {
    /// Always `true`.
    deleted: bool,
    /// The deleted organization's name.
    organization_name: String,
}

/// Delete your organization
///
/// Deletes the caller's organization, its admins and its tenant collection
/// with all its data. Owners only: an `admin` gets 403 `owner_required`.
/// The name comes from the `organization_name` query parameter or, without
/// it, from a JSON body `{"organization_name": ...}`; it must name the
/// caller's own organization (else 403 `forbidden`, whether or not the named
/// organization exists). Afterwards every token of every admin of the
/// organization is refused. Its audit log is kept for
/// `audit.retention_days`, then purged.
#[utoipa::path(
    delete,
    path = "/org/delete",
    operation_id = "deleteOrganization",
    tag = "organizations",
    params((
        "organization_name" = Option<String>,
        Query,
        description = "The caller's organization name (case, spaces, hyphens and underscores do not matter); required unless given in the body.",
        example = "Acme Corp"
    )),
    // A plain reference, not `Option<..>`: the body is optional (no `required`)
    // but, when sent, an object; a nullable schema would make generated
    // clients send `null`.
    request_body(
        content = ref("#/components/schemas/DeleteOrganizationRequest"),
        content_type = "application/json",
        description = "Alternative to the query parameter; when sent, it must be valid even if the query parameter names the organization."
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The organization was deleted.", body = DeletedOrganization),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = DeleteForbidden),
        (status = 404, response = OrganizationNotFound),
        (status = 409, response = DeleteConflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    Origin(origin): Origin,
    req: HttpRequest,
    query: web::Query<OrganizationNameQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let OwnerCaller(owner) = caller;
    let body: Option<DeleteOrganizationRequest> =
        optional_json(&req, payload, state.max_body_bytes).await?;
    // A body that is sent must be valid, even when the query names the organization.
    let body_name = match body {
        Some(body) => Some(parse_name(body.organization_name)?),
        None => None,
    };
    let name = match (query.into_inner().organization_name, body_name) {
        (Some(name), _) => parse_name(Some(Value::String(name)))?,
        (None, Some(name)) => name,
        (None, None) => parse_name(None)?,
    };
    let deleted = state
        .app
        .delete_organization(&origin, &owner, &name)
        .await?;
    Ok(HttpResponse::Ok().json(DeletedOrganization {
        deleted: true,
        organization_name: deleted.name.as_str().to_owned(),
    }))
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(create, get, update, delete),
    components(schemas(DeleteOrganizationRequest))
)]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_create>(|route| route.to(create));
    table.operation::<__path_get>(|route| route.to(get));
    table.operation::<__path_update>(|route| route.to(update));
    table.operation::<__path_delete>(|route| route.to(delete));
}
