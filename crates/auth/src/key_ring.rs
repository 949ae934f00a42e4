//! [`KeyRing`]: the keys one instance signs and verifies access tokens
//! with, built from the stored key set (and, for deployments moving off
//! HS256, the legacy shared secret).
//!
//! Signing uses the active key and names it in the header's `kid` (RFC
//! 7515 §4.1.4). Verification picks the key by the token's `kid` and
//! accepts only that key's own algorithm: a header `alg` other than the
//! key's is refused, so a public key can never be used as an HMAC secret
//! (RFC 8725 §2.1, §3.1); `alg: none` never parses. A token without `kid`
//! is accepted only as HS256 with the legacy secret, when one is
//! configured: tokens issued before the switch keep working until they
//! expire.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use orgsvc_domain::{active_key, check_key_set, PublicKeyParameters, SigningAlgorithm, SigningKey};
use secrecy::{ExposeSecret, SecretSlice};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keys::{public_parameters, JwkSet, KeyEncryptionKey, KeyError};

/// The jsonwebtoken algorithm of a stored key's algorithm.
fn jwt_algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        SigningAlgorithm::Es256 => Algorithm::ES256,
        SigningAlgorithm::Rs256 => Algorithm::RS256,
    }
}

/// The key that signs new tokens.
#[derive(Clone)]
struct Signer {
    /// `None` for the legacy HS256 secret (tokens without `kid`).
    kid: Option<String>,
    algorithm: Algorithm,
    key: EncodingKey,
}

/// A key tokens are checked with.
#[derive(Clone)]
struct Verifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Why a token was not verified by the ring (the caller maps both to its
/// own error).
#[derive(Debug)]
pub(crate) enum RingRefusal {
    /// The signature and header checked out but a claim did not (for
    /// example `exp`): jsonwebtoken's error.
    Jwt(jsonwebtoken::errors::Error),
    /// Malformed header, unknown `kid`, an algorithm other than the key's,
    /// or no `kid` without a legacy secret.
    Refused,
}

/// The signing and verification keys of one instance, immutable once built
/// (rotation builds a new ring: see `TokenService::install_key_ring`).
/// `Debug` shows `kid`s and algorithms only.
#[derive(Clone)]
pub struct KeyRing {
    signer: Signer,
    verifiers: HashMap<String, Verifier>,
    legacy: Option<DecodingKey>,
    jwks: JwkSet,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<_> = self
            .verifiers
            .iter()
            .map(|(kid, v)| format!("{kid} ({:?})", v.algorithm))
            .collect();
        kids.sort();
        f.debug_struct("KeyRing")
            .field("signing_kid", &self.signer.kid)
            .field("signing_algorithm", &self.signer.algorithm)
            .field("verifying", &kids)
            .field("legacy_hs256", &self.legacy.is_some())
            .finish()
    }
}

impl KeyRing {
    /// A ring of the legacy HS256 secret only: today's behaviour (tokens
    /// signed and verified with `auth.jwt_secret`, no `kid`). Refuses an
    /// empty secret.
    pub fn hs256(secret: &SecretSlice<u8>) -> Result<Self, KeyError> {
        Self::new(&[], None, Some(secret))
    }

    /// A ring of the stored key set: signs with its active key (decrypted
    /// with `encryption`) and verifies with every key of the set (`next`,
    /// `active`, `retired`). With `legacy_secret`, tokens without `kid` are
    /// verified as HS256 with it, and when the set has no active key yet
    /// new tokens are signed with it too. Refuses a set breaking its
    /// invariants, a key whose parameters do not fit its algorithm, an
    /// active key that does not decrypt or does not match its public key,
    /// and having nothing to sign with.
    pub fn new(
        keys: &[SigningKey],
        encryption: Option<&KeyEncryptionKey>,
        legacy_secret: Option<&SecretSlice<u8>>,
    ) -> Result<Self, KeyError> {
        check_key_set(keys)?;
        let legacy_secret = match legacy_secret.map(ExposeSecret::expose_secret) {
            Some([]) => return Err(KeyError::WeakSecret),
            other => other,
        };
        let mut verifiers = HashMap::new();
        for key in keys {
            verifiers.insert(key.kid.clone(), verifier(key)?);
        }
        let signer = match (active_key(keys), encryption, legacy_secret) {
            (Some(active), Some(encryption), _) => signer(active, encryption)?,
            (Some(_), None, _) => return Err(KeyError::MissingEncryptionKey),
            (None, _, Some(secret)) => Signer {
                kid: None,
                algorithm: Algorithm::HS256,
                key: EncodingKey::from_secret(secret),
            },
            (None, _, None) => return Err(KeyError::NoSigningKey),
        };
        Ok(Self {
            signer,
            verifiers,
            legacy: legacy_secret.map(DecodingKey::from_secret),
            jwks: JwkSet::of(keys),
        })
    }

