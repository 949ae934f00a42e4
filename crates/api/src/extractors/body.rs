//! JSON bodies and query strings: limits, content type and error mapping to
//! problem documents.
//!
//! Every JSON request body must be a JSON object: serde's derived
//! `Deserialize` also accepts an array for a struct (its fields in order),
//! which the API does not offer. [`JsonObject`] (an extractor) and
//! [`json_body`] / [`optional_json`] (read after authentication) all go
//! through [`ObjectOnly`], so any other JSON value is a 422 whose error names
//! the whole body (the empty JSON Pointer `""`).
//!
//! Before a body is deserialized, [`scan`] walks it once: a key that occurs
//! twice in one object (serde_json would silently keep the last) and a
//! number too large for a double (`1e400`) are 422s, and a syntax error a
//! 400; each names its place as a JSON Pointer (`/admin/email`,
//! `/tags/3`).
//!
//! The whole body must arrive within `server.body_read_timeout_secs` from
//! the moment the handler starts reading it; otherwise the answer is a 408
//! and the connection is closed (actix has no body timeout of its own, and
//! a client that stops mid-body would hold the connection for ever).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError};
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{mime, web, FromRequest, HttpMessage, HttpRequest};
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::problem::{ApiError, FieldError};
use crate::state::AppState;

/// The error of a body that is valid JSON but not an object (or whose
/// fields cannot be read at all).
const NOT_AN_OBJECT: &str = "the body must be a JSON object";
/// The error of a key that occurs more than once in one object.
pub const DUPLICATE_KEY: &str = "the key occurs more than once in this object";
/// The error of a number beyond what a double holds (about ±1.8e308).
pub const NUMBER_OUT_OF_RANGE: &str =
    "the number is out of range (beyond about ±1.8e308, the largest a JSON number may be here)";
/// `server.max_body_bytes` when the app has no state (unit tests).
const DEFAULT_MAX_BODY_BYTES: usize = 65_536;
/// `server.body_read_timeout_secs` when the app has no state (unit tests).
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
        JsonPayloadError::Deserialize(error) => ApiError::MalformedJson {
            reason: error.to_string(),
            pointer: None,
        },
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
    let bytes = read_limited(req, payload, max_body_bytes).await?;
    parse(&bytes, max_body_bytes)
}

/// Reads an optional JSON body: `None` when the request has no body, the
/// same problems as [`json_body`] otherwise.
pub async fn optional_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    max_body_bytes: usize,
) -> Result<Option<T>, ApiError> {
    let bytes = read_limited(req, payload, max_body_bytes).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse(&bytes, max_body_bytes).map(Some)
}

/// Reads the whole body: at most `max_body_bytes` (a larger declared
/// `Content-Length` is refused before reading), within the body read
/// timeout.
async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    max_body_bytes: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body_bytes as u64) {
        return Err(ApiError::PayloadTooLarge {
            limit: max_body_bytes,
        });
    }
    refuse_content_codings(req)?;
    let timeout = req
        .app_data::<web::Data<AppState>>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |state| state.body_read_timeout);
    match tokio::time::timeout(timeout, payload.to_bytes_limited(max_body_bytes)).await {
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(_))) => Err(ApiError::UnreadableBody),
        Ok(Err(_)) => Err(ApiError::PayloadTooLarge {
            limit: max_body_bytes,
        }),
        Err(_elapsed) => {
            tracing::info!(?timeout, "request body not received in time");
            Err(ApiError::RequestTimeout)
        }
    }
}

/// 415 `unsupported_content_encoding` for a body sent with any content
/// coding but `identity` (every `Content-Encoding` field line, comma-separated
/// codings, case-insensitive): the service decodes none, and reading a
/// compressed body as JSON would only fail later with a misleading error.
fn refuse_content_codings(req: &HttpRequest) -> Result<(), ApiError> {
    let coded = req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    if coded {
        return Err(ApiError::UnsupportedContentEncoding);
    }
    Ok(())
}

