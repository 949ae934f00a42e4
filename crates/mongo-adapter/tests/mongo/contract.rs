//! The domain's TenantStore contract suite, run on MongoDB.

use crate::support;

orgsvc_domain::tenant_store_contract_tests!(support::fresh_store().await);
