//! Invitations over HTTP (issue #14; the use cases are
//! [`orgsvc_app::invitations`]): owners invite an email with a role, list,
//! revoke and resend their organization's invitations; the invitee accepts
//! with the token from the email and a password of their own, without
//! signing in. `POST /org/admins` with a password stays the path for
//! automation.
//!
//! Decisions, as documented in OpenAPI:
//! - The `/org/invitations` operations require a bearer token of an
//!   **owner**; an `admin` gets 403 `owner_required`.
//! - An invitation lives `expires_in` seconds (default 7 days, at most 30
//!   days: 422 beyond, and for 0).
//! - Every token that cannot be used (unknown, already used, replaced by a
//!   resend, revoked, expired) gets the same 410 `invitation_unusable`
//!   body, so tokens cannot be probed; `POST /invitations/accept` is rate
//!   limited per client IP together with the login and the refresh.
//! - An id that is not a UUID, or that names another organization's
//!   invitation, is answered like an unknown id: 404
//!   `invitation_not_found`.

use std::time::Duration;

use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use orgsvc_app::invitations::Invite;
use orgsvc_app::AppError;
use orgsvc_domain as domain;
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{invitation_ttl, AdminEmail, InvitationId, InvitationQuery, Password};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extractors::auth::OwnerCaller;
use crate::extractors::body::{json_body, query_of};
use crate::problem::responses::{
    AcceptInvitationConflict, BadRequestBody, InternalError, InvalidInvitationListing,
    InvitationNotFound, InvitationNotPending, InvitationUnusable, InviteConflict,
    OrganizationSuspended, OwnerRequired, PayloadTooLarge, RateLimited, Unauthorized,
    UnsupportedMediaType, ValidationFailed,
};
use crate::problem::ApiError;
use crate::request_origin::Origin;
use crate::routes::admins::{parse_role, AdminRole, AdminView};
use crate::routes::paging::next_page_link;
use crate::routes::sessions::{limit_per_client_ip, no_store, AccessToken};
use crate::routes::RouteTable;
use crate::state::AppState;
use crate::validation::FieldErrors;

/// The path of the collection resource.
const COLLECTION_PATH: &str = "/org/invitations";

/// The message of an `expires_in` out of bounds (the rule:
/// [`invitation_ttl`]).
const INVALID_EXPIRES_IN: &str =
    "must be a whole number of seconds, more than 0 and at most 2592000 (30 days)";

/// Where an invitation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(example = "pending")]
pub enum InvitationStatus {
    /// Waiting for the invitee; the emailed link works.
    Pending,
    /// Accepted: the admin exists.
    Accepted,
    /// Revoked by an owner.
    Revoked,
    /// Not accepted before `expires_at`.
    Expired,
}

impl From<domain::InvitationStatus> for InvitationStatus {
    fn from(status: domain::InvitationStatus) -> Self {
        match status {
            domain::InvitationStatus::Pending => Self::Pending,
            domain::InvitationStatus::Accepted => Self::Accepted,
            domain::InvitationStatus::Revoked => Self::Revoked,
            domain::InvitationStatus::Expired => Self::Expired,
        }
    }
}

/// An invitation (never its token).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-8a4b-7c5d-9e6f-6a7b8c9d0e1f",
    "email": "new@acme.example",
    "role": "admin",
    "created_at": "2025-02-01T08:30:00.456Z",
    "expires_at": "2025-02-08T08:30:00.456Z",
    "status": "pending"
}))]
pub struct InvitationView {
    /// Immutable, time-ordered id.
    id: Uuid,
    /// The invited email: the new admin's login.
    email: String,
    /// The new admin's role.
    role: AdminRole,
    /// When it was created.
    created_at: DateTime<Utc>,
    /// When its link stops working (a resend moves it).
    expires_at: DateTime<Utc>,
    /// Where it stands now.
    status: InvitationStatus,
}

impl InvitationView {
    fn at(invitation: domain::Invitation, now: DateTime<Utc>) -> Self {
        Self {
            id: invitation.id.as_uuid(),
            status: invitation.status_at(now).into(),
            email: invitation.email.as_str().to_owned(),
            role: invitation.role.into(),
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
        }
    }
}