fn parse<T: DeserializeOwned>(bytes: &[u8], max_body_bytes: usize) -> Result<T, ApiError> {
    scan(bytes)?;
    serde_json::from_slice::<ObjectOnly<T>>(bytes)
        .map(|ObjectOnly(value)| value)
        .map_err(|error| json_error(JsonPayloadError::Deserialize(error), max_body_bytes))
}

/// Walks a JSON text once, refusing what deserialization would accept
/// silently or report without a place: a key repeated in one object (422
/// [`DUPLICATE_KEY`]), a number beyond a double (422
/// [`NUMBER_OUT_OF_RANGE`]), and syntax errors (400 `malformed_json` with
/// the JSON Pointer of the member or element it is in). Depth is bounded by
/// serde_json's recursion limit (128).
pub fn scan(bytes: &[u8]) -> Result<(), ApiError> {
    let walk = Walk::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result = (&walk)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    let Err(error) = result else {
        return Ok(());
    };
    let (pointer, duplicate) = walk
        .failure
        .into_inner()
        .unwrap_or_else(|| (String::new(), false));
    let reason = error.to_string();
    if duplicate {
        Err(ApiError::Validation(vec![FieldError::new(
            pointer,
            DUPLICATE_KEY,
        )]))
    } else if reason.starts_with("number out of range") {
        Err(ApiError::Validation(vec![FieldError::new(
            pointer,
            NUMBER_OUT_OF_RANGE,
        )]))
    } else {
        Err(ApiError::MalformedJson {
            reason,
            pointer: Some(pointer),
        })
    }
}

/// The place [`scan`] is at: JSON Pointer segments, and the first failure
/// (its pointer, and whether it is a duplicated key).
#[derive(Default)]
struct Walk {
    segments: RefCell<Vec<String>>,
    failure: RefCell<Option<(String, bool)>>,
}

impl Walk {
    fn enter(&self, segment: String) {
        self.segments.borrow_mut().push(segment);
    }

    fn leave(&self) {
        self.segments.borrow_mut().pop();
    }

    /// Records the current place as the failure's, unless a deeper one was
    /// recorded first (errors unwind from the innermost value outwards).
    fn fail_here(&self, duplicate: bool) {
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            let pointer = self
                .segments
                .borrow()
                .iter()
                .map(|segment| format!("/{}", segment.replace('~', "~0").replace('/', "~1")))
                .collect();
            *failure = Some((pointer, duplicate));
        }
    }
}

impl<'de> DeserializeSeed<'de> for &Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &Walk {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0_usize;
        loop {
            self.enter(index.to_string());
            match seq.next_element_seed(self) {
                Ok(Some(())) => self.leave(),
                Ok(None) => {
                    self.leave();
                    return Ok(());
                }
                Err(error) => {
                    self.fail_here(false);
                    return Err(error);
                }
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        loop {
            let key = match map.next_key::<String>() {
                Ok(Some(key)) => key,
                Ok(None) => return Ok(()),
                Err(error) => {
                    self.fail_here(false);
                    return Err(error);
                }
            };
            self.enter(key.clone());
            if !seen.insert(key) {
                self.fail_here(true);
                return Err(A::Error::custom(DUPLICATE_KEY));
            }
            if let Err(error) = map.next_value_seed(self) {
                self.fail_here(false);
                return Err(error);
            }
            self.leave();
        }
    }
}

/// A JSON request body that must be a JSON object, read like
/// [`json_body`] (limit `server.max_body_bytes`, body read timeout,
/// [`scan`]): arrays and every other non-object value are a 422, other
/// media types than [`is_json_media_type`]'s a 415.
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
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            let max_body_bytes = req
                .app_data::<web::Data<AppState>>()
                .map_or(DEFAULT_MAX_BODY_BYTES, |state| state.max_body_bytes);
            Ok(Self(json_body(&req, payload.await?, max_body_bytes).await?))
        })
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
