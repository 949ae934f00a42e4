//! The caller's organization's own documents (its tenant collection):
//! create, list, get, replace, delete.
//!
//! The organization is always the one of the bearer token; no path, query or
//! body field selects another. Decisions, as documented in OpenAPI:
//! - Answers wrap the stored object in an envelope
//!   `{id, revision, created_at, updated_at, data}`; `data` is exactly the
//!   object that was sent.
//! - `ETag` is the revision as a strong entity tag (`"3"`). `GET`, `PUT`
//!   and `DELETE` of a document honour `If-Match` and `If-None-Match`
//!   (RFC 9110 §13, see [`orgsvc_domain::preconditions`]): without them a write is
//!   unconditional; a failed condition is a 412 carrying the current `ETag`
//!   (304 for `If-None-Match` on `GET`). `If-Match: *` only requires the
//!   document to exist, `If-None-Match: *` fails for every document that
//!   exists.
//! - An id that is not a UUID is answered like an unknown id: 404, the same
//!   as another organization's document.

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use orgsvc_app::AppError;
use orgsvc_domain::preconditions::{Decision, Preconditions};
use orgsvc_domain::{
    DocumentBody, DocumentId, DocumentQuery, PageCursor, PageSize, TenantDocument,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use crate::extractors::auth::AuthenticatedAdmin;
use crate::extractors::body::{json_body, query_of, NUMBER_OUT_OF_RANGE};
use crate::problem::responses::{
    BadRequestBody, DocumentNotFound, DocumentTooLarge, EmailUnverified, InternalError,
    InvalidDocument, InvalidListing, OrganizationBusy, PreconditionFailed, Unauthorized,
    UnsupportedMediaType,
};
use crate::problem::{ApiError, FieldError};
use crate::routes::paging::next_page_link;
use crate::routes::RouteTable;
use crate::state::AppState;
use crate::validation::FieldErrors;

/// The path of the collection resource.
const COLLECTION_PATH: &str = "/org/data";

/// The documents' number rule, as `DocumentBody::parse` states it.
const DOCUMENT_NUMBER_RANGE: &str =
    "numbers must be between -2^63 and 2^63-1 (integers fit in 64 bits, signed)";

/// Field names of documents, at every depth: not starting with `$`, without
/// `.` or NUL (what `orgsvc_domain::check_field_name` accepts).
const FIELD_NAME_PATTERN: &str = r"^(?:[^$.\u0000][^.\u0000]*)?$";

/// A document's content (the schema is written by hand: a JSON object whose
/// values are [`DocumentValue`]s, so the rules apply at every depth).
#[derive(Debug, Serialize)]
pub struct DocumentData(Value);

impl PartialSchema for DocumentData {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A document's content: any JSON object whose field names do not start with `$` \
                 and contain no `.` or NUL (at any depth), with numbers from -2^63 to 2^63-1 \
                 (integers fit in 64 bits, signed; JSON does not tell `1e19` from \
                 `10000000000000000000`, so larger numbers are refused however they are \
                 written) and at most 100 levels of nesting of objects and arrays. Stored and \
                 returned unchanged, field order included.",
            ))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(FIELD_NAME_PATTERN)),
            ))
            .additional_properties(Some(Ref::from_schema_name("DocumentValue")))
            .examples([json!({
                "name": "Zoë",
                "status": "active",
                "score": 4.5,
                "tags": ["vip", "beta"],
                "address": {"city": "Zürich", "zip": "8001"}
            })])
            .into()
    }
}

impl ToSchema for DocumentData {}

/// Any value inside a document (the schema is written by hand): objects
/// follow [`DocumentData`]'s rules, arrays hold document values, integers
/// fit in 64 bits (signed); other numbers, strings, booleans and `null` are
/// free.
///
/// One schema without `type`, `anyOf` or `oneOf`: each keyword applies to
/// the values it is about (`propertyNames` and `additionalProperties` to
/// objects, `items` to arrays, `minimum` and `maximum` to numbers), so
/// generated clients see "any JSON value" (a recursive union is more than
/// openapi-python-client can generate) while validators and fuzzers get the
/// rules. Bounding every number bounds exactly the integers: in JSON Schema
/// every number beyond ±2^63 has no fractional part, so it is an integer.
#[derive(Debug)]
pub struct DocumentValue;

