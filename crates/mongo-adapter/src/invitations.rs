//! Invitations ([`InvitationStore`]) in the collection `invitations`:
//!
//! `{_id: <invitation id>, organization_id, email, role, invited_by,
//! created_ms, expires_ms, token_hash, accepted_ms: <ms> | null,
//! accepted_admin_id: <id> | null, revoked_ms: <ms> | null,
//! claim_until_ms, claim_admin_id: <id> | null,
//! outgoing: <outbox document> | null}`, times in milliseconds since the
//! epoch (`long`).
//!
//! Without multi-document transactions, "invitation and email in one
//! write" is one document: the email waits in `outgoing` (the current
//! token's hash beside it), so a creation is one `insert_one` and a resend
//! one conditional update that replaces the hash, the expiry and
//! `outgoing` together. A sender's claim first moves waiting emails into
//! `outbox` ([`MongoStore::relay_invitation_messages`]): it inserts the
//! document under the message's own id (a second insert of it is a
//! duplicate key, so a relay cut short and repeated queues it once), then
//! clears `outgoing` only if it still holds that message.
//!
//! Accepting is a claim, then `add_admin`, then the mark: a conditional
//! update claims a pending invitation (`claim_until_ms` passed) for
//! [`ACCEPT_CLAIM`] and records the id the new admin gets
//! (`claim_admin_id`), so of racing accepts one proceeds; `add_admin`
//! (which checks the email and the organization) creates the admin, whose
//! email is then marked verified (a crash in between leaves it unverified:
//! the admin can verify it by link); the invitation is then marked
//! accepted. A taken email releases the claim
//! and the invitation stays pending. A process dying after creating the
//! admin leaves a claim that expires: the next accept takes it over, finds
//! the email taken by the admin the claim recorded, and completes the
//! mark (that token was used: it answers `InvalidToken`).
//!
//! Deleting an organization deletes its invitations after its admins (see
//! `lifecycle/delete.rs`); an invitation inserted by a creation racing the
//! deletion is accepted by nobody (its organization is gone) and goes with
//! the purge. Absent values are queried with `{$in: [null]}`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use orgsvc_domain::{
    AcceptInvitationError, AccountTokenStore, AddAdminError, Admin, AdminEmail, AdminId, AdminRole,
    Invitation, InvitationError, InvitationId, InvitationPage, InvitationQuery, InvitationStatus,
    InvitationStore, NewAdmin, OrganizationId, OutboxMessage, PasswordHash, StoreError, TokenHash,
};
use serde::{Deserialize, Serialize};

use crate::errors::{is_duplicate_key, store_error};
use crate::outbox::{unsent, MessageDoc};
use crate::records::{millis, now_ms, parse_id};
use crate::store::MongoStore;

/// The invitations collection.
pub(crate) const INVITATIONS: &str = "invitations";

/// How long an accept holds its claim on an invitation: far longer than
/// creating an admin takes.
pub(crate) const ACCEPT_CLAIM: Duration = Duration::from_secs(30);

/// An invitation document. No `Debug`: its waiting email carries the
/// token's link.
#[derive(Clone, Serialize, Deserialize)]
struct InvitationDoc {
    #[serde(rename = "_id")]
    id: String,
    organization_id: String,
    email: String,
    role: String,
    invited_by: String,
    created_ms: i64,
    expires_ms: i64,
    token_hash: String,
    accepted_ms: Option<i64>,
    accepted_admin_id: Option<String>,
    revoked_ms: Option<i64>,
    /// When the current accept's claim ends; 0 when never claimed or
    /// released.
    claim_until_ms: i64,
    claim_admin_id: Option<String>,
    outgoing: Option<MessageDoc>,
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| StoreError::msg("corrupt invitation record: a stored time is out of range"))
}

