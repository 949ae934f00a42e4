//! Every error the API answers with, as an RFC 9457 `application/problem+json`
//! document with a stable machine-readable `code`.

use std::borrow::Cow;
use std::error::Error as StdError;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use orgsvc_app::AppError;
pub use orgsvc_domain::ErrorChain;
use orgsvc_domain::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

pub mod responses;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// `WWW-Authenticate` value when no bearer token was presented.
pub const WWW_AUTHENTICATE_MISSING: &str = r#"Bearer realm="orgsvc""#;
/// `WWW-Authenticate` value when the bearer token was refused.
pub const WWW_AUTHENTICATE_INVALID: &str = r#"Bearer realm="orgsvc", error="invalid_token""#;
/// `WWW-Authenticate` value of the operator API when no key was presented.
pub const WWW_AUTHENTICATE_OPERATOR_MISSING: &str = r#"Bearer realm="orgsvc-operator""#;
/// `WWW-Authenticate` value when an operator key was refused (RFC 6750
/// §3.1 `invalid_token`), in the operator API's own realm.
pub const WWW_AUTHENTICATE_OPERATOR_INVALID: &str =
    r#"Bearer realm="orgsvc-operator", error="invalid_token""#;
/// `WWW-Authenticate` value when an operator key's scope does not cover
/// the request (RFC 6750 §3.1 `insufficient_scope`).
pub const WWW_AUTHENTICATE_OPERATOR_SCOPE: &str =
    r#"Bearer realm="orgsvc-operator", error="insufficient_scope", scope="write""#;

