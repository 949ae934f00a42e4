//! Organizations: create, get, update (rename and the caller's
//! credentials), delete.
//!
//! Anyone may create an organization (its creator becomes its first owner)
//! and read one; renaming and deleting take an owner, while every admin may
//! change its own email and password. Each change is recorded in the audit
//! log; an email change also sends a notice to the former address.

use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{
    Admin, AdminEmail, AdminUpdate, AuditAction, NewOrganization, Organization, OrganizationName,
    Password,
};

use crate::admins::require_owner;
use crate::audit::{AuditEntry, RequestOrigin};
use crate::emails;
use crate::{AppError, Application, Owner};

/// A new organization with its first admin (its first owner).
#[derive(Debug)]
pub struct CreateOrganization {
    /// The organization's name.
    pub name: OrganizationName,
    /// The first admin's login email.
    pub email: AdminEmail,
    /// The first admin's password (hashed before it is stored).
    pub password: Password,
}

/// What `update` changes: the caller's organization's name (the current
/// name, for no rename) and, optionally, the caller's credentials.
#[derive(Debug)]
pub struct UpdateOrganization {
    /// The organization's name after the update.
    pub name: OrganizationName,
    /// A new login email for the caller.
    pub email: Option<AdminEmail>,
    /// A new password for the caller (revokes its earlier tokens).
    pub password: Option<Password>,
}

impl Application {
    /// Registers an organization, its first admin (an owner) and its empty
    /// tenant collection.
    ///
    /// # Errors
    /// [`AppError::OrganizationNameTaken`], [`AppError::EmailTaken`],
    /// [`AppError::OrganizationBusy`] (the name is being released by
    /// another operation); store and hashing failures.
    pub async fn create_organization(
        &self,
        origin: &RequestOrigin,
        command: CreateOrganization,
    ) -> Result<Organization, AppError> {
        let password_hash = self.hasher.hash(&command.password).await?;
        let organization = self
            .store
            .create_organization(NewOrganization::new(
                command.name,
                command.email,
                password_hash,
            ))
            .await?;
        tracing::info!(organization_id = %organization.id, "organization created");
        let entry = AuditEntry {
            organization: organization.id,
            actor: Some(organization.admin_id),
            operator: None,
            action: AuditAction::OrganizationCreated,
            target: organization.name.as_str().to_owned(),
        };
        self.audit(origin, entry).await;
        Ok(organization)
    }

    /// The organization with this name (compared by its canonical form).
    ///
    /// # Errors
    /// [`AppError::OrganizationNotFound`]; store failures.
    pub async fn organization(&self, name: &OrganizationName) -> Result<Organization, AppError> {
        self.store
            .organization_by_name(name)
            .await?
            .ok_or(AppError::OrganizationNotFound)
    }

