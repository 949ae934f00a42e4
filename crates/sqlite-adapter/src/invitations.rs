//! The [`InvitationStore`] part of [`SqliteStore`]: the table
//! `invitations` (migration 0007), its emails in `outbox_messages` marked
//! with their `invitation_id`.
//!
//! Every write is one immediate transaction on the writer connection: a
//! creation or resend writes the invitation (or its new token hash) and
//! its message together; an accept reads the invitation, inserts the admin
//! and marks the invitation accepted before any other write can read it,
//! so of racing accepts exactly one wins, and a taken email rolls the
//! whole transaction back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgsvc_domain::{
    AcceptInvitationError, Admin, AdminEmail, AdminRole, Invitation, InvitationError, InvitationId,
    InvitationPage, InvitationQuery, InvitationStatus, InvitationStore, NewAdmin, OrganizationId,
    OutboxMessage, PasswordHash, StoreError, TokenHash,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::account_tokens::insert_message;
use crate::connection::{begin, commit};
use crate::constraints::{self, Unique};
use crate::records::{corrupt, parse_id};
use crate::{admins, rows, SqliteStore};

/// The columns [`InvitationRow::read`] expects, in order.
const COLUMNS: &str = "id, organization_id, email, role, invited_by, created_at, expires_at, \
                       accepted_at, accepted_admin_id, revoked_at";

/// An `invitations` row, as read.
struct InvitationRow {
    id: String,
    organization_id: String,
    email: String,
    role: String,
    invited_by: String,
    created_at: i64,
    expires_at: i64,
    accepted_at: Option<i64>,
    accepted_admin_id: Option<String>,
    revoked_at: Option<i64>,
}

impl InvitationRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            organization_id: row.get(1)?,
            email: row.get(2)?,
            role: row.get(3)?,
            invited_by: row.get(4)?,
            created_at: row.get(5)?,
            expires_at: row.get(6)?,
            accepted_at: row.get(7)?,
            accepted_admin_id: row.get(8)?,
            revoked_at: row.get(9)?,
        })
    }

    fn into_invitation(self) -> Result<Invitation, StoreError> {
        let accepted = match (self.accepted_at, self.accepted_admin_id) {
            (Some(at), Some(admin)) => Some((
                rows::timestamp(at)?,
                parse_id(&admin, "invitation's accepted admin id")?,
            )),
            _ => None,
        };
        Ok(Invitation {
            id: parse_id(&self.id, "invitation id")?,
            organization_id: parse_id(&self.organization_id, "invitation's organization id")?,
            email: AdminEmail::parse(&self.email).map_err(|e| corrupt("invitation email", e))?,
            role: AdminRole::parse(&self.role).ok_or_else(|| {
                StoreError::msg(format!(
                    "corrupt record: invalid stored invitation role {:?}",
                    self.role
                ))
            })?,
            invited_by: parse_id(&self.invited_by, "invitation's inviter id")?,
            created_at: rows::timestamp(self.created_at)?,
            expires_at: rows::timestamp(self.expires_at)?,
            accepted,
            revoked_at: self.revoked_at.map(rows::timestamp).transpose()?,
        })
    }
}

fn exists(connection: &Connection, sql: &str, key: &str, what: &str) -> Result<bool, StoreError> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.query_row([key], |_| Ok(())).optional())
        .map(|found| found.is_some())
        .map_err(|e| StoreError::new(what.to_owned(), e))
}

fn organization_exists(
    connection: &Connection,
    organization: OrganizationId,
) -> Result<bool, StoreError> {
    exists(
        connection,
        "SELECT 1 FROM organizations WHERE id = ?1",
        &organization.to_string(),
        "reading the invitation's organization",
    )
}

fn email_taken(connection: &Connection, email: &AdminEmail) -> Result<bool, StoreError> {
    exists(
        connection,
        "SELECT 1 FROM admins WHERE email = ?1",
        email.as_str(),
        "looking for an admin with the invited email",
    )
}

/// Inserts the message within the caller's transaction, marked as the
/// invitation's.
fn queue(
    connection: &Connection,
    invitation: InvitationId,
    message: &OutboxMessage,
) -> Result<(), StoreError> {
    insert_message(connection, message)?;
    connection
        .execute(
            "UPDATE outbox_messages SET invitation_id = ?2 WHERE id = ?1",
            params![message.id.to_string(), invitation.to_string()],
        )
        .map_err(|e| StoreError::new("marking an invitation's message", e))?;
    Ok(())
}

