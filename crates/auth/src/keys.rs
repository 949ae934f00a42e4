//! Asymmetric signing keys: generation (Ed25519, P-256, RSA 2048), the
//! encryption of private keys at rest, and their public JWKs.
//!
//! Private keys are PKCS#8 DER (RFC 5208), sealed with XChaCha20-Poly1305
//! under a key derived from `auth.key_encryption_secret` with HKDF-SHA256
//! (RFC 5869); each encryption draws a random 192-bit nonce, and the key's
//! `kid` is the associated data, so a sealed key moved to another `kid`
//! fails to open. Public keys are rendered as JWKs (RFC 7517 §4, RFC 7518
//! §6, RFC 8037 §2) with no private member.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use orgsvc_domain::{
    KeySetError, NewSigningKey, PublicKeyParameters, SealedPrivateKey, SigningAlgorithm,
    SigningKey, StoreError,
};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use sha2::Sha256;

/// Shortest accepted `auth.key_encryption_secret`, in bytes.
pub const MIN_KEY_ENCRYPTION_SECRET_BYTES: usize = 32;

/// HKDF salt (RFC 5869 §3.1): fixed, naming the purpose's version.
const HKDF_SALT: &[u8] = b"orgsvc signing-key encryption v1";
/// HKDF info (RFC 5869 §3.2).
const HKDF_INFO: &[u8] = b"orgsvc/signing-keys/xchacha20poly1305";
/// XChaCha20-Poly1305 nonce length.
const NONCE_BYTES: usize = 24;
/// Random bytes in a generated `kid` (128 bits).
const KID_BYTES: usize = 16;
/// RSA modulus size.
const RSA_BITS: usize = 2048;

