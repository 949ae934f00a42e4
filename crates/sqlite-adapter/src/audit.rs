//! The [`AuditLog`] part of [`SqliteStore`]: the `audit_events` table,
//! appended to on the writer connection and paged newest first (by UUIDv7
//! id, which as hyphenated text sorts in time order) on the readers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgsvc_domain::{
    AuditAction, AuditEvent, AuditEventId, AuditFilter, AuditLog, AuditPage, AuditQuery,
    OperatorKeyName, OrganizationId, StoreError,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row};

use crate::records::{corrupt, parse_id};
use crate::{rows, SqliteStore};

/// The columns [`EventRow::read`] expects, in order.
const EVENT_COLUMNS: &str =
    "id, organization_id, actor, action, target, at, request_id, client_ip, operator";

/// Appends `event`.
pub(crate) fn record(connection: &Connection, event: &AuditEvent) -> Result<(), StoreError> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                event.id.to_string(),
                event.organization_id.to_string(),
                event.actor.map(|actor| actor.to_string()),
                event.action.as_str(),
                event.target,
                rows::millis(event.at),
                event.request_id,
                event.client_ip,
                event.operator.as_ref().map(|name| name.as_str()),
            ])
        })
        .map_err(|e| StoreError::new("recording an audit event", e))?;
    Ok(())
}

/// One page of the organization's events, newest first, older than
/// `query.before`; `next` is set when the page is full and more follow
/// (one event more than the page is fetched to know).
pub(crate) fn page(
    connection: &Connection,
    organization: OrganizationId,
    query: &AuditQuery,
) -> Result<AuditPage, StoreError> {
    let limit = query.limit.get();
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut parameters = vec![
        SqlValue::Text(organization.to_string()),
        SqlValue::Integer(fetch),
    ];
    if let Some(before) = query.before {
        parameters.push(SqlValue::Text(before.to_string()));
    }
    let found = connection
        .prepare_cached(&page_sql(query.before.is_some()))
        .and_then(|mut statement| {
            statement
                .query_map(params_from_iter(parameters), EventRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| StoreError::new("listing audit events", e))?;
    let more = found.len() > limit;
    let events = found
        .into_iter()
        .take(limit)
        .map(EventRow::into_event)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        events.last().map(|event| event.id)
    } else {
        None
    };
    Ok(AuditPage { events, next })
}

/// One page of every organization's events that meet `filter`, newest
/// first, older than `filter.before`. Without an organization it walks the
/// primary key backwards; with one, `audit_events_by_organization`.
pub(crate) fn page_all(
    connection: &Connection,
    filter: &AuditFilter,
) -> Result<AuditPage, StoreError> {
    let limit = filter.limit.get();
    let mut conditions = Vec::new();
    let mut parameters = Vec::new();
    if let Some(organization) = filter.organization {
        parameters.push(SqlValue::Text(organization.to_string()));
        conditions.push(format!("organization_id = ?{}", parameters.len()));
    }
    if let Some(action) = filter.action {
        parameters.push(SqlValue::Text(action.as_str().to_owned()));
        conditions.push(format!("action = ?{}", parameters.len()));
    }
    if let Some(before) = filter.before {
        parameters.push(SqlValue::Text(before.to_string()));
        conditions.push(format!("id < ?{}", parameters.len()));
    }
    parameters.push(SqlValue::Integer(
        i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX),
    ));
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events {filter_sql}ORDER BY id DESC LIMIT ?{}",
        parameters.len()
    );
    let found = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_map(params_from_iter(parameters), EventRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| StoreError::new("listing audit events of every organization", e))?;
    let more = found.len() > limit;
    let events = found
        .into_iter()
        .take(limit)
        .map(EventRow::into_event)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        events.last().map(|event| event.id)
    } else {
        None
    };
    Ok(AuditPage { events, next })
}

/// Deletes every event of each organization that no longer exists and whose
/// `organization.deleted` event is dated before `cutoff`; returns how many
/// went.
pub(crate) fn purge_deleted_before(
    connection: &Connection,
    cutoff: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let purged = connection
        .execute(&purge_sql(), [rows::millis(cutoff)])
        .map_err(|e| StoreError::new("purging audit events of deleted organizations", e))?;
    Ok(u64::try_from(purged).unwrap_or(u64::MAX))
}

/// The page statement: `?1` organization, `?2` rows to fetch and, `with_before`,
/// `?3` the cursor. Walks `audit_events_by_organization` backwards.
fn page_sql(with_before: bool) -> String {
    let older = if with_before { "AND id < ?3 " } else { "" };
    format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE organization_id = ?1 {older}\
         ORDER BY id DESC LIMIT ?2"
    )
}

/// The retention purge statement (`?1` the cutoff). The action is spelled
/// out, not bound, so that the partial index `audit_events_deletions`
/// applies.
fn purge_sql() -> String {
    format!(
        "DELETE FROM audit_events WHERE organization_id IN (\
             SELECT d.organization_id FROM audit_events AS d \
             WHERE d.action = '{deleted}' AND d.at < ?1 \
             AND NOT EXISTS (SELECT 1 FROM organizations AS o WHERE o.id = d.organization_id))",
        deleted = AuditAction::OrganizationDeleted.as_str(),
    )
}

