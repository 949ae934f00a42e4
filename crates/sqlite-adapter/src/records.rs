//! Reading back the security tables' stored values (ids as hyphenated UUID
//! text), reporting a value that does not parse as a corrupt record.

use std::str::FromStr;

use orgsvc_domain::StoreError;

/// A stored id; `what` names it in the error.
pub(crate) fn parse_id<T>(raw: &str, what: &str) -> Result<T, StoreError>
where
    T: FromStr<Err = uuid::Error>,
{
    raw.parse().map_err(|e| corrupt(what, e))
}

/// A corrupt-record error for the stored `what`, caused by `cause`.
pub(crate) fn corrupt(
    what: &str,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::new(format!("corrupt record: invalid stored {what}"), cause)
}
