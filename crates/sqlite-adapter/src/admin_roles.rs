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
    AddAdminError, Admin, AdminId, AdminRole, ChangeAdminError, NewAdmin, OrganizationId,
    StoreError,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::admins;
use crate::connection::{begin, commit};
use crate::constraints::{self, Unique};
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
        created_at: now,
        updated_at: now,
    })
}

/// Removes the admin from its organization, unless it is the only owner;
/// hands the primary admin over if it was the primary one.
pub(crate) fn remove(
    connection: &mut Connection,
    organization: OrganizationId,
    admin: AdminId,
) -> Result<(), ChangeAdminError> {
    const WHAT: &str = "removing an admin";
    let transaction = begin(connection, WHAT)?;
    if role_of(&transaction, organization, admin)? == AdminRole::Owner {
        refuse_last_owner(&transaction, organization)?;
    }
    transaction
        .execute("DELETE FROM admins WHERE id = ?1", [admin.to_string()])
        .map_err(|e| StoreError::new("deleting admin", e))?;
    hand_over_primary(&transaction, organization, admin)?;
    commit(transaction, WHAT)?;
    Ok(())
}

/// Gives the admin `role`, unless that demotes the only owner; demoting the
/// primary admin hands it over. `updated_at` (email and password changes
/// only) stays.
pub(crate) fn set_role(
    connection: &mut Connection,
    organization: OrganizationId,
    admin: AdminId,
    role: AdminRole,
) -> Result<Admin, ChangeAdminError> {
    const WHAT: &str = "changing an admin's role";
    let transaction = begin(connection, WHAT)?;
    let current = role_of(&transaction, organization, admin)?;
    if current != role {
        if current == AdminRole::Owner {
            refuse_last_owner(&transaction, organization)?;
        }
        transaction
            .execute(
                "UPDATE admins SET role = ?2 WHERE id = ?1",
                params![admin.to_string(), role.as_str()],
            )
            .map_err(|e| StoreError::new("updating admin role", e))?;
        if role != AdminRole::Owner {
            hand_over_primary(&transaction, organization, admin)?;
        }
    }
    let changed = admins::by_id(&transaction, admin)?
        .ok_or_else(|| StoreError::msg("an admin vanished while its role changed"))?;
    commit(transaction, WHAT)?;
    Ok(changed)
}

/// The role of the organization's admin with this id.
fn role_of(
    transaction: &Transaction<'_>,
    organization: OrganizationId,
    admin: AdminId,
) -> Result<AdminRole, ChangeAdminError> {
    let stored: String = transaction
        .query_row(
            "SELECT role FROM admins WHERE id = ?1 AND organization_id = ?2",
            [admin.to_string(), organization.to_string()],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| StoreError::new("reading admin role", e))?
        .ok_or(ChangeAdminError::NotFound)?;
    AdminRole::parse(&stored).ok_or_else(|| {
        StoreError::msg(format!(
            "corrupt record: invalid stored admin role {stored:?}"
        ))
        .into()
    })
}

/// `LastOwner` unless the organization has another owner besides the one
/// about to be removed or demoted.
fn refuse_last_owner(
    transaction: &Transaction<'_>,
    organization: OrganizationId,
) -> Result<(), ChangeAdminError> {
    let owners: i64 = transaction
        .query_row(
            "SELECT count(*) FROM admins WHERE organization_id = ?1 AND role = ?2",
            [
                organization.to_string(),
                AdminRole::Owner.as_str().to_owned(),
            ],
            |row| row.get(0),
        )
        .map_err(|e| StoreError::new("counting an organization's owners", e))?;
    if owners <= 1 {
        return Err(ChangeAdminError::LastOwner);
    }
    Ok(())
}

/// If `former` is the organization's primary admin, makes the
/// longest-standing remaining owner primary instead.
fn hand_over_primary(
    transaction: &Transaction<'_>,
    organization: OrganizationId,
    former: AdminId,
) -> Result<(), StoreError> {
    transaction
        .execute(
            "UPDATE organizations SET admin_id = (\
                 SELECT id FROM admins WHERE organization_id = ?1 AND role = ?3 \
                 ORDER BY created_at, id LIMIT 1) \
             WHERE id = ?1 AND admin_id = ?2",
            params![
                organization.to_string(),
                former.to_string(),
                AdminRole::Owner.as_str()
            ],
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

        let applied = migrations::apply(&mut connection, MIGRATIONS).unwrap();

        assert_eq!(applied, ["0004_admin_security"]);
        let found = admins::by_id(&connection, admin).unwrap().unwrap();
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
