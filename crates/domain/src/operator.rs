//! What operators see of every organization (issue #17): the listing and
//! its search, suspension, usage figures and the audit log across
//! organizations.
//!
//! Listing order is the canonical name, ascending: unique, so the order is
//! stable, and a prefix search is one range of the canonical-name index
//! (`[fragment, fragment~)`, see [`NameFragment::prefix_upper_bound`]) read in
//! order and cut at the page size, whatever the number of organizations. A
//! substring search walks the same index in order and stops once a page is
//! full: cheap when matches are common, a scan of the names after the cursor
//! when they are rare. An organization renamed while a client pages through
//! moves in the order: it may be listed twice or not at all in that walk.

use chrono::{DateTime, Utc};

use crate::documents::PageSize;
use crate::errors::StoreError;
use crate::model::{Organization, OrganizationState, Suspension};
use crate::values::{NameFragment, ValueError};

/// How a search fragment matches a canonical name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameMatch {
    /// The canonical name starts with the fragment (an index range).
    #[default]
    Prefix,
    /// The canonical name contains the fragment anywhere.
    Substring,
}

impl NameMatch {
    /// Every mode.
    pub const ALL: [Self; 2] = [Self::Prefix, Self::Substring];

    /// The stable name: `prefix` or `substring`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prefix => "prefix",
            Self::Substring => "substring",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }
}

/// A name search: a canonical fragment and how it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameSearch {
    /// The fragment, in canonical form.
    pub fragment: NameFragment,
    /// Prefix or substring.
    pub mode: NameMatch,
}

impl NameSearch {
    /// Whether a canonical name matches.
    pub fn matches(&self, canonical: &str) -> bool {
        match self.mode {
            NameMatch::Prefix => self.fragment.is_prefix_of(canonical),
            NameMatch::Substring => self.fragment.is_in(canonical),
        }
    }
}

/// The organization states a listing may be restricted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    /// Organizations that are not suspended.
    Active,
    /// Suspended organizations.
    Suspended,
}

impl StateFilter {
    /// Every filter.
    pub const ALL: [Self; 2] = [Self::Active, Self::Suspended];

    /// The stable name: `active` or `suspended` (as [`OrganizationState::as_str`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Whether a state passes the filter.
    pub fn admits(self, state: &OrganizationState) -> bool {
        matches!(
            (self, state),
            (Self::Active, OrganizationState::Active)
                | (Self::Suspended, OrganizationState::Suspended(_))
        )
    }
}

/// Where an organization listing continues: after the organization with this
/// canonical name (opaque to clients; it is the canonical name itself).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrganizationCursor(String);

impl OrganizationCursor {
    /// The cursor after `organization`.
    pub fn after(organization: &Organization) -> Self {
        Self(organization.name.canonical().to_owned())
    }

    /// Parses a cursor produced by [`OrganizationCursor::as_str`].
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::Format("is not a cursor returned by this API"))
        }
    }

    /// The canonical name to continue after.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A page request over every organization, in canonical-name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationQuery {
    /// Only names matching this search.
    pub search: Option<NameSearch>,
    /// Only organizations in this state.
    pub state: Option<StateFilter>,
    /// Only organizations created strictly after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only organizations created strictly before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: PageSize,
    /// Continue after this cursor; `None` starts at the beginning.
    pub after: Option<OrganizationCursor>,
}

impl OrganizationQuery {
    /// Whether `organization` meets every filter and lies after the cursor:
    /// the rule every store's listing follows.
    pub fn admits(&self, organization: &Organization) -> bool {
        let canonical = organization.name.canonical();
        self.after
            .as_ref()
            .is_none_or(|after| canonical > after.as_str())
            && self
                .search
                .as_ref()
                .is_none_or(|search| search.matches(canonical))
            && self
                .state
                .is_none_or(|state| state.admits(&organization.state))
            && self
                .created_after
                .is_none_or(|after| organization.created_at > after)
            && self
                .created_before
                .is_none_or(|before| organization.created_at < before)
    }

    /// The page of `sorted` (matching organizations in canonical-name
    /// order, at least `limit + 1` of them when more follow).
    pub fn page(&self, mut sorted: Vec<Organization>) -> OrganizationPage {
        let limit = self.limit.get();
        let more = sorted.len() > limit;
        sorted.truncate(limit);
        let next = if more {
            sorted.last().map(OrganizationCursor::after)
        } else {
            None
        };
        OrganizationPage {
            organizations: sorted,
            next,
        }
    }
}

/// One page of organizations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganizationPage {
    /// Organizations in canonical-name order.
    pub organizations: Vec<Organization>,
    /// Where the next page starts when more organizations may follow.
    pub next: Option<OrganizationCursor>,
}

/// What an organization holds, counted by the store at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrganizationUsage {
    /// Its admins (every role).
    pub admins: u64,
    /// Its invitations still pending at the time of the count (neither
    /// accepted, revoked nor expired).
    pub pending_invitations: u64,
    /// Documents in its tenant collection.
    pub documents: u64,
    /// Bytes of its documents' bodies, each counted as its compact JSON
    /// text (UTF-8), the form clients send and receive: the same figure on
    /// every store, whatever the store's own encoding.
    pub bytes: u64,
}

/// A change of an organization's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// Suspend it (unless it is already suspended).
    Suspend(Suspension),
    /// Resume it (unless it is active).
    Resume,
}

impl StateChange {
    /// The state after this change, or `None` when it changes nothing:
    /// suspending a suspended organization keeps its first suspension (reason
    /// and time) and resuming an active one does nothing, so both are
    /// idempotent.
    pub fn apply(&self, current: &OrganizationState) -> Option<OrganizationState> {
        match (self, current) {
            (Self::Suspend(suspension), OrganizationState::Active) => {
                Some(OrganizationState::Suspended(suspension.clone()))
            }
            (Self::Resume, OrganizationState::Suspended(_)) => Some(OrganizationState::Active),
            _ => None,
        }
    }
}

/// Why [`crate::TenantStore::change_organization_state`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeStateError {
    /// No such organization (or one being created or deleted).
    #[error("organization not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspension_is_kept_by_a_second_suspend_and_undone_by_resume() {
        let first = Suspension::new("unpaid", Utc::now()).map(StateChange::Suspend);
        let Ok(first) = first else {
            unreachable!("a valid reason")
        };
        let suspended = first.apply(&OrganizationState::Active);
        assert!(matches!(suspended, Some(OrganizationState::Suspended(_))));
        let Some(suspended) = suspended else { return };
        assert_eq!(first.apply(&suspended), None);
        assert_eq!(
            StateChange::Resume.apply(&suspended),
            Some(OrganizationState::Active)
        );
        assert_eq!(StateChange::Resume.apply(&OrganizationState::Active), None);
    }

    #[test]
    fn prefix_bound_sorts_after_every_name_with_the_prefix() {
        let Ok(fragment) = NameFragment::parse("Ac-me") else {
            unreachable!("a valid fragment")
        };
        assert_eq!(fragment.as_str(), "ac_me");
        let upper = fragment.prefix_upper_bound();
        for name in ["ac_me", "ac_me_zzz", "ac_me9", "ac_me_"] {
            assert!(name >= fragment.as_str() && name < upper.as_str(), "{name}");
        }
        assert!("ac_mf" >= upper.as_str());
    }

    #[test]
    fn cursors_are_canonical_names_only() {
        assert!(OrganizationCursor::parse("acme_corp").is_ok());
        for bad in ["", "Acme", "a b", "a~"] {
            assert!(OrganizationCursor::parse(bad).is_err(), "{bad:?}");
        }
    }
}
