//! The caller's organization's audit log: who changed what, when, from
//! where. Owners only.
//!
//! Pages run newest first; `before` (the previous page's `next_cursor`)
//! continues with older entries, so entries recorded while a client pages
//! through never appear twice or push others out of order. Parameters are
//! named and checked like `GET /org/data`'s: `limit` 1 to 100 (20), an
//! unknown parameter or a malformed cursor is a 422.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use orgsvc_domain::{AuditAction, AuditEvent, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use crate::extractors::auth::OwnerCaller;
use crate::extractors::body::query_of;
use crate::problem::responses::{InternalError, InvalidAuditListing, OwnerRequired, Unauthorized};
use crate::problem::ApiError;
use crate::routes::paging::next_page_link;
use crate::routes::RouteTable;
use crate::state::AppState;
use crate::validation::FieldErrors;

/// The path of the audit log.
const AUDIT_PATH: &str = "/org/audit";

/// What happened, by its stable name (the schema is written by hand from
/// [`AuditAction::ALL`], so it lists exactly the actions the service records).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct AuditActionName(&'static str);

impl PartialSchema for AuditActionName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "What happened: `organization.created`, `organization.renamed`, \
                 `organization.deleted`, `admin.added`, `admin.removed`, `admin.role_changed`, \
                 `admin.credentials_changed` (email and/or password), `login.succeeded`, \
                 `login.failed`, `login.locked`, `refresh_token.reuse_detected`, \
                 `password_reset.requested`, `password_reset.completed`, `email.verified`, \
                 `invitation.created`, `invitation.accepted` (actor: the new admin), \
                 `invitation.revoked`, `invitation.resent` (target: the invitation id), \
                 `organization.suspended`, `organization.resumed` (by an operator: \
                 `operator` names its key).",
            ))
            .enum_values(Some(AuditAction::ALL.map(AuditAction::as_str)))
            .examples(["organization.renamed"])
            .into()
    }
}

impl ToSchema for AuditActionName {}

impl AuditActionName {
    /// The stable name of `action`.
    pub fn of(action: AuditAction) -> Self {
        Self(action.as_str())
    }
}

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-8a4b-7c5d-9e6f-4a5b6c7d8e9f",
    "action": "organization.renamed",
    "actor": "01936f3e-8a4b-7c5d-9e6f-1a2b3c4d5e6f",
    "operator": null,
    "target": "Acme Corp -> Acme Industries",
    "at": "2025-02-01T08:30:00.456Z",
    "request_id": "01936f3e-8a4b-7c5d-9e6f-5a6b7c8d9e0f",
    "client_ip": "203.0.113.7"
}))]
pub struct AuditEventView {
    /// Time-ordered id; pass the last one of a page as `before` (see
    /// `next_cursor`).
    id: Uuid,
    /// What happened.
    action: AuditActionName,
    /// The signed-in admin who acted (for `organization.created`, the new
    /// owner); `null` when nobody was signed in (failed or locked logins)
    /// and when an operator acted.
    actor: Option<Uuid>,
    /// The name of the operator key that acted through the operator API
    /// (the service's operators, not an admin); `null` otherwise.
    operator: Option<String>,
    /// What it happened to: an admin id (`admin.*`, `login.*`), the
    /// organization's name (`organization.created`, `organization.deleted`)
    /// or `old name -> new name` (`organization.renamed`).
    target: String,
    /// When (millisecond precision).
    at: DateTime<Utc>,
    /// The request's id: the `x-request-id` header of the response to the
    /// call that did it.
    request_id: Option<String>,
    /// The client's IP address: the connection's peer or, when that peer is
    /// one of `security.trusted_proxies`, the first untrusted hop of
    /// `X-Forwarded-For` (or `Forwarded`) counted from the right.
    client_ip: Option<String>,
}

impl From<AuditEvent> for AuditEventView {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id.as_uuid(),
            action: AuditActionName(event.action.as_str()),
            actor: event.actor.map(|actor| actor.as_uuid()),
            operator: event.operator.map(|name| name.as_str().to_owned()),
            target: event.target,
            at: event.at,
            request_id: event.request_id,
            client_ip: event.client_ip,
        }
    }
}

