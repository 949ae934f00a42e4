//! Removing admins and changing their roles without transactions, so that
//! every organization keeps at least one owner even when changes race.
//!
//! # Protocol
//!
//! The organization record is the serialization point. A removal or role
//! change:
//!
//! 1. reads the organization record (it must be visible: active or
//!    renaming); if it carries a pending `admin_change`, finishes that one
//!    first (steps 4 and 5) and starts over;
//! 2. reads the organization's confirmed admins and decides: `NotFound`,
//!    `LastOwner` (no other owner would remain), nothing to do (the admin
//!    already has the role), or the change, with the new primary admin (the
//!    oldest remaining owner when the primary stops being an owner);
//! 3. **commits**: compare-and-swap of the organization record on its
//!    `revision`, setting `admin_id` to the new primary and `admin_change`
//!    to `{admin_id, role (absent: removal), revision, started_at}`; on a
//!    lost swap it starts over at step 1;
//! 4. applies the change to the admin record: deletes it, or sets its `role`
//!    and `role_revision` (only while its `role_revision` is older than the
//!    change's, so a late retry of an older change never undoes a newer one;
//!    the update also bumps the admin record's revision, so a credential
//!    change that read the old record does not write the old role back);
//! 5. clears `admin_change` (compare-and-swap).
//!
//! # Why the last owner survives races
//!
//! Two changes that both read revision `r` decide on admins read after
//! `r`, and only one swap from `r` succeeds. The other starts over, meets
//! the winner's `admin_change` and finishes it before reading the admins
//! again, so it decides on what the winner left. Admin records change role
//! or disappear only through a committed change (or with their whole
//! organization, whose deletion also moves the revision), and additions only
//! ever add admins (see `admin_add.rs`).
//!
//! # Crash safety
//!
//! Step 3 is the commit point: before it nothing is written; from it on the
//! change is fully visible, because every read applies the pending
//! `admin_change` over the admin records (see `admins.rs`): the removed admin
//! is gone, the demoted one is an admin, `admin_id` names the new primary,
//! and an owner always remains. Steps 4 and 5 are idempotent; whoever comes
//! next finishes them: the request itself, the next change to the same
//! organization, or reconcile (for changes older than its `stale_after`,
//! counted as completed). A change that fails after its commit point still
//! answers success: it happened.
//!
//! Lifecycle steps (rename, delete) compare-and-swap the same record; they
//! take their step again when only admin fields changed (see
//! `lifecycle/mod.rs`), while admin changes start over when a lifecycle step
//! moved the revision. Organizations being created or deleted have no
//! admins to change (`NotFound`).

use mongodb::bson::doc;
use orgsvc_domain::{
    plan_admin_change, Admin, AdminChangePlan, AdminId, AdminStanding, ChangeAdminError,
    OrganizationId, StoreError,
};

use crate::errors::store_error;
use crate::failpoints::Step;
use crate::records::{self, AdminChange, AdminDoc, OrgDoc, StoredRole};
use crate::store::MongoStore;

/// How often a change starts over after losing its compare-and-swap (to
/// another admin change or a lifecycle step) before giving up.
const CHANGE_ATTEMPTS: usize = 16;

/// How often a committed change tries to clear itself from a record that
/// lifecycle steps keep moving.
const SETTLE_ATTEMPTS: usize = 4;

/// What to do with an admin: the domain's change, named apart from the
/// stored [`AdminChange`] record.
pub(crate) use orgsvc_domain::AdminChange as AdminChangeKind;