impl PartialSchema for DocumentValue {
    fn schema() -> RefOr<Schema> {
        // `items` outside an array schema has no builder method in utoipa 5;
        // extensions are written as given (only their deserialization
        // filters on `x-`). A single one, as their order is a `HashMap`'s.
        let items = Extensions::from_iter([(
            "items",
            json!({"$ref": "#/components/schemas/DocumentValue"}),
        )]);
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some(
                "A value inside a document: an object (same rules as the document), an array \
                 of such values, a number (integers from -2^63 to 2^63-1), a string, a \
                 boolean or `null`.",
            ))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(FIELD_NAME_PATTERN)),
            ))
            .additional_properties(Some(Ref::from_schema_name("DocumentValue")))
            .minimum(Some(i64::MIN))
            .maximum(Some(i64::MAX))
            .extensions(Some(items))
            .into()
    }
}

impl ToSchema for DocumentValue {}

/// A stored document with its metadata.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-8a4b-7c5d-9e6f-2a3b4c5d6e7f",
    "revision": 1,
    "created_at": "2025-01-31T12:00:00.123Z",
    "updated_at": "2025-01-31T12:00:00.123Z",
    "data": {"name": "Zoë", "status": "active", "tags": ["vip", "beta"]}
}))]
pub struct StoredDocument {
    /// Assigned by the service at creation; time-ordered (UUIDv7).
    id: Uuid,
    /// 1 at creation, incremented by every replacement; also the `ETag`.
    #[schema(minimum = 1)]
    revision: u64,
    /// Creation time (millisecond precision).
    created_at: DateTime<Utc>,
    /// Last replacement (equals `created_at` until the first one).
    updated_at: DateTime<Utc>,
    /// The document exactly as sent.
    #[schema(value_type = DocumentData)]
    data: DocumentBody,
}

impl From<TenantDocument> for StoredDocument {
    fn from(document: TenantDocument) -> Self {
        Self {
            id: document.id.as_uuid(),
            revision: document.revision,
            created_at: document.created_at,
            updated_at: document.updated_at,
            data: document.body,
        }
    }
}

/// One page of documents.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "01936f3e-8a4b-7c5d-9e6f-2a3b4c5d6e7f",
        "revision": 2,
        "created_at": "2025-01-31T12:00:00.123Z",
        "updated_at": "2025-02-01T08:30:00.456Z",
        "data": {"name": "Zoë", "status": "active"}
    }],
    "next_cursor": "1738324800123_01936f3e8a4b7c5d9e6f2a3b4c5d6e7f"
}))]
pub struct DocumentList {
    /// The documents, oldest first (by creation time, then id).
    items: Vec<StoredDocument>,
    /// Pass as `after` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Query of `GET /org/data`. Other parameters are refused (422), so that a
/// misspelt filter never silently lists everything.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDocumentsQuery {
    /// Most documents in the page, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, example = 20)]
    limit: Option<String>,
    /// Continue after the previous page: pass `next_cursor` from the
    /// previous page (an opaque string; the pattern only says which strings
    /// can be cursors).
    #[param(
        example = "1738324800123_01936f3e8a4b7c5d9e6f2a3b4c5d6e7f",
        pattern = r"^(?:0|-?[1-9][0-9]{0,14})_[0-9a-f]{32}$",
        max_length = 49
    )]
    after: Option<String>,
    /// Only documents whose top-level fields equal these values: a JSON
    /// object of field names and strings, numbers, booleans or `null` (at most
    /// 10 fields; `null` also matches a missing field; `1` equals `1.0`),
    /// URL-encoded, e.g. `filter=%7B%22status%22%3A%22active%22%7D` for
    /// `{"status":"active"}`.
    // The pattern is the JSON text of such an object, for validators and
    // fuzzers: up to 10 members whose names follow the document field name
    // rules, and whose values are strings, `true`, `false`, `null` or
    // numbers written with at most 18 integer digits and no exponent (a
    // subset of the accepted numbers; JSON whitespace anywhere; no `\u`
    // escapes, which may spell a forbidden character or a lone surrogate).
    #[param(
        example = r#"{"status":"active"}"#,
        pattern = r#"^[ \t\n\r]*\{[ \t\n\r]*(?:"(?:[^"\\\x00-\x1F$.]|\\["\\/bfnrt])(?:[^"\\\x00-\x1F.]|\\["\\/bfnrt])*"[ \t\n\r]*:[ \t\n\r]*(?:"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt])*"|-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,20})?|true|false|null)[ \t\n\r]*(?:,[ \t\n\r]*"(?:[^"\\\x00-\x1F$.]|\\["\\/bfnrt])(?:[^"\\\x00-\x1F.]|\\["\\/bfnrt])*"[ \t\n\r]*:[ \t\n\r]*(?:"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt])*"|-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,20})?|true|false|null)[ \t\n\r]*){0,9})?\}[ \t\n\r]*$"#
    )]
    filter: Option<String>,
}

