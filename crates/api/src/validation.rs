//! Turning loosely typed request fields into domain values, collecting every
//! offending field so a 422 lists them all at once.
//!
//! Request bodies deserialize each field as an optional [`Value`], so a field
//! of the wrong JSON type is reported here, next to the other fields, instead
//! of failing the whole body.

use std::fmt::Display;
use std::str::FromStr;

use orgsvc_domain::{PageSize, ValueError};
use serde_json::Value;

use crate::problem::{ApiError, FieldError};

/// The message of a `before` cursor that no page answered.
const INVALID_CURSOR: &str = "is not a cursor returned by this API";

/// An id cursor of a newest-first listing (`GET /org/audit`, `GET
/// /org/invitations`) exactly as the API answers it: a lowercase
/// hyphenated UUID (other spellings of a UUID are refused, as the
/// documented pattern says).
pub fn id_cursor<T: FromStr + Display>(text: &str) -> Option<T> {
    text.parse::<T>().ok().filter(|id| id.to_string() == text)
}

/// The offending fields found so far.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Parses a required string field; records why when it is missing or invalid.
    pub fn required<T>(
        &mut self,
        field: &str,
        raw: Option<&Value>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match self.optional(field, raw, parse) {
            Some(Some(value)) => Some(value),
            Some(None) => {
                self.push(field, "is required");
                None
            }
            None => None,
        }
    }

    /// Parses an optional string field: `Some(None)` when absent or `null`,
    /// `None` (recorded) when invalid.
    pub fn optional<T>(
        &mut self,
        field: &str,
        raw: Option<&Value>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<Option<T>> {
        let text = match raw {
            None | Some(Value::Null) => return Some(None),
            Some(Value::String(text)) => text,
            Some(_) => {
                self.push(field, "must be a string");
                return None;
            }
        };
        match parse(text) {
            Ok(value) => Some(Some(value)),
            Err(error) => {
                self.push(field, error.to_string());
                None
            }
        }
    }

    /// A listing's `limit` query parameter: the default page size when
    /// absent; `None` (with the error recorded) unless an integer from 1 to
    /// 100.
    pub fn page_size(&mut self, raw: Option<&str>) -> Option<PageSize> {
        match raw {
            None => Some(PageSize::default()),
            Some(text) => match text.parse::<u64>() {
                Ok(requested) => PageSize::parse(requested)
                    .map_err(|error| self.push("limit", error.to_string()))
                    .ok(),
                Err(_) => {
                    self.push("limit", "must be an integer between 1 and 100");
                    None
                }
            },
        }
    }

    /// A newest-first listing's `before` query parameter: `Some(None)`
    /// when absent, `Some(Some(id))` for an [`id_cursor`]; `None` (with
    /// the error recorded) otherwise.
    pub fn before<T: FromStr + Display>(&mut self, raw: Option<&str>) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(text) => match id_cursor(text) {
                Some(id) => Some(Some(id)),
                None => {
                    self.push("before", INVALID_CURSOR);
                    None
                }
            },
        }
    }

    /// Records a problem with `field`.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// The 422 error listing every recorded field.
    pub fn into_error(self) -> ApiError {
        ApiError::Validation(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsvc_domain::AdminEmail;
    use serde_json::json;

    #[test]
    fn collects_missing_wrongly_typed_and_invalid_fields() {
        let mut errors = FieldErrors::default();
        assert!(errors.required("a", None, AdminEmail::parse).is_none());
        assert!(errors
            .required("b", Some(&json!(5)), AdminEmail::parse)
            .is_none());
        assert!(errors
            .required("c", Some(&json!("nope")), AdminEmail::parse)
            .is_none());
        assert!(errors.optional("d", Some(&Value::Null), AdminEmail::parse) == Some(None));
        let ApiError::Validation(fields) = errors.into_error() else {
            panic!("not a validation error");
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(fields[0].message, "is required");
        assert_eq!(fields[1].message, "must be a string");
    }
}