impl InvitationDoc {
    fn new(invitation: &Invitation, token: &TokenHash, message: &OutboxMessage) -> Self {
        let id = invitation.id.to_string();
        Self {
            outgoing: Some(MessageDoc::for_invitation(message, &id)),
            id,
            organization_id: invitation.organization_id.to_string(),
            email: invitation.email.as_str().to_owned(),
            role: invitation.role.as_str().to_owned(),
            invited_by: invitation.invited_by.to_string(),
            created_ms: ms(invitation.created_at),
            expires_ms: ms(invitation.expires_at),
            token_hash: token.as_str().to_owned(),
            accepted_ms: invitation.accepted.map(|(at, _)| ms(at)),
            accepted_admin_id: invitation.accepted.map(|(_, admin)| admin.to_string()),
            revoked_ms: invitation.revoked_at.map(ms),
            claim_until_ms: 0,
            claim_admin_id: None,
        }
    }

    fn into_invitation(self) -> Result<Invitation, StoreError> {
        let accepted = match (self.accepted_ms, self.accepted_admin_id) {
            (Some(at), Some(admin)) => Some((time(at)?, parse_id(&admin, "accepted admin")?)),
            _ => None,
        };
        Ok(Invitation {
            id: parse_id(&self.id, "invitation")?,
            organization_id: parse_id(&self.organization_id, "invitation's organization")?,
            email: AdminEmail::parse(&self.email)
                .map_err(|e| store_error("corrupt invitation record: email", e))?,
            role: AdminRole::parse(&self.role).ok_or_else(|| {
                StoreError::msg(format!(
                    "corrupt invitation record: unknown role {:?}",
                    self.role
                ))
            })?,
            invited_by: parse_id(&self.invited_by, "inviting admin")?,
            created_at: time(self.created_ms)?,
            expires_at: time(self.expires_ms)?,
            accepted,
            revoked_at: self.revoked_ms.map(time).transpose()?,
        })
    }
}

/// The conditions of an invitation pending at `now` (in milliseconds).
fn pending_at(now: i64) -> Document {
    doc! {
        "accepted_ms": { "$in": [null] },
        "revoked_ms": { "$in": [null] },
        "expires_ms": { "$gt": now },
    }
}

impl MongoStore {
    fn invitations(&self) -> Collection<InvitationDoc> {
        self.db().collection(INVITATIONS)
    }

    /// Moves the emails waiting in invitations into `outbox` (see the
    /// module documentation); safe to run concurrently and to repeat.
    pub(crate) async fn relay_invitation_messages(&self) -> Result<(), StoreError> {
        const WHAT: &str = "moving invitation emails to the outbox";
        let waiting: Vec<InvitationDoc> = self
            .invitations()
            .find(doc! { "outgoing._id": { "$exists": true } })
            .await
            .map_err(|e| store_error(WHAT, e))?
            .try_collect()
            .await
            .map_err(|e| store_error(WHAT, e))?;
        for invitation in waiting {
            let Some(message) = invitation.outgoing else {
                continue;
            };
            match self.outbox().insert_one(&message).await {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {} // relayed before
                Err(e) => return Err(store_error(WHAT, e)),
            }
            self.invitations()
                .update_one(
                    doc! { "_id": &invitation.id, "outgoing._id": message.id() },
                    doc! { "$set": { "outgoing": null } },
                )
                .await
                .map_err(|e| store_error(WHAT, e))?;
        }
        Ok(())
    }

    /// Deletes the invitations `filter` selects with their unsent emails;
    /// how many invitations went.
    pub(crate) async fn delete_invitations(&self, filter: Document) -> Result<u64, StoreError> {
        const WHAT: &str = "deleting invitations";
        let ids: Vec<String> = self
            .invitations()
            .find(filter)
            .await
            .map_err(|e| store_error(WHAT, e))?
            .map_ok(|invitation| invitation.id)
            .try_collect()
            .await
            .map_err(|e| store_error(WHAT, e))?;
        if ids.is_empty() {
            return Ok(0);
        }
        self.outbox()
            .delete_many(doc! { "invitation_id": { "$in": &ids }, "sent_ms": unsent() })
            .await
            .map_err(|e| store_error(WHAT, e))?;
        Ok(self
            .invitations()
            .delete_many(doc! { "_id": { "$in": &ids } })
            .await
            .map_err(|e| store_error(WHAT, e))?
            .deleted_count)
    }

