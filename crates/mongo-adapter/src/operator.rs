//! What operators see of every organization (issue #17) on MongoDB: the
//! listing, suspension, usage figures and the audit log across
//! organizations.
//!
//! The listing walks the `canonical` index (migration 0001) in order: a
//! prefix search is the range `[fragment, fragment~)` of it, a cursor its
//! lower bound. Filters a wire-compatible server might apply loosely are
//! checked again here with [`OrganizationQuery::admits`]: the creation
//! range is sent one second wider than asked (servers that compare dates to
//! the second, like the test stand-in, then still return every candidate)
//! and a substring search is applied while streaming the index walk, which
//! stops once a page is full.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use orgsvc_domain::{
    ChangeStateError, DocumentError, DocumentQuery, InvitationQuery, InvitationStatus,
    InvitationStore, NameMatch, Organization, OrganizationId, OrganizationPage, OrganizationQuery,
    OrganizationUsage, PageSize, StateChange, StateFilter, StoreError, UsageError,
};

use crate::errors::store_error;
use crate::records::{to_bson_time, OrgState, SuspensionDoc};
use crate::store::MongoStore;

/// How often a suspension or resumption retries its compare-and-swap when
/// other changes of the record keep winning.
const STATE_CHANGE_ATTEMPTS: usize = 50;

impl MongoStore {
    /// One page of the listing (see the module docs).
    pub(crate) async fn list_organization_page(
        &self,
        query: &OrganizationQuery,
    ) -> Result<OrganizationPage, StoreError> {
        const WHAT: &str = "listing organizations";
        let mut filter = doc! { "state": OrgState::visible_filter() };
        let mut canonical = Document::new();
        if let Some(after) = &query.after {
            canonical.insert("$gt", after.as_str());
        }
        if let Some(search) = &query.search {
            if search.mode == NameMatch::Prefix {
                let fragment = search.fragment.as_str();
                let above_cursor = query.after.as_ref().is_some_and(|a| a.as_str() >= fragment);
                if !above_cursor {
                    canonical.remove("$gt");
                    canonical.insert("$gte", fragment);
                }
                canonical.insert("$lt", search.fragment.prefix_upper_bound());
            }
        }
        if !canonical.is_empty() {
            filter.insert("canonical", canonical);
        }
        match query.state {
            Some(StateFilter::Active) => {
                filter.insert("suspension", doc! { "$exists": false });
            }
            Some(StateFilter::Suspended) => {
                filter.insert("suspension", doc! { "$exists": true });
            }
            None => {}
        }
        let slack = chrono::TimeDelta::seconds(1);
        let mut created = Document::new();
        if let Some(after) = query.created_after {
            created.insert("$gt", to_bson_time(after - slack));
        }
        if let Some(before) = query.created_before {
            created.insert("$lt", to_bson_time(before + slack));
        }
        if !created.is_empty() {
            filter.insert("created_at", created);
        }
        let wanted = query.limit.get().saturating_add(1);
        let mut cursor = self
            .organizations()
            .find(filter)
            .sort(doc! { "canonical": 1 })
            .batch_size(u32::try_from(wanted).unwrap_or(u32::MAX))
            .await
            .map_err(|e| store_error(WHAT, e))?;
        let mut found: Vec<Organization> = Vec::with_capacity(wanted);
        while found.len() < wanted {
            let Some(record) = cursor.try_next().await.map_err(|e| store_error(WHAT, e))? else {
                break;
            };
            let organization = record.to_organization()?;
            if query.admits(&organization) {
                found.push(organization);
            }
        }
        Ok(query.page(found))
    }

    /// Suspends or resumes: a compare-and-swap on the record's revision
    /// that changes `suspension` only, retried on a fresh read when another
    /// change won; lifecycle steps carry `suspension` over in turn (see
    /// `replace_org`), so neither loses the other.
    pub(crate) async fn change_state(
        &self,
        id: OrganizationId,
        change: &StateChange,
    ) -> Result<Organization, ChangeStateError> {
        let key = id.to_string();
        for attempt in 0..STATE_CHANGE_ATTEMPTS {
            let Some(current) = self.org_record(&key).await? else {
                return Err(ChangeStateError::NotFound);
            };
            if !current.is_visible() {
                return Err(ChangeStateError::NotFound);
            }
            let organization = current.to_organization()?;
            let Some(next_state) = change.apply(&organization.state) else {
                return Ok(organization);
            };
            let next = crate::records::OrgDoc {
                suspension: SuspensionDoc::of(&next_state),
                ..current.clone()
            };
            if let Some(stored) = self.swap_org(&current, next).await? {
                return Ok(stored.to_organization()?);
            }
            tokio::time::sleep(Duration::from_millis(2 * (attempt as u64 % 10 + 1))).await;
        }
        Err(StoreError::msg(format!(
            "organization {id}: other changes kept its state from being changed"
        ))
        .into())
    }

    /// The usage figures, counted through the store's own listings.
    pub(crate) async fn usage(
        &self,
        id: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<Option<OrganizationUsage>, UsageError> {
        if self.organization(id).await?.is_none() {
            return Ok(None);
        }
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let admins = count(self.admins_of(id).await?.len());

        let limit = PageSize::parse(100).map_err(|e| StoreError::new("page size", e))?;
        let mut pending_invitations = 0;
        let mut before = None;
        loop {
            let page = InvitationStore::invitations_of(self, id, InvitationQuery { limit, before })
                .await?;
            pending_invitations += count(
                page.invitations
                    .iter()
                    .filter(|i| i.status_at(now) == InvitationStatus::Pending)
                    .count(),
            );
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }

        let (mut documents, mut bytes) = (0, 0);
        let mut after = None;
        loop {
            let query = DocumentQuery {
                limit,
                after,
                filters: Vec::new(),
            };
            let page = match self.list_documents(id, query).await {
                Ok(page) => page,
                Err(DocumentError::OrganizationNotFound) => return Ok(None),
                Err(DocumentError::Store(e)) => return Err(e.into()),
                // A rename or move is under way: its documents are between
                // two places, so they are counted once it is done.
                Err(DocumentError::Busy) => return Err(UsageError::Busy),
                Err(other) => {
                    return Err(StoreError::msg(format!(
                        "counting organization {id}'s documents: {other}"
                    ))
                    .into())
                }
            };
            documents += count(page.documents.len());
            bytes += page
                .documents
                .iter()
                .map(|d| d.body.json_len())
                .sum::<u64>();
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(Some(OrganizationUsage {
            admins,
            pending_invitations,
            documents,
            bytes,
        }))
    }

    async fn organization(&self, id: OrganizationId) -> Result<Option<Organization>, StoreError> {
        orgsvc_domain::TenantStore::organization_by_id(self, id).await
    }
}
