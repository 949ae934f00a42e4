//! The caller's organization's admins over HTTP: add, list, get, change the
//! role of, remove (the use cases are [`orgsvc_app::admins`]). Owners only.
//!
//! Decisions, as documented in OpenAPI:
//! - Every operation requires a bearer token of an **owner** of the
//!   organization; an `admin` gets 403 `owner_required` (before the body or
//!   the id is looked at).
//! - A new admin's `role` defaults to `admin` (least privilege).
//! - An id that is not a UUID, or that names an admin of another
//!   organization, is answered like an unknown id: 404 `admin_not_found`.
//! - Removing or demoting the organization's last owner is 409 `last_owner`
//!   (nothing changes). Removing an admin revokes its tokens at once: every
//!   authenticated request looks the admin up.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use orgsvc_app::admins::AddAdmin;
use orgsvc_app::AppError;
use orgsvc_domain as domain;
use orgsvc_domain::{Admin, AdminEmail, AdminId, Password, ValueError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extractors::auth::OwnerCaller;
use crate::extractors::body::json_body;
use crate::problem::responses::{
    AddAdminConflict, AdminNotFound, BadRequestBody, InternalError, LastOwner, OwnerRequired,
    PayloadTooLarge, Unauthorized, UnsupportedMediaType, ValidationFailed,
};
use crate::problem::ApiError;
use crate::request_origin::Origin;
use crate::routes::RouteTable;
use crate::state::AppState;
use crate::validation::FieldErrors;

/// The path of the collection resource.
const COLLECTION_PATH: &str = "/org/admins";

/// The error of a `role` that is not one of the roles.
const INVALID_ROLE: ValueError = ValueError::Format("must be \"owner\" or \"admin\"");

/// What an admin may do in its organization.
///
/// - `owner`: everything an admin may do, plus adding, listing, changing the
///   role of and removing admins, reading the audit log, renaming and
///   deleting the organization. Every organization has at least one owner.
/// - `admin`: reads the organization, manages its documents and changes its
///   own email and password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(example = "admin")]
pub enum AdminRole {
    /// May also manage admins, read the audit log, rename and delete the organization.
    Owner,
    /// Manages documents and its own credentials.
    Admin,
}

impl From<domain::AdminRole> for AdminRole {
    fn from(role: domain::AdminRole) -> Self {
        match role {
            domain::AdminRole::Owner => Self::Owner,
            domain::AdminRole::Admin => Self::Admin,
        }
    }
}

/// Parses a role's name.
pub(crate) fn parse_role(raw: &str) -> Result<domain::AdminRole, ValueError> {
    domain::AdminRole::parse(raw).ok_or(INVALID_ROLE)
}

/// An admin of the organization (never a credential).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-8a4b-7c5d-9e6f-3a4b5c6d7e8f",
    "email": "ops@acme.example",
    "email_verified": false,
    "role": "admin",
    "created_at": "2025-01-31T12:00:00.123Z",
    "updated_at": "2025-01-31T12:00:00.123Z"
}))]
pub struct AdminView {
    /// Immutable id.
    id: Uuid,
    /// Login email (lowercase).
    email: String,
    /// Whether the admin proved it owns the email (a verification link, an
    /// accepted invitation or a password reset); an email change clears it.
    email_verified: bool,
    /// What the admin may do.
    role: AdminRole,
    /// Creation time.
    created_at: DateTime<Utc>,
    /// Last change of email or password.
    updated_at: DateTime<Utc>,
}

impl From<Admin> for AdminView {
    fn from(admin: Admin) -> Self {
        Self {
            id: admin.id.as_uuid(),
            email: admin.email.as_str().to_owned(),
            email_verified: admin.email_verified,
            role: admin.role.into(),
            created_at: admin.created_at,
            updated_at: admin.updated_at,
        }
    }
}

