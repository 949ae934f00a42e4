//! The `TenantStore` contract suite, against a fresh migrated file each.

orgsvc_domain::tenant_store_contract_tests!(crate::support::fresh_store().await);
