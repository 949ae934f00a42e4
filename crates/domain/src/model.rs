//! Organizations and their admins, as the service sees them.

use chrono::{DateTime, Utc};

use crate::ids::{AdminId, OrganizationId};
use crate::values::{AdminEmail, CollectionName, OrganizationName, PasswordHash};

/// Where an organization's own data lives: its "connection details".
///
/// `collection` is the organization's logical collection, `org_<canonical
/// name>`, which the API shows as `collection_name` whatever the layout;
/// [`TenantLocation::physical_collection`] is where its documents are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantLocation {
    /// The database holding the documents.
    pub database: String,
    /// The logical tenant collection, `org_<canonical name>`.
    pub collection: CollectionName,
    /// How the documents are stored: in that collection of their own, or in
    /// the shared [`SHARED_DOCUMENTS_COLLECTION`] (issue #16).
    pub layout: TenantLayout,
}

impl TenantLocation {
    /// The collection (or table) that holds the documents: `collection`
    /// itself in [`TenantLayout::Collection`],
    /// [`SHARED_DOCUMENTS_COLLECTION`] in [`TenantLayout::Shared`].
    pub fn physical_collection(&self) -> &str {
        match self.layout {
            TenantLayout::Collection => self.collection.as_str(),
            TenantLayout::Shared => SHARED_DOCUMENTS_COLLECTION,
        }
    }
}

/// The collection (or table) of every organization stored in the
/// [`TenantLayout::Shared`] layout, each document carrying its
/// organization's id.
pub const SHARED_DOCUMENTS_COLLECTION: &str = "tenant_documents";

/// How an organization's documents are laid out in its database (issue #16).
///
/// A collection per organization isolates by construction and keeps each
/// tenant's data movable on its own, but every collection with its indexes
/// counts against a MongoDB cluster's budget of collections and indexes
/// (Atlas recommends at most 5,000 on M10, 10,000 on M20/M30, 100,000 on
/// M40 and up); the shared layout holds any number of organizations in one
/// collection whose every query is scoped by the organization's id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TenantLayout {
    /// One collection per organization, `org_<canonical name>`, renamed with
    /// the organization (the default, and the assignment's contract).
    #[default]
    Collection,
    /// The documents of every such organization in
    /// [`SHARED_DOCUMENTS_COLLECTION`], keyed by organization id; a rename
    /// changes no document.
    Shared,
}

impl TenantLayout {
    /// The stable name: `collection` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collection => "collection",
            Self::Shared => "shared",
        }
    }

    /// Parses [`TenantLayout::as_str`]'s names; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "collection" => Some(Self::Collection),
            "shared" => Some(Self::Shared),
            _ => None,
        }
    }
}

/// A registered organization (tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// Immutable id; survives renames.
    pub id: OrganizationId,
    /// Current name.
    pub name: OrganizationName,
    /// Where its data lives.
    pub location: TenantLocation,
    /// Its primary admin: the owner who created it or, once that admin is
    /// removed, the longest-standing remaining owner.
    pub admin_id: AdminId,
    /// Creation time (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// Last change of name or metadata (millisecond precision). A
    /// suspension or resumption does not change it.
    pub updated_at: DateTime<Utc>,
    /// Active, or suspended by an operator (issue #17).
    pub state: OrganizationState,
}

/// Whether an organization may be used (issue #17).
///
/// A suspended organization keeps everything it holds, but its admins
/// cannot log in or refresh, their access tokens are refused and its data
/// and admins cannot change until an operator resumes it (the rule is
/// applied once, in the application's use cases).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OrganizationState {
    /// In normal use (every organization starts active).
    #[default]
    Active,
    /// Suspended by an operator.
    Suspended(Suspension),
}

impl OrganizationState {
    /// The stable name: `active` or `suspended`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended(_) => "suspended",
        }
    }

    /// The suspension, when suspended.
    pub fn suspension(&self) -> Option<&Suspension> {
        match self {
            Self::Active => None,
            Self::Suspended(suspension) => Some(suspension),
        }
    }

    /// Whether the organization is suspended.
    pub fn is_suspended(&self) -> bool {
        matches!(self, Self::Suspended(_))
    }
}

/// Why and when an operator suspended an organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    /// The operator's reason: trimmed, 1 to 500 characters.
    pub reason: String,
    /// When the suspension took effect (millisecond precision).
    pub at: DateTime<Utc>,
}

impl Suspension {
    /// Longest reason, in characters.
    pub const MAX_REASON_LEN: usize = 500;

    /// A suspension for `reason` (trimmed, 1 to 500 characters) at `at`
    /// (truncated to the millisecond, as stores keep it).
    pub fn new(reason: &str, at: DateTime<Utc>) -> Result<Self, crate::ValueError> {
        let reason = reason.trim();
        let len = reason.chars().count();
        if !(1..=Self::MAX_REASON_LEN).contains(&len) {
            return Err(crate::ValueError::Length {
                min: 1,
                max: Self::MAX_REASON_LEN,
            });
        }
        let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
        Ok(Self {
            reason: reason.to_owned(),
            at,
        })
    }
}

