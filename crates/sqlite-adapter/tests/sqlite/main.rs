//! Integration tests of the SQLite store: the shared `TenantStore` contract
//! plus what is specific to SQLite (the documents table, the file,
//! migrations and the upgrade from tables per organization, the admin
//! security tables).

#![allow(clippy::unwrap_used)] // test helpers too: a failed step should fail the test

mod cache;
mod concurrency;
mod contract;
mod documents;
mod durability;
mod layout;
mod migrations;
mod security;
mod support;
mod upgrade;