/// Create a document
///
/// Stores a JSON object in the caller's organization's collection and
/// answers it with its id and revision 1. The object is stored exactly as
/// sent (field order included) and must not be larger than
/// `data.max_document_bytes` (default 256 KiB).
#[utoipa::path(
    post,
    path = "/org/data",
    operation_id = "createDocument",
    tag = "data",
    request_body(
        content = DocumentData,
        description = "The document: any JSON object (see `DocumentData` for the rules on field names).",
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 201, description = "The document was stored.", body = StoredDocument, headers(
            ("Location" = String, description = "The document's URL, `/org/data/{id}`."),
            ("ETag" = String, description = "The revision, `\"1\"`."),
        )),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EmailUnverified),
        (status = 413, response = DocumentTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidDocument),
        (status = 500, response = InternalError),
        (status = 503, response = OrganizationBusy),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.organization_id))]
pub async fn create(
    state: web::Data<AppState>,
    caller: AuthenticatedAdmin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_document(&state, &req, payload).await?;
    let document = state.app.create_document(&caller.0, body).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, document_path(document.id)))
        .insert_header((header::ETAG, etag(document.revision)))
        .json(StoredDocument::from(document)))
}

/// List documents
///
/// Pages through the caller's organization's documents, oldest first (by
/// creation time, then id); the order is stable, and documents created while
/// paging appear after the cursor or not at all, never twice. Follow
/// `next_cursor` (or the `Link: rel="next"` header) until it is `null`.
#[utoipa::path(
    get,
    path = "/org/data",
    operation_id = "listDocuments",
    tag = "data",
    params(ListDocumentsQuery),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "One page of documents.", body = DocumentList, headers(
            ("Link" = String, description = "`</org/data?...&after=...>; rel=\"next\"` when more documents may follow."),
        )),
        (status = 401, response = Unauthorized),
        (status = 403, response = EmailUnverified),
        (status = 422, response = InvalidListing),
        (status = 500, response = InternalError),
        (status = 503, response = OrganizationBusy),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.organization_id))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthenticatedAdmin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Parsed here rather than as an extractor so that a missing token is a
    // 401 before any complaint about the query.
    let raw: ListDocumentsQuery = query_of(&req)?;
    let query = parse_listing(&raw)?;
    let limit = query.limit;
    let page = state.app.documents(&caller.0, query).await?;
    let next_cursor = page.next.map(|cursor| cursor.encode());
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &next_cursor {
        response.insert_header((
            header::LINK,
            next_link(limit, cursor, raw.filter.as_deref()),
        ));
    }
    // Sized up front: a page of stored bodies is written out as it is, and
    // growing the buffer by doubling copied it several times over.
    let capacity = page
        .documents
        .iter()
        .map(|document| usize::try_from(document.body.json_len()).unwrap_or(0) + ITEM_OVERHEAD)
        .sum::<usize>()
        + LIST_OVERHEAD;
    let mut body = Vec::with_capacity(capacity);
    let list = DocumentList {
        items: page.documents.into_iter().map(Into::into).collect(),
        next_cursor,
    };
    serde_json::to_writer(&mut body, &list).map_err(ApiError::unexpected)?;
    Ok(response.content_type(ContentType::json()).body(body))
}

