//! The `TenantStore` contract suite, against a fresh migrated file each,
//! in a temporary directory deleted when the test ends.

orgsvc_domain::tenant_store_contract_tests!(crate::support::migrated_store().await);
