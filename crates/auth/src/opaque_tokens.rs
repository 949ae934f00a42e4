//! Opaque tokens: 256 random bits from the operating system's generator,
//! handed out as URL-safe base64 without padding (43 characters). Stores
//! keep only their SHA-256, so a leaked database does not leak usable
//! tokens:
//! - [`OpaqueRefreshToken`], in a token response ([`RefreshTokenHash`]);
//! - [`OpaqueAccountToken`], in an email's link: invitations, password
//!   resets, email verifications ([`TokenHash`]);
//! - [`OperatorApiKey`], an operator's API key (issue #17): the same 43
//!   characters behind the prefix `osk_`, shown once when created and sent
//!   as a bearer token ([`TokenHash`] of the whole text).

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use orgsvc_domain::{RefreshTokenHash, TokenHash};
use sha2::{Digest, Sha256};

/// Random bytes in an opaque token (256 bits).
const TOKEN_BYTES: usize = 32;

/// 32 bytes from the OS random generator, URL-safe base64 without padding.
fn random_token_text() -> String {
    let mut bytes = [0_u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The lowercase hex SHA-256 of a token's text.
fn sha256_hex(presented: &str) -> String {
    hex(&Sha256::digest(presented.as_bytes()))
}

/// A refresh token as the client receives it. Its `Debug` output is
/// redacted; read it only to put it in the token response.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueRefreshToken(String);

impl OpaqueRefreshToken {
    /// A new token: 32 bytes from the OS random generator, URL-safe base64
    /// without padding (43 characters).
    pub fn generate() -> Self {
        Self(random_token_text())
    }

    /// The hash to store and look the token up by.
    pub fn hash(&self) -> RefreshTokenHash {
        hash_refresh_token(&self.0)
    }

    /// The token text, for the token response only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token text, for the token response only.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for OpaqueRefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueRefreshToken(<redacted>)")
    }
}

/// The SHA-256 of a presented refresh token, hex-encoded (lowercase), as
/// stores keep it. Any text hashes; an unknown one simply finds nothing.
pub fn hash_refresh_token(presented: &str) -> RefreshTokenHash {
    RefreshTokenHash::from_hex(sha256_hex(presented))
}

/// An account token (invitation, password reset, email verification) as
/// its email's link carries it. Its `Debug` output is redacted; read it
/// only to build the link.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueAccountToken(String);

impl OpaqueAccountToken {
    /// A new token: 32 bytes from the OS random generator, URL-safe base64
    /// without padding (43 characters).
    pub fn generate() -> Self {
        Self(random_token_text())
    }

    /// The hash to store and look the token up by.
    pub fn hash(&self) -> TokenHash {
        hash_account_token(&self.0)
    }

    /// The token text, for the email's link only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OpaqueAccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueAccountToken(<redacted>)")
    }
}

/// The SHA-256 of a presented account token, hex-encoded (lowercase), as
/// stores keep it. Any text hashes; an unknown one simply finds nothing.
pub fn hash_account_token(presented: &str) -> TokenHash {
    TokenHash::from_hex(sha256_hex(presented))
}

/// The prefix of every operator API key: it tells an operator key from an
/// access token (a JWT) at a glance, and lets secret scanners find leaked
/// keys.
pub const OPERATOR_KEY_PREFIX: &str = "osk_";

/// Characters of an operator API key: the prefix and 43 of URL-safe base64.
const OPERATOR_KEY_LEN: usize = 4 + 43;

/// An operator API key as shown once to its creator: `osk_` followed by 32
/// bytes from the OS random generator, URL-safe base64 without padding
/// (47 characters in all). Its `Debug` output is redacted; read it only to
/// show it to the creator.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorApiKey(String);

impl OperatorApiKey {
    /// A new key.
    pub fn generate() -> Self {
        Self(format!("{OPERATOR_KEY_PREFIX}{}", random_token_text()))
    }

