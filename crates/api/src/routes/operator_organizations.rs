//! The organization side of the operator API (issue #17): `GET
//! /operator/organizations` (listing and search), `GET
//! /operator/organizations/{id}` (with usage), `POST
//! /operator/organizations/{id}/suspend` and `/resume`, `DELETE
//! /operator/organizations/{id}`, and `GET /operator/audit` (every
//! organization's audit log).
//!
//! Every route takes an operator key (`Authorization: Bearer osk_...`,
//! security scheme `operator_key`): the read routes any scope, suspend,
//! resume and delete the `write` scope. Query parameters are checked like
//! `GET /org/data`'s: an unknown parameter or an invalid value is a 422
//! naming it.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use orgsvc_app::operator_organizations::OrganizationDetails;
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{
    AuditAction, AuditEvent, AuditEventId, AuditFilter, NameFragment, NameMatch, NameSearch,
    Organization, OrganizationCursor, OrganizationId, OrganizationQuery, PageSize, StateFilter,
    Suspension,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extractors::body::{query_of, JsonObject};
use crate::extractors::operator::{OperatorCaller, OperatorWriter};
use crate::problem::responses::{
    BadRequestBody, DeleteConflict, InternalError, InvalidOperatorAuditListing,
    InvalidOrganizationListing, OperatorRateLimited, OperatorScopeInsufficient,
    OperatorUnauthorized, OrganizationBusy, OrganizationNotFound, PayloadTooLarge,
    UnsupportedMediaType, ValidationFailed,
};
use crate::problem::ApiError;
use crate::request_origin::Origin;
use crate::routes::audit::AuditActionName;
use crate::routes::organizations::StorageView;
use crate::routes::paging::next_page_link;
use crate::routes::RouteTable;
use crate::state::AppState;
use crate::validation::FieldErrors;

/// The path of the organization listing.
const ORGANIZATIONS_PATH: &str = "/operator/organizations";
/// The path of the audit log across organizations.
const AUDIT_PATH: &str = "/operator/audit";

/// Why and when an operator suspended an organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionView {
    /// The operator's reason, as given (trimmed).
    reason: String,
    /// When the suspension took effect (millisecond precision).
    at: DateTime<Utc>,
}

/// An organization as operators see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-8a4b-7c5d-9e6f-0a1b2c3d4e5f",
    "organization_name": "Acme Corp",
    "canonical_name": "acme_corp",
    "collection_name": "org_acme_corp",
    "database": "orgsvc_master",
    "admin_id": "01936f3e-8a4b-7c5d-9e6f-1a2b3c4d5e6f",
    "created_at": "2025-01-31T12:00:00.123Z",
    "updated_at": "2025-02-01T08:30:00.456Z",
    "state": "suspended",
    "suspension": {"reason": "unpaid invoice 2025-01", "at": "2025-02-03T09:00:00.000Z"}
}))]
pub struct OperatorOrganizationView {
    /// Immutable id; survives renames.
    id: Uuid,
    /// Current name.
    organization_name: String,
    /// The canonical form of the name (lowercase, each run of spaces,
    /// hyphens and underscores one `_`): what `q` searches and the listing
    /// is ordered by.
    canonical_name: String,
    /// The tenant collection: `org_` + the canonical name.
    collection_name: String,
    /// The database holding the tenant collection.
    database: String,
    /// Id of the organization's primary admin.
    admin_id: Uuid,
    /// Creation time.
    created_at: DateTime<Utc>,
    /// Last change of name.
    updated_at: DateTime<Utc>,
    /// `active` or `suspended`.
    #[schema(example = "active")]
    state: &'static str,
    /// The suspension while `state` is `suspended`; `null` otherwise.
    suspension: Option<SuspensionView>,
    /// Where the organization's documents are physically stored.
    storage: StorageView,
}

