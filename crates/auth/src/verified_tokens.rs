//! The access tokens a [`TokenService`](crate::TokenService) has verified,
//! remembered so that the next request carrying the same token skips the
//! signature check (an Ed25519 verification costs about 50 µs; a lookup
//! here, a hash of the token's text).
//!
//! Only the signature check is skipped: the caller still compares the
//! claims with the store on every request (the admin exists, its token
//! version, its organization's state), so revoking a session, changing a
//! password or suspending an organization takes effect at once, and `exp`
//! is checked again on every hit. A token is remembered only after it
//! passed every check, keyed by its whole text; a key leaving the key ring
//! empties the memory ([`VerifiedTokens::forget_all`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::claims::AccessClaims;

/// The most tokens remembered: two generations of half as many each. A
/// token with its claims takes about 700 bytes, so at most about 3 MiB.
pub const CAPACITY: usize = 4096;

/// Verified tokens and their claims, in two generations: new ones go to
/// `recent`; when it holds half of [`CAPACITY`], it becomes `older` (the
/// previous `older` is forgotten), and a token found in `older` moves back
/// to `recent`. Every operation is O(1) amortized.
#[derive(Default)]
pub(crate) struct VerifiedTokens {
    generations: Mutex<Generations>,
}

/// Never shows a token (they are credentials): only how many are held.
impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generations = self.generations();
        f.debug_struct("VerifiedTokens")
            .field("held", &generations.len())
            .finish()
    }
}

#[derive(Default)]
struct Generations {
    recent: HashMap<Box<str>, AccessClaims>,
    older: HashMap<Box<str>, AccessClaims>,
}

impl VerifiedTokens {
    /// The claims of `token` if it was verified (and not forgotten since).
    pub(crate) fn get(&self, token: &str) -> Option<AccessClaims> {
        let mut generations = self.generations();
        if let Some(claims) = generations.recent.get(token) {
            return Some(claims.clone());
        }
        let (token, claims) = generations.older.remove_entry(token)?;
        let found = claims.clone();
        generations.insert(token, claims);
        Some(found)
    }

    /// Remembers that `token` passed every check with these `claims`.
    pub(crate) fn remember(&self, token: &str, claims: &AccessClaims) {
        self.generations().insert(token.into(), claims.clone());
    }

    /// Forgets every token (the key ring changed).
    pub(crate) fn forget_all(&self) {
        let mut generations = self.generations();
        generations.recent.clear();
        generations.older.clear();
    }

    /// The lock. A panic while it was held (nothing in here panics) may
    /// have left it half-changed: it is then emptied.
    fn generations(&self) -> MutexGuard<'_, Generations> {
        self.generations.lock().unwrap_or_else(|poisoned| {
            let mut generations = poisoned.into_inner();
            generations.recent.clear();
            generations.older.clear();
            generations
        })
    }
}

impl Generations {
    fn insert(&mut self, token: Box<str>, claims: AccessClaims) {
        if self.recent.len() >= CAPACITY / 2 && !self.recent.contains_key(&token) {
            self.older = std::mem::take(&mut self.recent);
        }
        self.recent.insert(token, claims);
    }

    fn len(&self) -> usize {
        self.recent.len() + self.older.len()
    }
}

#[cfg(test)]
mod tests {
    use orgsvc_domain::{AdminId, OrganizationId};

    use super::*;

    fn claims(n: i64) -> AccessClaims {
        AccessClaims {
            sub: AdminId::new(),
            org_id: OrganizationId::new(),
            org_name: "Acme".to_owned(),
            iat: n,
            exp: n + 900,
            iss: "orgsvc".to_owned(),
            aud: "orgsvc-api".to_owned(),
            jti: n.to_string(),
            ver: 0,
        }
    }

    #[test]
    fn a_remembered_token_is_found_by_its_whole_text_only() {
        let tokens = VerifiedTokens::default();
        tokens.remember("a.b.c", &claims(1));
        assert_eq!(tokens.get("a.b.c").map(|c| c.iat), Some(1));
        assert_eq!(tokens.get("a.b.cX"), None);
        assert_eq!(tokens.get("a.b."), None);
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_and_keeps_what_is_used() {
        let tokens = VerifiedTokens::default();
        tokens.remember("kept", &claims(0));
        for n in 1..=(CAPACITY as i64 * 3) {
            tokens.remember(&format!("token-{n}"), &claims(n));
            // Used all along, so it moves back to the recent generation.
            assert!(tokens.get("kept").is_some(), "forgotten after {n}");
            assert!(tokens.generations().len() <= CAPACITY);
        }
        assert_eq!(tokens.get("token-1"), None, "the least recently used go");
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let tokens = VerifiedTokens::default();
        tokens.remember("secret.token.text", &claims(1));
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("held: 1"), "{shown}");
    }

    #[test]
    fn forget_all_forgets_every_token() {
        let tokens = VerifiedTokens::default();
        tokens.remember("a.b.c", &claims(1));
        tokens.forget_all();
        assert_eq!(tokens.get("a.b.c"), None);
    }
}