/// One page of the organization's invitations.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "01936f3e-8a4b-7c5d-9e6f-6a7b8c9d0e1f",
        "email": "new@acme.example",
        "role": "admin",
        "created_at": "2025-02-01T08:30:00.456Z",
        "expires_at": "2025-02-08T08:30:00.456Z",
        "status": "pending"
    }],
    "next_cursor": null
}))]
pub struct InvitationPage {
    /// Invitations, newest first, whatever their status (expired ones are
    /// listed for 30 days after they expired).
    items: Vec<InvitationView>,
    /// Pass as `before` to get the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Body of `POST /org/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "new@acme.example", "role": "admin", "expires_in": 604800}))]
pub struct InviteRequest {
    /// The invitee's email (no admin of any organization may have it,
    /// compared ignoring case).
    #[schema(value_type = String, format = Email, required = true, max_length = 254)]
    email: Option<Value>,
    /// The new admin's role; absent or `null`: `admin`.
    #[schema(value_type = Option<AdminRole>, required = false)]
    role: Option<Value>,
    /// Seconds the invitation lives, 1 to 2592000 (30 days); absent or
    /// `null`: 604800 (7 days).
    #[schema(value_type = Option<u64>, required = false, minimum = 1, maximum = 2592000)]
    expires_in: Option<Value>,
}

/// Largest `expires_in` read from a number written with a fraction (far
/// above the rule's 30 days, which then refuses it).
const MAX_WHOLE_SECONDS: f64 = 4_294_967_295.0;

/// Parses `expires_in` with the domain's rule ([`invitation_ttl`]). A
/// number with a zero fractional part (`86400.0`) is an integer, as JSON
/// Schema counts them (draft 2020-12 Validation §6.1.1: `integer`).
fn parse_expires_in(errors: &mut FieldErrors, raw: Option<&Value>) -> Option<Option<Duration>> {
    let seconds = match raw {
        None | Some(Value::Null) => return Some(None),
        Some(Value::Number(number)) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|seconds| {
                    seconds.fract() == 0.0 && (0.0..=MAX_WHOLE_SECONDS).contains(seconds)
                })
                // Exact: a whole number within u32's range.
                .map(|seconds| seconds as u64)
        }),
        Some(_) => None,
    };
    match seconds.map(|seconds| invitation_ttl(Some(Duration::from_secs(seconds)))) {
        Some(Ok(ttl)) => Some(Some(ttl)),
        _ => {
            errors.push("expires_in", INVALID_EXPIRES_IN);
            None
        }
    }
}

/// A `POST /org/invitations` body as the use case's command; every
/// offending field is reported.
fn invite_command(request: InviteRequest) -> Result<Invite, ApiError> {
    let mut errors = FieldErrors::default();
    let email = errors.required("email", request.email.as_ref(), AdminEmail::parse);
    let role = errors.optional("role", request.role.as_ref(), parse_role);
    let expires_in = parse_expires_in(&mut errors, request.expires_in.as_ref());
    match (email, role, expires_in) {
        (Some(email), Some(role), Some(expires_in)) => Ok(Invite {
            email,
            role: role.unwrap_or(domain::AdminRole::Admin),
            expires_in,
        }),
        _ => Err(errors.into_error()),
    }
}

/// Body of `POST /invitations/accept`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "token": "Jx3b7m0H1sXlq9cX2y5c0PZf8oQe4uKt6wVbN1rD2aE",
    "password": "a long passphrase of my own"
}))]
pub struct AcceptInvitationRequest {
    /// The token from the invitation email's link.
    #[schema(value_type = String, required = true)]
    token: Option<Value>,
    /// The new admin's password, 8 to 128 characters.
    #[schema(value_type = String, format = Password, required = true, min_length = 8, max_length = 128)]
    password: Option<Value>,
}

/// What accepting answers: the new admin, signed in.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "admin": {
        "id": "01936f3e-8a4b-7c5d-9e6f-3a4b5c6d7e8f",
        "email": "new@acme.example",
        "role": "admin",
        "created_at": "2025-02-02T09:00:00.789Z",
        "updated_at": "2025-02-02T09:00:00.789Z"
    },
    "tokens": {
        "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImtWNGIwSTFHN0M2dHFac0d4SnE5bUEifQ.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
        "token_type": "bearer",
        "expires_in": 900,
        "refresh_token": "Jx3b7m0H1sXlq9cX2y5c0PZf8oQe4uKt6wVbN1rD2aE",
        "refresh_expires_in": 1209600
    }
}))]
pub struct AcceptedInvitation {
    /// The admin the invitation created (its email and role are the
    /// invited ones).
    admin: AdminView,
    /// A new session of that admin, as `POST /admin/login` answers.
    tokens: AccessToken,
}

/// Query of `GET /org/invitations`. Other parameters are refused (422).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListInvitationsQuery {
    /// Most invitations in the page, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, example = 20)]
    limit: Option<String>,
    /// Continue with the invitations older than this one: pass
    /// `next_cursor` from the previous page (an invitation id, as a
    /// lowercase hyphenated UUID).
    #[param(
        example = "01936f3e-8a4b-7c5d-9e6f-6a7b8c9d0e1f",
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        max_length = 36
    )]
    before: Option<String>,
}