impl From<Organization> for OperatorOrganizationView {
    fn from(organization: Organization) -> Self {
        Self {
            id: organization.id.as_uuid(),
            canonical_name: organization.name.canonical().to_owned(),
            organization_name: organization.name.as_str().to_owned(),
            collection_name: organization.location.collection.as_str().to_owned(),
            storage: StorageView::from(&organization.location),
            database: organization.location.database,
            admin_id: organization.admin_id.as_uuid(),
            created_at: organization.created_at,
            updated_at: organization.updated_at,
            state: organization.state.as_str(),
            suspension: organization
                .state
                .suspension()
                .map(|suspension| SuspensionView {
                    reason: suspension.reason.clone(),
                    at: suspension.at,
                }),
        }
    }
}

/// One page of organizations.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationListPage {
    /// Organizations in canonical-name order.
    items: Vec<OperatorOrganizationView>,
    /// Pass as `after` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// What an organization holds, counted when asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Its admins (every role).
    admins: u64,
    /// Its invitations still pending (neither accepted, revoked nor expired).
    pending_invitations: u64,
    /// Documents in its tenant collection.
    documents: u64,
    /// Bytes of its documents' bodies, each counted as compact JSON text
    /// (UTF-8): the same figure on every store.
    bytes: u64,
    /// When one of its admins last logged in successfully (the newest
    /// `login.succeeded` audit entry); `null` when none did.
    last_login_at: Option<DateTime<Utc>>,
}

/// An organization with its usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorOrganizationDetails {
    /// The organization.
    #[serde(flatten)]
    organization: OperatorOrganizationView,
    /// What it holds.
    usage: UsageView,
}

impl From<OrganizationDetails> for OperatorOrganizationDetails {
    fn from(details: OrganizationDetails) -> Self {
        Self {
            organization: details.organization.into(),
            usage: UsageView {
                admins: details.usage.admins,
                pending_invitations: details.usage.pending_invitations,
                documents: details.usage.documents,
                bytes: details.usage.bytes,
                last_login_at: details.last_login_at,
            },
        }
    }
}

/// Query of `GET /operator/organizations`. Other parameters are refused (422).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOrganizationsQuery {
    /// Search text, matched against canonical names: trimmed, lowercased,
    /// each run of spaces, hyphens and underscores folded to one `_` (as
    /// names are), 1 to 64 characters of ASCII letters, digits and
    /// separators.
    // The pattern is `NameFragment::parse`'s rule: after trimming
    // whitespace (the same set as `openapi::ORGANIZATION_NAME_PATTERN`'s),
    // 1 to 64 ASCII letters, digits, spaces, hyphens and underscores.
    #[param(
        example = "acme",
        pattern = r"^[\t\n\x0B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[A-Za-z0-9_-](?:[A-Za-z0-9 _-]{0,62}[A-Za-z0-9_-])?[\t\n\x0B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    q: Option<String>,
    /// How `q` matches: `prefix` (default; an index range, fast at any
    /// number of organizations) or `substring` (anywhere in the name; walks
    /// the names in order until a page is full).
    #[param(value_type = Option<String>, pattern = "^(prefix|substring)$", example = "prefix")]
    r#match: Option<String>,
    /// Only `active` or only `suspended` organizations.
    #[param(value_type = Option<String>, pattern = "^(active|suspended)$", example = "suspended")]
    state: Option<String>,
    /// Only organizations created strictly after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime, example = "2025-01-01T00:00:00Z")]
    created_after: Option<String>,
    /// Only organizations created strictly before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime, example = "2026-01-01T00:00:00Z")]
    created_before: Option<String>,
    /// Most organizations in the page, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, example = 20)]
    limit: Option<String>,
    /// Continue after this cursor: pass `next_cursor` from the previous page.
    #[param(example = "acme_corp", pattern = "^[a-z0-9_]{1,64}$")]
    after: Option<String>,
}