/// The organization's admins.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "admins": [
        {
            "id": "01936f3e-8a4b-7c5d-9e6f-1a2b3c4d5e6f",
            "email": "admin@acme.example",
            "email_verified": true,
            "role": "owner",
            "created_at": "2025-01-31T12:00:00.123Z",
            "updated_at": "2025-01-31T12:00:00.123Z"
        },
        {
            "id": "01936f3e-8a4b-7c5d-9e6f-3a4b5c6d7e8f",
            "email": "ops@acme.example",
            "email_verified": false,
            "role": "admin",
            "created_at": "2025-02-01T08:30:00.456Z",
            "updated_at": "2025-02-01T08:30:00.456Z"
        }
    ]
}))]
pub struct AdminList {
    /// Every admin of the organization, oldest first.
    admins: Vec<AdminView>,
}

/// Body of `POST /org/admins`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "email": "ops@acme.example",
    "password": "another long passphrase",
    "role": "admin"
}))]
pub struct AddAdminRequest {
    /// The new admin's login email (unique across organizations, compared
    /// ignoring case).
    #[schema(value_type = String, format = Email, required = true, max_length = 254)]
    email: Option<Value>,
    /// The new admin's password, 8 to 128 characters.
    #[schema(value_type = String, format = Password, required = true, min_length = 8, max_length = 128)]
    password: Option<Value>,
    /// The new admin's role; absent or `null`: `admin`.
    #[schema(value_type = Option<AdminRole>, required = false)]
    role: Option<Value>,
}

/// A `POST /org/admins` body as the use case's command; every offending
/// field is reported. The role defaults to `admin` (least privilege).
fn add_command(request: AddAdminRequest) -> Result<AddAdmin, ApiError> {
    let mut errors = FieldErrors::default();
    let email = errors.required("email", request.email.as_ref(), AdminEmail::parse);
    let password = errors.required("password", request.password.as_ref(), Password::parse);
    let role = errors.optional("role", request.role.as_ref(), parse_role);
    match (email, password, role) {
        (Some(email), Some(password), Some(role)) => Ok(AddAdmin {
            email,
            password,
            role: role.unwrap_or(domain::AdminRole::Admin),
        }),
        _ => Err(errors.into_error()),
    }
}

/// Body of `PATCH /org/admins/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"role": "owner"}))]
pub struct ChangeAdminRequest {
    /// The admin's new role.
    #[schema(value_type = AdminRole, required = true)]
    role: Option<Value>,
}

/// Add an admin
///
/// Adds an admin with its own email and password to the caller's
/// organization. The new admin logs in with `POST /admin/login`. Owners
/// only.
#[utoipa::path(
    post,
    path = "/org/admins",
    operation_id = "addAdmin",
    tag = "admins",
    request_body = AddAdminRequest,
    security(("bearer_auth" = [])),
    responses(
        (status = 201, description = "The admin was added.", body = AdminView, headers(
            ("Location" = String, description = "The admin's URL, `/org/admins/{id}`."),
        )),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 409, response = AddAdminConflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn add(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    Origin(origin): Origin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: AddAdminRequest = json_body(&req, payload, state.max_body_bytes).await?;
    let command = add_command(body)?;
    let admin = state.app.add_admin(&origin, &caller.0, command).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, admin_path(admin.id)))
        .json(AdminView::from(admin)))
}

/// List admins
///
/// Lists every admin of the caller's organization, oldest first. Owners
/// only.
#[utoipa::path(
    get,
    path = "/org/admins",
    operation_id = "listAdmins",
    tag = "admins",
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The organization's admins.", body = AdminList),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn list(
    state: web::Data<AppState>,
    caller: OwnerCaller,
) -> Result<HttpResponse, ApiError> {
    let admins = state.app.admins(&caller.0).await?;
    Ok(HttpResponse::Ok().json(AdminList {
        admins: admins.into_iter().map(Into::into).collect(),
    }))
}

