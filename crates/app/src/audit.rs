//! The audit log: recording what a request did (who, what, to what, when,
//! from where), and reading an organization's log.

use std::net::IpAddr;

use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{
    Admin, AdminId, AuditAction, AuditEvent, AuditEventId, AuditPage, AuditQuery, OperatorKeyName,
    OrganizationId,
};

use crate::{AppError, Application, Owner};

/// Where a request comes from: recorded with every audit event it causes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The request's id (as answered in `x-request-id`).
    pub request_id: Option<String>,
    /// The client's address (after trusted proxies).
    pub client_ip: Option<IpAddr>,
}

/// One thing to record in the audit log.
#[derive(Clone, Debug)]
pub(crate) struct AuditEntry {
    /// The organization it concerns.
    pub organization: OrganizationId,
    /// The signed-in admin who acted, if any.
    pub actor: Option<AdminId>,
    /// The operator key that acted, if any.
    pub operator: Option<OperatorKeyName>,
    /// What happened.
    pub action: AuditAction,
    /// What it happened to (an admin id, an organization name).
    pub target: String,
}

impl AuditEntry {
    /// `action` on `target`, done by the signed-in `actor` in its own
    /// organization.
    pub fn by(actor: &Admin, action: AuditAction, target: impl Into<String>) -> Self {
        Self {
            organization: actor.organization_id,
            actor: Some(actor.id),
            operator: None,
            action,
            target: target.into(),
        }
    }

    /// `action` about `admin` (the target), with nobody signed in.
    pub fn about(action: AuditAction, admin: &Admin) -> Self {
        Self {
            organization: admin.organization_id,
            actor: None,
            operator: None,
            action,
            target: admin.id.to_string(),
        }
    }
}

impl Application {
    /// Records `entry` as done now by the request from `origin`.
    ///
    /// The change it describes has already happened, so a failure to record
    /// is logged (with the entry) rather than failing the use case.
    pub(crate) async fn audit(&self, origin: &RequestOrigin, entry: AuditEntry) {
        let event = AuditEvent {
            id: AuditEventId::new(),
            organization_id: entry.organization,
            actor: entry.actor,
            operator: entry.operator,
            action: entry.action,
            target: entry.target,
            at: now_millis(),
            request_id: origin.request_id.clone(),
            client_ip: origin.client_ip.map(|ip| ip.to_string()),
        };
        if let Err(error) = self.store.record(event.clone()).await {
            tracing::error!(
                error = %error,
                organization = %event.organization_id,
                action = event.action.as_str(),
                operator = event.operator.as_ref().map(|name| name.as_str()),
                target = %event.target,
                "could not record an audit event"
            );
        }
    }

    /// [`Application::audit`] without delaying the caller (a spawned task).
    pub(crate) fn audit_in_background(&self, origin: &RequestOrigin, entry: AuditEntry) {
        let (app, origin) = (self.clone(), origin.clone());
        tokio::spawn(async move { app.audit(&origin, entry).await });
    }

    /// One page of the owner's organization's audit log, newest first.
    ///
    /// # Errors
    /// [`AppError::StoreUnavailable`] or [`AppError::Unexpected`] from the store.
    pub async fn audit_log(&self, owner: &Owner, query: AuditQuery) -> Result<AuditPage, AppError> {
        Ok(self
            .store
            .audit_events(owner.admin().organization_id, query)
            .await?)
    }
}
