//! Integration tests of the MongoDB store against the server named by
//! `ORGSVC_TEST_MONGODB_URI` (`scripts/test` starts a stand-in and sets it).
//! Each test works in its own database and drops it at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed check should panic

mod admins;
mod contract;
mod documents;
mod invitations;
mod leases;
mod lifecycle;
mod migrations;
mod orphans;
mod rate_limits;
mod rename;
mod sessions;
mod shared;
mod signing_keys;
mod support;
mod validators;