/// One offending field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"field": "email", "message": "must be an address like name@example.com"}))]
pub struct FieldError {
    /// The field's name in the request; for what is found while parsing a
    /// body (a duplicated key, a number out of range, a syntax error, a body
    /// that is not an object) and inside tenant documents, a JSON Pointer
    /// (RFC 6901) to the place, e.g. `/admin/email` (`""`: the whole body).
    pub field: String,
    /// What is wrong with it; never repeats the value.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `duration` in whole seconds, rounded up, at least 1: a `Retry-After`
/// value (RFC 9110 §10.2.3) that never invites a retry too early.
pub fn whole_seconds_up(duration: std::time::Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:orgsvc:problem:organization_not_found",
    "title": "Organization not found",
    "status": 404,
    "detail": "No organization has this name or id.",
    "code": "organization_not_found"
}))]
pub struct Problem {
    /// URI identifying the problem type: `urn:orgsvc:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence, for humans.
    pub detail: String,
    /// Stable machine-readable error code.
    pub code: String,
    /// Every offending field (validation errors; a malformed JSON body's
    /// place when it is inside a member or element).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more request fields are missing or invalid.
    #[error("request validation failed")]
    Validation(Vec<FieldError>),
    /// The body is not syntactically valid JSON.
    #[error("malformed JSON body")]
    MalformedJson {
        /// What the parser found, with line and column.
        reason: String,
        /// Where, as a JSON Pointer, when the error is inside a member or
        /// element (listed in `errors`).
        pointer: Option<String>,
    },
    /// The request line or a header field is malformed (answered by the
    /// HTTP layer, see [`crate::transport`]).
    #[error("malformed request")]
    MalformedRequest,
    /// The request head or body did not arrive in time
    /// (`server.header_read_timeout_secs`, `server.body_read_timeout_secs`);
    /// the connection is closed.
    #[error("request timeout")]
    RequestTimeout,
    /// The request head is larger than the HTTP layer accepts.
    #[error("request header fields too large")]
    HeaderFieldsTooLarge,
    /// The client IP holds `server.max_connections_per_ip` connections
    /// already; the new one is closed.
    #[error("too many connections")]
    TooManyConnections {
        /// The limit.
        limit: usize,
    },
    /// The request body could not be read.
    #[error("unreadable request body")]
    UnreadableBody,
    /// The body is larger than `server.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is not `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The body is sent with a content coding other than `identity`
    /// (RFC 9110 §8.4.1: the server decodes none).
    #[error("unsupported content coding")]
    UnsupportedContentEncoding,
    /// No bearer token was presented.
    #[error("missing bearer token")]
    MissingToken,
    /// No bearer token was presented to an operator route.
    #[error("missing operator key")]
    MissingOperatorKey,
    /// No route has this path.
    #[error("route not found")]
    RouteNotFound,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods the route accepts, comma-separated (the `Allow` header).
        allowed: String,
    },
    /// The service is shutting down (readiness).
    #[error("shutting down")]
    ShuttingDown,
    /// `If-Match` or `If-None-Match` does not hold for the document's
    /// A CORS preflight from an origin, or for a method or header, that
    /// `cors.allowed_origins` does not allow (the reason as `actix-cors`
    /// gives it).
    #[error("cross-origin request refused: {0}")]
    CorsRefused(String),
    /// The client IP made too many credential calls (login, refresh,
    /// accepting an invitation).
    #[error("rate limited")]
    RateLimited {
        /// Whole seconds until a call is allowed again (the `Retry-After` header).
        retry_after_secs: u64,
    },
    /// The operator key made too many requests
    /// (`security.operator_rate_per_minute`, `security.operator_rate_burst`).
    #[error("operator rate limited")]
    OperatorRateLimited {
        /// Whole seconds until a request is allowed again (the
        /// `Retry-After` header).
        retry_after_secs: u64,
    },
    /// A use case's failure ([`AppError`]): its rows of the table are
    /// [`app_problem_type`].
    #[error(transparent)]
    App(#[from] AppError),
    /// Anything unexpected; logged in full, answered with a generic 500.
    #[error("unexpected error")]
    Unexpected(#[source] Box<dyn StdError + Send + Sync>),
}

impl ApiError {
    /// Wraps an unexpected failure.
    pub fn unexpected(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Unexpected(error.into())
    }

    /// The one table of problem types: each variant's stable `code`, HTTP
    /// status, `title` and `detail` (Meilisearch keeps its error codes the
    /// same way). Codes never change: clients match on them.
    fn problem_type(&self) -> (&'static str, StatusCode, &'static str, Cow<'static, str>) {
        use StatusCode as S;
        match self {
            Self::App(error) => app_problem_type(error),
            Self::Validation(errors) => (
                "validation_failed",
                S::UNPROCESSABLE_ENTITY,
                "Invalid request",
                Cow::from(format!(
                "{} field(s) of the request are missing or invalid; see `errors`.",
                errors.len()
            )),
            ),
            Self::MalformedJson { reason, pointer } => (
                "malformed_json",
                S::BAD_REQUEST,
                "Malformed JSON",
                Cow::from(match pointer {
                Some(pointer) if !pointer.is_empty() => format!(
                    "The request body is not valid JSON: {reason} (in `{pointer}`; see `errors`)."
                ),
                _ => format!("The request body is not valid JSON: {reason}."),
            }),
            ),
            Self::MalformedRequest => (
                "malformed_request",
                S::BAD_REQUEST,
                "Malformed request",
                Cow::from("The request line or a header field is not valid HTTP/1.1; the connection is closed."),
            ),
            Self::RequestTimeout => (
                "request_timeout",
                S::REQUEST_TIMEOUT,
                "Request timeout",
                Cow::from("The request's header fields or body did not arrive in time; the connection is closed."),
            ),
            Self::HeaderFieldsTooLarge => (
                "header_fields_too_large",
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request header fields too large",
                Cow::from("The request's header fields are too large (at most 96 fields and 128 KiB); the connection is closed."),
            ),
            Self::TooManyConnections { limit } => (
                "too_many_connections",
                S::TOO_MANY_REQUESTS,
                "Too many connections",
                Cow::from(format!(
                "Your address holds {limit} connections already (server.max_connections_per_ip); close some or reuse them (keep-alive). This connection is closed."
            )),
            ),
            Self::UnreadableBody => (
                "unreadable_body",
                S::BAD_REQUEST,
                "Unreadable request body",
                Cow::from("The request body could not be read completely."),
            ),
            Self::PayloadTooLarge { limit } => (
                "payload_too_large",
                S::PAYLOAD_TOO_LARGE,
                "Payload too large",
                Cow::from({
                format!("The request body is larger than the limit of {limit} bytes.")
            }),
            ),
            Self::UnsupportedMediaType => (
                "unsupported_media_type",
                S::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                Cow::from("The request body must be JSON sent as `Content-Type: application/json` (or \
                 `application/<subtype>+json`), with or without a `charset` parameter."),
            ),
            Self::UnsupportedContentEncoding => (
                "unsupported_content_encoding",
                S::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported content coding",
                Cow::from("The request body must be sent without a `Content-Encoding` (or as `identity`): \
                 the service decodes no content coding."),
            ),
            Self::MissingOperatorKey => (
                "missing_operator_key",
                S::UNAUTHORIZED,
                "Operator key required",
                Cow::from("This operation requires `Authorization: Bearer osk_...` with an operator key."),
            ),
            Self::OperatorRateLimited { retry_after_secs } => (
                "operator_rate_limited",
                S::TOO_MANY_REQUESTS,
                "Too many requests",
                Cow::from(format!(
                "Too many requests with this operator key (security.operator_rate_per_minute); retry in {retry_after_secs} second(s)."
            )),
            ),
            Self::MissingToken => (
                "missing_token",
                S::UNAUTHORIZED,
                "Authentication required",
                Cow::from("This operation requires `Authorization: Bearer <access token>`."),
            ),
            Self::RouteNotFound => (
                "not_found",
                S::NOT_FOUND,
                "Not found",
                Cow::from("No resource exists at this path."),
            ),
            Self::MethodNotAllowed { allowed } => (
                "method_not_allowed",
                S::METHOD_NOT_ALLOWED,
                "Method not allowed",
                Cow::from({
                format!("This resource accepts only: {allowed}.")
            }),
            ),
            Self::ShuttingDown => (
                "shutting_down",
                S::SERVICE_UNAVAILABLE,
                "Shutting down",
                Cow::from("This instance is shutting down and takes no new work; use another instance."),
            ),
            Self::CorsRefused(reason) => (
                "cors_refused",
                S::FORBIDDEN,
                "Cross-origin request refused",
                Cow::from(format!(
                "{reason}: this origin, method or header is not allowed for cross-origin calls (cors.allowed_origins)."
            )),
            ),
            Self::RateLimited { retry_after_secs } => (
                "rate_limited",
                S::TOO_MANY_REQUESTS,
                "Too many requests",
                Cow::from(format!(
                "Too many login, refresh or invitation-accept calls from your address; retry in {retry_after_secs} second(s)."
            )),
            ),
            Self::Unexpected(_) => (
                "internal_error",
                S::INTERNAL_SERVER_ERROR,
                "Internal server error",
                Cow::from("An unexpected error occurred."),
            ),
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.problem_type().0
    }

    /// The problem document answered for this error.
    pub fn problem(&self) -> Problem {
        let (code, status, title, detail) = self.problem_type();
        Problem {
            problem_type: format!("urn:orgsvc:problem:{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into_owned(),
            code: code.into(),
            errors: match self {
                Self::Validation(errors) => errors.clone(),
                Self::MalformedJson {
                    reason,
                    pointer: Some(pointer),
                } if !pointer.is_empty() => vec![FieldError::new(pointer.clone(), reason.clone())],
                _ => Vec::new(),
            },
        }
    }
}

/// The rows of [`ApiError::problem_type`]'s table for the use cases'
/// errors: code, status, title and detail of each [`AppError`]. A reused
/// refresh token answers like any invalid one; an unexpected failure is a
/// 500 that shows nothing of it.
fn app_problem_type(
    error: &AppError,
) -> (&'static str, StatusCode, &'static str, Cow<'static, str>) {
    use StatusCode as S;
    match error {
        AppError::InvalidCredentials => (
            "invalid_credentials",
            S::UNAUTHORIZED,
            "Invalid credentials",
            Cow::from("The email or the password is wrong."),
        ),
        AppError::LoginLocked { retry_after } => (
            "login_locked",
            S::TOO_MANY_REQUESTS,
            "Login locked",
            Cow::from(format!(
            "Too many failed logins for this email; it is locked for {} more second(s).",
            whole_seconds_up(*retry_after)
        )),
        ),
        AppError::InvalidRefreshToken | AppError::RefreshTokenReused => (
            "invalid_refresh_token",
            S::UNAUTHORIZED,
            "Invalid refresh token",
            Cow::from("The refresh token is invalid, expired, already used or revoked; log in again."),
        ),
        AppError::InvalidToken => (
            "invalid_token",
            S::UNAUTHORIZED,
            "Invalid token",
            Cow::from("The access token is invalid or no longer valid; log in again."),
        ),
        AppError::TokenExpired => (
            "token_expired",
            S::UNAUTHORIZED,
            "Token expired",
            Cow::from("The access token has expired; log in again."),
        ),
        AppError::OwnerRequired => (
            "owner_required",
            S::FORBIDDEN,
            "Owner role required",
            Cow::from("Only an owner of the organization may do this; your role is `admin`."),
        ),
        AppError::Forbidden => (
            "forbidden",
            S::FORBIDDEN,
            "Forbidden",
            Cow::from("You may only act on your own organization."),
        ),
        AppError::OrganizationNotFound => (
            "organization_not_found",
            S::NOT_FOUND,
            "Organization not found",
            Cow::from("No organization has this name or id."),
        ),
        AppError::OrganizationNameTaken => (
            "organization_name_taken",
            S::CONFLICT,
            "Organization name taken",
            Cow::from("An organization with this name (ignoring case, spaces, hyphens and underscores) already exists."),
        ),
        AppError::EmailTaken => (
            "email_taken",
            S::CONFLICT,
            "Email taken",
            Cow::from("An admin with this email already exists."),
        ),
        AppError::OperationInProgress => (
            "operation_in_progress",
            S::CONFLICT,
            "Operation in progress",
            Cow::from("Another change to this organization is in progress; retry shortly."),
        ),
        AppError::OrganizationBusy => (
            "organization_busy",
            S::SERVICE_UNAVAILABLE,
            "Organization busy",
            Cow::from("An operation on the organization is in progress (a rename or a move between layouts moving its data, or an interrupted operation being finished); nothing was done, retry shortly."),
        ),
        AppError::AdminNotFound => (
            "admin_not_found",
            S::NOT_FOUND,
            "Admin not found",
            Cow::from("Your organization has no admin with this id."),
        ),
        AppError::LastOwner => (
            "last_owner",
            S::CONFLICT,
            "Last owner",
            Cow::from("The organization's last owner cannot be removed or demoted; make another admin an owner first."),
        ),
        AppError::DocumentNotFound => (
            "document_not_found",
            S::NOT_FOUND,
            "Document not found",
            Cow::from("Your organization has no document with this id."),
        ),
        AppError::PreconditionFailed { current } => (
            "precondition_failed",
            S::PRECONDITION_FAILED,
            "Precondition failed",
            Cow::from(format!(
            "The document does not meet the request's If-Match or If-None-Match condition \
             (it was changed since you read it, or it exists); nothing was done. Its \
             current ETag is \"{current}\"."
        )),
        ),
        AppError::InvitationNotFound => (
            "invitation_not_found",
            S::NOT_FOUND,
            "Invitation not found",
            Cow::from("Your organization has no invitation with this id."),
        ),
        AppError::InvitationNotPending(status) => (
            "invitation_not_pending",
            S::CONFLICT,
            "Invitation not pending",
            Cow::from(format!(
                "The invitation is {}: only a pending invitation can be revoked or resent.",
                status.as_str()
            )),
        ),
        AppError::InvitationUnusable => (
            "invitation_unusable",
            S::GONE,
            "Invitation unusable",
            Cow::from("This invitation link cannot be used (it is unknown, already used, replaced, revoked or expired); ask for a new invitation."),
        ),
        AppError::InvalidInvitationTtl => (
            "validation_failed",
            S::UNPROCESSABLE_ENTITY,
            "Invalid request",
            Cow::from("`expires_in` must be more than 0 seconds and at most 30 days (2592000)."),
        ),
        AppError::AccountTokenUnusable => (
            "account_token_unusable",
            S::GONE,
            "Link unusable",
            Cow::from("The link's token is unknown, already used or expired, or the account's email changed since it was sent; ask for a new link."),
        ),
        AppError::EmailUnverified => (
            "email_unverified",
            S::FORBIDDEN,
            "Email not verified",
            Cow::from("Verify your email first: POST /admin/email-verification sends a link to it."),
        ),
        AppError::OrganizationSuspended => (
            "organization_suspended",
            S::FORBIDDEN,
            "Organization suspended",
            Cow::from(
                "An operator suspended this organization: its admins cannot log in or use \
                 their tokens until it is resumed. Nothing of it was changed.",
            ),
        ),
        AppError::AcceptedWhileSuspended => (
            "organization_suspended",
            S::FORBIDDEN,
            "Organization suspended",
            Cow::from(
                "The invitation was accepted and your admin account exists, but an operator \
                 suspended this organization: nobody can sign in until it is resumed. Then log \
                 in with this email and the password you chose.",
            ),
        ),
        AppError::InvalidOperatorKey => (
            "invalid_operator_key",
            S::UNAUTHORIZED,
            "Invalid operator key",
            Cow::from("This operation requires `Authorization: Bearer osk_...` with an operator key that exists, is not revoked and has not expired (an admin's access token is not accepted)."),
        ),
        AppError::OperatorScopeInsufficient => (
            "operator_scope_insufficient",
            S::FORBIDDEN,
            "Operator scope insufficient",
            Cow::from("This operation needs an operator key of scope `write`; yours is `read`."),
        ),
        AppError::OperatorKeyNameTaken => (
            "operator_key_name_taken",
            S::CONFLICT,
            "Operator key name taken",
            Cow::from("An operator key with this name exists (names of revoked keys stay taken); choose another name."),
        ),
        AppError::OperatorKeyNotFound => (
            "operator_key_not_found",
            S::NOT_FOUND,
            "Operator key not found",
            Cow::from("No operator key has this name."),
        ),
        AppError::InvalidOperatorKeyExpiry => (
            "validation_failed",
            S::UNPROCESSABLE_ENTITY,
            "Invalid request",
            Cow::from("`expires_in` must be 1 second to 10 years."),
        ),
        AppError::StoreUnavailable(_) => (
            "store_unavailable",
            S::SERVICE_UNAVAILABLE,
            "Service unavailable",
            Cow::from("The store does not answer."),
        ),
        AppError::Unexpected(_) => (
        "internal_error",
        S::INTERNAL_SERVER_ERROR,
        "Internal server error",
        Cow::from("An unexpected error occurred."),
        ),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem_type().1
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unexpected(error) | Self::App(AppError::Unexpected(error)) => {
                tracing::error!(error = %ErrorChain(error.as_ref()), "unexpected error");
            }
            Self::App(AppError::StoreUnavailable(error)) => {
                tracing::warn!(error = %ErrorChain(error), "the store did not answer");
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            Self::MissingToken => {
                response.insert_header((header::WWW_AUTHENTICATE, WWW_AUTHENTICATE_MISSING));
            }
            Self::App(AppError::InvalidToken | AppError::TokenExpired) => {
                response.insert_header((header::WWW_AUTHENTICATE, WWW_AUTHENTICATE_INVALID));
            }
            Self::MissingOperatorKey => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, WWW_AUTHENTICATE_OPERATOR_MISSING));
            }
            Self::App(AppError::InvalidOperatorKey) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, WWW_AUTHENTICATE_OPERATOR_INVALID));
            }
            Self::App(AppError::OperatorScopeInsufficient) => {
                response.insert_header((header::WWW_AUTHENTICATE, WWW_AUTHENTICATE_OPERATOR_SCOPE));
            }
            Self::OperatorRateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::App(AppError::LoginLocked { retry_after }) => {
                let secs = whole_seconds_up(*retry_after);
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            Self::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::App(AppError::OperationInProgress | AppError::OrganizationBusy) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            // RFC 9110 §12.5.3: what the server accepts instead.
            Self::UnsupportedContentEncoding => {
                response.insert_header((
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                ));
            }
            Self::App(AppError::StoreUnavailable(_)) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            Self::App(AppError::PreconditionFailed { current }) => {
                response.insert_header((header::ETAG, format!("\"{current}\"")));
            }
            Self::MethodNotAllowed { allowed } => {
                if let Ok(allowed) = HeaderValue::from_str(allowed) {
                    response.insert_header((header::ALLOW, allowed));
                }
            }
            // The rest of the request may still be on its way: the
            // connection cannot carry another request.
            Self::RequestTimeout
            | Self::MalformedRequest
            | Self::HeaderFieldsTooLarge
            | Self::TooManyConnections { .. } => {
                response.force_close();
            }
            _ => {}
        }
        match serde_json::to_vec(&self.problem()) {
            Ok(body) => response.body(body),
            Err(error) => {
                tracing::error!(error = %error, "could not serialize a problem document");
                response.finish()
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        AppError::from(error).into()
    }
}