/// List organizations
///
/// Pages through every organization in canonical-name order (stable: names
/// are unique), optionally searched by name (`q`, by prefix or substring,
/// case- and separator-insensitive), by state and by creation time. Follow
/// `next_cursor` (or the `Link: rel="next"` header) until it is `null`. An
/// organization renamed meanwhile moves in the order. Any operator key.
#[utoipa::path(
    get,
    path = "/operator/organizations",
    operation_id = "operatorListOrganizations",
    tag = "operator",
    params(ListOrganizationsQuery),
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "One page of organizations.", body = OrganizationListPage, headers(
            ("Link" = String, description = "`</operator/organizations?...&after=...>; rel=\"next\"` when more organizations may follow."),
        )),
        (status = 401, response = OperatorUnauthorized),
        (status = 422, response = InvalidOrganizationListing),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    caller: OperatorCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let raw: ListOrganizationsQuery = query_of(&req)?;
    let query = parse_listing(&raw)?;
    let page = state.app.operator_organizations(&caller.0, &query).await?;
    let next_cursor = page.next.map(|cursor| cursor.as_str().to_owned());
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &next_cursor {
        response.insert_header((header::LINK, listing_link(&raw, query.limit, cursor)));
    }
    Ok(response.json(OrganizationListPage {
        items: page.organizations.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Checks the listing's query, collecting every offending parameter.
fn parse_listing(raw: &ListOrganizationsQuery) -> Result<OrganizationQuery, ApiError> {
    let mut errors = FieldErrors::default();
    let text = |raw: &Option<String>| raw.clone().map(Value::String);
    let fragment = errors.optional("q", text(&raw.q).as_ref(), NameFragment::parse);
    let mode = match raw.r#match.as_deref() {
        None => Some(NameMatch::Prefix),
        Some(name) => NameMatch::parse(name).or_else(|| {
            errors.push("match", "must be `prefix` or `substring`");
            None
        }),
    };
    let state_filter = match raw.state.as_deref() {
        None => Some(None),
        Some(name) => match StateFilter::parse(name) {
            Some(state) => Some(Some(state)),
            None => {
                errors.push("state", "must be `active` or `suspended`");
                None
            }
        },
    };
    let mut time = |field: &str, raw: &Option<String>| match raw.as_deref() {
        None => Some(None),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(at) => Some(Some(at.with_timezone(&Utc))),
            Err(_) => {
                errors.push(field, "must be an RFC 3339 time, like 2025-01-31T12:00:00Z");
                None
            }
        },
    };
    let created_after = time("created_after", &raw.created_after);
    let created_before = time("created_before", &raw.created_before);
    let limit = errors.page_size(raw.limit.as_deref());
    let after = errors.optional(
        "after",
        text(&raw.after).as_ref(),
        OrganizationCursor::parse,
    );
    match (
        fragment,
        mode,
        state_filter,
        created_after,
        created_before,
        limit,
        after,
    ) {
        (
            Some(fragment),
            Some(mode),
            Some(state),
            Some(created_after),
            Some(created_before),
            Some(limit),
            Some(after),
        ) => Ok(OrganizationQuery {
            search: fragment.map(|fragment| NameSearch { fragment, mode }),
            state,
            created_after,
            created_before,
            limit,
            after,
        }),
        _ => Err(errors.into_error()),
    }
}

/// `Link` to the next page, repeating every parameter but the cursor.
fn listing_link(raw: &ListOrganizationsQuery, limit: PageSize, cursor: &str) -> String {
    let limit = limit.get().to_string();
    next_page_link(
        ORGANIZATIONS_PATH,
        [
            ("limit", Some(limit.as_str())),
            ("q", raw.q.as_deref()),
            ("match", raw.r#match.as_deref()),
            ("state", raw.state.as_deref()),
            ("created_after", raw.created_after.as_deref()),
            ("created_before", raw.created_before.as_deref()),
            ("after", Some(cursor)),
        ],
    )
}

/// The organization id of a path, or a 404 (an id that is not a UUID names
/// no organization).
fn organization_id(raw: &str) -> Result<OrganizationId, ApiError> {
    crate::validation::id_cursor::<OrganizationId>(raw)
        .ok_or(ApiError::App(orgsvc_app::AppError::OrganizationNotFound))
}

/// Get an organization
///
/// One organization with its state and usage: admins, pending
/// invitations, documents and their bytes, and the last successful login.
/// Any operator key. While a rename or a move between layouts has its
/// documents between two places (MongoDB), they cannot be counted: 503
/// `organization_busy` with `Retry-After`.
#[utoipa::path(
    get,
    path = "/operator/organizations/{id}",
    operation_id = "operatorGetOrganization",
    tag = "operator",
    params(("id" = Uuid, Path, description = "The organization's id.")),
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "The organization and its usage.", body = OperatorOrganizationDetails),
        (status = 401, response = OperatorUnauthorized),
        (status = 404, response = OrganizationNotFound),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
        (status = 503, response = OrganizationBusy),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %id))]
