//! The audit log: `audit_events`, one record per entry, as
//! `{_id: <ObjectId>, id: <event id>, organization_id, actor?, operator?, action,
//! target, at, request_id?, client_ip?}`.
//!
//! Pages are read newest first through the unique index
//! `{organization_id: 1, id: -1}` (event ids are UUIDv7 strings, whose order
//! is their time order), continuing below the `before` id, so entries
//! recorded while a client pages through land on earlier pages, never twice.
//! The id is a field of its own rather than `_id` so that the index does not
//! need `_id` inside a compound key; the unique index also makes recording
//! the same entry twice (a retry) a no-op. Retention purges use
//! `{action: 1, at: 1}` to find the `organization.deleted` entries.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{self, doc};
use mongodb::Collection;
use orgsvc_domain::{
    AuditAction, AuditEvent, AuditFilter, AuditLog, AuditPage, AuditQuery, OperatorKeyName,
    OrganizationId, StoreError,
};
use serde::{Deserialize, Serialize};

use crate::errors::is_duplicate_key;
use crate::errors::store_error;
use crate::records::{parse_id, to_bson_time, to_chrono};
use crate::store::MongoStore;

/// Audit log entries.
pub(crate) const AUDIT_EVENTS: &str = "audit_events";

/// An audit log record (its `_id` is the server's, never read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct AuditDoc {
    id: String,
    organization_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operator: Option<String>,
    action: String,
    target: String,
    at: bson::DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
}

impl AuditDoc {
    fn new(event: &AuditEvent) -> Self {
        Self {
            id: event.id.to_string(),
            organization_id: event.organization_id.to_string(),
            actor: event.actor.map(|actor| actor.to_string()),
            operator: event.operator.as_ref().map(|name| name.as_str().to_owned()),
            action: event.action.as_str().to_owned(),
            target: event.target.clone(),
            at: to_bson_time(event.at),
            request_id: event.request_id.clone(),
            client_ip: event.client_ip.clone(),
        }
    }

    fn to_event(&self) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            id: parse_id(&self.id, "audit event")?,
            organization_id: parse_id(&self.organization_id, "organization")?,
            actor: self
                .actor
                .as_deref()
                .map(|actor| parse_id(actor, "admin"))
                .transpose()?,
            operator: self
                .operator
                .as_deref()
                .map(|name| {
                    OperatorKeyName::parse(name).map_err(|e| {
                        StoreError::new(
                            format!("audit event {} has an invalid operator", self.id),
                            e,
                        )
                    })
                })
                .transpose()?,
            action: AuditAction::parse(&self.action).ok_or_else(|| {
                StoreError::msg(format!(
                    "audit event {} has an unknown action {:?}",
                    self.id, self.action
                ))
            })?,
            target: self.target.clone(),
            at: to_chrono(self.at)?,
            request_id: self.request_id.clone(),
            client_ip: self.client_ip.clone(),
        })
    }
}

impl MongoStore {
    fn audit_log(&self) -> Collection<AuditDoc> {
        self.db().collection(AUDIT_EVENTS)
    }