fn create(
    connection: &mut Connection,
    invitation: &Invitation,
    token: &TokenHash,
    message: &OutboxMessage,
) -> Result<(), InvitationError> {
    const WHAT: &str = "creating an invitation";
    let transaction = begin(connection, WHAT)?;
    if !organization_exists(&transaction, invitation.organization_id)? {
        return Err(InvitationError::NotFound);
    }
    if email_taken(&transaction, &invitation.email)? {
        return Err(InvitationError::EmailTaken);
    }
    transaction
        .prepare_cached(&format!(
            "INSERT INTO invitations ({COLUMNS}, token_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, NULL, ?8)"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                invitation.id.to_string(),
                invitation.organization_id.to_string(),
                invitation.email.as_str(),
                invitation.role.as_str(),
                invitation.invited_by.to_string(),
                rows::millis(invitation.created_at),
                rows::millis(invitation.expires_at),
                token.as_str(),
            ])
        })
        .map_err(|e| StoreError::new("storing an invitation", e))?;
    queue(&transaction, invitation.id, message)?;
    commit(transaction, WHAT)?;
    Ok(())
}

fn find(
    connection: &Connection,
    key_column: &'static str,
    key: &str,
) -> Result<Option<Invitation>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM invitations WHERE {key_column} = ?1"
        ))
        .and_then(|mut statement| statement.query_row([key], InvitationRow::read).optional())
        .map_err(|e| StoreError::new("reading an invitation", e))?
        .map(InvitationRow::into_invitation)
        .transpose()
}

