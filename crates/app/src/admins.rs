//! The owner's organization's admins: add, list, get, change the role of,
//! remove.
//!
//! Every use case here takes an [`Owner`], which only
//! [`Owner::try_from`] makes: the role check is done once, by type.
//! Removing or demoting the last owner is refused (the store applies the
//! rule atomically; its plan is [`orgsvc_domain::plan_admin_change`]).

use orgsvc_domain::{Admin, AdminEmail, AdminId, AdminRole, AuditAction, NewAdmin, Password};

use crate::audit::{AuditEntry, RequestOrigin};
use crate::{AppError, Application};

/// An authenticated admin who is an owner of its organization.
#[derive(Clone, Debug)]
pub struct Owner(Admin);

impl TryFrom<Admin> for Owner {
    type Error = AppError;

    /// # Errors
    /// [`AppError::OwnerRequired`] for an `admin`.
    fn try_from(admin: Admin) -> Result<Self, AppError> {
        require_owner(&admin)?;
        Ok(Self(admin))
    }
}

impl Owner {
    /// The owner as an admin.
    pub fn admin(&self) -> &Admin {
        &self.0
    }
}

/// Fails with [`AppError::OwnerRequired`] unless `admin` is an owner.
pub(crate) fn require_owner(admin: &Admin) -> Result<(), AppError> {
    match admin.role {
        AdminRole::Owner => Ok(()),
        AdminRole::Admin => Err(AppError::OwnerRequired),
    }
}

/// A new admin, as an owner asks for it.
#[derive(Debug)]
pub struct AddAdmin {
    /// The login email (unique across organizations).
    pub email: AdminEmail,
    /// What the admin may do.
    pub role: AdminRole,
    /// The admin's password (hashed before it is stored).
    pub password: Password,
}

impl Application {
    /// Adds an admin to the owner's organization.
    ///
    /// # Errors
    /// [`AppError::EmailTaken`]; [`AppError::InvalidToken`] when the
    /// organization was deleted meanwhile; store and hashing failures.
    pub async fn add_admin(
        &self,
        origin: &RequestOrigin,
        owner: &Owner,
        command: AddAdmin,
    ) -> Result<Admin, AppError> {
        let owner = owner.admin();
        let password_hash = self.hasher.hash(&command.password).await?;
        let admin = self
            .store
            .add_admin(
                owner.organization_id,
                NewAdmin::new(command.email, command.role, password_hash),
            )
            .await?;
        tracing::info!(admin_id = %admin.id, role = admin.role.as_str(), "admin added");
        let entry = AuditEntry::by(owner, AuditAction::AdminAdded, admin.id.to_string());
        self.audit(origin, entry).await;
        Ok(admin)
    }

    /// Every admin of the owner's organization, oldest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn admins(&self, owner: &Owner) -> Result<Vec<Admin>, AppError> {
        Ok(self.store.admins_of(owner.admin().organization_id).await?)
    }

    /// The admin with this id, if it belongs to the owner's organization.
    ///
    /// # Errors
    /// [`AppError::AdminNotFound`] otherwise (never revealing another
    /// organization's admin); store failures.
    pub async fn admin(&self, owner: &Owner, id: AdminId) -> Result<Admin, AppError> {
        self.store
            .admin_by_id(id)
            .await?
            .filter(|admin| admin.organization_id == owner.admin().organization_id)
            .ok_or(AppError::AdminNotFound)
    }

    /// Gives an admin of the owner's organization `role`; setting the role
    /// it already has changes (and records) nothing.
    ///
    /// # Errors
    /// [`AppError::AdminNotFound`]; [`AppError::LastOwner`] when this would
    /// demote the last owner; store failures.
    pub async fn change_admin_role(
        &self,
        origin: &RequestOrigin,
        owner: &Owner,
        id: AdminId,
        role: AdminRole,
    ) -> Result<Admin, AppError> {
        let current = self.admin(owner, id).await?;
        if current.role == role {
            return Ok(current);
        }
        let owner = owner.admin();
        let admin = self
            .store
            .set_admin_role(owner.organization_id, id, role)
            .await?;
        tracing::info!(admin_id = %admin.id, role = admin.role.as_str(), "admin role changed");
        let entry = AuditEntry::by(owner, AuditAction::AdminRoleChanged, admin.id.to_string());
        self.audit(origin, entry).await;
        Ok(admin)
    }

    /// Removes an admin from the owner's organization; its tokens stop
    /// working at once.
    ///
    /// # Errors
    /// [`AppError::AdminNotFound`]; [`AppError::LastOwner`]; store failures.
    pub async fn remove_admin(
        &self,
        origin: &RequestOrigin,
        owner: &Owner,
        id: AdminId,
    ) -> Result<(), AppError> {
        let owner = owner.admin();
        self.store.remove_admin(owner.organization_id, id).await?;
        tracing::info!(admin_id = %id, "admin removed");
        let entry = AuditEntry::by(owner, AuditAction::AdminRemoved, id.to_string());
        self.audit(origin, entry).await;
        Ok(())
    }
}
