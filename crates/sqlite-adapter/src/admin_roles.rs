//! An organization's admins and their roles: adding, removing, promoting and
//! demoting, under the rule that every organization keeps an owner.
//!
//! Each change is one immediate transaction on the writer connection, which
//! serializes all writes: the owner count it checks cannot change before it
//! commits, so two owners removing or demoting each other at once leave one
//! owner. The primary admin ([`orgsvc_domain::Organization::admin_id`]) is
//! handed over in the same transaction (`organizations.admin_id` is a
//! deferred foreign key: checked at commit, after the handover).

use orgsvc_domain::{
    plan_admin_change, AddAdminError, Admin, AdminChange, AdminChangePlan, AdminId, AdminRole,
    AdminStanding, ChangeAdminError, NewAdmin, OrganizationId, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::admins;
use crate::connection::{begin, commit};
use crate::constraints::{self, Unique};
use crate::records::corrupt;
use crate::rows;

/// Adds `admin` with its role to an existing organization.
pub(crate) fn add(
    connection: &mut Connection,
    organization: OrganizationId,
    admin: &NewAdmin,
) -> Result<Admin, AddAdminError> {
    const WHAT: &str = "adding an admin";
    let transaction = begin(connection, WHAT)?;
    let exists = transaction
        .query_row(
            "SELECT 1 FROM organizations WHERE id = ?1",
            [organization.to_string()],
            |_| Ok(()),
        )
        .optional()
        .map_err(|e| StoreError::new("reading the admin's organization", e))?;
    if exists.is_none() {
        return Err(AddAdminError::OrganizationNotFound);
    }
    let now = rows::now();
    admins::insert_row(&transaction, organization, admin, admin.role, now).map_err(|e| {
        match constraints::violated(&e) {
            Some(Unique::AdminEmail) => AddAdminError::EmailTaken,
            _ => StoreError::new("inserting admin", e).into(),
        }
    })?;
    commit(transaction, WHAT)?;
    Ok(Admin {
        id: admin.id,
        organization_id: organization,
        email: admin.email.clone(),
        role: admin.role,
        token_version: 0,
        email_verified: false,
        created_at: now,
        updated_at: now,
    })
}

/// Removes the admin from its organization, unless it is the only owner;
/// hands the primary admin over if it was the primary one (the rule:
/// [`plan_admin_change`]).
pub(crate) fn remove(
    connection: &mut Connection,
    organization: OrganizationId,
    admin: AdminId,
) -> Result<(), ChangeAdminError> {
    const WHAT: &str = "removing an admin";
    let transaction = begin(connection, WHAT)?;
    let primary = primary_of(&transaction, organization)?;
    let plan = plan_admin_change(
        &standings(&transaction, organization)?,
        primary,
        admin,
        AdminChange::Remove,
    )?;
    if let AdminChangePlan::Apply { primary: next } = plan {
        transaction
            .execute("DELETE FROM admins WHERE id = ?1", [admin.to_string()])
            .map_err(|e| StoreError::new("deleting admin", e))?;
        set_primary(&transaction, organization, primary, next)?;
    }
    commit(transaction, WHAT)?;
    Ok(())
}

/// Gives the admin `role`, unless that demotes the only owner; demoting the
/// primary admin hands it over (the rule: [`plan_admin_change`]).
/// `updated_at` (email and password changes only) stays.
pub(crate) fn set_role(
    connection: &mut Connection,
    organization: OrganizationId,
    admin: AdminId,
    role: AdminRole,
) -> Result<Admin, ChangeAdminError> {
    const WHAT: &str = "changing an admin's role";
    let transaction = begin(connection, WHAT)?;
    let primary = primary_of(&transaction, organization)?;
    let plan = plan_admin_change(
        &standings(&transaction, organization)?,
        primary,
        admin,
        AdminChange::SetRole(role),
    )?;
    if let AdminChangePlan::Apply { primary: next } = plan {
        transaction
            .execute(
                "UPDATE admins SET role = ?2 WHERE id = ?1",
                params![admin.to_string(), role.as_str()],
            )
            .map_err(|e| StoreError::new("updating admin role", e))?;
        set_primary(&transaction, organization, primary, next)?;
    }
    let changed = admins::by_id(&transaction, admin)?
        .ok_or_else(|| StoreError::msg("an admin vanished while its role changed"))?;
    commit(transaction, WHAT)?;
    Ok(changed)
}

/// The organization's primary admin; `NotFound` when the organization does
/// not exist (so neither does the admin in it).
fn primary_of(
    transaction: &Transaction<'_>,
    organization: OrganizationId,
) -> Result<AdminId, ChangeAdminError> {
    let stored: String = transaction
        .query_row(
            "SELECT admin_id FROM organizations WHERE id = ?1",
            [organization.to_string()],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| StoreError::new("reading the primary admin", e))?
        .ok_or(ChangeAdminError::NotFound)?;
    stored
        .parse()
        .map_err(|e| corrupt("primary admin id", e).into())
}

/// The organization's admins and their roles, longest-standing first.
fn standings(
    transaction: &Transaction<'_>,
    organization: OrganizationId,
) -> Result<Vec<AdminStanding>, StoreError> {
    const WHAT: &str = "reading an organization's admins";
    let mut statement = transaction
        .prepare("SELECT id, role FROM admins WHERE organization_id = ?1 ORDER BY created_at, id")
        .map_err(|e| StoreError::new(WHAT, e))?;
    let rows = statement
        .query_map([organization.to_string()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(|e| StoreError::new(WHAT, e))?;
    let mut standings = Vec::new();
    for row in rows {
        let (id, role) = row.map_err(|e| StoreError::new(WHAT, e))?;
        standings.push(AdminStanding {
            id: id.parse().map_err(|e| corrupt("admin id", e))?,
            role: AdminRole::parse(&role).ok_or_else(|| {
                StoreError::msg(format!(
                    "corrupt record: invalid stored admin role {role:?}"
                ))
            })?,
        });
    }
    Ok(standings)
}

/// Records `next` as the organization's primary admin when it is not
/// `current` already.
fn set_primary(
    transaction: &Transaction<'_>,
    organization: OrganizationId,
    current: AdminId,
    next: AdminId,
) -> Result<(), StoreError> {
    if next == current {
        return Ok(());
    }
    transaction
        .execute(
            "UPDATE organizations SET admin_id = ?2 WHERE id = ?1",
            params![organization.to_string(), next.to_string()],
        )
        .map_err(|e| StoreError::new("handing over the primary admin", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use orgsvc_domain::AdminEmail;

    use super::*;
    use crate::migrations::{self, MIGRATIONS};

    /// A file migrated by the previous release (every migration before 0004)
    /// holding one organization and its creator gets the owner role from
    /// 0004, and keeps the admin and its primary-admin link.
    #[test]
    fn migration_0004_makes_the_existing_admins_owners() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .unwrap();
        let previous: Vec<_> = MIGRATIONS
            .iter()
            .copied()
            .filter(|m| m.version < 4)
            .collect();
        migrations::apply(&mut connection, &previous).unwrap();
        let (organization, admin) = (OrganizationId::new(), AdminId::new());
        connection
            .execute_batch(&format!(
                "BEGIN;
                 INSERT INTO organizations (id, display_name, canonical_name, database_name,
                     table_name, admin_id, created_at, updated_at)
                     VALUES ('{organization}', 'Acme', 'acme', 'main', 'org_acme', '{admin}',
                             1700000000000, 1700000000000);
                 INSERT INTO admins (id, organization_id, email, password_hash, token_version,
                     created_at, updated_at)
                     VALUES ('{admin}', '{organization}', 'owner@acme.example', 'hash', 2,
                             1700000000000, 1700000000001);
                 COMMIT;"
            ))
            .unwrap();

        let through_0004: Vec<_> = MIGRATIONS
            .iter()
            .copied()
            .filter(|m| m.version <= 4)
            .collect();
        let applied = migrations::apply(&mut connection, &through_0004).unwrap();

        assert_eq!(applied, ["0004_admin_security"]);
        // The current code reads the current schema; 0006 leaves the
        // existing admin unverified.
        migrations::apply(&mut connection, MIGRATIONS).unwrap();
        let found = admins::by_id(&connection, admin).unwrap().unwrap();
        assert!(!found.email_verified);
        assert_eq!(found.role, AdminRole::Owner);
        assert_eq!(
            found.email,
            AdminEmail::parse("owner@acme.example").unwrap()
        );
        assert_eq!(found.token_version, 2);
        assert_eq!(found.updated_at.timestamp_millis(), 1_700_000_000_001);
        let err = remove(&mut connection, organization, admin).unwrap_err();
        assert!(matches!(err, ChangeAdminError::LastOwner), "{err:?}");
    }
}