/// An organization's admin user. Carries no credential: see
/// [`AdminCredentials`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// Immutable id.
    pub id: AdminId,
    /// The organization this admin manages.
    pub organization_id: OrganizationId,
    /// Login email, unique across all organizations.
    pub email: AdminEmail,
    /// What the admin may do in its organization.
    pub role: AdminRole,
    /// Incremented by every password change: access and refresh tokens carry
    /// the version they were issued under and are refused once it moved on.
    pub token_version: u32,
    /// Whether the admin proved to receive mail at `email` (issue #14): set
    /// by [`crate::AccountTokenStore::mark_email_verified`] (a used
    /// verification or reset token, an accepted invitation), cleared by an
    /// email change. New admins start unverified, and so do the admins that
    /// existed before verification did (the migrations set `false`: nothing
    /// was ever checked for them).
    pub email_verified: bool,
    /// Creation time (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// Last change of email or password (millisecond precision).
    pub updated_at: DateTime<Utc>,
}

impl Admin {
    /// Whether a credential issued to this admin (an access or a refresh
    /// token) for `organization` under `token_version` still holds: the
    /// admin is still in that organization and has not changed its password
    /// since (no removal, deletion or password change in between).
    pub fn accepts_credential(&self, organization: OrganizationId, token_version: u32) -> bool {
        self.organization_id == organization && self.token_version == token_version
    }
}

/// An admin together with its password hash, returned only for verifying a
/// login.
#[derive(Clone, Debug)]
pub struct AdminCredentials {
    /// The admin.
    pub admin: Admin,
    /// The stored hash to verify the presented password against.
    pub password_hash: PasswordHash,
}

/// What it takes to register an organization with its first admin.
#[derive(Clone, Debug)]
pub struct NewOrganization {
    /// The new organization's id.
    pub id: OrganizationId,
    /// Its name.
    pub name: OrganizationName,
    /// Its first admin, an owner.
    pub owner: NewOwner,
}

impl NewOrganization {
    /// A new organization with fresh ids.
    pub fn new(name: OrganizationName, email: AdminEmail, password_hash: PasswordHash) -> Self {
        Self {
            id: OrganizationId::new(),
            name,
            owner: NewOwner {
                id: AdminId::new(),
                email,
                password_hash,
            },
        }
    }
}

/// The first admin of a new organization. It has no role to choose: the
/// first admin of an organization is always an owner (so every organization
/// starts with the owner that the last-owner rule then keeps).
#[derive(Clone, Debug)]
pub struct NewOwner {
    /// The new admin's id.
    pub id: AdminId,
    /// Login email.
    pub email: AdminEmail,
    /// Hash of the chosen password.
    pub password_hash: PasswordHash,
}

impl NewOwner {
    /// The admin to store: this one, as an owner.
    pub fn as_admin(&self) -> NewAdmin {
        NewAdmin {
            id: self.id,
            email: self.email.clone(),
            role: AdminRole::Owner,
            password_hash: self.password_hash.clone(),
        }
    }
}

/// An admin to register: one added to an existing organization by an owner
/// (or a [`NewOwner`] as it is stored).
#[derive(Clone, Debug)]
pub struct NewAdmin {
    /// The new admin's id.
    pub id: AdminId,
    /// Login email.
    pub email: AdminEmail,
    /// Its role.
    pub role: AdminRole,
    /// Hash of the chosen password.
    pub password_hash: PasswordHash,
}

impl NewAdmin {
    /// A new admin with a fresh id.
    pub fn new(email: AdminEmail, role: AdminRole, password_hash: PasswordHash) -> Self {
        Self {
            id: AdminId::new(),
            email,
            role,
            password_hash,
        }
    }
}

/// What an admin may do in its organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdminRole {
    /// Everything an admin may do, plus: add, remove and change the role of
    /// admins, rename and delete the organization. Every organization has at
    /// least one owner.
    Owner,
    /// Reads the organization, manages its documents and its own
    /// credentials.
    Admin,
}

impl AdminRole {
    /// Every role.
    pub const ALL: [Self; 2] = [Self::Owner, Self::Admin];

    /// The stable name: `owner` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// A change to an admin's credentials; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct AdminUpdate {
    /// New login email.
    pub email: Option<AdminEmail>,
    /// Hash of the new password.
    pub password_hash: Option<PasswordHash>,
}

impl AdminUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.password_hash.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_holds_only_in_its_organization_under_its_token_version() {
        let admin = Admin {
            id: AdminId::new(),
            organization_id: OrganizationId::new(),
            email: AdminEmail::parse("a@b.example").unwrap(),
            role: AdminRole::Admin,
            token_version: 2,
            email_verified: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        assert!(admin.accepts_credential(admin.organization_id, 2));
        // Issued before a password change.
        assert!(!admin.accepts_credential(admin.organization_id, 1));
        // Issued for another organization (the admin was removed and its
        // email registered elsewhere).
        assert!(!admin.accepts_credential(OrganizationId::new(), 2));
    }
}
