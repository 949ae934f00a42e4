//! The documents stored in the master database and their conversion to
//! domain values.
//!
//! Ids are stored as hyphenated UUID strings and times as BSON dates written
//! by inserts and whole-document replacements (never by `$set`). Every record
//! carries a `revision`, bumped by each change: writes replace the whole
//! document on the condition that the revision is still the one read
//! (compare-and-swap), so concurrent changes never silently overwrite each
//! other.

use std::str::FromStr;
use std::time::Duration;

use crate::errors::store_error;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, Document};
use orgsvc_domain::{
    Admin, AdminCredentials, AdminEmail, AdminId, AdminRole, CollectionName, NewAdmin,
    Organization, OrganizationId, OrganizationName, OrganizationState, PasswordHash, StoreError,
    Suspension, TenantLayout, TenantLocation,
};
use serde::{Deserialize, Serialize};

/// Organizations, one document each.
pub(crate) const ORGANIZATIONS: &str = "organizations";
/// Admins, one document each, unique by email.
pub(crate) const ADMINS: &str = "admins";
/// Claims on canonical organization names: `_id` is the canonical name.
pub(crate) const ORGANIZATION_NAMES: &str = "organization_names";

/// Where an organization is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OrgState {
    /// Being created: invisible; rolled back by reconcile if stale.
    Provisioning,
    /// Complete and visible.
    Active,
    /// Being renamed: visible under the name in the record; rolled forward.
    Renaming,
    /// Being deleted: invisible; rolled forward.
    Deleting,
    /// Its documents are moving to another layout (`pending.move`, see
    /// `lifecycle/tenant_move.rs`): visible; rolled forward.
    Moving,
}

impl OrgState {
    /// The states whose organizations lookups return.
    pub(crate) fn visible_filter() -> Document {
        doc! { "$in": ["active", "renaming", "moving"] }
    }
}

/// The operation an organization is going through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingOp {
    /// When the operation started; reconcile leaves younger ones alone.
    pub started_at: bson::DateTime,
    /// The names involved, for a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<PendingRename>,
    /// Who may take the operation's next step (see `lease.rs`); absent on
    /// records written before leases existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseDoc>,
    /// The layouts involved, for a move of the documents (stored as
    /// `move`).
    #[serde(rename = "move", default, skip_serializing_if = "Option::is_none")]
    pub relayout: Option<PendingMove>,
}

impl PendingOp {
    /// An operation starting now, held by a new lease of epoch 1.
    pub(crate) fn starting(rename: Option<PendingRename>) -> Self {
        let lease = LeaseDoc::new(1);
        Self {
            started_at: bson::DateTime::from_millis(lease.renewed_ms),
            rename,
            lease: Some(lease),
            relayout: None,
        }
    }

    /// A move of the documents starting now, held by a new lease of epoch 1.
    pub(crate) fn starting_move(relayout: PendingMove) -> Self {
        Self {
            relayout: Some(relayout),
            ..Self::starting(None)
        }
    }
}

/// How an organization's documents are stored (`layout` in its record):
/// the domain's [`TenantLayout`] by its stable name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredLayout {
    /// `org_<canonical name>`, a collection of its own (records written
    /// before layouts existed have no `layout` and are read as this).
    #[default]
    Collection,
    /// The shared `tenant_documents` collection, scoped by organization id.
    Shared,
}

impl From<TenantLayout> for StoredLayout {
    fn from(layout: TenantLayout) -> Self {
        match layout {
            TenantLayout::Collection => Self::Collection,
            TenantLayout::Shared => Self::Shared,
        }
    }
}

impl From<StoredLayout> for TenantLayout {
    fn from(layout: StoredLayout) -> Self {
        match layout {
            StoredLayout::Collection => Self::Collection,
            StoredLayout::Shared => Self::Shared,
        }
    }
}

/// What a move of the documents moves from and to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingMove {
    pub from: StoredLayout,
    pub to: StoredLayout,
}

/// What a rename moves from and to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingRename {
    pub from_canonical: String,
    pub from_collection: String,
    pub to_name: String,
    pub to_canonical: String,
    pub to_collection: String,
}