/// An `audit_events` row, as read.
struct EventRow {
    id: String,
    organization_id: String,
    actor: Option<String>,
    action: String,
    target: String,
    at: i64,
    request_id: Option<String>,
    client_ip: Option<String>,
    operator: Option<String>,
}

impl EventRow {
    /// Reads a row selected with [`EVENT_COLUMNS`].
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            organization_id: row.get(1)?,
            actor: row.get(2)?,
            action: row.get(3)?,
            target: row.get(4)?,
            at: row.get(5)?,
            request_id: row.get(6)?,
            client_ip: row.get(7)?,
            operator: row.get(8)?,
        })
    }

    /// The event this row stores.
    fn into_event(self) -> Result<AuditEvent, StoreError> {
        let id: AuditEventId = parse_id(&self.id, "audit event id")?;
        Ok(AuditEvent {
            id,
            organization_id: parse_id(&self.organization_id, "audit event organization id")?,
            actor: self
                .actor
                .map(|actor| parse_id(&actor, "audit event actor"))
                .transpose()?,
            operator: self
                .operator
                .map(|name| {
                    OperatorKeyName::parse(&name).map_err(|e| corrupt("audit event operator", e))
                })
                .transpose()?,
            action: AuditAction::parse(&self.action).ok_or_else(|| {
                StoreError::msg(format!(
                    "corrupt record: invalid stored audit action {:?}",
                    self.action
                ))
            })?,
            target: self.target,
            at: rows::timestamp(self.at)?,
            request_id: self.request_id,
            client_ip: self.client_ip,
        })
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.connections()
            .write(move |connection| record(connection, &event))
            .await
    }

    async fn audit_events(
        &self,
        organization: OrganizationId,
        query: AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        self.connections()
            .read(move |connection| page(connection, organization, &query))
            .await
    }

    async fn all_audit_events(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        let filter = filter.clone();
        self.connections()
            .read(move |connection| page_all(connection, &filter))
            .await
    }

    async fn purge_deleted_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.connections()
            .write(move |connection| purge_deleted_before(connection, cutoff))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::{self, MIGRATIONS};

    fn migrated() -> Connection {
        let mut connection = Connection::open_in_memory().unwrap();
        migrations::apply(&mut connection, MIGRATIONS).unwrap();
        connection
    }

    /// The plan's detail lines for `sql`, with `parameters` bound.
    fn plan(connection: &Connection, sql: &str, parameters: &[SqlValue]) -> Vec<String> {
        connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params_from_iter(parameters), |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn pages_walk_the_organization_index_without_sorting() {
        let connection = migrated();
        let organization = SqlValue::Text(OrganizationId::new().to_string());
        let before = SqlValue::Text(AuditEventId::new().to_string());
        for (sql, parameters) in [
            (
                page_sql(false),
                vec![organization.clone(), SqlValue::Integer(3)],
            ),
            (
                page_sql(true),
                vec![organization, SqlValue::Integer(3), before],
            ),
        ] {
            let steps = plan(&connection, &sql, &parameters);
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("audit_events_by_organization")),
                "{steps:?}"
            );
            assert!(
                !steps.iter().any(|s| s.contains("TEMP B-TREE")),
                "{steps:?}"
            );
        }
    }

    #[test]
    fn entries_recorded_before_operators_read_back_without_one() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrations::apply(&mut connection, &MIGRATIONS[..6]).unwrap();
        let organization = OrganizationId::new();
        let id = AuditEventId::new();
        connection
            .execute(
                "INSERT INTO audit_events (id, organization_id, actor, action, target, at) \
                 VALUES (?1, ?2, NULL, 'organization.created', 'Acme', 0)",
                params![id.to_string(), organization.to_string()],
            )
            .unwrap();
        migrations::apply(&mut connection, MIGRATIONS).unwrap();
        let old = page(&connection, organization, &AuditQuery::default()).unwrap();
        assert_eq!(old.events.len(), 1);
        assert_eq!(old.events[0].id, id);
        assert_eq!(old.events[0].operator, None);

        let operator = OrganizationId::new();
        let event = AuditEvent {
            id: AuditEventId::new(),
            organization_id: operator,
            actor: None,
            operator: Some(OperatorKeyName::parse("support-bot").unwrap()),
            action: AuditAction::OrganizationRenamed,
            target: "a -> b".into(),
            at: rows::now(),
            request_id: None,
            client_ip: None,
        };
        record(&connection, &event).unwrap();
        let new = page(&connection, operator, &AuditQuery::default()).unwrap();
        assert_eq!(new.events, vec![event]);
    }

    #[test]
    fn the_purge_finds_deletions_by_the_partial_index() {
        let connection = migrated();
        let steps = plan(&connection, &purge_sql(), &[SqlValue::Integer(0)]);
        assert!(
            steps.iter().any(|s| s.contains("audit_events_deletions")),
            "{steps:?}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s.contains("audit_events_by_organization")),
            "{steps:?}"
        );
    }
}