    /// Why the organization's invitation `id` was not pending at `now`.
    async fn not_pending(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> Result<InvitationError, StoreError> {
        let found = self
            .invitations()
            .find_one(doc! { "_id": id.to_string(), "organization_id": organization.to_string() })
            .await
            .map_err(|e| store_error("reading an invitation", e))?;
        Ok(match found {
            None => InvitationError::NotFound,
            Some(record) => match record.into_invitation()?.status_at(now) {
                // It changed between the update and this read.
                InvitationStatus::Pending => InvitationError::NotPending(InvitationStatus::Pending),
                status => InvitationError::NotPending(status),
            },
        })
    }

    /// Updates the organization's invitation `id` if it is pending at
    /// `now`; the invitation as updated.
    async fn update_pending(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
        update: Document,
    ) -> Result<Invitation, InvitationError> {
        let mut filter = pending_at(ms(now));
        filter.insert("_id", id.to_string());
        filter.insert("organization_id", organization.to_string());
        let updated = self
            .invitations()
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| store_error("updating an invitation", e))?;
        match updated {
            Some(record) => Ok(record.into_invitation()?),
            None => Err(self.not_pending(organization, id, now).await?),
        }
    }

    /// Ends this accept's claim (matching the admin id it recorded).
    async fn release_claim(&self, id: &str, admin: &str) -> Result<(), StoreError> {
        self.invitations()
            .update_one(
                doc! { "_id": id, "claim_admin_id": admin },
                doc! { "$set": { "claim_until_ms": 0_i64, "claim_admin_id": null } },
            )
            .await
            .map_err(|e| store_error("releasing an invitation's claim", e))?;
        Ok(())
    }

    /// Marks the invitation accepted by `admin` at `now`.
    async fn mark_accepted(&self, id: &str, admin: &str, now: i64) -> Result<(), StoreError> {
        self.invitations()
            .update_one(
                doc! { "_id": id, "accepted_ms": { "$in": [null] } },
                doc! { "$set": {
                    "accepted_ms": now,
                    "accepted_admin_id": admin,
                    "claim_until_ms": 0_i64,
                } },
            )
            .await
            .map_err(|e| store_error("marking an invitation accepted", e))?;
        Ok(())
    }
}