    /// The public keys to publish (RFC 7517 §5); empty with HS256 only.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The `kid` new tokens are signed with (`None`: legacy HS256).
    pub fn signing_kid(&self) -> Option<&str> {
        self.signer.kid.as_deref()
    }

    /// Signs `claims` with the active key, naming it in `kid`.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> jsonwebtoken::errors::Result<String> {
        let mut header = Header::new(self.signer.algorithm);
        header.kid = self.signer.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.signer.key)
    }

    /// Checks the token's signature with the key its `kid` names, under
    /// that key's algorithm only, then the claims per `validation` (whose
    /// algorithms are replaced by the key's).
    pub(crate) fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, RingRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| RingRefusal::Refused)?;
        let (algorithm, key) = match header.kid.as_deref() {
            Some(kid) => {
                let verifier = self.verifiers.get(kid).ok_or(RingRefusal::Refused)?;
                (verifier.algorithm, &verifier.key)
            }
            None => (
                Algorithm::HS256,
                self.legacy.as_ref().ok_or(RingRefusal::Refused)?,
            ),
        };
        if header.alg != algorithm {
            return Err(RingRefusal::Refused);
        }
        let mut validation = validation.clone();
        validation.algorithms = vec![algorithm];
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(RingRefusal::Jwt)
    }
}

fn unusable(key: &SigningKey, reason: impl Into<String>) -> KeyError {
    KeyError::Unusable {
        kid: key.kid.clone(),
        reason: reason.into(),
    }
}

/// The verification key of `key`, from its public parameters, refusing
/// parameters of another key type or curve than its algorithm's.
fn verifier(key: &SigningKey) -> Result<Verifier, KeyError> {
    let decoding = match (&key.public, key.algorithm) {
        (PublicKeyParameters::Okp { crv, x }, SigningAlgorithm::EdDsa) if crv == "Ed25519" => {
            DecodingKey::from_ed_components(x)
        }
        (PublicKeyParameters::Ec { crv, x, y }, SigningAlgorithm::Es256) if crv == "P-256" => {
            DecodingKey::from_ec_components(x, y)
        }
        (PublicKeyParameters::Rsa { n, e }, SigningAlgorithm::Rs256) => {
            DecodingKey::from_rsa_components(n, e)
        }
        _ => return Err(unusable(key, "its public key does not fit its algorithm")),
    }
    .map_err(|e| unusable(key, format!("its public key is malformed: {e}")))?;
    Ok(Verifier {
        algorithm: jwt_algorithm(key.algorithm),
        key: decoding,
    })
}