pub async fn get(
    state: web::Data<AppState>,
    caller: OperatorCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = organization_id(&id)?;
    let details = state.app.operator_organization(&caller.0, id).await?;
    Ok(HttpResponse::Ok().json(OperatorOrganizationDetails::from(details)))
}

/// Body of `POST /operator/organizations/{id}/suspend`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SuspendRequest {
    /// Why: shown to operators (never to the organization's admins), 1 to
    /// 500 characters once trimmed.
    #[schema(value_type = String, example = "unpaid invoice 2025-01")]
    reason: Option<Value>,
}

/// Suspend an organization
///
/// Its admins can no longer log in or refresh (403
/// `organization_suspended`), their access tokens are refused at once (403
/// `organization_suspended`) on every route, and its data, admins and
/// invitations cannot change; `GET /org/get` still answers, with `state:
/// "suspended"`. Nothing is deleted. Idempotent: suspending a suspended
/// organization keeps its first reason and time. Safe against a concurrent
/// rename (neither is lost) and delete (a deleted organization stays
/// deleted: 404). Write scope.
#[utoipa::path(
    post,
    path = "/operator/organizations/{id}/suspend",
    operation_id = "operatorSuspendOrganization",
    tag = "operator",
    params(("id" = Uuid, Path, description = "The organization's id.")),
    request_body = SuspendRequest,
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "The organization, suspended.", body = OperatorOrganizationView),
        (status = 400, response = BadRequestBody),
        (status = 401, response = OperatorUnauthorized),
        (status = 403, response = OperatorScopeInsufficient),
        (status = 404, response = OrganizationNotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %id))]
pub async fn suspend(
    state: web::Data<AppState>,
    caller: OperatorWriter,
    Origin(origin): Origin,
    id: web::Path<String>,
    body: JsonObject<SuspendRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = organization_id(&id)?;
    let mut errors = FieldErrors::default();
    let suspension = errors.required("reason", body.into_inner().reason.as_ref(), |reason| {
        Suspension::new(reason, now_millis())
    });
    let Some(suspension) = suspension else {
        return Err(errors.into_error());
    };
    let organization = state
        .app
        .suspend_organization(&origin, &caller.0, id, suspension)
        .await?;
    Ok(HttpResponse::Ok().json(OperatorOrganizationView::from(organization)))
}

/// Resume an organization
///
/// Ends a suspension: its admins may log in again (sessions refreshed
/// while it was suspended ended; access tokens still valid work again).
/// Idempotent: resuming an active organization changes nothing. Write
/// scope.
#[utoipa::path(
    post,
    path = "/operator/organizations/{id}/resume",
    operation_id = "operatorResumeOrganization",
    tag = "operator",
    params(("id" = Uuid, Path, description = "The organization's id.")),
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "The organization, active.", body = OperatorOrganizationView),
        (status = 401, response = OperatorUnauthorized),
        (status = 403, response = OperatorScopeInsufficient),
        (status = 404, response = OrganizationNotFound),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %id))]
