//! The organization side of the operator API (issue #17): every
//! organization listed and searched, one organization with its usage,
//! suspension and resumption, deletion without an owner, and the audit log
//! across organizations. Every use case takes the [`Operator`] whose key
//! authenticated the call; changes are recorded in the organization's audit
//! log under the key's name.

use chrono::{DateTime, Utc};
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{
    AuditAction, AuditFilter, AuditPage, OperatorScope, Organization, OrganizationId,
    OrganizationPage, OrganizationQuery, OrganizationUsage, PageSize, StateChange, Suspension,
};

use crate::audit::RequestOrigin;
use crate::operators::Operator;
use crate::{AppError, Application};

/// One organization as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganizationDetails {
    /// The organization, with its state.
    pub organization: Organization,
    /// What it holds, counted when asked.
    pub usage: OrganizationUsage,
    /// When one of its admins last logged in successfully (its newest
    /// `login.succeeded` audit entry); `None` when none did, or the entry
    /// was purged.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl Application {
    /// One page of every organization (see [`OrganizationQuery`] for the
    /// order and the search). Any scope.
    ///
    /// # Errors
    /// Store failures.
    pub async fn operator_organizations(
        &self,
        _operator: &Operator,
        query: &OrganizationQuery,
    ) -> Result<OrganizationPage, AppError> {
        Ok(self.store.list_organizations(query).await?)
    }

    /// One organization with its usage. Any scope.
    ///
    /// # Errors
    /// [`AppError::OrganizationNotFound`]; store failures.
    pub async fn operator_organization(
        &self,
        _operator: &Operator,
        id: OrganizationId,
    ) -> Result<OrganizationDetails, AppError> {
        let organization = self
            .store
            .organization_by_id(id)
            .await?
            .ok_or(AppError::OrganizationNotFound)?;
        let usage = self
            .store
            .organization_usage(id, now_millis())
            .await?
            .ok_or(AppError::OrganizationNotFound)?;
        let logins = self
            .store
            .all_audit_events(&AuditFilter {
                organization: Some(id),
                action: Some(AuditAction::LoginSucceeded),
                limit: PageSize::parse(1).map_err(|e| AppError::Unexpected(Box::new(e)))?,
                before: None,
            })
            .await?;
        Ok(OrganizationDetails {
            organization,
            usage,
            last_login_at: logins.events.first().map(|event| event.at),
        })
    }

    /// Suspends an organization with `suspension` (its reason and time; see
    /// [`orgsvc_domain::OrganizationState`] for what that stops) and answers
    /// it as it is then. Idempotent: an organization already suspended keeps
    /// its first reason and time, and nothing is recorded again. Write scope.
    ///
    /// # Errors
    /// [`AppError::OperatorScopeInsufficient`] for a read key,
    /// [`AppError::OrganizationNotFound`]; store failures.
    pub async fn suspend_organization(
        &self,
        origin: &RequestOrigin,
        operator: &Operator,
        id: OrganizationId,
        suspension: Suspension,
    ) -> Result<Organization, AppError> {
        operator.require(OperatorScope::Write)?;
        let change = StateChange::Suspend(suspension.clone());
        let organization = self.store.change_organization_state(id, &change).await?;
        if organization.state.suspension() == Some(&suspension) {
            tracing::info!(organization_id = %id, "organization suspended");
            self.audit_operator_action(
                origin,
                operator,
                id,
                AuditAction::OrganizationSuspended,
                organization.name.as_str(),
            )
            .await;
        }
        Ok(organization)
    }

    /// Resumes a suspended organization and answers it as it is then.
    /// Idempotent: resuming an active organization changes and records
    /// nothing. Write scope.
    ///
    /// # Errors
    /// [`AppError::OperatorScopeInsufficient`],
    /// [`AppError::OrganizationNotFound`]; store failures.
    pub async fn resume_organization(
        &self,
        origin: &RequestOrigin,
        operator: &Operator,
        id: OrganizationId,
    ) -> Result<Organization, AppError> {
        operator.require(OperatorScope::Write)?;
        let before = self
            .store
            .organization_by_id(id)
            .await?
            .ok_or(AppError::OrganizationNotFound)?;
        let organization = self
            .store
            .change_organization_state(id, &StateChange::Resume)
            .await?;
        if before.state.is_suspended() && !organization.state.is_suspended() {
            tracing::info!(organization_id = %id, "organization resumed");
            self.audit_operator_action(
                origin,
                operator,
                id,
                AuditAction::OrganizationResumed,
                organization.name.as_str(),
            )
            .await;
        }
        Ok(organization)
    }

    /// Deletes an organization as `DELETE /org/delete` does (the same
    /// store operation, with its crash safety), without an owner, and
    /// answers it as it was. Suspended organizations may be deleted.
    /// Write scope.
    ///
    /// # Errors
    /// [`AppError::OperatorScopeInsufficient`],
    /// [`AppError::OrganizationNotFound`],
    /// [`AppError::OperationInProgress`]; store failures.
    pub async fn operator_delete_organization(
        &self,
        origin: &RequestOrigin,
        operator: &Operator,
        id: OrganizationId,
    ) -> Result<Organization, AppError> {
        operator.require(OperatorScope::Write)?;
        let organization = self
            .store
            .organization_by_id(id)
            .await?
            .ok_or(AppError::OrganizationNotFound)?;
        self.remove_organization(&organization).await?;
        self.audit_operator_action(
            origin,
            operator,
            id,
            AuditAction::OrganizationDeleted,
            organization.name.as_str(),
        )
        .await;
        Ok(organization)
    }

    /// One page of every organization's audit log, newest first. Any scope.
    ///
    /// # Errors
    /// Store failures.
    pub async fn operator_audit_log(
        &self,
        _operator: &Operator,
        filter: &AuditFilter,
    ) -> Result<AuditPage, AppError> {
        Ok(self.store.all_audit_events(filter).await?)
    }
}