/// An organization record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrgDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub revision: i64,
    pub name: String,
    pub canonical: String,
    pub database: String,
    /// The logical tenant collection, `org_<canonical name>`, whatever the
    /// layout.
    pub collection: String,
    /// Where the documents are (absent on records written before layouts
    /// existed: a collection of their own, so no data migration is needed).
    #[serde(default)]
    pub layout: StoredLayout,
    pub admin_id: String,
    pub created_at: bson::DateTime,
    pub updated_at: bson::DateTime,
    pub state: OrgState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingOp>,
    /// A committed removal or role change of one of its admins that is not
    /// yet applied to the admin's record (see `admin_changes.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_change: Option<AdminChange>,
    /// An operator's suspension (issue #17); absent while active. Not a
    /// lifecycle field: lifecycle steps carry it over (see
    /// [`OrgDoc::same_lifecycle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<SuspensionDoc>,
}

/// A suspension as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SuspensionDoc {
    pub reason: String,
    pub at: bson::DateTime,
}

impl SuspensionDoc {
    /// The stored form of `state`'s suspension, if any.
    pub(crate) fn of(state: &OrganizationState) -> Option<Self> {
        state.suspension().map(|suspension| Self {
            reason: suspension.reason.clone(),
            at: to_bson_time(suspension.at),
        })
    }
}

/// A removal or role change of an admin, committed on its organization's
/// record and then applied to the admin's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AdminChange {
    /// The admin it concerns.
    pub admin_id: String,
    /// Its new role; `None` when the admin is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<StoredRole>,
    /// The organization record's revision that committed the change: roles
    /// applied to admin records carry it, so a late retry of an older change
    /// never overwrites a newer one.
    pub revision: i64,
    /// When it was committed; reconcile leaves younger ones alone.
    pub started_at: bson::DateTime,
}

impl AdminChange {
    /// `admin` as this change leaves it: `None` when the change removes it.
    /// Admins it does not concern, and admin records that already carry
    /// this or a later change, come back unchanged.
    pub(crate) fn overlay(&self, admin: AdminDoc) -> Option<AdminDoc> {
        if admin.id != self.admin_id || admin.role_revision >= self.revision {
            return Some(admin);
        }
        let role = self.role?;
        Some(AdminDoc {
            role,
            role_revision: self.revision,
            ..admin
        })
    }
}

impl OrgDoc {
    /// The record of an organization about to be created.
    pub(crate) fn provisioning(
        id: OrganizationId,
        name: &OrganizationName,
        database: &str,
        layout: StoredLayout,
        admin_id: AdminId,
        now: bson::DateTime,
    ) -> Self {
        Self {
            id: id.to_string(),
            revision: 0,
            name: name.as_str().to_owned(),
            canonical: name.canonical().to_owned(),
            database: database.to_owned(),
            collection: name.collection_name().as_str().to_owned(),
            layout,
            admin_id: admin_id.to_string(),
            created_at: now,
            updated_at: now,
            state: OrgState::Provisioning,
            pending: Some(PendingOp {
                started_at: now,
                rename: None,
                lease: Some(LeaseDoc::new(1)),
                relayout: None,
            }),
            admin_change: None,
            suspension: None,
        }
    }

    /// Whether the record is visible to lookups (active, renaming or
    /// moving).
    pub(crate) fn is_visible(&self) -> bool {
        matches!(
            self.state,
            OrgState::Active | OrgState::Renaming | OrgState::Moving
        )
    }

    /// Whether `other` is the same record but for what admin changes and
    /// lease renewals write (`revision`, `admin_id`, `admin_change`,
    /// `pending.lease.renewed_ms`): lifecycle steps that lose a
    /// compare-and-swap to those only may take their step again, and a
    /// record that differs from another only in them went through no
    /// lifecycle step in between.
    pub(crate) fn same_lifecycle(&self, other: &Self) -> bool {
        let strip = |record: &Self| {
            let mut stripped = Self {
                revision: 0,
                admin_id: String::new(),
                admin_change: None,
                suspension: None,
                ..record.clone()
            };
            if let Some(lease) = stripped.pending.as_mut().and_then(|p| p.lease.as_mut()) {
                lease.renewed_ms = 0;
            }
            stripped
        };
        strip(self) == strip(other)
    }

    /// The lease of its pending operation, if it has one.
    pub(crate) fn lease(&self) -> Option<&LeaseDoc> {
        self.pending.as_ref().and_then(|p| p.lease.as_ref())
    }

    /// `admin` as the pending admin change leaves it (see
    /// [`AdminChange::overlay`]).
    pub(crate) fn overlay(&self, admin: AdminDoc) -> Option<AdminDoc> {
        match &self.admin_change {
            Some(change) => change.overlay(admin),
            None => Some(admin),
        }
    }

    /// The same record, active and without a pending operation.
    pub(crate) fn settled(&self) -> Self {
        Self {
            state: OrgState::Active,
            pending: None,
            ..self.clone()
        }
    }

