//! The last-owner rule and the succession of the primary admin: what
//! removing an admin or changing its role does to its organization.
//!
//! Every organization keeps at least one owner, and its primary admin
//! ([`Organization::admin_id`](crate::Organization::admin_id)) is always an
//! owner: when the primary stops being an owner (removed or demoted), the
//! longest-standing remaining owner becomes primary. The stores apply the
//! plan atomically, each its own way (a transaction, a compare-and-swap on
//! the organization record).

use crate::errors::ChangeAdminError;
use crate::ids::AdminId;
use crate::model::AdminRole;

/// What to do with an admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminChange {
    /// Remove it from its organization.
    Remove,
    /// Give it this role.
    SetRole(AdminRole),
}

impl AdminChange {
    /// The role the admin ends up with; `None` for a removal.
    pub fn new_role(self) -> Option<AdminRole> {
        match self {
            Self::Remove => None,
            Self::SetRole(role) => Some(role),
        }
    }
}

/// An admin of the organization, as the rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminStanding {
    /// The admin.
    pub id: AdminId,
    /// Its role now.
    pub role: AdminRole,
}

/// What a change comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminChangePlan {
    /// The admin already has the requested role: nothing to write.
    Unchanged,
    /// Apply the change; `primary` is the organization's primary admin
    /// afterwards (the same one unless the change demotes or removes it).
    Apply {
        /// The primary admin after the change.
        primary: AdminId,
    },
}

/// Plans `change` of admin `target` among the organization's `admins`,
/// listed longest-standing first (by creation time, then id), whose primary
/// admin is `primary`.
///
/// # Errors
/// `NotFound` when `target` is not among `admins`; `LastOwner` when the
/// change would leave no owner.
pub fn plan_admin_change(
    admins: &[AdminStanding],
    primary: AdminId,
    target: AdminId,
    change: AdminChange,
) -> Result<AdminChangePlan, ChangeAdminError> {
    let current = admins
        .iter()
        .find(|admin| admin.id == target)
        .ok_or(ChangeAdminError::NotFound)?;
    let new_role = change.new_role();
    if new_role == Some(current.role) {
        return Ok(AdminChangePlan::Unchanged);
    }
    if new_role == Some(AdminRole::Owner) {
        return Ok(AdminChangePlan::Apply { primary });
    }
    let successor = admins
        .iter()
        .find(|admin| admin.role == AdminRole::Owner && admin.id != target);
    if current.role == AdminRole::Owner && successor.is_none() {
        return Err(ChangeAdminError::LastOwner);
    }
    let primary = if primary == target {
        // The primary is an owner, so the check above found a successor.
        successor.ok_or(ChangeAdminError::LastOwner)?.id
    } else {
        primary
    };
    Ok(AdminChangePlan::Apply { primary })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn organization(roles: &[AdminRole]) -> Vec<AdminStanding> {
        roles
            .iter()
            .map(|&role| AdminStanding {
                id: AdminId::new(),
                role,
            })
            .collect()
    }

    use AdminRole::{Admin, Owner};

    #[test]
    fn the_only_owner_is_neither_removed_nor_demoted() {
        let admins = organization(&[Owner, Admin]);
        let owner = admins[0].id;
        for change in [AdminChange::Remove, AdminChange::SetRole(Admin)] {
            assert!(matches!(
                plan_admin_change(&admins, owner, owner, change),
                Err(ChangeAdminError::LastOwner)
            ));
        }
    }

    #[test]
    fn the_primary_passes_to_the_longest_standing_other_owner() {
        let admins = organization(&[Owner, Admin, Owner, Owner]);
        let primary = admins[0].id;
        for change in [AdminChange::Remove, AdminChange::SetRole(Admin)] {
            assert_eq!(
                plan_admin_change(&admins, primary, primary, change).unwrap(),
                AdminChangePlan::Apply {
                    primary: admins[2].id
                }
            );
        }
    }

    #[test]
    fn another_owner_leaving_keeps_the_primary() {
        let admins = organization(&[Owner, Owner, Admin]);
        let primary = admins[0].id;
        assert_eq!(
            plan_admin_change(&admins, primary, admins[1].id, AdminChange::Remove).unwrap(),
            AdminChangePlan::Apply { primary }
        );
        // Admins (not owners) leave freely, even when they are the only ones.
        assert_eq!(
            plan_admin_change(&admins, primary, admins[2].id, AdminChange::Remove).unwrap(),
            AdminChangePlan::Apply { primary }
        );
    }

    #[test]
    fn promoting_keeps_the_primary_and_a_role_already_held_changes_nothing() {
        let admins = organization(&[Owner, Admin]);
        let primary = admins[0].id;
        assert_eq!(
            plan_admin_change(&admins, primary, admins[1].id, AdminChange::SetRole(Owner)).unwrap(),
            AdminChangePlan::Apply { primary }
        );
        assert_eq!(
            plan_admin_change(&admins, primary, admins[0].id, AdminChange::SetRole(Owner)).unwrap(),
            AdminChangePlan::Unchanged
        );
    }

    #[test]
    fn an_admin_of_another_organization_is_not_found() {
        let admins = organization(&[Owner]);
        assert!(matches!(
            plan_admin_change(&admins, admins[0].id, AdminId::new(), AdminChange::Remove),
            Err(ChangeAdminError::NotFound)
        ));
    }
}
