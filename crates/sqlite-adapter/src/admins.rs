//! Admins: the first one is inserted with its organization, later changes are
//! single atomic statements. Adding and removing admins and changing their
//! roles (with the last-owner rule) is in [`crate::admin_roles`].

use chrono::{DateTime, Utc};
use orgsvc_domain::{
    Admin, AdminCredentials, AdminEmail, AdminId, AdminRole, AdminUpdate, CreateOrganizationError,
    NewAdmin, NewOwner, OrganizationId, PasswordHash, StoreError, UpdateAdminError,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::constraints::{self, Unique};
use crate::rows::{self, AdminRow, ADMIN_COLUMNS};

/// Inserts the first admin of organization `organization` (inside the
/// transaction creating it), an owner.
pub(crate) fn insert(
    connection: &Connection,
    organization: OrganizationId,
    owner: &NewOwner,
    now: DateTime<Utc>,
) -> Result<(), CreateOrganizationError> {
    let admin = owner.as_admin();
    insert_row(connection, organization, &admin, admin.role, now).map_err(|e| {
        match constraints::violated(&e) {
            Some(Unique::AdminEmail) => CreateOrganizationError::EmailTaken,
            _ => StoreError::new("inserting admin", e).into(),
        }
    })
}

/// Inserts an admin of `organization` with `role`, token version 0 and
/// `created_at == updated_at == now`; the caller maps a taken email.
pub(crate) fn insert_row(
    connection: &Connection,
    organization: OrganizationId,
    admin: &NewAdmin,
    role: AdminRole,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO admins (id, organization_id, email, password_hash, role, token_version, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6)",
        params![
            admin.id.to_string(),
            organization.to_string(),
            admin.email.as_str(),
            admin.password_hash.as_phc_str(),
            role.as_str(),
            rows::millis(now),
        ],
    )?;
    Ok(())
}

/// The organization's admins, oldest first (ties, within a millisecond, by
/// id).
pub(crate) fn of_organization(
    connection: &Connection,
    organization: OrganizationId,
) -> Result<Vec<Admin>, StoreError> {
    let sql = format!(
        "SELECT {ADMIN_COLUMNS} FROM admins WHERE organization_id = ?1 ORDER BY created_at, id"
    );
    connection
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_map([organization.to_string()], AdminRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| StoreError::new("listing an organization's admins", e))?
        .into_iter()
        .map(AdminRow::into_admin)
        .collect()
}

/// Replaces the password hash with `rehashed` if it still is `current`,
/// leaving the token version and `updated_at` alone; returns whether it did.
pub(crate) fn rehash(
    connection: &Connection,
    id: AdminId,
    current: &PasswordHash,
    rehashed: &PasswordHash,
) -> Result<bool, StoreError> {
    let changed = connection
        .execute(
            "UPDATE admins SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
            params![id.to_string(), current.as_phc_str(), rehashed.as_phc_str()],
        )
        .map_err(|e| StoreError::new("rehashing an admin's password", e))?;
    Ok(changed == 1)
}

/// The admin with this id.
pub(crate) fn by_id(connection: &Connection, id: AdminId) -> Result<Option<Admin>, StoreError> {
    find(connection, "id", &id.to_string())?
        .map(AdminRow::into_admin)
        .transpose()
}

/// The admin with this email, with its password hash.
pub(crate) fn credentials_by_email(
    connection: &Connection,
    email: &AdminEmail,
) -> Result<Option<AdminCredentials>, StoreError> {
    find(connection, "email", email.as_str())?
        .map(AdminRow::into_credentials)
        .transpose()
}

/// Applies `update`; a new password hash increments the token version.
pub(crate) fn update(
    connection: &Connection,
    id: AdminId,
    update: &AdminUpdate,
) -> Result<Admin, UpdateAdminError> {
    if update.is_empty() {
        return by_id(connection, id)?.ok_or(UpdateAdminError::NotFound);
    }
    let sql = format!(
        "UPDATE admins SET email_verified = email_verified AND coalesce(?2, email) = email, \
         email = coalesce(?2, email), \
         password_hash = coalesce(?3, password_hash), \
         token_version = token_version + (?3 IS NOT NULL), updated_at = ?4 \
         WHERE id = ?1 RETURNING {ADMIN_COLUMNS}"
    );
    connection
        .query_row(
            &sql,
            params![
                id.to_string(),
                update.email.as_ref().map(AdminEmail::as_str),
                update.password_hash.as_ref().map(|hash| hash.as_phc_str()),
                rows::millis(rows::now()),
            ],
            AdminRow::read,
        )
        .optional()
        .map_err(|e| match constraints::violated(&e) {
            Some(Unique::AdminEmail) => UpdateAdminError::EmailTaken,
            _ => StoreError::new("updating admin", e).into(),
        })?
        .ok_or(UpdateAdminError::NotFound)?
        .into_admin()
        .map_err(UpdateAdminError::from)
}

fn find(
    connection: &Connection,
    key_column: &'static str,
    key: &str,
) -> Result<Option<AdminRow>, StoreError> {
    let sql = format!("SELECT {ADMIN_COLUMNS} FROM admins WHERE {key_column} = ?1");
    connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([key], AdminRow::read).optional())
        .map_err(|e| StoreError::new(format!("reading admin by {key_column}"), e))
}