    /// The same record going through `op`.
    pub(crate) fn entering(&self, state: OrgState, op: PendingOp) -> Self {
        Self {
            state,
            pending: Some(op),
            ..self.clone()
        }
    }

    /// The rename it is going through, if any.
    pub(crate) fn pending_rename(&self) -> Option<&PendingRename> {
        self.pending.as_ref().and_then(|p| p.rename.as_ref())
    }

    /// The move of its documents it is going through, if any.
    pub(crate) fn pending_move(&self) -> Option<PendingMove> {
        self.pending.as_ref().and_then(|p| p.relayout)
    }

    /// The domain view of the record.
    pub(crate) fn to_organization(&self) -> Result<Organization, StoreError> {
        Ok(Organization {
            id: parse_id(&self.id, "organization")?,
            name: OrganizationName::parse(&self.name)
                .map_err(|e| corrupt("organization", &self.id, "name", e))?,
            location: TenantLocation {
                database: self.database.clone(),
                collection: CollectionName::parse(&self.collection)
                    .map_err(|e| corrupt("organization", &self.id, "collection", e))?,
                layout: self.layout.into(),
            },
            admin_id: parse_id(&self.admin_id, "admin")?,
            created_at: to_chrono(self.created_at)?,
            updated_at: to_chrono(self.updated_at)?,
            state: match &self.suspension {
                Some(suspension) => OrganizationState::Suspended(Suspension {
                    reason: suspension.reason.clone(),
                    at: to_chrono(suspension.at)?,
                }),
                None => OrganizationState::Active,
            },
        })
    }
}

/// An admin's role as stored: `owner` or `admin`.
///
/// Migration 0003 gave every admin record written before roles existed
/// `role: owner` (they were all their organizations' creators) and its
/// validator requires the field since, so a record without one is corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredRole {
    Owner,
    Admin,
}

impl From<AdminRole> for StoredRole {
    fn from(role: AdminRole) -> Self {
        match role {
            AdminRole::Owner => Self::Owner,
            AdminRole::Admin => Self::Admin,
        }
    }
}

impl From<StoredRole> for AdminRole {
    fn from(role: StoredRole) -> Self {
        match role {
            StoredRole::Owner => Self::Owner,
            StoredRole::Admin => Self::Admin,
        }
    }
}

impl StoredRole {
    /// The stored name, as in queries.
    pub(crate) fn as_str(self) -> &'static str {
        AdminRole::from(self).as_str()
    }
}

/// An admin record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AdminDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub revision: i64,
    pub organization_id: String,
    pub email: String,
    pub password_hash: String,
    pub role: StoredRole,
    /// The organization record revision of the admin change that set `role`
    /// (0: set when the admin was added).
    #[serde(default)]
    pub role_revision: i64,
    pub token_version: i64,
    /// 1 once the email is verified (an integer: booleans are not stored
    /// alike by every MongoDB-compatible server); missing on records
    /// written before verification existed, read as 0.
    #[serde(default)]
    pub email_verified: i32,
    pub created_at: bson::DateTime,
    pub updated_at: bson::DateTime,
    /// Set while `add_admin` has not confirmed the record yet: such a record
    /// holds its email but is invisible (see `admin_add.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<bson::DateTime>,
}

impl AdminDoc {
    /// The record of a new admin with this role (committed: not pending).
    pub(crate) fn new(
        admin: &NewAdmin,
        organization_id: OrganizationId,
        role: AdminRole,
        now: bson::DateTime,
    ) -> Self {
        Self {
            id: admin.id.to_string(),
            revision: 0,
            organization_id: organization_id.to_string(),
            email: admin.email.as_str().to_owned(),
            password_hash: admin.password_hash.as_phc_str().to_owned(),
            role: role.into(),
            role_revision: 0,
            token_version: 0,
            email_verified: 0,
            created_at: now,
            updated_at: now,
            pending_since: None,
        }
    }

    /// The domain view of the record, without the password hash.
    pub(crate) fn to_admin(&self) -> Result<Admin, StoreError> {
        Ok(Admin {
            id: parse_id(&self.id, "admin")?,
            organization_id: parse_id(&self.organization_id, "organization")?,
            email: AdminEmail::parse(&self.email)
                .map_err(|e| corrupt("admin", &self.id, "email", e))?,
            role: self.role.into(),
            token_version: u32::try_from(self.token_version)
                .map_err(|e| corrupt("admin", &self.id, "token_version", e))?,
            email_verified: self.email_verified != 0,
            created_at: to_chrono(self.created_at)?,
            updated_at: to_chrono(self.updated_at)?,
        })
    }