/// Why a key could not be generated, sealed, opened or used. The text never
/// contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `auth.key_encryption_secret` is missing or too short.
    #[error("the key encryption secret must be at least {MIN_KEY_ENCRYPTION_SECRET_BYTES} bytes")]
    WeakSecret,
    /// Generating a key failed.
    #[error("generating a {algorithm} key failed: {reason}")]
    Generation {
        /// The algorithm.
        algorithm: SigningAlgorithm,
        /// What failed.
        reason: String,
    },
    /// Encrypting a private key failed.
    #[error("encrypting the private key of {kid} failed")]
    Seal {
        /// The key.
        kid: String,
    },
    /// A sealed private key did not open: another `key_encryption_secret`,
    /// a ciphertext moved from another `kid`, or corruption.
    #[error(
        "the private key of {kid} could not be decrypted (another key_encryption_secret, or \
         a key moved from another kid)"
    )]
    Open {
        /// The key.
        kid: String,
    },
    /// A stored key is unusable (its parameters do not fit its algorithm,
    /// or its private key does not match its public one).
    #[error("signing key {kid} is unusable: {reason}")]
    Unusable {
        /// The key.
        kid: String,
        /// What is wrong.
        reason: String,
    },
    /// The key set breaks its invariants.
    #[error("invalid signing key set: {0}")]
    KeySet(#[from] KeySetError),
    /// The key set has an active key but no key encryption secret was
    /// given to decrypt it.
    #[error("the signing key set has keys but no key_encryption_secret is configured")]
    MissingEncryptionKey,
    /// There is nothing to sign with: no active key and no HS256 secret.
    #[error("no signing key: the key set has no active key and no HS256 secret is configured")]
    NoSigningKey,
    /// The key set could not be loaded or stored.
    #[error("the signing key store failed")]
    Store(#[source] StoreError),
    /// Other instances kept changing the key set: the change was given up.
    #[error("the signing key set kept changing under this instance; try again later")]
    Contended,
}

/// The key that encrypts private signing keys at rest, derived from
/// `auth.key_encryption_secret` (HKDF-SHA256, RFC 5869). `Debug` shows
/// nothing of it.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

impl KeyEncryptionKey {
    /// Derives the key from `secret`, which must have at least
    /// [`MIN_KEY_ENCRYPTION_SECRET_BYTES`] bytes.
    pub fn derive(secret: &SecretSlice<u8>) -> Result<Self, KeyError> {
        let secret = secret.expose_secret();
        if secret.len() < MIN_KEY_ENCRYPTION_SECRET_BYTES {
            return Err(KeyError::WeakSecret);
        }
        let mut okm = Zeroizing::new([0_u8; 32]);
        Hkdf::<Sha256>::new(Some(HKDF_SALT), secret)
            .expand(HKDF_INFO, okm.as_mut())
            .map_err(|_| KeyError::WeakSecret)?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(okm.as_ref())),
        })
    }

    /// Encrypts a PKCS#8 DER private key for the key `kid` (the associated
    /// data), with a fresh random nonce.
    pub fn seal(&self, kid: &str, pkcs8_der: &[u8]) -> Result<SealedPrivateKey, KeyError> {
        let mut nonce = [0_u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: pkcs8_der,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Seal { kid: kid.into() })?;
        Ok(SealedPrivateKey {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts the PKCS#8 DER private key sealed for `kid`; fails when the
    /// secret differs, the ciphertext was sealed for another `kid`, or it
    /// was altered.
    pub fn open(&self, kid: &str, sealed: &SealedPrivateKey) -> Result<SecretSlice<u8>, KeyError> {
        if sealed.nonce.len() != NONCE_BYTES {
            return Err(KeyError::Open { kid: kid.into() });
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .map(SecretSlice::from)
            .map_err(|_| KeyError::Open { kid: kid.into() })
    }
}

/// A random key id: 128 bits, base64url without padding (22 characters),
/// safe in URLs and JSON (RFC 7517 §4.5 leaves the form to the issuer).
pub fn generate_kid() -> String {
    let mut bytes = [0_u8; KID_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Generates a key pair for `algorithm` with the operating system's
/// randomness, seals its private key with `encryption` and returns it
/// ready for [`orgsvc_domain::add_key`]. RSA generation takes a while
/// (tens to hundreds of milliseconds): call it off the async workers.
pub fn generate_signing_key(
    algorithm: SigningAlgorithm,
    encryption: &KeyEncryptionKey,
) -> Result<NewSigningKey, KeyError> {
    let failed = |reason: String| KeyError::Generation { algorithm, reason };
    let der: Zeroizing<Vec<u8>> = match algorithm {
        SigningAlgorithm::EdDsa => {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
            Zeroizing::new(
                key.to_pkcs8_der()
                    .map_err(|e| failed(e.to_string()))?
                    .as_bytes()
                    .to_vec(),
            )
        }
        SigningAlgorithm::Es256 => {
            use p256::pkcs8::EncodePrivateKey as _;
            let key = p256::SecretKey::random(&mut OsRng);
            Zeroizing::new(
                key.to_pkcs8_der()
                    .map_err(|e| failed(e.to_string()))?
                    .as_bytes()
                    .to_vec(),
            )
        }
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let key =
                rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(|e| failed(e.to_string()))?;
            Zeroizing::new(
                key.to_pkcs8_der()
                    .map_err(|e| failed(e.to_string()))?
                    .as_bytes()
                    .to_vec(),
            )
        }
    };
    let kid = generate_kid();
    let public = public_parameters(algorithm, &der).map_err(failed)?;
    let private_key = encryption.seal(&kid, &der)?;
    Ok(NewSigningKey {
        kid,
        algorithm,
        public,
        private_key,
    })
}

/// The public parameters of a PKCS#8 DER private key for `algorithm`.
pub(crate) fn public_parameters(
    algorithm: SigningAlgorithm,
    pkcs8_der: &[u8],
) -> Result<PublicKeyParameters, String> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    match algorithm {
        SigningAlgorithm::EdDsa => {
            use ed25519_dalek::pkcs8::DecodePrivateKey as _;
            let key =
                ed25519_dalek::SigningKey::from_pkcs8_der(pkcs8_der).map_err(|e| e.to_string())?;
            Ok(PublicKeyParameters::Okp {
                crv: "Ed25519".into(),
                x: b64(key.verifying_key().as_bytes()),
            })
        }
        SigningAlgorithm::Es256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint as _;
            use p256::pkcs8::DecodePrivateKey as _;
            let key = p256::SecretKey::from_pkcs8_der(pkcs8_der).map_err(|e| e.to_string())?;
            let point = key.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err("the public point is the identity".into());
            };
            Ok(PublicKeyParameters::Ec {
                crv: "P-256".into(),
                x: b64(x),
                y: b64(y),
            })
        }
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs8::DecodePrivateKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8_der).map_err(|e| e.to_string())?;
            Ok(PublicKeyParameters::Rsa {
                n: b64(&key.n().to_bytes_be()),
                e: b64(&key.e().to_bytes_be()),
            })
        }
    }
}