    /// The hash to store and look the key up by (of the whole text,
    /// prefix included).
    pub fn hash(&self) -> TokenHash {
        TokenHash::from_hex(sha256_hex(&self.0))
    }

    /// The key text, to show to its creator once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OperatorApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorApiKey(<redacted>)")
    }
}

/// Whether `presented` (a bearer token) has the shape of an operator key:
/// the prefix `osk_`, then 43 URL-safe base64 characters.
pub fn is_operator_key(presented: &str) -> bool {
    presented.len() == OPERATOR_KEY_LEN
        && presented
            .strip_prefix(OPERATOR_KEY_PREFIX)
            .is_some_and(|rest| {
                rest.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
}

/// The hash of a presented operator key, to look it up by; `None` when it
/// does not have the key's shape ([`is_operator_key`]), so that malformed
/// input never reaches the store.
pub fn hash_operator_key(presented: &str) -> Option<TokenHash> {
    is_operator_key(presented).then(|| TokenHash::from_hex(sha256_hex(presented)))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn tokens_are_256_bits_of_url_safe_base64_without_padding() {
        let token = OpaqueRefreshToken::generate();
        assert_eq!(token.expose().len(), 43);
        assert!(token
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let bytes = URL_SAFE_NO_PAD.decode(token.expose()).unwrap();
        assert_eq!(bytes.len(), 32);
    }

    #[test]
    fn tokens_are_unique() {
        let tokens: HashSet<String> = (0..1000)
            .map(|_| OpaqueRefreshToken::generate().into_exposed())
            .collect();
        assert_eq!(tokens.len(), 1000);
    }

    #[test]
    fn the_hash_is_the_hex_sha256_of_the_token_text() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_refresh_token("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = OpaqueRefreshToken::generate();
        assert_eq!(token.hash(), hash_refresh_token(token.expose()));
        assert_ne!(token.hash(), OpaqueRefreshToken::generate().hash());
        assert!(!token.hash().as_str().contains(token.expose()));
    }

    #[test]
    fn account_tokens_are_refresh_tokens_of_another_kind() {
        let token = OpaqueAccountToken::generate();
        assert_eq!(token.expose().len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(token.expose()).unwrap().len(), 32);
        assert_eq!(token.hash(), hash_account_token(token.expose()));
        assert_eq!(
            hash_account_token("abc").as_str(),
            hash_refresh_token("abc").as_str()
        );
        let shown = format!("{token:?} {:?}", token.hash());
        assert!(!shown.contains(token.expose()), "{shown}");
        assert!(!shown.contains(token.hash().as_str()), "{shown}");
    }

    #[test]
    fn operator_keys_are_prefixed_256_bit_tokens() {
        let key = OperatorApiKey::generate();
        let text = key.expose();
        assert_eq!(text.len(), 47);
        let rest = text.strip_prefix("osk_").unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(rest).unwrap().len(), 32);
        assert!(is_operator_key(text));
        assert_eq!(hash_operator_key(text), Some(key.hash()));
        assert_eq!(key.hash().as_str(), hash_account_token(text).as_str());
        assert_ne!(key.hash(), OperatorApiKey::generate().hash());
        for bad in [
            "",
            "osk_",
            "osk_short",
            &text[4..],
            &format!("{text}x"),
            &text.replace("osk_", "OSK_"),
        ] {
            assert!(!is_operator_key(bad), "{bad:?}");
            assert_eq!(hash_operator_key(bad), None);
        }
        let mut odd = text.to_owned();
        odd.replace_range(10..11, "+");
        assert!(!is_operator_key(&odd));
        let shown = format!("{key:?} {:?}", key.hash());
        assert!(!shown.contains(text), "{shown}");
        assert!(!shown.contains(key.hash().as_str()), "{shown}");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let token = OpaqueRefreshToken::generate();
        let shown = format!("{token:?} {:?}", token.hash());
        assert!(!shown.contains(token.expose()), "{shown}");
        assert!(!shown.contains(token.hash().as_str()), "{shown}");
    }
}
