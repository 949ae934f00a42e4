//! Reusable problem responses; their examples are the documents the API
//! actually sends, built from [`ApiError`](crate::problem::ApiError).

use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::ToResponse;

use orgsvc_app::AppError;
use orgsvc_domain::StoreError;

use crate::problem::{ApiError, FieldError, PROBLEM_JSON};

fn problem_response(
    description: &str,
    headers: &[(&str, &str)],
    examples: Vec<ApiError>,
) -> RefOr<Response> {
    let examples = examples.into_iter().map(|error| {
        let example = ExampleBuilder::new()
            .summary(error.problem().title)
            .value(serde_json::to_value(error.problem()).ok())
            .build();
        (error.code(), example)
    });
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content);
    for (name, description) in headers {
        response = response.header(
            *name,
            HeaderBuilder::new().description(Some(*description)).build(),
        );
    }
    response.build().into()
}

macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident { $description:literal, headers: [$($header:expr),*], examples: [$($example:expr),+ $(,)?] })+) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (
                        stringify!($name),
                        problem_response($description, &[$($header),*], vec![$($example),+]),
                    )
                }
            }
        )+
    };
}

const WWW_AUTHENTICATE: (&str, &str) = (
    "WWW-Authenticate",
    "`Bearer realm=\"orgsvc\"`, with `error=\"invalid_token\"` when a token was presented but refused.",
);
const RETRY_AFTER: (&str, &str) = (
    "Retry-After",
    "Seconds to wait before retrying (sent with `operation_in_progress`).",
);

const RETRY_AFTER_THROTTLED: (&str, &str) = (
    "Retry-After",
    "Whole seconds (rounded up) until a call can succeed: until the client IP may call \
     again, or until the email's lock ends.",
);

const WWW_AUTHENTICATE_OPERATOR: (&str, &str) = (
    "WWW-Authenticate",
    "`Bearer realm=\"orgsvc-operator\"`, with `error=\"invalid_token\"` when a key was \
     presented but refused (RFC 6750 §3.1).",
);

