//! Operator API keys over HTTP (issue #17): create, list, revoke. The use
//! cases are [`orgsvc_app::operators`].
//!
//! Decisions, as documented in OpenAPI:
//! - Every operation needs an operator key (`Authorization: Bearer
//!   osk_...`, security scheme `operator_key`) of scope `write`; a `read`
//!   key gets 403 `operator_scope_insufficient`, an admin's access token
//!   401 `invalid_operator_key`.
//! - The key text is answered once, by the creation (with `Cache-Control:
//!   no-store`); listings never show it or its hash.
//! - Revoking is idempotent for a known name (204; the first revocation's
//!   time stays) and 404 `operator_key_not_found` for an unknown one; a
//!   revoked key's name stays taken. A key may revoke itself.
//! - The first key comes from the command line (`orgsvc operator-keys
//!   create`): see the README's "Operator setup".

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use orgsvc_app::operators::MAX_OPERATOR_KEY_TTL;
use orgsvc_app::AppError;
use orgsvc_domain::{OperatorKey, OperatorKeyName, OperatorScope, ValueError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extractors::body::json_body;
use crate::extractors::operator::OperatorWriter;
use crate::problem::responses::{
    BadRequestBody, InternalError, OperatorKeyNameTaken, OperatorKeyNotFound, OperatorRateLimited,
    OperatorScopeInsufficient, OperatorUnauthorized, PayloadTooLarge, UnsupportedMediaType,
    ValidationFailed,
};
use crate::problem::ApiError;
use crate::routes::sessions::no_store;
use crate::routes::RouteTable;
use crate::state::AppState;
use crate::validation::FieldErrors;

/// The collection resource.
const COLLECTION_PATH: &str = "/operator/keys";

/// The error of a `scope` that is not one of the scopes.
const INVALID_SCOPE: ValueError = ValueError::Format("must be \"read\" or \"write\"");

/// The error of an `expires_in` out of range.
const INVALID_EXPIRES_IN: &str = "must be a whole number of seconds from 1 to 316224000 (10 years)";

/// What an operator key may do: `read` only the operator API's reads,
/// `write` everything, key management included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(example = "write")]
pub enum OperatorKeyScope {
    /// Read-only operations.
    Read,
    /// Every operation, key management included.
    Write,
}

impl From<OperatorScope> for OperatorKeyScope {
    fn from(scope: OperatorScope) -> Self {
        match scope {
            OperatorScope::Read => Self::Read,
            OperatorScope::Write => Self::Write,
        }
    }
}

/// An operator key, without its text or hash.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-8a4b-7c5d-9e6f-4a5b6c7d8e9f",
    "name": "deploy-bot",
    "scope": "write",
    "created_at": "2025-02-01T08:30:00.456Z",
    "expires_at": "2025-05-02T08:30:00.456Z",
    "last_used_at": "2025-02-03T10:00:12.000Z",
    "revoked_at": null
}))]
pub struct OperatorKeyView {
    /// Immutable id.
    id: Uuid,
    /// Unique name (revoked keys' names stay taken): what the audit log
    /// records as the operator who acted.
    name: String,
    /// What the key may do.
    scope: OperatorKeyScope,
    /// Creation time.
    created_at: DateTime<Utc>,
    /// When the key stops working; `null`: never.
    expires_at: Option<DateTime<Utc>>,
    /// When the key was last used, to the minute (it is written at most
    /// once a minute); `null`: never used.
    last_used_at: Option<DateTime<Utc>>,
    /// When the key was revoked; `null`: not revoked.
    revoked_at: Option<DateTime<Utc>>,
}