impl From<orgsvc_auth::AuthError> for ApiError {
    fn from(error: orgsvc_auth::AuthError) -> Self {
        AppError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use orgsvc_domain::DocumentError;

    #[test]
    fn a_store_that_did_not_answer_is_a_503_to_retry_that_leaks_nothing() {
        let cause = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "mongodb://user:pw@db refused",
        );
        let error = ApiError::from(StoreError::unavailable("reading an admin", cause));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
        let body = response.into_body().try_into_bytes().unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("mongodb"), "{text}");
        assert!(text.contains("\"code\":\"store_unavailable\""), "{text}");
    }

    #[test]
    fn unexpected_errors_answer_a_generic_500_that_leaks_nothing() {
        let error = ApiError::from(StoreError::msg("connection to mongodb://user:pw@db failed"));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().try_into_bytes().unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("mongodb"), "{text}");
        assert!(text.contains("\"code\":\"internal_error\""), "{text}");
    }

    #[test]
    fn error_chain_lists_every_cause() {
        let error = StoreError::new("reading admins", std::io::Error::other("socket closed"));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "reading admins: socket closed"
        );
    }

    #[test]
    fn document_errors_map_to_their_statuses_and_headers() {
        let document = |error: DocumentError| ApiError::from(AppError::from(error));
        let busy = document(DocumentError::Busy).error_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let stale = document(DocumentError::RevisionMismatch { current: 7 });
        assert_eq!(stale.code(), "precondition_failed");
        let stale = stale.error_response();
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(stale.headers().get(header::ETAG).unwrap(), "\"7\"");
        let gone = document(DocumentError::NotFound);
        assert_eq!(gone.status_code(), StatusCode::NOT_FOUND);
        assert_eq!(gone.code(), "document_not_found");
        let deleted = document(DocumentError::OrganizationNotFound).error_response();
        assert_eq!(deleted.status(), StatusCode::UNAUTHORIZED);
        assert!(deleted.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn throttling_answers_429_with_retry_after_in_seconds() {
        let retry_after_secs = 42;
        for (error, code) in [
            (
                ApiError::App(AppError::LoginLocked {
                    retry_after: std::time::Duration::from_millis(41_200),
                }),
                "login_locked",
            ),
            (ApiError::RateLimited { retry_after_secs }, "rate_limited"),
        ] {
            assert_eq!(error.code(), code);
            assert!(error.problem().detail.contains("42"));
            let response = error.error_response();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "42");
        }
        for refused in [AppError::InvalidRefreshToken, AppError::RefreshTokenReused] {
            let refused = ApiError::from(refused);
            assert_eq!(refused.code(), "invalid_refresh_token");
            assert_eq!(refused.status_code(), StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn validation_problems_list_every_field() {
        let problem = ApiError::Validation(vec![
            FieldError::new("email", "is required"),
            FieldError::new("password", "is required"),
        ])
        .problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors.len(), 2);
        assert_eq!(problem.problem_type, "urn:orgsvc:problem:validation_failed");
    }
}
