//! JSON bodies and query strings: limits, content type and error mapping to
//! problem documents.

use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError};
use actix_web::web::Bytes;
use actix_web::{mime, web, HttpMessage, HttpRequest};
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// `web::Json` settings: body limit and problem documents for every failure.
pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(move |error, _req| json_error(error, max_body_bytes).into())
}

/// `web::Query` settings: a query string that does not fit is a 422.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| query_error(error).into())
}

/// Maps a failure to read a JSON body to the client's mistake.
pub fn json_error(error: JsonPayloadError, max_body_bytes: usize) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(error) if error.is_data() => {
            ApiError::Validation(vec![FieldError::new("body", "must be a JSON object")])
        }
        JsonPayloadError::Deserialize(error) => ApiError::MalformedJson(error.to_string()),
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::PayloadTooLarge {
            limit: max_body_bytes,
        },
        JsonPayloadError::Payload(_) => ApiError::UnreadableBody,
        other => ApiError::unexpected(other.to_string()),
    }
}

fn query_error(error: QueryPayloadError) -> ApiError {
    let message = match error {
        QueryPayloadError::Deserialize(error) => error.to_string(),
        other => other.to_string(),
    };
    ApiError::Validation(vec![FieldError::new("query", message)])
}

/// Reads a JSON body after other checks (such as authentication) have
/// passed, with the same limit and problems as `web::Json`.
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    max_body_bytes: usize,
) -> Result<T, ApiError> {
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = read_limited(payload, max_body_bytes).await?;
    parse(&bytes, max_body_bytes)
}

/// Reads an optional JSON body: `None` when the request has no body, the
/// same problems as [`json_body`] otherwise.
pub async fn optional_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    max_body_bytes: usize,
) -> Result<Option<T>, ApiError> {
    let bytes = read_limited(payload, max_body_bytes).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse(&bytes, max_body_bytes).map(Some)
}

async fn read_limited(payload: web::Payload, max_body_bytes: usize) -> Result<Bytes, ApiError> {
    match payload.to_bytes_limited(max_body_bytes).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::UnreadableBody),
        Err(_) => Err(ApiError::PayloadTooLarge {
            limit: max_body_bytes,
        }),
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8], max_body_bytes: usize) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|error| json_error(JsonPayloadError::Deserialize(error), max_body_bytes))
}

/// Whether the request says its body is JSON (`application/json` or `*/*+json`).
fn is_json(req: &HttpRequest) -> bool {
    req.mime_type().ok().flatten().is_some_and(|mime| {
        mime.type_() == mime::APPLICATION
            && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
    })
}