impl From<OperatorKey> for OperatorKeyView {
    fn from(key: OperatorKey) -> Self {
        Self {
            id: key.id.as_uuid(),
            name: key.name.as_str().to_owned(),
            scope: key.scope.into(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A key just created, with its text: shown this once, stored nowhere.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "key": "osk_q0Rk9wVj3m8Xo1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p",
    "id": "01936f3e-8a4b-7c5d-9e6f-4a5b6c7d8e9f",
    "name": "deploy-bot",
    "scope": "write",
    "created_at": "2025-02-01T08:30:00.456Z",
    "expires_at": null,
    "last_used_at": null,
    "revoked_at": null
}))]
pub struct CreatedOperatorKeyView {
    /// The key: `osk_` and 43 URL-safe base64 characters (256 random
    /// bits). Send it as `Authorization: Bearer <key>`. It is shown only
    /// in this answer; the service keeps only its SHA-256.
    key: String,
    /// Immutable id.
    id: Uuid,
    /// Unique name.
    name: String,
    /// What the key may do.
    scope: OperatorKeyScope,
    /// Creation time.
    created_at: DateTime<Utc>,
    /// When the key stops working; `null`: never.
    expires_at: Option<DateTime<Utc>>,
    /// `null`: the key has not been used yet.
    last_used_at: Option<DateTime<Utc>>,
    /// `null`: the key is not revoked.
    revoked_at: Option<DateTime<Utc>>,
}

impl CreatedOperatorKeyView {
    fn new(secret: &str, key: OperatorKey) -> Self {
        Self {
            key: secret.to_owned(),
            id: key.id.as_uuid(),
            name: key.name.as_str().to_owned(),
            scope: key.scope.into(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// Every operator key.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorKeyList {
    /// Every key, revoked and expired ones included, oldest first.
    keys: Vec<OperatorKeyView>,
}

/// Body of `POST /operator/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "deploy-bot", "scope": "write", "expires_in": 7776000}))]
pub struct CreateOperatorKeyRequest {
    /// Unique name: 2 to 64 lowercase letters, digits and hyphens, starting
    /// and ending with a letter or digit, no two hyphens in a row.
    #[schema(value_type = String, required = true, min_length = 2, max_length = 64, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    name: Option<Value>,
    /// What the key may do; absent or `null`: `read` (least privilege).
    #[schema(value_type = Option<OperatorKeyScope>, required = false)]
    scope: Option<Value>,
    /// Seconds until the key stops working, 1 to 316224000 (10 years);
    /// absent or `null`: never.
    #[schema(value_type = Option<u64>, required = false, minimum = 1, maximum = 316_224_000)]
    expires_in: Option<Value>,
}

/// What a `POST /operator/keys` body asks for.
struct CreateCommand {
    name: OperatorKeyName,
    scope: OperatorScope,
    expires_in: Option<Duration>,
}

fn parse_scope(raw: &str) -> Result<OperatorScope, ValueError> {
    OperatorScope::parse(raw).ok_or(INVALID_SCOPE)
}

/// The body as a command; every offending field is reported.
fn create_command(request: CreateOperatorKeyRequest) -> Result<CreateCommand, ApiError> {
    let mut errors = FieldErrors::default();
    let name = errors.required("name", request.name.as_ref(), OperatorKeyName::parse);
    let scope = errors.optional("scope", request.scope.as_ref(), parse_scope);
    let expires_in = match request.expires_in.as_ref() {
        None | Some(Value::Null) => Some(None),
        Some(value) => match value.as_u64().map(Duration::from_secs) {
            Some(ttl) if !ttl.is_zero() && ttl <= MAX_OPERATOR_KEY_TTL => Some(Some(ttl)),
            _ => {
                errors.push("expires_in", INVALID_EXPIRES_IN);
                None
            }
        },
    };
    match (name, scope, expires_in) {
        (Some(name), Some(scope), Some(expires_in)) => Ok(CreateCommand {
            name,
            scope: scope.unwrap_or(OperatorScope::Read),
            expires_in,
        }),
        _ => Err(errors.into_error()),
    }
}

/// Create an operator key
///
/// Creates an operator key and answers its text, this once (the service
/// keeps only its SHA-256). The creation is logged with the creating key's
/// name. Needs a `write` key.
#[utoipa::path(
    post,
    path = "/operator/keys",
    operation_id = "createOperatorKey",
    tag = "operator",
    request_body = CreateOperatorKeyRequest,
    security(("operator_key" = [])),
    responses(
        (status = 201, description = "The key was created; `key` is its text, shown only here (sent with `Cache-Control: no-store`).", body = CreatedOperatorKeyView, headers(
            ("Location" = String, description = "The key's URL, `/operator/keys/{name}` (its `DELETE` revokes it)."),
        )),
        (status = 400, response = BadRequestBody),
        (status = 401, response = OperatorUnauthorized),
        (status = 403, response = OperatorScopeInsufficient),
        (status = 409, response = OperatorKeyNameTaken),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = ValidationFailed),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(operator = %caller.0.name))]
pub async fn create(
    state: web::Data<AppState>,
    caller: OperatorWriter,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: CreateOperatorKeyRequest = json_body(&req, payload, state.max_body_bytes).await?;
    let command = create_command(body)?;
    let created = state
        .app
        .create_operator_key(&caller.0, command.name, command.scope, command.expires_in)
        .await?;
    Ok(no_store(HttpResponse::Created())
        .insert_header((
            header::LOCATION,
            format!("{COLLECTION_PATH}/{}", created.key.name),
        ))
        .json(CreatedOperatorKeyView::new(
            created.secret.expose(),
            created.key,
        )))
}

/// List operator keys
///
/// Lists every operator key, revoked and expired ones included, oldest
/// first: names, scopes, expiry, last use and revocation, never a key's
/// text or hash. Needs a `write` key (key management is write-scoped).
#[utoipa::path(
    get,
    path = "/operator/keys",
    operation_id = "listOperatorKeys",
    tag = "operator",
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "Every operator key.", body = OperatorKeyList),
        (status = 401, response = OperatorUnauthorized),
        (status = 403, response = OperatorScopeInsufficient),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(operator = %caller.0.name))]