/// Get an admin
///
/// Returns one admin of the caller's organization. Owners only.
#[utoipa::path(
    get,
    path = "/org/admins/{id}",
    operation_id = "getAdmin",
    tag = "admins",
    params(
        ("id" = Uuid, Path, description = "The admin's id. Anything else (not a UUID, another organization's admin) is a 404."),
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The admin.", body = AdminView),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 404, response = AdminNotFound),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn get(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let admin = state.app.admin(&caller.0, id).await?;
    Ok(HttpResponse::Ok().json(AdminView::from(admin)))
}

/// Change an admin's role
///
/// Makes an admin of the caller's organization an `owner` or an `admin`.
/// Demoting the organization's last owner is refused (409 `last_owner`);
/// owners may demote themselves while another owner remains. Setting the
/// role an admin already has changes nothing. Owners only.
#[utoipa::path(
    patch,
    path = "/org/admins/{id}",
    operation_id = "changeAdminRole",
    tag = "admins",
    params(
        ("id" = Uuid, Path, description = "The admin's id. Anything else (not a UUID, another organization's admin) is a 404."),
    ),
    request_body = ChangeAdminRequest,
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The admin with its new role.", body = AdminView),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 404, response = AdminNotFound),
        (status = 409, response = LastOwner),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn change_role(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    Origin(origin): Origin,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let body: ChangeAdminRequest = json_body(&req, payload, state.max_body_bytes).await?;
    let mut errors = FieldErrors::default();
    let role = errors
        .required("role", body.role.as_ref(), parse_role)
        .ok_or_else(|| errors.into_error())?;
    let admin = state
        .app
        .change_admin_role(&origin, &caller.0, id, role)
        .await?;
    Ok(HttpResponse::Ok().json(AdminView::from(admin)))
}

/// Remove an admin
///
/// Removes an admin from the caller's organization; its access and refresh
/// tokens stop working at once. Removing the organization's last owner is
/// refused (409 `last_owner`); owners may remove themselves while another
/// owner remains. Owners only.
#[utoipa::path(
    delete,
    path = "/org/admins/{id}",
    operation_id = "removeAdmin",
    tag = "admins",
    params(
        ("id" = Uuid, Path, description = "The admin's id. Anything else (not a UUID, another organization's admin) is a 404."),
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 204, description = "The admin was removed."),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 404, response = AdminNotFound),
        (status = 409, response = LastOwner),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn remove(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    Origin(origin): Origin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    state.app.remove_admin(&origin, &caller.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Admin ids are UUIDs; anything else names no admin.
fn parse_id(raw: &str) -> Result<AdminId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::App(AppError::AdminNotFound))
}

fn admin_path(id: AdminId) -> String {
    format!("{COLLECTION_PATH}/{id}")
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(add, list, get, change_role, remove),
    components(schemas(AdminRole))
)]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_list>(|route| route.to(list));
    table.operation::<__path_add>(|route| route.to(add));
    table.operation::<__path_get>(|route| route.to(get));
    table.operation::<__path_change_role>(|route| route.to(change_role));
    table.operation::<__path_remove>(|route| route.to(remove));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names_only() {
        assert_eq!(parse_role("owner").ok(), Some(domain::AdminRole::Owner));
        assert_eq!(parse_role("admin").ok(), Some(domain::AdminRole::Admin));
        for invalid in ["Owner", "ADMIN", "", "root", " owner"] {
            assert!(parse_role(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn the_api_role_serializes_as_the_domain_name() {
        for role in domain::AdminRole::ALL {
            let json = serde_json::to_value(AdminRole::from(role)).ok();
            assert_eq!(json, Some(Value::String(role.as_str().into())));
        }
    }

    #[test]
    fn malformed_ids_are_not_found() {
        assert!(matches!(
            parse_id("nope"),
            Err(ApiError::App(AppError::AdminNotFound))
        ));
        assert!(parse_id("01936f3e-8a4b-7c5d-9e6f-3a4b5c6d7e8f").is_ok());
    }
}