/// The signing key of the active `key`: decrypted, checked against its
/// public parameters, in the form jsonwebtoken (ring) takes.
fn signer(key: &SigningKey, encryption: &KeyEncryptionKey) -> Result<Signer, KeyError> {
    let der = encryption.open(&key.kid, &key.private_key)?;
    let der = der.expose_secret();
    let public = public_parameters(key.algorithm, der)
        .map_err(|e| unusable(key, format!("its private key is malformed: {e}")))?;
    if public != key.public {
        return Err(unusable(
            key,
            "its private key does not match its public key",
        ));
    }
    let encoding = match key.algorithm {
        SigningAlgorithm::EdDsa => EncodingKey::from_ed_der(der),
        SigningAlgorithm::Es256 => EncodingKey::from_ec_der(der),
        SigningAlgorithm::Rs256 => {
            // ring takes RSA keys as PKCS#1 RSAPrivateKey (RFC 8017 A.1.2).
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            use rsa::pkcs8::DecodePrivateKey as _;
            let private = rsa::RsaPrivateKey::from_pkcs8_der(der)
                .map_err(|e| unusable(key, format!("its private key is malformed: {e}")))?;
            let pkcs1 = private
                .to_pkcs1_der()
                .map_err(|e| unusable(key, format!("its private key is malformed: {e}")))?;
            EncodingKey::from_rsa_der(pkcs1.as_bytes())
        }
    };
    Ok(Signer {
        kid: Some(key.kid.clone()),
        algorithm: jwt_algorithm(key.algorithm),
        key: encoding,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use chrono::Utc;
    use orgsvc_domain::{add_key, plan_maintenance, KeyState, RotationPolicy};
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::keys::generate_signing_key;

    const SECRET: &[u8] = b"a-key-encryption-secret-of-32-bytes!";
    const LEGACY: &[u8] = b"the-legacy-hs256-secret-of-32-bytes";

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Claims {
        sub: String,
        exp: i64,
    }

    fn claims() -> Claims {
        Claims {
            sub: "admin".into(),
            exp: Utc::now().timestamp() + 600,
        }
    }

    fn validation() -> Validation {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation
    }

    fn encryption() -> KeyEncryptionKey {
        KeyEncryptionKey::derive(&SECRET.to_vec().into()).unwrap()
    }

    /// A set whose only (active) key has `algorithm`.
    fn set_of(algorithm: SigningAlgorithm) -> Vec<SigningKey> {
        let new = generate_signing_key(algorithm, &encryption()).unwrap();
        add_key(&[], new, Utc::now()).unwrap()
    }

    fn ring(keys: &[SigningKey], legacy: Option<&[u8]>) -> KeyRing {
        let legacy: Option<SecretSlice<u8>> = legacy.map(|s| s.to_vec().into());
        KeyRing::new(keys, Some(&encryption()), legacy.as_ref()).unwrap()
    }

    fn verify(ring: &KeyRing, token: &str) -> Result<Claims, RingRefusal> {
        ring.verify::<Claims>(token, &validation())
    }

    fn header_of(token: &str) -> serde_json::Value {
        let header = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
    }

    /// `token` with its header replaced by `header` (signature kept).
    fn with_header(token: &str, header: &serde_json::Value) -> String {
        let mut parts = token.split('.');
        let _ = parts.next();
        let rest: Vec<_> = parts.collect();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            rest.join(".")
        )
    }

    #[test]
    fn tokens_round_trip_with_every_algorithm_and_name_their_kid() {
        for algorithm in SigningAlgorithm::ALL {
            let keys = set_of(algorithm);
            let ring = ring(&keys, None);
            let token = ring.sign(&claims()).unwrap();
            let header = header_of(&token);
            assert_eq!(header["alg"], algorithm.as_str());
            assert_eq!(header["kid"], keys[0].kid.as_str());
            assert_eq!(ring.signing_kid(), Some(keys[0].kid.as_str()));
            assert_eq!(verify(&ring, &token).unwrap().sub, "admin", "{algorithm}");
        }
    }

    #[test]
    fn a_tampered_signature_or_payload_is_refused() {
        for algorithm in SigningAlgorithm::ALL {
            let ring = ring(&set_of(algorithm), None);
            let token = ring.sign(&claims()).unwrap();
            let (rest, signature) = token.rsplit_once('.').unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            bytes[0] ^= 0x01;
            let tampered = format!("{rest}.{}", URL_SAFE_NO_PAD.encode(bytes));
            assert!(verify(&ring, &tampered).is_err(), "{algorithm}");
            let mut parts: Vec<_> = token.split('.').map(str::to_owned).collect();
            parts[1] = URL_SAFE_NO_PAD
                .encode(json!({"sub": "root", "exp": Utc::now().timestamp() + 600}).to_string());
            assert!(verify(&ring, &parts.join(".")).is_err(), "{algorithm}");
        }
    }

    #[test]
    fn a_token_of_another_key_set_is_refused_for_its_unknown_kid() {
        let ring_a = ring(&set_of(SigningAlgorithm::EdDsa), None);
        let ring_b = ring(&set_of(SigningAlgorithm::EdDsa), Some(LEGACY));
        let token = ring_a.sign(&claims()).unwrap();
        assert!(matches!(verify(&ring_b, &token), Err(RingRefusal::Refused)));
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = set_of(SigningAlgorithm::EdDsa);
        let ring = ring(&keys, Some(LEGACY));
        let token = ring.sign(&claims()).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        for header in [
            json!({"alg": "none", "kid": keys[0].kid}),
            json!({"alg": "none"}),
            json!({"alg": "None", "typ": "JWT"}),
        ] {
            let header = URL_SAFE_NO_PAD.encode(header.to_string());
            for forged in [
                format!("{header}.{payload}."),
                format!("{header}.{payload}"),
            ] {
                assert!(verify(&ring, &forged).is_err(), "{forged}");
            }
        }
    }

    /// The classic confusion: an HS256 token whose HMAC key is the public
    /// key (its raw bytes, its JWK members, or a PEM/DER form an attacker
    /// could fetch), named by the real `kid` or by none.
    #[test]
    fn a_public_key_used_as_an_hmac_secret_is_refused() {
        for algorithm in SigningAlgorithm::ALL {
            let keys = set_of(algorithm);
            let ring = ring(&keys, Some(LEGACY));
            let jwk = serde_json::to_string(&ring.jwks().keys[0]).unwrap();
            let mut candidates: Vec<Vec<u8>> = vec![jwk.into_bytes()];
            match &keys[0].public {
                PublicKeyParameters::Okp { x, .. } => {
                    candidates.push(URL_SAFE_NO_PAD.decode(x).unwrap());
                    candidates.push(x.clone().into_bytes());
                }
                PublicKeyParameters::Ec { x, y, .. } => {
                    let mut point = vec![4_u8];
                    point.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
                    point.extend(URL_SAFE_NO_PAD.decode(y).unwrap());
                    candidates.push(point);
                }
                PublicKeyParameters::Rsa { n, e } => {
                    use rsa::pkcs1::EncodeRsaPublicKey as _;
                    use rsa::pkcs8::EncodePublicKey as _;
                    let public = rsa::RsaPublicKey::new(
                        rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(n).unwrap()),
                        rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(e).unwrap()),
                    )
                    .unwrap();
                    candidates.push(public.to_pkcs1_der().unwrap().as_bytes().to_vec());
                    candidates.push(public.to_public_key_der().unwrap().as_bytes().to_vec());
                    let spki = public.to_public_key_der().unwrap();
                    let body = base64::engine::general_purpose::STANDARD.encode(spki.as_bytes());
                    let lines: Vec<_> = body
                        .as_bytes()
                        .chunks(64)
                        .map(|l| std::str::from_utf8(l).unwrap())
                        .collect();
                    let pem = format!(
                        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                        lines.join("\n")
                    );
                    candidates.push(pem.into_bytes());
                }
            }
            for secret in candidates {
                for kid in [Some(keys[0].kid.clone()), None] {
                    let mut header = Header::new(Algorithm::HS256);
                    header.kid = kid.clone();
                    let forged = jsonwebtoken::encode(
                        &header,
                        &claims(),
                        &EncodingKey::from_secret(&secret),
                    )
                    .unwrap();
                    assert!(
                        verify(&ring, &forged).is_err(),
                        "{algorithm}, kid {kid:?}: forged HS256 accepted"
                    );
                }
            }
        }
    }

    #[test]
    fn a_header_alg_other_than_the_keys_is_refused() {
        let es = set_of(SigningAlgorithm::Es256);
        let ring = ring(&es, None);
        let token = ring.sign(&claims()).unwrap();
        let mut header = header_of(&token);
        for alg in ["ES384", "RS256", "EdDSA", "HS256", "PS256"] {
            header["alg"] = alg.into();
            assert!(
                verify(&ring, &with_header(&token, &header)).is_err(),
                "{alg}"
            );
        }
    }

    #[test]
    fn tokens_without_kid_verify_only_as_legacy_hs256() {
        let keys = set_of(SigningAlgorithm::EdDsa);
        let legacy_token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(LEGACY),
        )
        .unwrap();
        // With the secret configured: the migration path.
        assert!(verify(&ring(&keys, Some(LEGACY)), &legacy_token).is_ok());
        // Without it: refused.
        assert!(matches!(
            verify(&ring(&keys, None), &legacy_token),
            Err(RingRefusal::Refused)
        ));
        // Another secret: refused.
        assert!(verify(
            &ring(&keys, Some(b"another-secret-of-some-32-bytes!!")),
            &legacy_token
        )
        .is_err());
        // An HS256 token naming a kid is never the legacy form.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("legacy".into());
        let named =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(LEGACY)).unwrap();
        assert!(verify(&ring(&keys, Some(LEGACY)), &named).is_err());
    }

    #[test]
    fn with_a_key_set_new_tokens_are_signed_by_the_active_key_not_the_secret() {
        let keys = set_of(SigningAlgorithm::EdDsa);
        let ring = ring(&keys, Some(LEGACY));
        let header = header_of(&ring.sign(&claims()).unwrap());
        assert_eq!(header["alg"], "EdDSA");
        // Without any key the secret signs (HS256 deployments, or before
        // the first key is stored).
        let legacy = KeyRing::hs256(&LEGACY.to_vec().into()).unwrap();
        let token = legacy.sign(&claims()).unwrap();
        assert_eq!(header_of(&token)["alg"], "HS256");
        assert!(header_of(&token).get("kid").is_none() || header_of(&token)["kid"].is_null());
        assert!(verify(&legacy, &token).is_ok());
        assert!(legacy.jwks().keys.is_empty());
    }

    #[test]
    fn a_token_of_a_retired_key_verifies_while_the_key_is_in_the_ring() {
        let policy = RotationPolicy {
            publish_ahead: Duration::ZERO,
            ..RotationPolicy::new(Duration::from_secs(900))
        };
        let old = set_of(SigningAlgorithm::EdDsa);
        let old_ring = ring(&old, None);
        let token = old_ring.sign(&claims()).unwrap();

        let new = generate_signing_key(SigningAlgorithm::Es256, &encryption()).unwrap();
        let now = Utc::now();
        let keys = add_key(&old, new, now).unwrap();
        let rotated = plan_maintenance(&keys, &policy, now).keys;
        assert_eq!(rotated[0].state, KeyState::Retired);
        assert_eq!(rotated[1].state, KeyState::Active);
        let ring_after = ring(&rotated, None);
        assert_eq!(ring_after.signing_kid(), Some(rotated[1].kid.as_str()));
        assert!(
            verify(&ring_after, &token).is_ok(),
            "retired key still verifies"
        );
        assert_eq!(ring_after.jwks().keys.len(), 2);

        // Once removed, its tokens no longer verify.
        let later = now + chrono::TimeDelta::seconds(900 + 301);
        let pruned = plan_maintenance(&rotated, &policy, later).keys;
        assert_eq!(pruned.len(), 1);
        assert!(verify(&ring(&pruned, None), &token).is_err());
    }

    #[test]
    fn a_next_key_verifies_before_it_signs() {
        let keys = set_of(SigningAlgorithm::EdDsa);
        let next = generate_signing_key(SigningAlgorithm::Rs256, &encryption()).unwrap();
        let keys = add_key(&keys, next, Utc::now()).unwrap();
        let ring = ring(&keys, None);
        assert_eq!(ring.signing_kid(), Some(keys[0].kid.as_str()));
        // An instance that already promoted the next key signs with it.
        let mut promoted = keys.clone();
        promoted[0].state = KeyState::Retired;
        promoted[0].retired_at = Some(Utc::now());
        promoted[1].state = KeyState::Active;
        promoted[1].activated_at = Some(Utc::now());
        let token = self::ring(&promoted, None).sign(&claims()).unwrap();
        assert!(verify(&ring, &token).is_ok());
    }

    #[test]
    fn unusable_sets_are_refused() {
        let enc = encryption();
        let keys = set_of(SigningAlgorithm::EdDsa);
        // Wrong encryption secret.
        let other =
            KeyEncryptionKey::derive(&b"another-secret-another-secret-another".to_vec().into())
                .unwrap();
        assert!(matches!(
            KeyRing::new(&keys, Some(&other), None),
            Err(KeyError::Open { .. })
        ));
        // The sealed key moved to another kid.
        let mut moved = keys.clone();
        moved[0].kid = "another-kid".into();
        assert!(matches!(
            KeyRing::new(&moved, Some(&enc), None),
            Err(KeyError::Open { .. })
        ));
        // Public parameters of another key.
        let mut swapped = keys.clone();
        swapped[0].public = set_of(SigningAlgorithm::EdDsa)[0].public.clone();
        assert!(matches!(
            KeyRing::new(&swapped, Some(&enc), None),
            Err(KeyError::Unusable { .. })
        ));
        // Parameters that do not fit the algorithm.
        let mut mismatched = keys.clone();
        mismatched[0].algorithm = SigningAlgorithm::Es256;
        assert!(matches!(
            KeyRing::new(&mismatched, Some(&enc), None),
            Err(KeyError::Unusable { .. })
        ));
        // No secret to decrypt the active key with.
        assert!(matches!(
            KeyRing::new(&keys, None, None),
            Err(KeyError::MissingEncryptionKey)
        ));
        // Nothing to sign with.
        assert!(matches!(
            KeyRing::new(&[], Some(&enc), None),
            Err(KeyError::NoSigningKey)
        ));
        assert!(KeyRing::hs256(&Vec::new().into()).is_err());
        // Two active keys.
        let mut two = keys.clone();
        two.extend(set_of(SigningAlgorithm::EdDsa));
        assert!(matches!(
            KeyRing::new(&two, Some(&enc), None),
            Err(KeyError::KeySet(_))
        ));
    }

    #[test]
    fn debug_shows_kids_not_keys() {
        let keys = set_of(SigningAlgorithm::EdDsa);
        let shown = format!("{:?}", ring(&keys, Some(LEGACY)));
        assert!(shown.contains(&keys[0].kid), "{shown}");
        assert!(!shown.contains("the-legacy"), "{shown}");
    }
}