fn page(
    connection: &Connection,
    organization: OrganizationId,
    query: &InvitationQuery,
) -> Result<InvitationPage, StoreError> {
    let limit = query.limit.get();
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    // UUIDv7 text sorts like the ids.
    let before = query.before.map(|id| id.to_string());
    let found = connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM invitations WHERE organization_id = ?1 \
             AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
        ))
        .and_then(|mut statement| {
            statement
                .query_map(
                    params![organization.to_string(), before, fetch],
                    InvitationRow::read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| StoreError::new("listing invitations", e))?;
    let mut invitations = found
        .into_iter()
        .map(InvitationRow::into_invitation)
        .collect::<Result<Vec<_>, _>>()?;
    let more = invitations.len() > limit;
    invitations.truncate(limit);
    let next = if more {
        invitations.last().map(|invitation| invitation.id)
    } else {
        None
    };
    Ok(InvitationPage { invitations, next })
}

/// The organization's invitation `id`, if it is pending at `now`.
fn pending(
    connection: &Connection,
    organization: OrganizationId,
    id: InvitationId,
    now: DateTime<Utc>,
) -> Result<Invitation, InvitationError> {
    let invitation = find(connection, "id", &id.to_string())?
        .filter(|invitation| invitation.organization_id == organization)
        .ok_or(InvitationError::NotFound)?;
    match invitation.status_at(now) {
        InvitationStatus::Pending => Ok(invitation),
        status => Err(InvitationError::NotPending(status)),
    }
}

fn revoke(
    connection: &mut Connection,
    organization: OrganizationId,
    id: InvitationId,
    now: DateTime<Utc>,
) -> Result<Invitation, InvitationError> {
    const WHAT: &str = "revoking an invitation";
    let transaction = begin(connection, WHAT)?;
    let mut invitation = pending(&transaction, organization, id, now)?;
    transaction
        .execute(
            "UPDATE invitations SET revoked_at = ?2 WHERE id = ?1",
            params![id.to_string(), rows::millis(now)],
        )
        .map_err(|e| StoreError::new(WHAT, e))?;
    commit(transaction, WHAT)?;
    invitation.revoked_at = Some(now);
    Ok(invitation)
}

fn replace_token(
    connection: &mut Connection,
    organization: OrganizationId,
    id: InvitationId,
    token: &TokenHash,
    message: &OutboxMessage,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Invitation, InvitationError> {
    const WHAT: &str = "resending an invitation";
    let transaction = begin(connection, WHAT)?;
    let mut invitation = pending(&transaction, organization, id, now)?;
    transaction
        .execute(
            "UPDATE invitations SET token_hash = ?2, expires_at = ?3 WHERE id = ?1",
            params![id.to_string(), token.as_str(), rows::millis(expires_at)],
        )
        .map_err(|e| StoreError::new(WHAT, e))?;
    queue(&transaction, id, message)?;
    commit(transaction, WHAT)?;
    invitation.expires_at = expires_at;
    Ok(invitation)
}

fn accept(
    connection: &mut Connection,
    token: &TokenHash,
    now: DateTime<Utc>,
    password_hash: PasswordHash,
) -> Result<(Invitation, Admin), AcceptInvitationError> {
    const WHAT: &str = "accepting an invitation";
    let transaction = begin(connection, WHAT)?;
    let mut invitation = find(&transaction, "token_hash", token.as_str())?
        .filter(|invitation| invitation.status_at(now) == InvitationStatus::Pending)
        .ok_or(AcceptInvitationError::InvalidToken)?;
    if !organization_exists(&transaction, invitation.organization_id)? {
        return Err(AcceptInvitationError::OrganizationNotFound);
    }
    let new = NewAdmin::new(invitation.email.clone(), invitation.role, password_hash);
    let created_at = rows::now();
    admins::insert_row(
        &transaction,
        invitation.organization_id,
        &new,
        new.role,
        created_at,
    )
    .map_err(|e| match constraints::violated(&e) {
        Some(Unique::AdminEmail) => AcceptInvitationError::EmailTaken,
        _ => StoreError::new("inserting the invited admin", e).into(),
    })?;
    transaction
        .execute(
            "UPDATE admins SET email_verified = 1 WHERE id = ?1",
            [new.id.to_string()],
        )
        .map_err(|e| StoreError::new("marking the invited admin's email verified", e))?;
    transaction
        .execute(
            "UPDATE invitations SET accepted_at = ?2, accepted_admin_id = ?3 WHERE id = ?1",
            params![
                invitation.id.to_string(),
                rows::millis(now),
                new.id.to_string()
            ],
        )
        .map_err(|e| StoreError::new(WHAT, e))?;
    commit(transaction, WHAT)?;
    invitation.accepted = Some((now, new.id));
    let admin = Admin {
        id: new.id,
        organization_id: invitation.organization_id,
        email: new.email,
        role: new.role,
        token_version: 0,
        email_verified: true,
        created_at,
        updated_at: created_at,
    };
    Ok((invitation, admin))
}

/// Deletes the unsent messages of the invitations `which` selects (an SQL
/// condition on `invitations` with one parameter), then the invitations,
/// within the caller's transaction; how many invitations went.
pub(crate) fn delete_where(
    connection: &Connection,
    which: &str,
    parameter: &dyn rusqlite::ToSql,
) -> Result<usize, StoreError> {
    const WHAT: &str = "deleting invitations";
    connection
        .execute(
            &format!(
                "DELETE FROM outbox_messages WHERE sent_at IS NULL AND invitation_id IN \
                 (SELECT id FROM invitations WHERE {which})"
            ),
            [parameter],
        )
        .map_err(|e| StoreError::new(WHAT, e))?;
    connection
        .execute(
            &format!("DELETE FROM invitations WHERE {which}"),
            [parameter],
        )
        .map_err(|e| StoreError::new(WHAT, e))
}

fn purge(connection: &mut Connection, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    const WHAT: &str = "purging expired invitations";
    let transaction = begin(connection, WHAT)?;
    let deleted = delete_where(&transaction, "expires_at < ?1", &rows::millis(cutoff))?;
    commit(transaction, WHAT)?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

#[async_trait]
impl InvitationStore for SqliteStore {
    async fn create_invitation(
        &self,
        invitation: Invitation,
        token: TokenHash,
        message: OutboxMessage,
    ) -> Result<(), InvitationError> {
        self.connections()
            .write(move |connection| create(connection, &invitation, &token, &message))
            .await
    }

    async fn invitations_of(
        &self,
        organization: OrganizationId,
        query: InvitationQuery,
    ) -> Result<InvitationPage, StoreError> {
        self.connections()
            .read(move |connection| page(connection, organization, &query))
            .await
    }

    async fn invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, StoreError> {
        let found = self
            .connections()
            .read(move |connection| find(connection, "id", &id.to_string()))
            .await?;
        Ok(found.filter(|invitation| invitation.organization_id == organization))
    }

    async fn revoke_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError> {
        self.connections()
            .write(move |connection| revoke(connection, organization, id, now))
            .await
    }

    async fn replace_invitation_token(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        token: TokenHash,
        message: OutboxMessage,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError> {
        self.connections()
            .write(move |connection| {
                replace_token(
                    connection,
                    organization,
                    id,
                    &token,
                    &message,
                    expires_at,
                    now,
                )
            })
            .await
    }

    async fn accept_invitation(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
        password_hash: PasswordHash,
    ) -> Result<(Invitation, Admin), AcceptInvitationError> {
        let token = token.clone();
        self.connections()
            .write(move |connection| accept(connection, &token, now, password_hash))
            .await
    }

    async fn purge_invitations(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.connections()
            .write(move |connection| purge(connection, cutoff))
            .await
    }
}
