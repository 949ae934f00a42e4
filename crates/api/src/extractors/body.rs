//! JSON bodies and query strings: limits, content type and error mapping to
//! problem documents.
//!
//! Every JSON request body must be a JSON object: serde's derived
//! `Deserialize` also accepts an array for a struct (its fields in order),
//! which the API does not offer. [`JsonObject`] (an extractor) and
//! [`json_body`] / [`optional_json`] (read after authentication) all go
//! through [`ObjectOnly`], so any other JSON value is a 422 whose error names
//! the whole body (the empty JSON Pointer `""`).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError};
use actix_web::web::Bytes;
use actix_web::{mime, web, FromRequest, HttpMessage, HttpRequest};
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::problem::{ApiError, FieldError};

/// The error of a body that is valid JSON but not an object (or whose
/// fields cannot be read at all).
const NOT_AN_OBJECT: &str = "the body must be a JSON object";

/// `web::Json` settings: body limit and problem documents for every
/// failure. Its content-type check only widens on what it accepts itself
/// (any `*/json` or `*/*+json`), so [`JsonObject`] applies the one rule,
/// [`is_json_media_type`], before it.
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
            ApiError::Validation(vec![FieldError::new("", NOT_AN_OBJECT)])
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

/// Reads a request's query string after other checks (such as
/// authentication) have passed; a query that does not fit `T` is a 422 on
/// the field `query`.
pub fn query_of<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| ApiError::Validation(vec![FieldError::new("query", error.to_string())]))
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
    serde_json::from_slice::<ObjectOnly<T>>(bytes)
        .map(|ObjectOnly(value)| value)
        .map_err(|error| json_error(JsonPayloadError::Deserialize(error), max_body_bytes))
}

/// A JSON request body that must be a JSON object: `web::Json<T>` (same
/// limit and problem documents, from [`json_config`]) that refuses arrays
/// and every other non-object value with a 422, and other media types than
/// [`is_json_media_type`]'s with a 415.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    /// The deserialized body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !is_json(req) {
            let error = ApiError::UnsupportedMediaType.into();
            return Box::pin(async move { Err(error) });
        }
        let json = web::Json::<ObjectOnly<T>>::from_request(req, payload);
        Box::pin(async move { Ok(Self(json.await?.into_inner().0)) })
    }
}

/// Deserializes `T` from a JSON object only (never from an array, as
/// derived struct implementations otherwise allow).
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(ObjectOnly)
    }
}

/// Whether the request's `Content-Type` is a JSON media type (see
/// [`is_json_media_type`]); a missing or unparsable one is not.
fn is_json(req: &HttpRequest) -> bool {
    req.mime_type()
        .ok()
        .flatten()
        .is_some_and(|mime| is_json_media_type(&mime))
}

/// The one rule for every JSON request body: `application/json` or a
/// structured syntax suffix `application/*+json` (RFC 6838 §4.2.8), in any
/// case (RFC 9110 §8.3.1). Parameters are ignored: JSON defines no
/// `charset`, whose value has no effect (RFC 8259 §11; the body must be
/// UTF-8, §8.1). Anything else, `text/json` included, is a 415.
pub fn is_json_media_type(mime: &mime::Mime) -> bool {
    mime.type_() == mime::APPLICATION
        && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
}