impl MongoStore {
    /// Removes an admin or changes its role (see the module documentation);
    /// returns the admin as the change left it (`None` once removed).
    pub(crate) async fn change_admin_role(
        &self,
        organization: OrganizationId,
        admin: AdminId,
        kind: AdminChangeKind,
    ) -> Result<Option<Admin>, ChangeAdminError> {
        let (org_id, admin_id) = (organization.to_string(), admin.to_string());
        for _ in 0..CHANGE_ATTEMPTS {
            let record = match self.org_record(&org_id).await? {
                Some(record) if record.is_visible() => record,
                _ => return Err(ChangeAdminError::NotFound),
            };
            if record.admin_change.is_some() {
                self.finish_admin_change(&record).await?;
                continue;
            }
            let admins = self.confirmed_admins(&org_id).await?;
            let change = match decide(&record, &admins, &admin_id, kind)? {
                Decision::Unchanged(target) => return Ok(Some(target.to_admin()?)),
                Decision::Commit(change) => change,
            };
            self.checkpoint(Step::AdminChangeDecided).await?;
            let Some(committed) = self.swap_org(&record, change.record).await? else {
                continue; // changed meanwhile: decide again
            };
            self.checkpoint(Step::AdminChangeRecorded).await?;
            if let Err(e) = self.settle_admin_change(committed).await {
                tracing::warn!(
                    organization = %org_id, admin = %admin_id, error = ?e,
                    "an admin change is committed but not applied yet; it is finished later"
                );
            }
            return change
                .result
                .map(|admin| admin.to_admin())
                .transpose()
                .map_err(Into::into);
        }
        Err(StoreError::msg(format!(
            "the admins of organization {org_id} kept changing while admin {admin_id} was changed"
        ))
        .into())
    }

    /// Finishes the change `committed` carries, reading the record again
    /// while it still carries that change but moved on (a lifecycle step
    /// took its revision): gives up after a few rounds, leaving the rest to
    /// the next change or reconcile.
    async fn settle_admin_change(&self, committed: OrgDoc) -> Result<(), StoreError> {
        let mut record = committed;
        let change = record.admin_change.clone();
        for _ in 0..SETTLE_ATTEMPTS {
            if self.finish_admin_change(&record).await? {
                return Ok(());
            }
            match self.org_record(&record.id).await? {
                Some(fresh) if fresh.is_visible() && fresh.admin_change == change => record = fresh,
                _ => return Ok(()), // finished by someone else, or deleted
            }
        }
        Ok(())
    }

    /// Applies the record's pending admin change to the admin record and
    /// clears it from the organization record; `true` when this call cleared
    /// it (`false`: nothing pending, or the record changed meanwhile).
    pub(crate) async fn finish_admin_change(&self, record: &OrgDoc) -> Result<bool, StoreError> {
        let Some(change) = &record.admin_change else {
            return Ok(false);
        };
        self.apply_admin_change(&record.id, change).await?;
        self.checkpoint(Step::AdminChangeApplied).await?;
        let cleared = OrgDoc {
            admin_change: None,
            ..record.clone()
        };
        Ok(self.swap_org(record, cleared).await?.is_some())
    }

    /// Step 4: deletes the admin record, or gives it the new role unless it
    /// already carries this change or a later one. Idempotent.
    async fn apply_admin_change(
        &self,
        org_id: &str,
        change: &AdminChange,
    ) -> Result<(), StoreError> {
        let Some(role) = change.role else {
            self.admins()
                .delete_one(doc! { "_id": &change.admin_id, "organization_id": org_id })
                .await
                .map_err(|e| store_error("deleting a removed admin", e))?;
            return Ok(());
        };
        self.admins()
            .update_one(
                doc! {
                    "_id": &change.admin_id,
                    "organization_id": org_id,
                    "$or": [
                        { "role_revision": { "$lt": change.revision } },
                        { "role_revision": { "$exists": false } },
                    ],
                },
                doc! {
                    "$set": { "role": role.as_str(), "role_revision": change.revision },
                    "$inc": { "revision": 1_i64 },
                },
            )
            .await
            .map_err(|e| store_error("changing an admin's role", e))?;
        Ok(())
    }
}

/// A change ready to commit.
struct Commit {
    /// The organization record to swap in.
    record: OrgDoc,
    /// The admin as the change leaves it; `None` for a removal.
    result: Option<AdminDoc>,
}

/// What step 2 decided.
enum Decision {
    /// The admin already has the requested role.
    Unchanged(AdminDoc),
    /// Commit this.
    Commit(Box<Commit>),
}