/// Bytes of a listed document's JSON besides its body (id, revision,
/// timestamps, field names): about 140.
const ITEM_OVERHEAD: usize = 160;

/// Bytes of a listing's JSON besides its items.
const LIST_OVERHEAD: usize = 128;

/// Get a document
///
/// Returns one of the caller's organization's documents. With
/// `If-None-Match` naming its current `ETag` (or `*`), answers 304 without a
/// body; with `If-Match` not naming it, 412.
#[utoipa::path(
    get,
    path = "/org/data/{id}",
    operation_id = "getDocument",
    tag = "data",
    params(
        ("id" = Uuid, Path, description = "The document's id. Anything else (not a UUID, another organization's id) is a 404."),
        ("If-Match" = Option<String>, Header, nullable = false, description = "Answer only if the document's current `ETag` is one of these (strong comparison: weak tags never match; `*`: any revision), else 412. Evaluated before `If-None-Match`.", example = "\"1\""),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "ETags the client already has; 304 when the current one is among them (weak comparison) or for `*`.", example = "\"1\""),
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The document.", body = StoredDocument, headers(
            ("ETag" = String, description = "The revision, e.g. `\"2\"`; send it as `If-Match` to replace or delete only this revision."),
        )),
        (status = 304, description = "The document still has the revision named by `If-None-Match`.", headers(
            ("ETag" = String, description = "The current revision."),
        )),
        (status = 401, response = Unauthorized),
        (status = 403, response = EmailUnverified),
        (status = 404, response = DocumentNotFound),
        (status = 412, response = PreconditionFailed),
        (status = 500, response = InternalError),
        (status = 503, response = OrganizationBusy),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.organization_id))]
pub async fn get(
    state: web::Data<AppState>,
    caller: AuthenticatedAdmin,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let document = state.app.document(&caller.0, id).await?;
    match preconditions(&req).evaluate(document.revision, true) {
        Decision::Proceed => Ok(HttpResponse::Ok()
            .insert_header((header::ETAG, etag(document.revision)))
            .json(StoredDocument::from(document))),
        Decision::NotModified => Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag(document.revision)))
            .finish()),
        Decision::Failed => Err(ApiError::App(AppError::PreconditionFailed {
            current: document.revision,
        })),
    }
}

/// Replace a document
///
/// Replaces the whole content of one of the caller's organization's
/// documents and increments its revision. Without `If-Match` and
/// `If-None-Match` the replacement is unconditional; with `If-Match`, only
/// a named revision is replaced; with `If-None-Match`, only a revision not
/// named (`*`: none, as the document exists); else 412, with the current
/// `ETag`, and nothing changes. Documents are created by `POST /org/data`
/// only: an unknown id is a 404.
#[utoipa::path(
    put,
    path = "/org/data/{id}",
    operation_id = "replaceDocument",
    tag = "data",
    params(
        ("id" = Uuid, Path, description = "The document's id. Anything else (not a UUID, another organization's id) is a 404."),
        ("If-Match" = Option<String>, Header, nullable = false, description = "Replace only if the document's current `ETag` is one of these (strong comparison: weak tags never match; `*`: any revision), else 412. Evaluated before `If-None-Match`.", example = "\"1\""),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "Replace only if the document's current `ETag` is none of these (weak comparison), else 412; `*` is always 412, as the document exists.", example = "\"1\""),
    ),
    request_body(
        content = DocumentData,
        description = "The new content: any JSON object (same rules as for creation).",
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The document with its new content and revision.", body = StoredDocument, headers(
            ("ETag" = String, description = "The new revision."),
        )),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EmailUnverified),
        (status = 404, response = DocumentNotFound),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = DocumentTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidDocument),
        (status = 500, response = InternalError),
        (status = 503, response = OrganizationBusy),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.organization_id))]
