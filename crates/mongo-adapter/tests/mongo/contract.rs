//! The domain's TenantStore contract suite, run on MongoDB in both layouts:
//! a collection per organization (the default) and the shared collection.

use crate::support;

orgsvc_domain::tenant_store_contract_tests!(support::fresh_store().await);

/// The suite again, on a store creating organizations in the shared layout.
mod shared {
    use crate::support;

    orgsvc_domain::tenant_store_contract_tests!(support::fresh_shared_store().await);
}
