//! The lookups every request makes (organizations by id and by name, admins
//! by id), answered from the in-process cache when it can be and read from a
//! reader connection otherwise (see `cache.rs` for why they stay coherent).

use orgsvc_domain::{Admin, AdminId, Organization, OrganizationId, OrganizationName, StoreError};

use crate::cache::Lookup;
use crate::connection::Connections;
use crate::{admins, organizations};

/// [`organizations::by_id`], answered from the cache when it can be.
pub(crate) async fn organization_by_id(
    connections: &Connections,
    id: OrganizationId,
) -> Result<Option<Organization>, StoreError> {
    let cache = connections.cache();
    let ticket = match cache.organization_by_id(id) {
        Lookup::Hit(found) => return Ok(found),
        Lookup::Miss(ticket) => ticket,
    };
    let found = connections
        .read(move |connection| organizations::by_id(connection, id))
        .await?;
    cache.remember_organization_by_id(ticket, id, found.as_ref());
    Ok(found)
}

/// [`organizations::by_name`], answered from the cache when it can be.
pub(crate) async fn organization_by_name(
    connections: &Connections,
    name: &OrganizationName,
) -> Result<Option<Organization>, StoreError> {
    let cache = connections.cache();
    let ticket = match cache.organization_by_name(name.canonical()) {
        Lookup::Hit(found) => return Ok(found),
        Lookup::Miss(ticket) => ticket,
    };
    let owned = name.clone();
    let found = connections
        .read(move |connection| organizations::by_name(connection, &owned))
        .await?;
    cache.remember_organization_by_name(ticket, name.canonical(), found.as_ref());
    Ok(found)
}

/// [`admins::by_id`], answered from the cache when it can be.
pub(crate) async fn admin_by_id(
    connections: &Connections,
    id: AdminId,
) -> Result<Option<Admin>, StoreError> {
    let cache = connections.cache();
    let ticket = match cache.admin_by_id(id) {
        Lookup::Hit(found) => return Ok(found),
        Lookup::Miss(ticket) => ticket,
    };
    let found = connections
        .read(move |connection| admins::by_id(connection, id))
        .await?;
    cache.remember_admin(ticket, id, found.as_ref());
    Ok(found)
}
