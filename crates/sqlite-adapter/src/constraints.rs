//! Which uniqueness rule a failed write broke.
//!
//! SQLite reports a broken UNIQUE (or PRIMARY KEY) constraint with an
//! extended error code and a message naming the columns, e.g.
//! `UNIQUE constraint failed: admins.email`.

use rusqlite::ffi;

/// A uniqueness rule of the master tables that callers are told about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unique {
    /// Organization names are unique by canonical form (and so is the tenant
    /// table derived from it).
    OrganizationName,
    /// Admin emails are unique across organizations.
    AdminEmail,
}

/// The rule `err` broke, if it is a uniqueness violation of one of them.
pub(crate) fn violated(err: &rusqlite::Error) -> Option<Unique> {
    let rusqlite::Error::SqliteFailure(failure, Some(message)) = err else {
        return None;
    };
    if !matches!(
        failure.extended_code,
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    ) {
        return None;
    }
    match message.strip_prefix("UNIQUE constraint failed: ")? {
        "organizations.canonical_name" | "organizations.table_name" => {
            Some(Unique::OrganizationName)
        }
        "admins.email" => Some(Unique::AdminEmail),
        _ => None,
    }
}