pub async fn list(
    state: web::Data<AppState>,
    caller: OperatorWriter,
) -> Result<HttpResponse, ApiError> {
    let keys = state.app.operator_keys(&caller.0).await?;
    Ok(HttpResponse::Ok().json(OperatorKeyList {
        keys: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke an operator key
///
/// Revokes the key with this name: every instance refuses it from the
/// next request on (401 `invalid_operator_key`). Revoking a revoked key
/// changes nothing. The key stays listed, and its name taken. Needs a
/// `write` key; a key may revoke itself.
#[utoipa::path(
    delete,
    path = "/operator/keys/{name}",
    operation_id = "revokeOperatorKey",
    tag = "operator",
    params(
        ("name" = String, Path, description = "The key's name."),
    ),
    security(("operator_key" = [])),
    responses(
        (status = 204, description = "The key is revoked."),
        (status = 401, response = OperatorUnauthorized),
        (status = 403, response = OperatorScopeInsufficient),
        (status = 404, response = OperatorKeyNotFound),
        (status = 429, response = OperatorRateLimited),
        (status = 500, response = InternalError),
    )
)]
#[tracing::instrument(skip_all, fields(operator = %caller.0.name))]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: OperatorWriter,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // A name that is not a valid name names no key.
    let name =
        OperatorKeyName::parse(&path).map_err(|_| ApiError::App(AppError::OperatorKeyNotFound))?;
    state.app.revoke_operator_key(&caller.0, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(create, list, revoke), components(schemas(OperatorKeyScope)))]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_list>(|route| route.to(list));
    table.operation::<__path_create>(|route| route.to(create));
    table.operation::<__path_revoke>(|route| route.to(revoke));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(body: Value) -> CreateOperatorKeyRequest {
        serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_scope_defaults_to_read_and_expiry_to_never() {
        let Ok(command) = create_command(request(json!({"name": "ci"}))) else {
            panic!("refused a valid body");
        };
        assert_eq!(command.scope, OperatorScope::Read);
        assert_eq!(command.expires_in, None);
    }

    #[test]
    fn every_offending_field_is_listed() {
        let Err(ApiError::Validation(errors)) = create_command(request(
            json!({"name": "Not A Slug", "scope": "admin", "expires_in": 0}),
        )) else {
            panic!("accepted an invalid body");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "scope", "expires_in"]);
        for expires_in in [json!(-1), json!(1.5), json!("60"), json!(316_224_001)] {
            let result = create_command(request(json!({"name": "ci", "expires_in": expires_in})));
            assert!(result.is_err(), "{expires_in}");
        }
        let max = create_command(request(json!({"name": "ci", "expires_in": 316_224_000})));
        assert!(max.is_ok());
    }
}