/// Invite an admin
///
/// Invites an email into the caller's organization with a role: stores the
/// invitation and, in the same write, the email to the invitee with a link
/// (`email.invitation_url`, its `{token}` replaced by a single-use token of
/// 256 random bits, stored only as a hash). The invitee accepts with `POST
/// /invitations/accept`. Owners only.
#[utoipa::path(
    post,
    path = "/org/invitations",
    operation_id = "createInvitation",
    tag = "invitations",
    request_body = InviteRequest,
    security(("bearer_auth" = [])),
    responses(
        (status = 201, description = "The invitation, pending; its email is queued.", body = InvitationView),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 409, response = InviteConflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn create(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    Origin(origin): Origin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: InviteRequest = json_body(&req, payload, state.max_body_bytes).await?;
    let command = invite_command(body)?;
    let invitation = state.app.invite(&origin, &caller.0, command).await?;
    Ok(HttpResponse::Created().json(InvitationView::at(invitation, now_millis())))
}

/// List invitations
///
/// Pages through the caller's organization's invitations, newest first:
/// pending, accepted, revoked and expired ones (an expired invitation is
/// listed for 30 days after it expired). Follow `next_cursor` (or the
/// `Link: rel="next"` header) until it is `null`. Owners only.
#[utoipa::path(
    get,
    path = "/org/invitations",
    operation_id = "listInvitations",
    tag = "invitations",
    params(ListInvitationsQuery),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "One page of invitations.", body = InvitationPage, headers(
            ("Link" = String, description = "`</org/invitations?limit=...&before=...>; rel=\"next\"` when older invitations may follow."),
        )),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 422, response = InvalidInvitationListing),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn list(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let raw: ListInvitationsQuery = query_of(&req)?;
    let query = parse_query(&raw)?;
    let limit = query.limit;
    let page = state.app.invitations(&caller.0, query).await?;
    let now = now_millis();
    let next_cursor = page.next.map(|id| id.to_string());
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &next_cursor {
        let limit = limit.get().to_string();
        let link = next_page_link(
            COLLECTION_PATH,
            [
                ("limit", Some(limit.as_str())),
                ("before", Some(cursor.as_str())),
            ],
        );
        response.insert_header((header::LINK, link));
    }
    Ok(response.json(InvitationPage {
        items: page
            .invitations
            .into_iter()
            .map(|invitation| InvitationView::at(invitation, now))
            .collect(),
        next_cursor,
    }))
}

/// Revoke an invitation
///
/// Revokes a pending invitation of the caller's organization: its link
/// stops working at once (410 `invitation_unusable`). Owners only.
#[utoipa::path(
    delete,
    path = "/org/invitations/{id}",
    operation_id = "revokeInvitation",
    tag = "invitations",
    params(
        ("id" = Uuid, Path, description = "The invitation's id. Anything else (not a UUID, another organization's invitation) is a 404."),
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 204, description = "The invitation was revoked."),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 404, response = InvitationNotFound),
        (status = 409, response = InvitationNotPending),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: OwnerCaller,
    Origin(origin): Origin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    state.app.revoke_invitation(&origin, &caller.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Resend an invitation
///
/// Sends a pending invitation's email again with a new token: the older
/// link stops working at once, and the invitation lives 7 days from now.
/// Owners only.
#[utoipa::path(
    post,
    path = "/org/invitations/{id}/resend",
    operation_id = "resendInvitation",
    tag = "invitations",
    params(
        ("id" = Uuid, Path, description = "The invitation's id. Anything else (not a UUID, another organization's invitation) is a 404."),
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The invitation with its new expiry; the new email is queued.", body = InvitationView),
        (status = 401, response = Unauthorized),
        (status = 403, response = OwnerRequired),
        (status = 404, response = InvitationNotFound),
        (status = 409, response = InvitationNotPending),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.admin().organization_id))]
pub async fn resend(
    state: web::Data<AppState>,
    Origin(origin): Origin,
    caller: OwnerCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let invitation = state.app.resend_invitation(&origin, &caller.0, id).await?;
    Ok(HttpResponse::Ok().json(InvitationView::at(invitation, now_millis())))
}