    /// The domain view of the record with its password hash.
    pub(crate) fn to_credentials(&self) -> Result<AdminCredentials, StoreError> {
        Ok(AdminCredentials {
            admin: self.to_admin()?,
            password_hash: PasswordHash::from_phc_string(self.password_hash.clone()),
        })
    }
}

/// A claim on a canonical organization name. The unique `_id` makes it the
/// arbiter of name uniqueness, including names reserved by renames.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NameClaim {
    /// The canonical name.
    #[serde(rename = "_id")]
    pub canonical: String,
    /// The organization holding it, or for a reservation of the orphan
    /// sweep (see `orphans.rs`) `sweep:<uuid>`.
    pub organization_id: String,
    /// When the orphan sweep reserved the name (ms since the epoch); absent
    /// on organizations' claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_ms: Option<i64>,
}

/// The current time at the precision MongoDB stores (milliseconds): the
/// domain's clock ([`orgsvc_domain::clock::now_millis`]).
pub(crate) fn now() -> bson::DateTime {
    to_bson_time(orgsvc_domain::clock::now_millis())
}

/// A stored time as a domain value (exact: both have millisecond precision).
pub(crate) fn to_chrono(time: bson::DateTime) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(time.timestamp_millis())
        .ok_or_else(|| StoreError::msg("a stored time is out of range"))
}

/// A domain time as stored: milliseconds since the epoch (anything finer is
/// dropped, as MongoDB would).
pub(crate) fn to_bson_time(time: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(time.timestamp_millis())
}

/// A stored id (a hyphenated UUID string) as a domain id.
pub(crate) fn parse_id<T: FromStr<Err = uuid::Error>>(
    raw: &str,
    what: &str,
) -> Result<T, StoreError> {
    raw.parse()
        .map_err(|e| store_error(format!("a stored {what} id is not a UUID"), e))
}

fn corrupt(
    what: &str,
    id: &str,
    field: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    store_error(format!("{what} {id} has an invalid {field}"), source)
}

/// The lease of an operation as stored in `pending.lease`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseDoc {
    /// This run of the operation (a UUID).
    pub holder: String,
    /// Runs of the operation so far: 1, +1 per takeover.
    pub epoch: i64,
    /// The holder's wall clock at its last renewal (ms since the Unix epoch).
    pub renewed_ms: i64,
}

impl LeaseDoc {
    /// A new lease of the given epoch, renewed now.
    pub(crate) fn new(epoch: i64) -> Self {
        Self {
            holder: uuid::Uuid::new_v4().to_string(),
            epoch,
            renewed_ms: now_ms(),
        }
    }

    /// Whether nobody renewed it for `timeout` as of `now_ms`.
    pub(crate) fn expired(&self, timeout: Duration, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.renewed_ms) >= millis(timeout)
    }
}

/// The wall clock in milliseconds since the Unix epoch (the domain's clock).
pub(crate) fn now_ms() -> i64 {
    orgsvc_domain::clock::now_millis().timestamp_millis()
}