pub async fn resume(
    state: web::Data<AppState>,
    caller: OperatorWriter,
    Origin(origin): Origin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = organization_id(&id)?;
    let organization = state
        .app
        .resume_organization(&origin, &caller.0, id)
        .await?;
    Ok(HttpResponse::Ok().json(OperatorOrganizationView::from(organization)))
}

/// Delete an organization
///
/// Deletes the organization, its admins, invitations and tenant
/// collection as `DELETE /org/delete` does (the same crash-safe operation),
/// without an owner's token; suspended organizations too. Its audit entries
/// stay. Write scope.
#[utoipa::path(
    delete,
    path = "/operator/organizations/{id}",
    operation_id = "operatorDeleteOrganization",
    tag = "operator",
    params(("id" = Uuid, Path, description = "The organization's id.")),
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "The organization as it was.", body = OperatorOrganizationView),
        (status = 401, response = OperatorUnauthorized),
        (status = 403, response = OperatorScopeInsufficient),
        (status = 404, response = OrganizationNotFound),
        (status = 409, response = DeleteConflict),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %id))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: OperatorWriter,
    Origin(origin): Origin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = organization_id(&id)?;
    let organization = state
        .app
        .operator_delete_organization(&origin, &caller.0, id)
        .await?;
    Ok(HttpResponse::Ok().json(OperatorOrganizationView::from(organization)))
}

/// One audit log entry, with its organization and acting operator key.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorAuditEventView {
    /// Time-ordered id; pass the last one of a page as `before`.
    id: Uuid,
    /// The organization it concerns (it may be deleted since).
    organization_id: Uuid,
    /// What happened.
    action: AuditActionName,
    /// The signed-in admin who acted; `null` when none did.
    actor: Option<Uuid>,
    /// The name of the operator key that acted; `null` when none did.
    operator: Option<String>,
    /// What it happened to (see `GET /org/audit`).
    target: String,
    /// When (millisecond precision).
    at: DateTime<Utc>,
    /// The request's id.
    request_id: Option<String>,
    /// The client's IP address.
    client_ip: Option<String>,
}

impl From<AuditEvent> for OperatorAuditEventView {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id.as_uuid(),
            organization_id: event.organization_id.as_uuid(),
            action: AuditActionName::of(event.action),
            actor: event.actor.map(|actor| actor.as_uuid()),
            operator: event.operator.map(|name| name.as_str().to_owned()),
            target: event.target,
            at: event.at,
            request_id: event.request_id,
            client_ip: event.client_ip,
        }
    }
}

/// One page of the audit log across organizations.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorAuditPage {
    /// Entries, newest first.
    events: Vec<OperatorAuditEventView>,
    /// Pass as `before` to get the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Query of `GET /operator/audit`. Other parameters are refused (422).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OperatorAuditQuery {
    /// Only this organization's entries (a lowercase hyphenated UUID).
    #[param(value_type = Option<Uuid>)]
    organization_id: Option<String>,
    /// Only entries of this action (one of the action names of `GET
    /// /org/audit`).
    #[param(value_type = Option<AuditActionName>, example = "login.succeeded")]
    action: Option<String>,
    /// Most entries in the page, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, example = 20)]
    limit: Option<String>,
    /// Continue with the entries older than this one: pass `next_cursor`.
    #[param(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        max_length = 36
    )]
    before: Option<String>,
}