#[async_trait]
impl InvitationStore for MongoStore {
    async fn create_invitation(
        &self,
        invitation: Invitation,
        token: TokenHash,
        message: OutboxMessage,
    ) -> Result<(), InvitationError> {
        const WHAT: &str = "creating an invitation";
        let organization = self
            .org_record(&invitation.organization_id.to_string())
            .await?;
        if !organization.is_some_and(|record| record.is_visible()) {
            return Err(InvitationError::NotFound);
        }
        // Pending admins (being added) hold their email too.
        let holders = self
            .admins()
            .count_documents(doc! { "email": invitation.email.as_str() })
            .await
            .map_err(|e| store_error(WHAT, e))?;
        if holders > 0 {
            return Err(InvitationError::EmailTaken);
        }
        match self
            .invitations()
            .insert_one(InvitationDoc::new(&invitation, &token, &message))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::msg(
                "creating an invitation: its id or token hash is already stored",
            )
            .into()),
            Err(e) => Err(store_error(WHAT, e).into()),
        }
    }

    async fn invitations_of(
        &self,
        organization: OrganizationId,
        query: InvitationQuery,
    ) -> Result<InvitationPage, StoreError> {
        const WHAT: &str = "listing invitations";
        let limit = query.limit.get();
        let mut filter = doc! { "organization_id": organization.to_string() };
        if let Some(before) = query.before {
            // Hyphenated UUIDv7 text sorts like the ids.
            filter.insert("_id", doc! { "$lt": before.to_string() });
        }
        let found: Vec<InvitationDoc> = self
            .invitations()
            .find(filter)
            .sort(doc! { "_id": -1 })
            .limit(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
            .await
            .map_err(|e| store_error(WHAT, e))?
            .try_collect()
            .await
            .map_err(|e| store_error(WHAT, e))?;
        let mut invitations = found
            .into_iter()
            .map(InvitationDoc::into_invitation)
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

    async fn invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, StoreError> {
        self.invitations()
            .find_one(doc! { "_id": id.to_string(), "organization_id": organization.to_string() })
            .await
            .map_err(|e| store_error("reading an invitation", e))?
            .map(InvitationDoc::into_invitation)
            .transpose()
    }

    async fn revoke_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> Result<Invitation, InvitationError> {
        self.update_pending(
            organization,
            id,
            now,
            doc! { "$set": { "revoked_ms": ms(now) } },
        )
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
        let outgoing =
            mongodb::bson::to_document(&MessageDoc::for_invitation(&message, &id.to_string()))
                .map_err(|e| store_error("encoding an invitation's email", e))?;
        let update = doc! { "$set": {
            "token_hash": token.as_str(),
            "expires_ms": ms(expires_at),
            "outgoing": outgoing,
        } };
        self.update_pending(organization, id, now, update).await
    }

    async fn accept_invitation(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
        password_hash: PasswordHash,
    ) -> Result<(Invitation, Admin), AcceptInvitationError> {
        const WHAT: &str = "accepting an invitation";
        let clock = now_ms();
        let admin_id = AdminId::new().to_string();
        let mut claimable = pending_at(ms(now));
        claimable.insert("token_hash", token.as_str());
        claimable.insert("claim_until_ms", doc! { "$lte": clock });
        let before = self
            .invitations()
            .find_one_and_update(
                claimable,
                doc! { "$set": {
                    "claim_until_ms": clock.saturating_add(millis(ACCEPT_CLAIM)),
                    "claim_admin_id": &admin_id,
                } },
            )
            .return_document(ReturnDocument::Before)
            .await
            .map_err(|e| store_error(WHAT, e))?
            .ok_or(AcceptInvitationError::InvalidToken)?;
        let previous_claim = before.claim_admin_id.clone();
        let record_id = before.id.clone();
        let mut invitation = before.into_invitation()?;
        let new = NewAdmin {
            id: parse_id(&admin_id, "new admin")?,
            email: invitation.email.clone(),
            role: invitation.role,
            password_hash,
        };
        match self.add_admin(invitation.organization_id, new).await {
            Ok(mut admin) => {
                admin.email_verified = self.mark_email_verified(admin.id, &admin.email).await?;
                self.mark_accepted(&record_id, &admin_id, ms(now)).await?;
                invitation.accepted = Some((now, admin.id));
                Ok((invitation, admin))
            }
            Err(AddAdminError::EmailTaken) => {
                // An accept that died after creating its admin?
                let holder = self
                    .admins()
                    .find_one(doc! { "email": invitation.email.as_str() })
                    .await
                    .map_err(|e| store_error(WHAT, e))?;
                let earlier = holder.filter(|holder| Some(&holder.id) == previous_claim.as_ref());
                match earlier {
                    Some(holder) => {
                        self.mark_accepted(&record_id, &holder.id, ms(now)).await?;
                        Err(AcceptInvitationError::InvalidToken)
                    }
                    None => {
                        self.release_claim(&record_id, &admin_id).await?;
                        Err(AcceptInvitationError::EmailTaken)
                    }
                }
            }
            Err(AddAdminError::OrganizationNotFound) => {
                self.release_claim(&record_id, &admin_id).await?;
                Err(AcceptInvitationError::OrganizationNotFound)
            }
            Err(AddAdminError::Store(e)) => {
                self.release_claim(&record_id, &admin_id).await?;
                Err(e.into())
            }
        }
    }

    async fn purge_invitations(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.delete_invitations(doc! { "expires_ms": { "$lt": ms(cutoff) } })
            .await
    }
}
