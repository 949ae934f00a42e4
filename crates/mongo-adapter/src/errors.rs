//! Recognising the driver errors the store gives a meaning to.

use mongodb::error::{Error, ErrorKind, WriteFailure};
use orgsvc_domain::StoreError;

/// MongoDB's duplicate key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Whether a write failed because it would duplicate a unique key, whatever
/// shape the driver reports it in (write error, command error, bulk write).
pub(crate) fn is_duplicate_key(err: &Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(e) => e
            .write_errors
            .iter()
            .flatten()
            .any(|e| e.code == DUPLICATE_KEY),
        ErrorKind::BulkWrite(e) => e.write_errors.values().any(|e| e.code == DUPLICATE_KEY),
        _ => false,
    }
}

/// Whether an unordered `insert_many` failed only because some documents were
/// already there (which a resumed copy expects).
pub(crate) fn only_duplicate_keys(err: &Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::InsertMany(e) => {
            e.write_concern_error.is_none()
                && e.write_errors
                    .as_ref()
                    .is_some_and(|es| !es.is_empty() && es.iter().all(|e| e.code == DUPLICATE_KEY))
        }
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// MongoDB's "namespace exists" error code.
pub(crate) const NAMESPACE_EXISTS: i32 = 48;

/// The server's error code when a command was refused.
pub(crate) fn command_code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::Command(e) => Some(e.code),
        _ => None,
    }
}

/// A storage failure caused by `source`: [`StoreError::unavailable`] when
/// it is a driver error saying no server could be reached (no server
/// selectable within `serverSelectionTimeoutMS`, a connection error, DNS),
/// so clients are told to retry later instead of seeing an internal error.
pub(crate) fn store_error<E>(context: impl Into<String>, source: E) -> StoreError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let any: &dyn std::any::Any = &source;
    let unreachable = any.downcast_ref::<Error>().is_some_and(is_unreachable);
    if unreachable {
        StoreError::unavailable(context, source)
    } else {
        StoreError::new(context, source)
    }
}

/// Whether the driver could not reach a server at all.
fn is_unreachable(err: &Error) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, from_document};
    use mongodb::error::{CommandError, InsertManyError, WriteError};

    fn write_error(code: i32) -> Error {
        let we: WriteError = from_document(doc! { "code": code, "errmsg": "x" }).unwrap();
        Error::from(ErrorKind::Write(WriteFailure::WriteError(we)))
    }

    fn insert_many_error(codes: &[i32]) -> Error {
        let errors: Vec<_> = codes
            .iter()
            .enumerate()
            .map(|(i, code)| doc! { "index": i as i64, "code": code, "errmsg": "x" })
            .collect();
        let e: InsertManyError = from_document(doc! { "writeErrors": errors }).unwrap();
        Error::from(ErrorKind::InsertMany(e))
    }

    #[test]
    fn duplicate_key_is_recognised_in_write_command_and_bulk_errors() {
        assert!(is_duplicate_key(&write_error(11000)));
        assert!(!is_duplicate_key(&write_error(121)));
        let command: CommandError =
            from_document(doc! { "code": 11000, "codeName": "DuplicateKey", "errmsg": "x" })
                .unwrap();
        assert!(is_duplicate_key(&Error::from(ErrorKind::Command(command))));
        assert!(is_duplicate_key(&insert_many_error(&[121, 11000])));
        assert!(!is_duplicate_key(&insert_many_error(&[121])));
        assert!(!is_duplicate_key(&Error::custom("unrelated")));
    }

    #[test]
    fn a_copy_batch_tolerates_only_duplicate_key_errors() {
        assert!(only_duplicate_keys(&insert_many_error(&[11000, 11000])));
        assert!(!only_duplicate_keys(&insert_many_error(&[11000, 121])));
        assert!(!only_duplicate_keys(&insert_many_error(&[])));
        assert!(!only_duplicate_keys(&Error::custom("unrelated")));
    }
}
