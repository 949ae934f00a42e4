//! The `TenantStore` contract suite against the in-memory fake: it must keep
//! every rule the real stores keep, or tests built on it would prove
//! nothing. Each check gets a fresh, empty store.

use std::sync::Arc;

use orgsvc_domain::testing::InMemoryStore;

orgsvc_domain::tenant_store_contract_tests!(Arc::new(InMemoryStore::new()));