/// Step 2: decides the change of `admin_id` among the organization's
/// confirmed `admins` (oldest first), on a record with no pending change,
/// by the domain's rule ([`plan_admin_change`]).
fn decide(
    record: &OrgDoc,
    admins: &[AdminDoc],
    admin_id: &str,
    kind: AdminChangeKind,
) -> Result<Decision, ChangeAdminError> {
    let target = admins
        .iter()
        .find(|admin| admin.id == admin_id)
        .ok_or(ChangeAdminError::NotFound)?;
    let standings = admins
        .iter()
        .map(|admin| {
            Ok(AdminStanding {
                id: parse_id(&admin.id)?,
                role: admin.role.into(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let plan = plan_admin_change(
        &standings,
        parse_id(&record.admin_id)?,
        parse_id(&target.id)?,
        kind,
    )?;
    let AdminChangePlan::Apply { primary } = plan else {
        return Ok(Decision::Unchanged(target.clone()));
    };
    let change = AdminChange {
        admin_id: admin_id.to_owned(),
        role: kind.new_role().map(StoredRole::from),
        revision: record.revision + 1,
        started_at: records::now(),
    };
    let result = change.overlay(target.clone());
    Ok(Decision::Commit(Box::new(Commit {
        record: OrgDoc {
            admin_id: primary.to_string(),
            admin_change: Some(change),
            ..record.clone()
        },
        result,
    })))
}

/// A stored admin id.
fn parse_id(id: &str) -> Result<AdminId, StoreError> {
    id.parse()
        .map_err(|_| StoreError::msg(format!("corrupt record: invalid stored admin id {id:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsvc_domain::{AdminEmail, AdminRole, NewAdmin, OrganizationName, PasswordHash};

    fn organization(admins: &[(AdminRole, &str)]) -> (OrgDoc, Vec<AdminDoc>) {
        let org_id = OrganizationId::new();
        let docs: Vec<AdminDoc> = admins
            .iter()
            .map(|(role, email)| {
                let new = NewAdmin::new(
                    AdminEmail::parse(email).unwrap(),
                    *role,
                    PasswordHash::from_phc_string("x".into()),
                );
                AdminDoc::new(&new, org_id, *role, records::now())
            })
            .collect();
        let name = OrganizationName::parse("Acme").unwrap();
        let primary: AdminId = docs[0].id.parse().unwrap();
        let record = OrgDoc::provisioning(
            org_id,
            &name,
            "m",
            records::StoredLayout::Collection,
            primary,
            records::now(),
        )
        .settled();
        (record, docs)
    }

    fn committed(decision: Decision) -> Commit {
        match decision {
            Decision::Commit(commit) => *commit,
            Decision::Unchanged(_) => panic!("expected a change"),
        }
    }

    #[test]
    fn a_decided_change_is_recorded_on_the_organization_record() {
        let (record, admins) = organization(&[
            (AdminRole::Owner, "a@x.example"),
            (AdminRole::Admin, "b@x.example"),
            (AdminRole::Owner, "c@x.example"),
            (AdminRole::Owner, "d@x.example"),
        ]);
        let demoted = committed(
            decide(
                &record,
                &admins,
                &admins[0].id,
                AdminChangeKind::SetRole(AdminRole::Admin),
            )
            .unwrap(),
        );
        assert_eq!(demoted.record.admin_id, admins[2].id);
        assert_eq!(
            demoted.record.revision, record.revision,
            "the swap sets the revision"
        );
        let change = demoted.record.admin_change.unwrap();
        assert_eq!(
            (change.role, change.revision),
            (Some(StoredRole::Admin), record.revision + 1)
        );
        assert_eq!(demoted.result.unwrap().role, StoredRole::Admin);
    }

    #[test]
    fn a_role_the_admin_already_has_changes_nothing() {
        let (record, admins) = organization(&[(AdminRole::Owner, "a@x.example")]);
        let decision = decide(
            &record,
            &admins,
            &admins[0].id,
            AdminChangeKind::SetRole(AdminRole::Owner),
        );
        assert!(matches!(decision, Ok(Decision::Unchanged(_))));
    }
}