    /// Appends an entry; recording the same entry again changes nothing.
    pub(crate) async fn append_audit_event(&self, event: AuditEvent) -> Result<(), StoreError> {
        match self.audit_log().insert_one(AuditDoc::new(&event)).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(store_error("recording an audit event", e)),
        }
    }

    /// One page of an organization's entries, newest first.
    pub(crate) async fn audit_page(
        &self,
        organization: OrganizationId,
        query: AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        let mut filter = doc! { "organization_id": organization.to_string() };
        if let Some(before) = query.before {
            filter.insert("id", doc! { "$lt": before.to_string() });
        }
        let limit = query.limit.get();
        let fetch = i64::try_from(limit + 1)
            .map_err(|e| store_error("a page size does not fit in 64 bits", e))?;
        let stored: Vec<AuditDoc> = self
            .audit_log()
            .find(filter)
            .sort(doc! { "id": -1 })
            .limit(fetch)
            .await
            .map_err(|e| store_error("listing audit events", e))?
            .try_collect()
            .await
            .map_err(|e| store_error("listing audit events", e))?;
        let mut events = stored
            .iter()
            .map(AuditDoc::to_event)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|event| event.id)
        } else {
            None
        };
        Ok(AuditPage { events, next })
    }

    /// Deletes the entries of organizations deleted before `cutoff` (per
    /// their `organization.deleted` entry) whose record is gone; returns how
    /// many entries went.
    /// One page of every organization's events that meet `filter`, newest
    /// first (by `id`, with the `{action, id}` index of migration 0009 when
    /// filtered by action alone).
    pub(crate) async fn audit_page_all(
        &self,
        filter: &AuditFilter,
    ) -> Result<AuditPage, StoreError> {
        const WHAT: &str = "listing audit events of every organization";
        let mut conditions = doc! {};
        if let Some(organization) = filter.organization {
            conditions.insert("organization_id", organization.to_string());
        }
        if let Some(action) = filter.action {
            conditions.insert("action", action.as_str());
        }
        if let Some(before) = filter.before {
            conditions.insert("id", doc! { "$lt": before.to_string() });
        }
        let limit = filter.limit.get();
        let fetch = i64::try_from(limit + 1)
            .map_err(|e| store_error("a page size does not fit in 64 bits", e))?;
        let stored: Vec<AuditDoc> = self
            .audit_log()
            .find(conditions)
            .sort(doc! { "id": -1 })
            .limit(fetch)
            .await
            .map_err(|e| store_error(WHAT, e))?
            .try_collect()
            .await
            .map_err(|e| store_error(WHAT, e))?;
        let mut events = stored
            .iter()
            .map(AuditDoc::to_event)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|event| event.id)
        } else {
            None
        };
        Ok(AuditPage { events, next })
    }

    pub(crate) async fn purge_audit_events(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let deletions: Vec<AuditDoc> = self
            .audit_log()
            .find(doc! {
                "action": AuditAction::OrganizationDeleted.as_str(),
                "at": { "$lt": to_bson_time(cutoff) },
            })
            .await
            .map_err(|e| store_error("listing deleted organizations' audit events", e))?
            .try_collect()
            .await
            .map_err(|e| store_error("listing deleted organizations' audit events", e))?;
        let organizations: BTreeSet<String> =
            deletions.into_iter().map(|d| d.organization_id).collect();
        let mut purged = 0;
        for organization in organizations {
            // Never purge an organization that (still) exists, whatever its
            // log says.
            if self.org_record(&organization).await?.is_some() {
                continue;
            }
            purged += self
                .audit_log()
                .delete_many(doc! { "organization_id": &organization })
                .await
                .map_err(|e| store_error("purging audit events", e))?
                .deleted_count;
        }
        Ok(purged)
    }
}

#[async_trait]
impl AuditLog for MongoStore {
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.append_audit_event(event).await
    }

    async fn audit_events(
        &self,
        organization: OrganizationId,
        query: AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        self.audit_page(organization, query).await
    }

    async fn all_audit_events(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        self.audit_page_all(filter).await
    }

    async fn purge_deleted_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.purge_audit_events(cutoff).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{from_document, to_document};
    use orgsvc_domain::{AdminId, AuditEventId};

    fn event(actor: Option<AdminId>) -> AuditEvent {
        AuditEvent {
            id: AuditEventId::new(),
            organization_id: OrganizationId::new(),
            actor,
            operator: None,
            action: AuditAction::OrganizationRenamed,
            target: "Acme -> Acme Labs".into(),
            at: DateTime::from_timestamp_millis(1_700_000_000_001).unwrap(),
            request_id: actor.map(|_| "req-1".to_owned()),
            client_ip: actor.map(|_| "192.0.2.1".to_owned()),
        }
    }

    #[test]
    fn audit_records_round_trip_with_and_without_optional_fields() {
        for event in [event(Some(AdminId::new())), event(None)] {
            let stored = to_document(&AuditDoc::new(&event)).unwrap();
            assert_eq!(stored.get_str("action").unwrap(), "organization.renamed");
            assert_eq!(stored.get_str("id").unwrap(), event.id.to_string());
            assert_eq!(stored.contains_key("actor"), event.actor.is_some());
            let read: AuditDoc = from_document(stored).unwrap();
            assert_eq!(read.to_event().unwrap(), event);
        }
    }

    #[test]
    fn an_unknown_action_is_a_store_error() {
        let mut stored = AuditDoc::new(&event(None));
        stored.action = "organization.exploded".into();
        assert!(stored.to_event().is_err());
    }
}
