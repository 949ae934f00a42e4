//! Stored rows and their conversion to and from domain values.
//!
//! Ids are stored as hyphenated UUID text, timestamps as milliseconds since
//! the Unix epoch, so what a write returns equals what is read back.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use orgsvc_domain::{
    Admin, AdminCredentials, AdminEmail, CollectionName, DocumentBody, Organization,
    OrganizationName, OrganizationState, PasswordHash, StoreError, Suspension, TenantDocument,
    TenantLocation,
};
use rusqlite::Row;

/// The columns [`OrganizationRow::read`] expects, in order.
pub(crate) const ORGANIZATION_COLUMNS: &str =
    "id, display_name, database_name, table_name, admin_id, created_at, updated_at, \
     suspended_at, suspended_reason";

/// The columns [`AdminRow::read`] expects, in order.
pub(crate) const ADMIN_COLUMNS: &str =
    "id, organization_id, email, token_version, created_at, updated_at, password_hash, role, \
     email_verified";

/// The current time, truncated to what the store keeps (milliseconds).
pub(crate) fn now() -> DateTime<Utc> {
    orgsvc_domain::clock::now_millis()
}

/// A timestamp as stored (milliseconds since the epoch; anything finer is
/// dropped).
pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The first stored timestamp at or after `at`: [`millis`] rounded up, so
/// `stored < millis_ceil(at)` is exactly `stored < at` for a bound finer
/// than a millisecond (`stored > millis(at)` is already exact).
pub(crate) fn millis_ceil(at: DateTime<Utc>) -> i64 {
    let floor = at.timestamp_millis();
    if at.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        floor
    } else {
        floor.saturating_add(1)
    }
}

/// An `organizations` row, as read.
pub(crate) struct OrganizationRow {
    id: String,
    display_name: String,
    database_name: String,
    table_name: String,
    admin_id: String,
    created_at: i64,
    updated_at: i64,
    suspended_at: Option<i64>,
    suspended_reason: Option<String>,
}

impl OrganizationRow {
    /// Reads a row selected with [`ORGANIZATION_COLUMNS`].
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            display_name: row.get(1)?,
            database_name: row.get(2)?,
            table_name: row.get(3)?,
            admin_id: row.get(4)?,
            created_at: row.get(5)?,
            updated_at: row.get(6)?,
            suspended_at: row.get(7)?,
            suspended_reason: row.get(8)?,
        })
    }

    /// The organization this row stores.
    pub(crate) fn into_organization(self) -> Result<Organization, StoreError> {
        Ok(Organization {
            id: parse_id(&self.id, "organization id")?,
            name: OrganizationName::parse(&self.display_name)
                .map_err(|e| corrupt("organization name", e))?,
            location: TenantLocation {
                database: self.database_name,
                collection: CollectionName::parse(&self.table_name)
                    .map_err(|e| corrupt("tenant table name", e))?,
                layout: orgsvc_domain::TenantLayout::Shared,
            },
            admin_id: parse_id(&self.admin_id, "organization's admin id")?,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
            state: match (self.suspended_at, self.suspended_reason) {
                (Some(at), Some(reason)) => OrganizationState::Suspended(Suspension {
                    reason,
                    at: timestamp(at)?,
                }),
                _ => OrganizationState::Active,
            },
        })
    }
}

/// An `admins` row, as read.
pub(crate) struct AdminRow {
    id: String,
    organization_id: String,
    email: String,
    token_version: i64,
    created_at: i64,
    updated_at: i64,
    password_hash: String,
    role: String,
    email_verified: bool,
}

impl AdminRow {
    /// Reads a row selected with [`ADMIN_COLUMNS`].
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            organization_id: row.get(1)?,
            email: row.get(2)?,
            token_version: row.get(3)?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
            password_hash: row.get(6)?,
            role: row.get(7)?,
            email_verified: row.get(8)?,
        })
    }

    /// The admin this row stores, without the password hash.
    pub(crate) fn into_admin(self) -> Result<Admin, StoreError> {
        self.into_credentials().map(|credentials| credentials.admin)
    }

    /// The admin this row stores, with the password hash.
    pub(crate) fn into_credentials(self) -> Result<AdminCredentials, StoreError> {
        Ok(AdminCredentials {
            admin: Admin {
                id: parse_id(&self.id, "admin id")?,
                organization_id: parse_id(&self.organization_id, "admin's organization id")?,
                email: AdminEmail::parse(&self.email).map_err(|e| corrupt("admin email", e))?,
                role: orgsvc_domain::AdminRole::parse(&self.role).ok_or_else(|| {
                    StoreError::msg(format!(
                        "corrupt record: invalid stored admin role {:?}",
                        self.role
                    ))
                })?,
                token_version: u32::try_from(self.token_version)
                    .map_err(|e| corrupt("admin token version", e))?,
                email_verified: self.email_verified,
                created_at: timestamp(self.created_at)?,
                updated_at: timestamp(self.updated_at)?,
            },
            password_hash: PasswordHash::from_phc_string(self.password_hash),
        })
    }
}

/// The columns [`DocumentRow::read`] expects, in order.
pub(crate) const DOCUMENT_COLUMNS: &str = "id, doc, revision, created_at, updated_at";

/// A tenant table row, as read.
pub(crate) struct DocumentRow {
    id: String,
    doc: String,
    revision: i64,
    created_at: i64,
    updated_at: i64,
}

impl DocumentRow {
    /// Reads a row selected with [`DOCUMENT_COLUMNS`].
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            doc: row.get(1)?,
            revision: row.get(2)?,
            created_at: row.get(3)?,
            updated_at: row.get(4)?,
        })
    }

    /// The document this row stores.
    pub(crate) fn into_document(self) -> Result<TenantDocument, StoreError> {
        Ok(TenantDocument {
            id: parse_id(&self.id, "document id")?,
            // The text as stored (checked when it was written), not parsed
            // again: the API writes it out as it is.
            body: DocumentBody::from_stored_json(self.doc)
                .map_err(|e| corrupt("document body", e))?,
            revision: revision(self.revision)?,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
        })
    }
}

/// A stored document revision.
pub(crate) fn revision(stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored)
        .ok()
        .filter(|&revision| revision >= 1)
        .ok_or_else(|| {
            StoreError::msg(format!(
                "corrupt record: document revision {stored} is not positive"
            ))
        })
}

/// A stored timestamp.
pub(crate) fn timestamp(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        StoreError::msg(format!(
            "corrupt record: timestamp {millis} is out of range"
        ))
    })
}

fn parse_id<T>(raw: &str, what: &str) -> Result<T, StoreError>
where
    T: FromStr<Err = uuid::Error>,
{
    raw.parse().map_err(|e| corrupt(what, e))
}

fn corrupt(what: &str, cause: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::new(format!("corrupt record: invalid stored {what}"), cause)
}