/// `duration` in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{from_document, to_document, Bson};
    use orgsvc_domain::AdminEmail;

    fn new_admin() -> NewAdmin {
        NewAdmin::new(
            AdminEmail::parse("Owner@Acme.example").unwrap(),
            AdminRole::Admin,
            PasswordHash::from_phc_string("$argon2id$v=19$x".into()),
        )
    }

    fn admin_doc(role: AdminRole) -> AdminDoc {
        AdminDoc::new(&new_admin(), OrganizationId::new(), role, now())
    }

    #[test]
    fn organization_document_round_trips_with_bson_dates_and_string_ids() {
        let name = OrganizationName::parse("Acme Corp").unwrap();
        let id = OrganizationId::new();
        let doc = OrgDoc::provisioning(
            id,
            &name,
            "master",
            StoredLayout::Collection,
            AdminId::new(),
            now(),
        );
        let stored = to_document(&doc).unwrap();
        assert_eq!(stored.get("_id"), Some(&Bson::String(id.to_string())));
        assert!(matches!(stored.get("created_at"), Some(Bson::DateTime(_))));
        assert_eq!(stored.get_str("state").unwrap(), "provisioning");
        assert_eq!(stored.get_str("collection").unwrap(), "org_acme_corp");
        assert_eq!(from_document::<OrgDoc>(stored).unwrap(), doc);

        let org = doc.settled().to_organization().unwrap();
        assert_eq!(org.id, id);
        assert_eq!(org.name, name);
        assert_eq!(org.location.database, "master");
        assert_eq!(
            org.created_at.timestamp_millis(),
            doc.created_at.timestamp_millis()
        );
    }

    #[test]
    fn settled_document_has_no_pending_field() {
        let name = OrganizationName::parse("Acme").unwrap();
        let doc = OrgDoc::provisioning(
            OrganizationId::new(),
            &name,
            "m",
            StoredLayout::Collection,
            AdminId::new(),
            now(),
        );
        let stored = to_document(&doc.settled()).unwrap();
        assert!(!stored.contains_key("pending"));
        assert_eq!(stored.get_str("state").unwrap(), "active");
    }

    #[test]
    fn admin_document_keeps_the_normalised_email_and_hash() {
        let admin = new_admin();
        let doc = AdminDoc::new(&admin, OrganizationId::new(), AdminRole::Owner, now());
        assert_eq!(doc.email, "owner@acme.example");
        let credentials = doc.to_credentials().unwrap();
        assert_eq!(credentials.admin.id, admin.id);
        assert_eq!(credentials.admin.token_version, 0);
        assert_eq!(credentials.password_hash, admin.password_hash);
    }

    #[test]
    fn corrupt_records_become_store_errors() {
        let mut doc = admin_doc(AdminRole::Owner);
        doc.token_version = -1;
        assert!(doc.to_admin().is_err());
        doc.token_version = 0;
        doc.organization_id = "not-a-uuid".into();
        assert!(doc.to_admin().is_err());
    }

    #[test]
    fn admin_roles_are_stored_by_their_stable_names() {
        for role in AdminRole::ALL {
            let doc = admin_doc(role);
            let stored = to_document(&doc).unwrap();
            assert_eq!(stored.get_str("role").unwrap(), role.as_str());
            assert_eq!(StoredRole::from(role).as_str(), role.as_str());
            assert!(!stored.contains_key("pending_since"));
            assert_eq!(from_document::<AdminDoc>(stored).unwrap(), doc);
            assert_eq!(doc.to_admin().unwrap().role, role);
        }
    }

    #[test]
    fn an_admin_record_without_a_role_is_corrupt() {
        let mut stored = to_document(&admin_doc(AdminRole::Owner)).unwrap();
        stored.remove("role");
        assert!(from_document::<AdminDoc>(stored.clone()).is_err());
        stored.insert("role", "superuser");
        assert!(from_document::<AdminDoc>(stored).is_err());
    }

    #[test]
    fn a_pending_admin_change_overlays_only_older_records_of_its_admin() {
        let owner = admin_doc(AdminRole::Owner);
        let other = admin_doc(AdminRole::Owner);
        let demotion = AdminChange {
            admin_id: owner.id.clone(),
            role: Some(StoredRole::Admin),
            revision: 7,
            started_at: now(),
        };
        let demoted = demotion.overlay(owner.clone()).unwrap();
        assert_eq!(
            (demoted.role, demoted.role_revision),
            (StoredRole::Admin, 7)
        );
        assert_eq!(demotion.overlay(other.clone()), Some(other));
        let newer = AdminDoc {
            role_revision: 9,
            ..owner.clone()
        };
        assert_eq!(demotion.overlay(newer.clone()), Some(newer));

        let removal = AdminChange {
            role: None,
            ..demotion
        };
        assert_eq!(removal.overlay(owner), None);
    }

    #[test]
    fn lifecycle_comparison_ignores_only_what_admin_changes_write() {
        let name = OrganizationName::parse("Acme").unwrap();
        let record = OrgDoc::provisioning(
            OrganizationId::new(),
            &name,
            "m",
            StoredLayout::Collection,
            AdminId::new(),
            now(),
        )
        .settled();
        let admin_changed = OrgDoc {
            revision: record.revision + 1,
            admin_id: AdminId::new().to_string(),
            admin_change: Some(AdminChange {
                admin_id: record.admin_id.clone(),
                role: None,
                revision: record.revision + 1,
                started_at: now(),
            }),
            ..record.clone()
        };
        assert!(record.same_lifecycle(&admin_changed));
        let renamed = OrgDoc {
            name: "Acme Two".into(),
            ..admin_changed
        };
        assert!(!record.same_lifecycle(&renamed));
        assert!(!record.same_lifecycle(&OrgDoc {
            state: OrgState::Deleting,
            ..record.clone()
        }));
    }
}