    /// Renames the caller's organization when `command.name` differs from
    /// its name (in any way, a respelling included: owners only), then
    /// changes the caller's email and/or password. Answers the organization
    /// as it is afterwards.
    ///
    /// The rename is decided on the name read first: if another rename
    /// finishes meanwhile, this one is no longer what the caller asked for,
    /// so the store renames only from that name, atomically
    /// ([`orgsvc_domain::TenantStore::rename_organization_from`]). A failure
    /// after the rename leaves the rename done (and audited) and the
    /// credentials unchanged; the caller may repeat the request, which then
    /// only changes the credentials.
    ///
    /// # Errors
    /// [`AppError::OwnerRequired`] (a rename by an `admin`, checked before
    /// anything changes); [`AppError::EmailTaken`] (checked before the
    /// rename, and again by the store);
    /// [`AppError::OrganizationNameTaken`]; [`AppError::OperationInProgress`];
    /// [`AppError::InvalidToken`] when the organization or the caller no
    /// longer exists; store and hashing failures.
    pub async fn update_organization(
        &self,
        origin: &RequestOrigin,
        caller: &Admin,
        command: UpdateOrganization,
    ) -> Result<Organization, AppError> {
        let current = self
            .store
            .organization_by_id(caller.organization_id)
            .await?
            .ok_or(AppError::InvalidToken)?;
        let rename = command.name.as_str() != current.name.as_str();
        if rename {
            require_owner(caller)?;
        }
        let email = command.email.filter(|email| *email != caller.email);
        if let Some(email) = &email {
            let holder = self.store.admin_credentials_by_email(email).await?;
            if holder.is_some_and(|holder| holder.admin.id != caller.id) {
                return Err(AppError::EmailTaken);
            }
        }
        let password_hash = match &command.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let organization = if rename {
            let renamed = self
                .store
                .rename_organization_from(caller.organization_id, &current.name, &command.name)
                .await?;
            let entry = AuditEntry {
                organization: renamed.id,
                actor: Some(caller.id),
                operator: None,
                action: AuditAction::OrganizationRenamed,
                target: format!("{} -> {}", current.name.as_str(), renamed.name.as_str()),
            };
            self.audit(origin, entry).await;
            renamed
        } else {
            current
        };
        let update = AdminUpdate {
            email,
            password_hash,
        };
        if !update.is_empty() {
            let changed = changed_credentials(&update);
            let updated = self.store.update_admin(caller.id, update).await?;
            let entry = AuditEntry::by(
                caller,
                AuditAction::AdminCredentialsChanged,
                format!("{} ({changed})", caller.id),
            );
            self.audit(origin, entry).await;
            if updated.email != caller.email {
                self.notify_email_change(caller, &updated, &organization)
                    .await;
            }
        }
        tracing::info!(renamed = rename, "organization updated");
        Ok(organization)
    }

    /// Tells `before`'s address that the account's email is now `after`'s
    /// (the new address is unverified until its owner verifies it). The
    /// change is made, so a failure to store the notice is logged.
    async fn notify_email_change(
        &self,
        before: &Admin,
        after: &Admin,
        organization: &Organization,
    ) {
        let notice = emails::email_changed(
            before.email.clone(),
            &after.email,
            &organization.name,
            now_millis(),
        );
        if let Err(error) = self.store.enqueue_message(notice).await {
            tracing::error!(
                error = %orgsvc_domain::ErrorChain(&error),
                admin = %after.id,
                "could not store the email-change notice"
            );
        }
    }

    /// Deletes the owner's organization, its admins and its tenant
    /// collection; `name` must name that organization. Answers the deleted
    /// organization.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] when `name` names another organization
    /// (whether or not it exists: compared before any lookup by name);
    /// [`AppError::OperationInProgress`]; [`AppError::InvalidToken`] when
    /// the organization no longer exists; store failures.
    pub async fn delete_organization(
        &self,
        origin: &RequestOrigin,
        owner: &Owner,
        name: &OrganizationName,
    ) -> Result<Organization, AppError> {
        let owner = owner.admin();
        let own = self
            .store
            .organization_by_id(owner.organization_id)
            .await?
            .ok_or(AppError::InvalidToken)?;
        if own.name.canonical() != name.canonical() {
            return Err(AppError::Forbidden);
        }
        self.remove_organization(&own).await?;
        let entry = AuditEntry {
            organization: own.id,
            actor: Some(owner.id),
            operator: None,
            action: AuditAction::OrganizationDeleted,
            target: own.name.as_str().to_owned(),
        };
        self.audit(origin, entry).await;
        Ok(own)
    }
}

impl Application {
    /// Deletes `organization` with everything it holds: the one deletion
    /// path of owners (`delete_organization`) and operators
    /// (`operator_delete_organization`), whose crash safety is the store's
    /// ([`orgsvc_domain::TenantStore::delete_organization`]).
    pub(crate) async fn remove_organization(
        &self,
        organization: &Organization,
    ) -> Result<(), AppError> {
        self.store.delete_organization(organization.id).await?;
        tracing::info!(organization_id = %organization.id, "organization deleted");
        Ok(())
    }
}

/// Which credentials `update` changes, for the audit log (never their
/// values): `email`, `password` or `email, password`.
fn changed_credentials(update: &AdminUpdate) -> &'static str {
    match (update.email.is_some(), update.password_hash.is_some()) {
        (true, true) => "email, password",
        (true, false) => "email",
        _ => "password",
    }
}
