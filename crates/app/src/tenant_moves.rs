//! Moving organizations' documents between storage layouts (issue #16):
//! `orgsvc tenants move <organization> --to shared|collection` and its
//! `--all` form.
//!
//! Each move is the store's ([`TenantStore::move_tenant`]): crash-safe,
//! resumable by calling it again, a no-op for an organization already in
//! the layout. Moving every organization pages through the listing
//! ([`TenantStore::list_organizations`], [`MOVE_ALL_PAGE`] at a time), so
//! neither the organizations nor their documents are ever all in memory;
//! an organization busy with another change (or a move of another run) is
//! skipped and counted, for the caller to run again.

use orgsvc_domain::{
    MoveTenantError, OrganizationId, OrganizationName, OrganizationQuery, PageSize, StoreError,
    TenantLayout, TenantMove, TenantStore,
};

/// Organizations listed per page when moving them all.
pub const MOVE_ALL_PAGE: u64 = 100;

/// Moves the documents of the organization named `name` to `to`.
///
/// # Errors
/// [`MoveTenantError::NotFound`] when no organization has the name, and
/// the store's errors of [`TenantStore::move_tenant`] (`Busy`,
/// `NotApplicable` from stores with one layout, failures).
pub async fn move_organization_named(
    store: &dyn TenantStore,
    name: &OrganizationName,
    to: TenantLayout,
) -> Result<TenantMove, MoveTenantError> {
    let organization = store
        .organization_by_name(name)
        .await?
        .ok_or(MoveTenantError::NotFound)?;
    move_organization(store, organization.id, to).await
}

/// Moves the documents of organization `id` to `to`.
///
/// # Errors
/// Those of [`TenantStore::move_tenant`].
#[tracing::instrument(skip_all, fields(org = %id, to = to.as_str()))]
pub async fn move_organization(
    store: &dyn TenantStore,
    id: OrganizationId,
    to: TenantLayout,
) -> Result<TenantMove, MoveTenantError> {
    store.move_tenant(id, to).await
}

/// How far moving every organization got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoveAllProgress {
    /// Organizations the listing held when the run started (more or fewer
    /// may be met: others are created or deleted meanwhile).
    pub total: u64,
    /// Organizations handled so far.
    pub seen: u64,
    /// Of them, moved by this run.
    pub moved: u64,
    /// Of them, already in the layout.
    pub already: u64,
    /// Of them, skipped: busy with another change (run again), or deleted
    /// meanwhile.
    pub skipped: u64,
    /// Documents the organizations moved by this run hold.
    pub documents: u64,
}

/// Moves every organization's documents to `to`, one organization at a
/// time, calling `progress` after each; returns the final counts.
///
/// # Errors
/// The first error other than `Busy` or `NotFound` (which skip the
/// organization): `NotApplicable` from stores with one layout, and store
/// failures (organizations handled until then stay handled; running again
/// resumes, since moved ones are no-ops).
pub async fn move_all_organizations(
    store: &dyn TenantStore,
    to: TenantLayout,
    mut progress: impl FnMut(&MoveAllProgress),
) -> Result<MoveAllProgress, MoveTenantError> {
    let total = count_organizations(store).await?;
    let mut done = MoveAllProgress {
        total,
        ..MoveAllProgress::default()
    };
    let mut query = listing()?;
    loop {
        let page = store.list_organizations(&query).await?;
        for organization in &page.organizations {
            match store.move_tenant(organization.id, to).await {
                Ok(moved) if moved.moved => {
                    done.moved += 1;
                    done.documents += moved.documents;
                }
                Ok(_) => done.already += 1,
                Err(MoveTenantError::Busy | MoveTenantError::NotFound) => {
                    tracing::info!(organization = %organization.id, "skipped: busy with another change or deleted");
                    done.skipped += 1;
                }
                Err(error) => return Err(error),
            }
            done.seen += 1;
            progress(&done);
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(done),
        }
    }
}