/// Accept an invitation
///
/// Creates the invited admin (the invitation's email, verified since the
/// link reached it, and role) with the given password and signs it in: the answer carries a token pair, as
/// `POST /admin/login` does. No bearer token: the invitation token is the
/// credential, and it works once. A token that is unknown, already used,
/// replaced by a resend, revoked or expired gets one and the same 410
/// answer. Rate limited per client IP together with `POST /admin/login`
/// and `POST /admin/refresh` (429 `rate_limited` with `Retry-After`).
#[utoipa::path(
    post,
    path = "/invitations/accept",
    operation_id = "acceptInvitation",
    tag = "invitations",
    request_body = AcceptInvitationRequest,
    responses(
        (status = 201, description = "The admin was created and signed in.", body = AcceptedInvitation, headers(
            ("Location" = String, description = "The admin's URL, `/org/admins/{id}`."),
            ("Cache-Control" = String, description = "`no-store`: the answer carries tokens."),
        )),
        (status = 400, response = BadRequestBody),
        (status = 403, response = OrganizationSuspended),
        (status = 409, response = AcceptInvitationConflict),
        (status = 410, response = InvitationUnusable),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 429, response = RateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn accept(
    state: web::Data<AppState>,
    Origin(origin): Origin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: AcceptInvitationRequest = json_body(&req, payload, state.max_body_bytes).await?;
    let mut errors = FieldErrors::default();
    let token = errors.required("token", body.token.as_ref(), |raw| Ok(raw.to_owned()));
    let password = errors.required("password", body.password.as_ref(), Password::parse);
    let (Some(token), Some(password)) = (token, password) else {
        return Err(errors.into_error());
    };
    let accepted = state
        .app
        .accept_invitation(&origin, &token, password)
        .await?;
    let location = format!("/org/admins/{}", accepted.admin.id);
    Ok(no_store(HttpResponse::Created())
        .insert_header((header::LOCATION, location))
        .json(AcceptedInvitation {
            admin: accepted.admin.into(),
            tokens: accepted.tokens.into(),
        }))
}

/// Checks the query, collecting every offending parameter.
fn parse_query(raw: &ListInvitationsQuery) -> Result<InvitationQuery, ApiError> {
    let mut errors = FieldErrors::default();
    let limit = errors.page_size(raw.limit.as_deref());
    let before = errors.before(raw.before.as_deref());
    match (limit, before) {
        (Some(limit), Some(before)) => Ok(InvitationQuery { limit, before }),
        _ => Err(errors.into_error()),
    }
}

/// Invitation ids are UUIDs; anything else names no invitation.
fn parse_id(raw: &str) -> Result<InvitationId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::App(AppError::InvitationNotFound))
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(create, list, revoke, resend, accept),
    components(schemas(InvitationStatus))
)]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_list>(|route| route.to(list));
    table.operation::<__path_create>(|route| route.to(create));
    table.operation::<__path_revoke>(|route| route.to(revoke));
    table.operation::<__path_resend>(|route| route.to(resend));
    table.operation::<__path_accept>(|route| route.to(accept).wrap(from_fn(limit_per_client_ip)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::id_cursor;
    use serde_json::json;

    fn request(body: Value) -> InviteRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn expires_in_is_one_second_to_thirty_days() {
        let ok = invite_command(request(
            json!({"email": "a@b.example", "expires_in": 2592000}),
        ));
        assert_eq!(
            ok.ok().and_then(|invite| invite.expires_in),
            Some(Duration::from_secs(2_592_000))
        );
        let integral = invite_command(request(
            json!({"email": "a@b.example", "expires_in": 86400.0}),
        ));
        assert_eq!(
            integral.ok().and_then(|invite| invite.expires_in),
            Some(Duration::from_secs(86_400))
        );
        for invalid in [
            json!(0),
            json!(2592001),
            json!(-1),
            json!(1.5),
            json!(0.0),
            json!(1e300),
            json!("60"),
        ] {
            let refused = invite_command(request(
                json!({"email": "a@b.example", "expires_in": invalid}),
            ));
            let Err(ApiError::Validation(errors)) = refused else {
                panic!("accepted expires_in {invalid}");
            };
            assert_eq!(errors[0].field, "expires_in");
        }
        let default = invite_command(request(json!({"email": "a@b.example"}))).ok();
        assert!(default.is_some_and(
            |invite| invite.expires_in.is_none() && invite.role == domain::AdminRole::Admin
        ));
    }

    #[test]
    fn malformed_ids_and_cursors_find_nothing() {
        assert!(matches!(
            parse_id("nope"),
            Err(ApiError::App(AppError::InvitationNotFound))
        ));
        let id = InvitationId::new();
        assert_eq!(id_cursor::<InvitationId>(&id.to_string()), Some(id));
        assert_eq!(
            id_cursor::<InvitationId>(&id.to_string().to_uppercase()),
            None
        );
    }
}