/// One page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "events": [{
        "id": "01936f3e-8a4b-7c5d-9e6f-4a5b6c7d8e9f",
        "action": "admin.added",
        "actor": "01936f3e-8a4b-7c5d-9e6f-1a2b3c4d5e6f",
        "operator": null,
        "target": "01936f3e-8a4b-7c5d-9e6f-3a4b5c6d7e8f",
        "at": "2025-02-01T08:30:00.456Z",
        "request_id": "01936f3e-8a4b-7c5d-9e6f-5a6b7c8d9e0f",
        "client_ip": "203.0.113.7"
    }],
    "next_cursor": "01936f3e-8a4b-7c5d-9e6f-4a5b6c7d8e9f"
}))]
pub struct AuditLogPage {
    /// Entries, newest first.
    events: Vec<AuditEventView>,
    /// Pass as `before` to get the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Query of `GET /org/audit`. Other parameters are refused (422).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAuditQuery {
    /// Most entries in the page, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, example = 20)]
    limit: Option<String>,
    /// Continue with the entries older than this one: pass `next_cursor`
    /// from the previous page (an entry id, as a lowercase hyphenated UUID).
    #[param(
        example = "01936f3e-8a4b-7c5d-9e6f-4a5b6c7d8e9f",
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        max_length = 36
    )]
    before: Option<String>,
}

/// List the audit log
///
/// Pages through the caller's organization's audit log, newest first:
/// organization created, renamed and deleted; admins added, removed, their
/// role or credentials changed; logins. Each entry names the acting admin,
/// the action, its target, the time, the request id and the client's IP.
/// Follow `next_cursor` (or the `Link: rel="next"` header) until it is
/// `null`; entries recorded meanwhile appear on a new first page, never
/// twice. Owners only.
#[utoipa::path(
    get,
    path = "/org/audit",
    operation_id = "listAuditEvents",
    tag = "audit",
    params(ListAuditQuery),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "One page of the audit log.", body = AuditLogPage, headers(
            ("Link" = String, description = "`</org/audit?limit=...&before=...>; rel=\"next\"` when older entries may follow."),
        )),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 422, response = InvalidAuditListing),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn list(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Parsed here rather than as an extractor so that a missing token is a
    // 401 (and an admin's call a 403) before any complaint about the query.
    let raw: ListAuditQuery = query_of(&req)?;
    let query = parse_query(&raw)?;
    let limit = query.limit;
    let page = state.app.audit_log(&caller.0, query).await?;
    let next_cursor = page.next.map(|id| id.to_string());
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &next_cursor {
        let limit = limit.get().to_string();
        let link = next_page_link(
            AUDIT_PATH,
            [
                ("limit", Some(limit.as_str())),
                ("before", Some(cursor.as_str())),
            ],
        );
        response.insert_header((header::LINK, link));
    }
    Ok(response.json(AuditLogPage {
        events: page.events.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Checks the query, collecting every offending parameter.
fn parse_query(raw: &ListAuditQuery) -> Result<AuditQuery, ApiError> {
    let mut errors = FieldErrors::default();
    let limit = errors.page_size(raw.limit.as_deref());
    let before = errors.before(raw.before.as_deref());
    match (limit, before) {
        (Some(limit), Some(before)) => Ok(AuditQuery { limit, before }),
        _ => Err(errors.into_error()),
    }
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(list), components(schemas(AuditActionName)))]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_list>(|route| route.to(list));
}

#[cfg(test)]
mod tests {
    use orgsvc_domain::AuditEventId;

    use super::*;
    use crate::validation::id_cursor;

    fn query(limit: Option<&str>, before: Option<&str>) -> ListAuditQuery {
        ListAuditQuery {
            limit: limit.map(str::to_owned),
            before: before.map(str::to_owned),
        }
    }

    #[test]
    fn cursors_are_lowercase_hyphenated_uuids_only() {
        let id = AuditEventId::new();
        assert_eq!(id_cursor::<AuditEventId>(&id.to_string()), Some(id));
        let upper = id.to_string().to_uppercase();
        let simple = id.as_uuid().simple().to_string();
        for invalid in [
            upper.as_str(),
            simple.as_str(),
            "",
            "nope",
            "1738324800123_0",
        ] {
            assert_eq!(id_cursor::<AuditEventId>(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn the_query_lists_every_offending_parameter() {
        let Err(ApiError::Validation(errors)) = parse_query(&query(Some("0"), Some("x"))) else {
            panic!("accepted an invalid query");
        };
        let fields: Vec<_> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, ["limit", "before"]);
        let parsed = parse_query(&query(None, None)).ok();
        assert_eq!(parsed, Some(AuditQuery::default()));
    }

    #[test]
    fn every_action_is_in_the_schema() {
        let schema = serde_json::to_value(AuditActionName::schema()).ok();
        let names = schema
            .as_ref()
            .and_then(|schema| schema["enum"].as_array())
            .map(Vec::len);
        assert_eq!(names, Some(AuditAction::ALL.len()));
    }
}
