//! The contract suite has one list of checks: the one in
//! `tenant_store_contract_tests!`. A check written in `src/testing*` but
//! missing from that list would silently never run on any adapter, and a
//! listed name without a check would not compile only where the macro is
//! expanded; this test catches both here.

#![allow(clippy::expect_used)] // test code: a failed check should panic

use std::collections::BTreeSet;

const SOURCES: [&str; 7] = [
    include_str!("../src/testing.rs"),
    include_str!("../src/testing/security.rs"),
    include_str!("../src/testing/signing_keys.rs"),
    include_str!("../src/testing/account_tokens.rs"),
    include_str!("../src/testing/invitations.rs"),
    include_str!("../src/testing/operator.rs"),
    include_str!("../src/testing/operator_keys.rs"),
];

/// Every `pub async fn NAME(store: Store)`: the signature of a check.
fn written_checks() -> BTreeSet<String> {
    SOURCES
        .iter()
        .flat_map(|source| source.lines())
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("pub async fn ")?;
            let (name, params) = rest.split_once('(')?;
            params.starts_with("store: Store)").then(|| name.to_owned())
        })
        .collect()
}

/// The names between `@tests $store;` and `);` in the macro's first arm.
fn listed_checks() -> Vec<String> {
    let source = SOURCES[0];
    let start = source
        .find("@tests $store;")
        .expect("the macro's list of checks")
        + "@tests $store;".len();
    let end = start + source[start..].find(");").expect("the end of the list");
    source[start..end]
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_written_check_is_listed_once_and_every_listed_check_exists() {
    let written = written_checks();
    let listed = listed_checks();
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), listed_set.len(), "a check is listed twice");
    let unlisted: Vec<_> = written.difference(&listed_set).collect();
    assert!(
        unlisted.is_empty(),
        "written but not listed (never run): {unlisted:?}"
    );
    let missing: Vec<_> = listed_set.difference(&written).collect();
    assert!(missing.is_empty(), "listed but not written: {missing:?}");
    assert!(
        written.len() >= 40,
        "found only {} checks: is the signature scan broken?",
        written.len()
    );
}