/// A public JWK (RFC 7517 §4): the key's public parameters with `kid`,
/// `alg` and `use: "sig"`. It has no member that a private key would
/// carry (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`; RFC 7518 §6.2.2, §6.3.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Jwk {
    /// `kty` and its public members.
    #[serde(flatten)]
    pub public: PublicKeyParameters,
    /// The key id (RFC 7517 §4.5).
    pub kid: String,
    /// Intended use (RFC 7517 §4.2): always `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// The algorithm (RFC 7517 §4.4).
    pub alg: &'static str,
}

impl Jwk {
    /// The public JWK of a stored key.
    pub fn of(key: &SigningKey) -> Self {
        Self {
            public: key.public.clone(),
            kid: key.kid.clone(),
            use_: "sig",
            alg: key.algorithm.as_str(),
        }
    }
}

/// A JWK Set (RFC 7517 §5): `{"keys": [...]}`, to serve as
/// `application/jwk-set+json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JwkSet {
    /// The published keys: every key of the set, `next` and `retired`
    /// included, so verifiers know a key before its first token and until
    /// its last one expires.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The JWK Set publishing `keys`.
    pub fn of(keys: &[SigningKey]) -> Self {
        Self {
            keys: keys.iter().map(Jwk::of).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encryption(secret: &[u8]) -> KeyEncryptionKey {
        KeyEncryptionKey::derive(&secret.to_vec().into()).unwrap()
    }

    const SECRET: &[u8] = b"a-key-encryption-secret-of-32-bytes!";

    #[test]
    fn a_short_secret_is_refused() {
        let short = KeyEncryptionKey::derive(&vec![7_u8; 31].into());
        assert!(matches!(short, Err(KeyError::WeakSecret)));
        assert!(KeyEncryptionKey::derive(&vec![7_u8; 32].into()).is_ok());
    }

    #[test]
    fn sealed_keys_open_with_the_same_secret_and_kid_only() {
        let key = encryption(SECRET);
        let sealed = key.seal("kid-1", b"pkcs8 bytes").unwrap();
        assert_eq!(sealed.nonce.len(), 24);
        assert!(!sealed.ciphertext.windows(11).any(|w| w == b"pkcs8 bytes"));
        assert_eq!(
            key.open("kid-1", &sealed).unwrap().expose_secret(),
            b"pkcs8 bytes"
        );
        // Another kid (the ciphertext moved to another key): refused.
        assert!(matches!(
            key.open("kid-2", &sealed),
            Err(KeyError::Open { .. })
        ));
        // Another secret: refused.
        let other = encryption(b"another-secret-another-secret-another");
        assert!(matches!(
            other.open("kid-1", &sealed),
            Err(KeyError::Open { .. })
        ));
        // A flipped bit, a short nonce: refused.
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(key.open("kid-1", &tampered).is_err());
        let mut short = sealed;
        short.nonce.pop();
        assert!(key.open("kid-1", &short).is_err());
    }

    #[test]
    fn each_seal_draws_a_new_nonce() {
        let key = encryption(SECRET);
        let a = key.seal("k", b"same").unwrap();
        let b = key.seal("k", b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn kids_are_128_bit_base64url() {
        let a = generate_kid();
        assert_eq!(a.len(), 22);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, generate_kid());
    }

    #[test]
    fn generated_keys_have_public_parameters_of_their_algorithm() {
        let key = encryption(SECRET);
        for algorithm in SigningAlgorithm::ALL {
            let new = generate_signing_key(algorithm, &key).unwrap();
            let der = key.open(&new.kid, &new.private_key).unwrap();
            assert_eq!(
                public_parameters(algorithm, der.expose_secret()).unwrap(),
                new.public
            );
            let decoded = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
            match (&new.public, algorithm) {
                (PublicKeyParameters::Okp { crv, x }, SigningAlgorithm::EdDsa) => {
                    assert_eq!(crv, "Ed25519");
                    assert_eq!(decoded(x).len(), 32);
                }
                (PublicKeyParameters::Ec { crv, x, y }, SigningAlgorithm::Es256) => {
                    assert_eq!(crv, "P-256");
                    assert_eq!((decoded(x).len(), decoded(y).len()), (32, 32));
                }
                (PublicKeyParameters::Rsa { n, e }, SigningAlgorithm::Rs256) => {
                    assert_eq!(decoded(n).len(), 256, "2048-bit modulus");
                    assert_eq!(e, "AQAB");
                }
                other => panic!("unexpected parameters {other:?}"),
            }
        }
    }

    #[test]
    fn jwks_carry_public_members_only() {
        let key = encryption(SECRET);
        let now = chrono::Utc::now();
        let keys: Vec<SigningKey> = SigningAlgorithm::ALL
            .into_iter()
            .map(|algorithm| {
                let new = generate_signing_key(algorithm, &key).unwrap();
                SigningKey {
                    kid: new.kid,
                    algorithm,
                    state: orgsvc_domain::KeyState::Next,
                    created_at: now,
                    activated_at: None,
                    retired_at: None,
                    public: new.public,
                    private_key: new.private_key,
                }
            })
            .collect();
        let json = serde_json::to_value(JwkSet::of(&keys)).unwrap();
        let published = json["keys"].as_array().unwrap();
        assert_eq!(published.len(), 3);
        let members = |jwk: &serde_json::Value| {
            let mut names: Vec<_> = jwk.as_object().unwrap().keys().cloned().collect();
            names.sort();
            names
        };
        assert_eq!(
            members(&published[0]),
            ["alg", "crv", "kid", "kty", "use", "x"]
        );
        assert_eq!(published[0]["kty"], "OKP");
        assert_eq!(published[0]["alg"], "EdDSA");
        assert_eq!(
            members(&published[1]),
            ["alg", "crv", "kid", "kty", "use", "x", "y"]
        );
        assert_eq!(published[1]["kty"], "EC");
        assert_eq!(published[1]["crv"], "P-256");
        assert_eq!(
            members(&published[2]),
            ["alg", "e", "kid", "kty", "n", "use"]
        );
        assert_eq!(published[2]["kty"], "RSA");
        for (jwk, stored) in published.iter().zip(&keys) {
            assert_eq!(jwk["kid"], stored.kid.as_str());
            assert_eq!(jwk["use"], "sig");
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(jwk.get(private).is_none(), "{private} in {jwk}");
            }
            for value in jwk.as_object().unwrap().values() {
                let text = value.as_str().unwrap();
                assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
            }
        }
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let key = encryption(SECRET);
        assert_eq!(format!("{key:?}"), "KeyEncryptionKey(<redacted>)");
        let new = generate_signing_key(SigningAlgorithm::EdDsa, &key).unwrap();
        let shown = format!("{new:?}");
        let ciphertext_start = format!("{:?}", &new.private_key.ciphertext[..4]);
        assert!(
            !shown.contains(ciphertext_start.trim_matches(['[', ']'])),
            "{shown}"
        );
    }
}