/// List every organization's audit log
///
/// Pages through the audit entries of every organization (deleted ones
/// too), newest first, optionally of one organization and one action.
/// Follow `next_cursor` (or `Link: rel="next"`) until it is `null`. Any
/// operator key.
#[utoipa::path(
    get,
    path = "/operator/audit",
    operation_id = "operatorListAuditEvents",
    tag = "operator",
    params(OperatorAuditQuery),
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "One page of the audit log.", body = OperatorAuditPage, headers(
            ("Link" = String, description = "`</operator/audit?...&before=...>; rel=\"next\"` when older entries may follow."),
        )),
        (status = 401, response = OperatorUnauthorized),
        (status = 422, response = InvalidOperatorAuditListing),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn audit(
    state: web::Data<AppState>,
    caller: OperatorCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let raw: OperatorAuditQuery = query_of(&req)?;
    let filter = parse_audit(&raw)?;
    let page = state.app.operator_audit_log(&caller.0, &filter).await?;
    let next_cursor = page.next.map(|id| id.to_string());
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &next_cursor {
        let limit = filter.limit.get().to_string();
        let organization = filter.organization.map(|id| id.to_string());
        let link = next_page_link(
            AUDIT_PATH,
            [
                ("limit", Some(limit.as_str())),
                ("organization_id", organization.as_deref()),
                ("action", filter.action.map(AuditAction::as_str)),
                ("before", Some(cursor.as_str())),
            ],
        );
        response.insert_header((header::LINK, link));
    }
    Ok(response.json(OperatorAuditPage {
        events: page.events.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Checks the audit query, collecting every offending parameter.
fn parse_audit(raw: &OperatorAuditQuery) -> Result<AuditFilter, ApiError> {
    let mut errors = FieldErrors::default();
    let organization = match raw.organization_id.as_deref() {
        None => Some(None),
        Some(text) => match crate::validation::id_cursor::<OrganizationId>(text) {
            Some(id) => Some(Some(id)),
            None => {
                errors.push("organization_id", "must be a lowercase hyphenated UUID");
                None
            }
        },
    };
    let action = match raw.action.as_deref() {
        None => Some(None),
        Some(name) => match AuditAction::parse(name) {
            Some(action) => Some(Some(action)),
            None => {
                errors.push("action", "is not an audit action");
                None
            }
        },
    };
    let limit = errors.page_size(raw.limit.as_deref());
    let before = errors.before::<AuditEventId>(raw.before.as_deref());
    match (organization, action, limit, before) {
        (Some(organization), Some(action), Some(limit), Some(before)) => Ok(AuditFilter {
            organization,
            action,
            limit,
            before,
        }),
        _ => Err(errors.into_error()),
    }
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(list, get, suspend, resume, delete, audit))]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_list>(|route| route.to(list));
    table.operation::<__path_get>(|route| route.to(get));
    table.operation::<__path_suspend>(|route| route.to(suspend));
    table.operation::<__path_resume>(|route| route.to(resume));
    table.operation::<__path_delete>(|route| route.to(delete));
    table.operation::<__path_audit>(|route| route.to(audit));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_query_names_every_offending_parameter() {
        let raw = ListOrganizationsQuery {
            q: Some("a/b".into()),
            r#match: Some("fuzzy".into()),
            state: Some("deleted".into()),
            created_after: Some("yesterday".into()),
            created_before: Some("2025-13-01T00:00:00Z".into()),
            limit: Some("0".into()),
            after: Some("Not A Cursor".into()),
        };
        let Err(ApiError::Validation(errors)) = parse_listing(&raw) else {
            panic!("accepted an invalid query");
        };
        let fields: Vec<_> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "q",
                "match",
                "state",
                "created_after",
                "created_before",
                "limit",
                "after"
            ]
        );
        assert_eq!(
            parse_listing(&ListOrganizationsQuery::default()).ok(),
            Some(OrganizationQuery::default())
        );
    }

    #[test]
    fn the_search_is_canonical_and_a_prefix_by_default() {
        let raw = ListOrganizationsQuery {
            q: Some(" ACME  Corp".into()),
            ..ListOrganizationsQuery::default()
        };
        let query = parse_listing(&raw).ok();
        let search = query.and_then(|q| q.search);
        assert_eq!(
            search.as_ref().map(|s| s.fragment.as_str()),
            Some("acme_corp")
        );
        assert_eq!(search.map(|s| s.mode), Some(NameMatch::Prefix));
    }
}