problem_responses! {
    /// 401 of the operator API.
    OperatorUnauthorized {
        "No bearer token (`missing_operator_key`), or not a usable operator key \
         (`invalid_operator_key`): malformed, unknown, revoked or expired. An admin's access \
         token is not an operator key.",
        headers: [WWW_AUTHENTICATE_OPERATOR],
        examples: [ApiError::MissingOperatorKey, ApiError::App(AppError::InvalidOperatorKey)]
    }
    /// 403 of the operator API's writes.
    OperatorScopeInsufficient {
        "The operator key has the `read` scope; this operation needs `write`.",
        headers: [(
            "WWW-Authenticate",
            "`Bearer realm=\"orgsvc-operator\", error=\"insufficient_scope\", scope=\"write\"` (RFC 6750 §3.1)."
        )],
        examples: [ApiError::App(AppError::OperatorScopeInsufficient)]
    }
    /// 409 of the key creation.
    OperatorKeyNameTaken {
        "A key (revoked or not) already has this name.",
        headers: [],
        examples: [ApiError::App(AppError::OperatorKeyNameTaken)]
    }
    /// 404 of the key revocation.
    OperatorKeyNotFound {
        "No operator key has this name.",
        headers: [],
        examples: [ApiError::App(AppError::OperatorKeyNotFound)]
    }
    /// 429 of the operator API.
    OperatorRateLimited {
        "The operator key made more than `security.operator_rate_burst` (default 120) requests \
         at once, or more than `security.operator_rate_per_minute` (default 600) a minute; \
         or the client IP holds `server.max_connections_per_ip` open connections already \
         (`too_many_connections`, the connection is closed).",
        headers: [("Retry-After", "Whole seconds (rounded up) until the key may call again; 1 on `too_many_connections`.")],
        examples: [
            ApiError::OperatorRateLimited { retry_after_secs: 1 },
            ApiError::TooManyConnections { limit: 64 },
        ]
    }

    /// 400.
    BadRequestBody {
        "The body is not valid JSON (`errors` names the member or element the error is in \
         as a JSON Pointer, when it is inside one) or could not be read; or the request line \
         or a header field is malformed (`malformed_request`, the connection is closed).",
        headers: [],
        examples: [
            ApiError::MalformedJson {
                reason: "EOF while parsing an object at line 1 column 24".into(),
                pointer: None,
            },
            ApiError::MalformedJson {
                reason: "expected value at line 1 column 48".into(),
                pointer: Some("/email/1".into()),
            },
            ApiError::UnreadableBody,
            ApiError::MalformedRequest,
        ]
    }
    /// 400 of the HTTP layer.
    MalformedRequest {
        "The request line or a header field is not valid HTTP/1.1; the connection is closed.",
        headers: [],
        examples: [ApiError::MalformedRequest]
    }
    /// 408.
    RequestTimeout {
        "The request's header fields did not arrive within \
         `server.header_read_timeout_secs` (default 20), or its body within \
         `server.body_read_timeout_secs` (default 30) of the service starting to read it; \
         the connection is closed.",
        headers: [],
        examples: [ApiError::RequestTimeout]
    }
    /// 429 of the HTTP layer.
    TooManyConnections {
        "The client IP holds `server.max_connections_per_ip` (default 64) open connections \
         already; this one is answered before its request is read, and closed. Retry after \
         `Retry-After` seconds, or reuse an open connection (keep-alive).",
        headers: [("Retry-After", "Seconds to wait before opening another connection (1).")],
        examples: [ApiError::TooManyConnections { limit: 64 }]
    }
    /// 431.
    HeaderFieldsTooLarge {
        "The request head exceeds 96 header fields or 128 KiB; the connection is closed.",
        headers: [],
        examples: [ApiError::HeaderFieldsTooLarge]
    }
    /// 401 of protected operations.
    Unauthorized {
        "No bearer token, or a malformed, forged, expired or revoked one (a password change \
         or the admin's removal revokes the admin's earlier tokens; deleting the organization \
         revokes all of its tokens).",
        headers: [WWW_AUTHENTICATE],
        examples: [ApiError::MissingToken, ApiError::App(AppError::InvalidToken), ApiError::App(AppError::TokenExpired)]
    }
    /// 401 of the login.
    InvalidCredentials {
        "Unknown email or wrong password (indistinguishable on purpose).",
        headers: [],
        examples: [ApiError::App(AppError::InvalidCredentials)]
    }
    /// 404.
    OrganizationNotFound {
        "No organization has this name or id (or it was deleted meanwhile).",
        headers: [],
        examples: [ApiError::App(AppError::OrganizationNotFound)]
    }
    /// 409 of the creation.
    CreateConflict {
        "The name (ignoring case and separators) or the email is taken.",
        headers: [],
        examples: [ApiError::App(AppError::OrganizationNameTaken), ApiError::App(AppError::EmailTaken)]
    }
    /// 409 of the update.
    UpdateConflict {
        "The new name or email is taken, or another change to the organization is in progress.",
        headers: [RETRY_AFTER],
        examples: [
            ApiError::App(AppError::OrganizationNameTaken),
            ApiError::App(AppError::EmailTaken),
            ApiError::App(AppError::OperationInProgress),
        ]
    }
    /// 409 of the deletion.
    DeleteConflict {
        "Another change to the organization is in progress.",
        headers: [RETRY_AFTER],
        examples: [ApiError::App(AppError::OperationInProgress)]
    }
    /// 413.
    PayloadTooLarge {
        "The body exceeds `server.max_body_bytes`.",
        headers: [],
        examples: [ApiError::PayloadTooLarge { limit: 65_536 }]
    }
    /// 415.
    UnsupportedMediaType {
        "The body is not sent as `application/json` or `application/<subtype>+json` (any \
         `charset` parameter is ignored), or is sent with a `Content-Encoding` other than \
         `identity` (`unsupported_content_encoding`, with `Accept-Encoding: identity`).",
        headers: [("Accept-Encoding", "`identity`, on `unsupported_content_encoding`.")],
        examples: [ApiError::UnsupportedMediaType, ApiError::UnsupportedContentEncoding]
    }
    /// 422.
    ValidationFailed {
        "The body is not a JSON object (`field` is `\"\"`, the whole body), or fields are \
         missing, of the wrong JSON type or invalid; `errors` lists every one. A key that \
         occurs twice in one object, or a number beyond about ±1.8e308, is named by a JSON \
         Pointer (`/email`).",
        headers: [],
        examples: [ApiError::Validation(vec![
            FieldError::new("organization_name", "must be 2 to 64 characters long"),
            FieldError::new("email", "must be an address like name@example.com"),
            FieldError::new("password", "is required"),
        ])]
    }
    /// 404 of a tenant document.
    DocumentNotFound {
        "The caller's organization has no document with this id (also for ids that are \
         not UUIDs, and for other organizations' documents).",
        headers: [],
        examples: [ApiError::App(AppError::DocumentNotFound)]
    }
    /// 412 of a conditional document request.
    PreconditionFailed {
        "`If-Match` or `If-None-Match` does not hold for the document's current revision \
         (RFC 9110 §13.2.2); nothing was changed.",
        headers: [("ETag", "The document's current revision, e.g. `\"4\"`.")],
        examples: [ApiError::App(AppError::PreconditionFailed { current: 4 })]
    }
    /// 413 of a tenant document.
    DocumentTooLarge {
        "The document exceeds `data.max_document_bytes` (default 262144).",
        headers: [],
        examples: [ApiError::PayloadTooLarge { limit: 262_144 }]
    }
    /// 422 of a tenant document.
    InvalidDocument {
        "The body is not a JSON object, or a field name starts with `$` or contains `.` or \
         NUL, or a number is outside the signed 64-bit range (-2^63 to 2^63-1), or nesting exceeds 100 levels, \
         or a key occurs twice in one object. `field` \
         is a JSON Pointer (RFC 6901) to the offending place (empty: the whole body).",
        headers: [],
        examples: [ApiError::Validation(vec![FieldError::new(
            "/address/$city",
            "field names must not start with '$'",
        )])]
    }
    /// 422 of a document listing.
    InvalidListing {
        "`limit`, `after` or `filter` is invalid, or the query has another parameter; \
         errors inside `filter` name `filter` followed by a JSON Pointer.",
        headers: [],
        examples: [ApiError::Validation(vec![
            FieldError::new("limit", "must be between 1 and 100"),
            FieldError::new("after", "is not a cursor returned by this API"),
            FieldError::new("filter/tags", "filter values must be strings, numbers, booleans or null"),
        ])]
    }
    /// 503 while a rename or a move between layouts has the organization's
    /// documents between two places, or an interrupted operation is being
    /// finished.
    OrganizationBusy {
        "An operation on the organization is in progress (`organization_busy`): a rename \
         or a move between layouts moving its documents, or an operation that an \
         instance could not finish (it was stopped or paused) being finished or undone by another; or the store does not \
         answer (`store_unavailable`). Nothing was done. Retry after `Retry-After` seconds.",
        headers: [("Retry-After", "Seconds to wait before retrying.")],
        examples: [ApiError::App(AppError::OrganizationBusy), store_unavailable()]
    }
    /// 503 of operations that use the store.
    StoreUnavailable {
        "The store does not answer (`store_unavailable`: MongoDB unreachable within its \
         server selection timeout); nothing is known to have changed. Retry after \
         `Retry-After` seconds.",
        headers: [("Retry-After", "Seconds to wait before retrying.")],
        examples: [store_unavailable()]
    }
    /// 403 of the operations of any signed-in admin.
    EmailUnverified {
        "With `auth.require_verified_email`, the caller's email is not verified yet \
         (`email_unverified`): verify it first (`POST /admin/email-verification`). Or an \
         operator suspended the caller's organization (`organization_suspended`).",
        headers: [],
        examples: [ApiError::App(AppError::EmailUnverified), ApiError::App(AppError::OrganizationSuspended)]
    }
    /// 403 of owner-only operations.
    OwnerRequired {
        "The caller is an `admin` of its organization; this operation takes an `owner` \
         (`owner_required`). With `auth.require_verified_email`, also an unverified \
         caller (`email_unverified`). Or an operator suspended the caller's organization \
         (`organization_suspended`).",
        headers: [],
        examples: [
            ApiError::App(AppError::OwnerRequired),
            ApiError::App(AppError::EmailUnverified),
            ApiError::App(AppError::OrganizationSuspended),
        ]
    }
    /// 403 of the deletion.
    DeleteForbidden {
        "The caller is not an owner of its organization (`owner_required`), or the named \
         organization is not the caller's (`forbidden`, whether or not it exists), or \
         (with `auth.require_verified_email`) its email is not verified (`email_unverified`), \
         or an operator suspended the organization (`organization_suspended`).",
        headers: [],
        examples: [
            ApiError::App(AppError::OwnerRequired),
            ApiError::App(AppError::Forbidden),
            ApiError::App(AppError::EmailUnverified),
            ApiError::App(AppError::OrganizationSuspended),
        ]
    }
    /// 410 of a password-reset or email-verification link.
    AccountTokenUnusable {
        "The token is unknown, already used or expired, or the account's email changed \
         since it was sent (`account_token_unusable`, one answer for all so tokens cannot \
         be probed). Ask for a new link.",
        headers: [],
        examples: [ApiError::App(AppError::AccountTokenUnusable)]
    }
    /// 429 of the requests for an email with a link.
    EmailLinksThrottled {
        "Too many emails with a link (password reset, email verification) asked for the \
         address (`rate_limited`: 3 at once, then one a minute), too many calls from the \
         client IP (`rate_limited`, counted with logins: `security.login_rate_per_minute` \
         after a burst of `security.login_rate_burst`), or too many connections \
         (`too_many_connections`).",
        headers: [RETRY_AFTER_THROTTLED],
        examples: [
            ApiError::RateLimited { retry_after_secs: 2 },
            ApiError::TooManyConnections { limit: 64 },
        ]
    }
    /// 404 of an admin.
    AdminNotFound {
        "The caller's organization has no admin with this id (also for ids that are not \
         UUIDs, and for other organizations' admins).",
        headers: [],
        examples: [ApiError::App(AppError::AdminNotFound)]
    }
    /// 409 of adding an admin.
    AddAdminConflict {
        "Another admin (of any organization) already has this email, compared ignoring case.",
        headers: [],
        examples: [ApiError::App(AppError::EmailTaken)]
    }
    /// 409 of inviting.
    InviteConflict {
        "An admin (of any organization) already has this email, compared ignoring case.",
        headers: [],
        examples: [ApiError::App(AppError::EmailTaken)]
    }
    /// 409 of accepting an invitation.
    AcceptInvitationConflict {
        "The invited email became an admin's (of any organization) since the invitation \
         was sent: nothing was created, and the invitation stays pending.",
        headers: [],
        examples: [ApiError::App(AppError::EmailTaken)]
    }
    /// 404 of an invitation.
    InvitationNotFound {
        "The caller's organization has no invitation with this id (also for ids that are \
         not UUIDs, and for other organizations' invitations).",
        headers: [],
        examples: [ApiError::App(AppError::InvitationNotFound)]
    }
    /// 409 of revoking or resending an invitation.
    InvitationNotPending {
        "The invitation is accepted, revoked or expired: only a pending invitation can be \
         revoked or resent. Nothing was changed.",
        headers: [],
        examples: [ApiError::App(AppError::InvitationNotPending(
            orgsvc_domain::InvitationStatus::Accepted,
        ))]
    }
    /// 410 of accepting an invitation.
    InvitationUnusable {
        "The token cannot be used: it is unknown, already used, replaced by a resend, \
         revoked or expired (or its organization was deleted). Every such token gets this \
         same body, so tokens cannot be probed.",
        headers: [],
        examples: [ApiError::App(AppError::InvitationUnusable)]
    }
    /// 422 of the invitation listing.
    InvalidInvitationListing {
        "`limit` or `before` is invalid, or the query has another parameter.",
        headers: [],
        examples: [ApiError::Validation(vec![
            FieldError::new("limit", "must be between 1 and 100"),
            FieldError::new("before", "is not a cursor returned by this API"),
        ])]
    }
    /// 409 of removing or demoting an admin.
    LastOwner {
        "The admin is the organization's last owner: it cannot be removed or demoted \
         (make another admin an owner first). Nothing was changed.",
        headers: [],
        examples: [ApiError::App(AppError::LastOwner)]
    }
    /// 422 of an audit log listing.
    InvalidAuditListing {
        "`limit` or `before` is invalid, or the query has another parameter.",
        headers: [],
        examples: [ApiError::Validation(vec![
            FieldError::new("limit", "must be between 1 and 100"),
            FieldError::new("before", "is not a cursor returned by this API"),
        ])]
    }
    /// 422 of the operator's organization listing.
    InvalidOrganizationListing {
        "`q`, `match`, `state`, `created_after`, `created_before` (RFC 3339), `limit` or \
         `after` is invalid, or the query has another parameter; `errors` names each one.",
        headers: [],
        examples: [ApiError::Validation(vec![
            FieldError::new("state", "must be `active` or `suspended`"),
            FieldError::new("created_after", "must be an RFC 3339 time, like 2025-01-31T12:00:00Z"),
            FieldError::new("after", "is not a cursor returned by this API"),
        ])]
    }
    /// 422 of the operator's audit listing.
    InvalidOperatorAuditListing {
        "`organization_id`, `action`, `limit` or `before` is invalid, or the query has \
         another parameter; `errors` names each one.",
        headers: [],
        examples: [ApiError::Validation(vec![
            FieldError::new("action", "is not an audit action"),
            FieldError::new("before", "is not a cursor returned by this API"),
        ])]
    }
    /// 403 of the login, the refresh, an accepted invitation and the
    /// routes open to any admin without another 403.
    OrganizationSuspended {
        "An operator suspended the organization (`organization_suspended`): its admins \
         cannot log in, refresh, or use their access tokens (refused at once) until it is \
         resumed. Nothing of it was changed or deleted; only an accepted invitation still \
         creates its admin (the detail says so), who logs in after the resumption.",
        headers: [],
        examples: [
            ApiError::App(AppError::OrganizationSuspended),
            ApiError::App(AppError::AcceptedWhileSuspended),
        ]
    }
    /// 401 of the refresh.
    InvalidRefreshToken {
        "The refresh token is unknown, expired, already used (which revokes its whole \
         session if that was still live) or revoked (logout, password change, a refresh \
         refused during a suspension, the admin's removal or the organization's \
         deletion). Log in again.",
        headers: [],
        examples: [ApiError::App(AppError::InvalidRefreshToken)]
    }
    /// 429 of the login.
    LoginThrottled {
        "Too many connections from the client IP (`too_many_connections`: \
         `server.max_connections_per_ip`, the connection is closed), or too many login or \
         refresh calls from it (`rate_limited`: \
         `security.login_rate_per_minute` after a burst of `security.login_rate_burst`), or \
         too many failed logins for the email (`login_locked`: the password was not \
         checked; the lock starts at `security.login_lock_secs` and doubles with each \
         further lock up to `security.login_max_lock_secs`).",
        headers: [RETRY_AFTER_THROTTLED],
        examples: [
            ApiError::RateLimited { retry_after_secs: 2 },
            ApiError::App(AppError::LoginLocked {
                retry_after: std::time::Duration::from_secs(60),
            }),
        ]
    }
    /// 429 of the refresh and of accepting an invitation.
    RateLimited {
        "Too many login, refresh or invitation-accept calls from the client IP \
         (`security.login_rate_per_minute` after a burst of `security.login_rate_burst`), or \
         too many connections from it (`too_many_connections`: \
         `server.max_connections_per_ip`, the connection is closed).",
        headers: [RETRY_AFTER_THROTTLED],
        examples: [
            ApiError::RateLimited { retry_after_secs: 2 },
            ApiError::TooManyConnections { limit: 64 },
        ]
    }
    /// 500.
    InternalError {
        "An unexpected error; details are only in the server's log.",
        headers: [],
        examples: [ApiError::unexpected("hidden")]
    }
    /// 503 of the readiness probe.
    NotReady {
        "The store does not answer (`store_unavailable`), or this instance is shutting down \
         (`shutting_down`: from SIGTERM or SIGINT on, until the process exits within \
         `server.shutdown_timeout_secs`).",
        headers: [],
        examples: [store_unavailable(), ApiError::ShuttingDown]
    }
}

/// The answer when the store does not answer (its cause is never shown).
fn store_unavailable() -> ApiError {
    ApiError::App(AppError::StoreUnavailable(StoreError::unavailable(
        "an example",
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    )))
}