/// How many organizations the listing holds, counted page by page.
async fn count_organizations(store: &dyn TenantStore) -> Result<u64, StoreError> {
    let mut query = listing()?;
    let mut count = 0;
    loop {
        let page = store.list_organizations(&query).await?;
        count += page.organizations.len() as u64;
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(count),
        }
    }
}

/// The first page of every organization, [`MOVE_ALL_PAGE`] at a time.
fn listing() -> Result<OrganizationQuery, StoreError> {
    Ok(OrganizationQuery {
        search: None,
        state: None,
        created_after: None,
        created_before: None,
        limit: PageSize::parse(MOVE_ALL_PAGE)
            .map_err(|e| StoreError::new("the listing page size", e))?,
        after: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::sync::Arc;

    use orgsvc_domain::testing::{new_org, Failure, FaultyStore, InMemoryStore, Operation, Times};

    use super::*;

    async fn store_with(names: &[&str]) -> Arc<InMemoryStore> {
        let store = Arc::new(InMemoryStore::new());
        for name in names {
            let email = format!("owner@{}.example", name.to_lowercase().replace(' ', "-"));
            store
                .create_organization(new_org(name, &email))
                .await
                .unwrap();
        }
        store
    }

    #[tokio::test]
    async fn moving_by_name_moves_that_organization_and_again_is_a_no_op() {
        let store = store_with(&["Acme", "Globex"]).await;
        let acme = OrganizationName::parse("acme").unwrap();
        let moved = move_organization_named(store.as_ref(), &acme, TenantLayout::Shared)
            .await
            .unwrap();
        assert!(moved.moved);
        assert_eq!(moved.organization.location.layout, TenantLayout::Shared);
        let again = move_organization_named(store.as_ref(), &acme, TenantLayout::Shared)
            .await
            .unwrap();
        assert!(!again.moved);
        let globex = OrganizationName::parse("Globex").unwrap();
        let untouched = store.organization_by_name(&globex).await.unwrap().unwrap();
        assert_eq!(untouched.location.layout, TenantLayout::Collection);
        let unknown = OrganizationName::parse("Initech").unwrap();
        assert!(matches!(
            move_organization_named(store.as_ref(), &unknown, TenantLayout::Shared).await,
            Err(MoveTenantError::NotFound)
        ));
    }

    #[tokio::test]
    async fn moving_all_pages_through_every_organization_and_reports_progress() {
        let names: Vec<String> = (0..250).map(|n| format!("Org {n:03}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let store = store_with(&refs).await;
        move_organization_named(
            store.as_ref(),
            &OrganizationName::parse("Org 007").unwrap(),
            TenantLayout::Shared,
        )
        .await
        .unwrap();
        let mut reports = Vec::new();
        let done =
            move_all_organizations(store.as_ref(), TenantLayout::Shared, |p| reports.push(*p))
                .await
                .unwrap();
        assert_eq!(
            done,
            MoveAllProgress {
                total: 250,
                seen: 250,
                moved: 249,
                already: 1,
                skipped: 0,
                documents: 0,
            }
        );
        assert_eq!(reports.len(), 250);
        assert!(reports.windows(2).all(|w| w[0].seen + 1 == w[1].seen));
        let again = move_all_organizations(store.as_ref(), TenantLayout::Shared, |_| {})
            .await
            .unwrap();
        assert_eq!((again.moved, again.already), (0, 250));
    }

    #[tokio::test]
    async fn busy_organizations_are_skipped_and_store_failures_stop_the_run() {
        let store = Arc::new(FaultyStore::new(
            store_with(&["Acme", "Globex", "Initech"]).await,
        ));
        store.fail(Operation::MoveTenant, Times::Once, Failure::Busy);
        let done = move_all_organizations(store.as_ref(), TenantLayout::Shared, |_| {})
            .await
            .unwrap();
        assert_eq!((done.moved, done.skipped), (2, 1));

        store.fail(
            Operation::MoveTenant,
            Times::Once,
            Failure::store(|| StoreError::msg("down")),
        );
        let err = move_all_organizations(store.as_ref(), TenantLayout::Collection, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, MoveTenantError::Store(_)), "{err:?}");
    }
}
