//! The use cases, unit-tested against the in-memory store
//! (`orgsvc_domain::testing::InMemoryStore`) behind a fault-injecting
//! decorator (`FaultyStore`): the failure paths a real store makes hard to
//! stage (store errors at a chosen step, races, lockouts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failed checks panic

mod account_recovery;
mod admins;
mod documents;
mod fixture;
mod invitations;
mod operators;
mod organizations;
mod sessions;