pub async fn replace(
    state: web::Data<AppState>,
    caller: AuthenticatedAdmin,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let body = read_document(&state, &req, payload).await?;
    let document = state
        .app
        .replace_document(&caller.0, id, body, &preconditions(&req))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(document.revision)))
        .json(StoredDocument::from(document)))
}

/// Delete a document
///
/// Deletes one of the caller's organization's documents. Without `If-Match`
/// and `If-None-Match` the deletion is unconditional; with them, only a
/// revision that `If-Match` names and `If-None-Match` does not (`*`: none)
/// is deleted; else 412, with the current `ETag`, and nothing changes.
#[utoipa::path(
    delete,
    path = "/org/data/{id}",
    operation_id = "deleteDocument",
    tag = "data",
    params(
        ("id" = Uuid, Path, description = "The document's id. Anything else (not a UUID, another organization's id) is a 404."),
        ("If-Match" = Option<String>, Header, nullable = false, description = "Delete only if the document's current `ETag` is one of these (strong comparison: weak tags never match; `*`: any revision), else 412. Evaluated before `If-None-Match`.", example = "\"2\""),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "Delete only if the document's current `ETag` is none of these (weak comparison), else 412; `*` is always 412, as the document exists.", example = "\"2\""),
    ),
    security(("bearer_auth" = [])),
    responses(
        (status = 204, description = "The document was deleted."),
        (status = 401, response = Unauthorized),
        (status = 403, response = EmailUnverified),
        (status = 404, response = DocumentNotFound),
        (status = 412, response = PreconditionFailed),
        (status = 500, response = InternalError),
        (status = 503, response = OrganizationBusy),
    )
)]
#[tracing::instrument(skip_all, fields(organization_id = %caller.0.organization_id))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: AuthenticatedAdmin,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    state
        .app
        .delete_document(&caller.0, id, &preconditions(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reads and checks a document body against `data.max_document_bytes` and
/// the document rules.
async fn read_document(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<DocumentBody, ApiError> {
    let value = match json_body::<Value>(req, payload, state.max_document_bytes).await {
        Ok(value) => value,
        // serde_json stops at 128 levels, beyond the documents' limit of 100.
        Err(ApiError::MalformedJson { reason, .. })
            if reason.starts_with("recursion limit exceeded") =>
        {
            return Err(ApiError::Validation(vec![FieldError::new(
                "",
                "documents may nest objects and arrays at most 100 levels deep",
            )]))
        }
        // A number beyond a double is beyond the documents' range too.
        Err(ApiError::Validation(mut errors))
            if errors
                .iter()
                .any(|error| error.message == NUMBER_OUT_OF_RANGE) =>
        {
            for error in &mut errors {
                if error.message == NUMBER_OUT_OF_RANGE {
                    error.message = DOCUMENT_NUMBER_RANGE.into();
                }
            }
            return Err(ApiError::Validation(errors));
        }
        Err(error) => return Err(error),
    };
    DocumentBody::parse(value).map_err(|invalid| {
        ApiError::Validation(vec![FieldError::new(invalid.path, invalid.reason)])
    })
}

/// Checks a listing's query, collecting every offending parameter.
fn parse_listing(raw: &ListDocumentsQuery) -> Result<DocumentQuery, ApiError> {
    let mut errors = FieldErrors::default();
    let limit = errors.page_size(raw.limit.as_deref());
    let after = match raw.after.as_deref() {
        None => Some(None),
        Some(text) => PageCursor::parse(text)
            .map(Some)
            .map_err(|error| errors.push("after", error.to_string()))
            .ok(),
    };
    let filters = match raw.filter.as_deref() {
        None => Some(Vec::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => DocumentQuery::parse_filters(value)
                .map_err(|invalid| {
                    errors.push(&format!("filter{}", invalid.path), invalid.reason);
                })
                .ok(),
            Err(_) => {
                errors.push(
                    "filter",
                    "must be a JSON object of field names and values, e.g. {\"status\":\"active\"}",
                );
                None
            }
        },
    };
    match (limit, after, filters) {
        (Some(limit), Some(after), Some(filters)) => Ok(DocumentQuery {
            limit,
            after,
            filters,
        }),
        _ => Err(errors.into_error()),
    }
}

/// Document ids are UUIDs; anything else names no document.
fn parse_id(raw: &str) -> Result<DocumentId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::App(AppError::DocumentNotFound))
}

fn document_path(id: DocumentId) -> String {
    format!("{COLLECTION_PATH}/{id}")
}

/// A revision as a strong entity tag.
fn etag(revision: u64) -> String {
    format!("\"{revision}\"")
}

/// `Link` to the next page, repeating the limit and the filter.
fn next_link(limit: PageSize, cursor: &str, filter: Option<&str>) -> String {
    let limit = limit.get().to_string();
    next_page_link(
        COLLECTION_PATH,
        [
            ("limit", Some(limit.as_str())),
            ("after", Some(cursor)),
            ("filter", filter),
        ],
    )
}

/// The request's `If-Match` and `If-None-Match` (every field line of each).
fn preconditions(req: &HttpRequest) -> Preconditions {
    let lines = |name| req.headers().get_all(name).map(|value| value.to_str().ok());
    Preconditions::from_field_lines(lines(header::IF_MATCH), lines(header::IF_NONE_MATCH))
}

/// This module's operations in the OpenAPI document, in its order.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(create, list, get, replace, delete),
    components(schemas(DocumentData, DocumentValue))
)]
pub struct Operations;

/// Serves this module's operations, each at the path and method its
/// OpenAPI operation names (see [`RouteTable`]).
pub fn routes(table: &mut RouteTable) {
    table.operation::<__path_list>(|route| route.to(list));
    table.operation::<__path_create>(|route| route.to(create));
    table.operation::<__path_get>(|route| route.to(get));
    table.operation::<__path_replace>(|route| route.to(replace));
    table.operation::<__path_delete>(|route| route.to(delete));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_queries_report_every_invalid_parameter() {
        let raw = ListDocumentsQuery {
            limit: Some("0".into()),
            after: Some("nope".into()),
            filter: Some(r#"{"$where": 1}"#.into()),
        };
        let Err(ApiError::Validation(errors)) = parse_listing(&raw) else {
            panic!("not a validation error");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "after", "filter/$where"]);
    }

    #[test]
    fn every_cursor_the_documented_pattern_allows_parses() {
        // The extremes of `^(?:0|-?[1-9][0-9]{0,14})_[0-9a-f]{32}$`.
        for millis in ["0", "1", "-1", "999999999999999", "-999999999999999"] {
            for id in ["0".repeat(32), "f".repeat(32), "0123456789abcdef".repeat(2)] {
                let raw = format!("{millis}_{id}");
                assert!(raw.len() <= 49, "{raw}");
                let cursor = PageCursor::parse(&raw).expect(&raw);
                assert_eq!(cursor.encode(), raw);
            }
        }
    }

    #[test]
    fn next_links_repeat_limit_and_filter() {
        assert_eq!(
            next_link(PageSize::default(), "1_ab", Some(r#"{"a":"b c"}"#)),
            "</org/data?limit=20&after=1_ab&filter=%7B%22a%22%3A%22b%20c%22%7D>; rel=\"next\""
        );
    }
}
