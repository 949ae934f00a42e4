//! Access tokens (JWT, RFC 7519), signed by the keys of a [`KeyRing`]:
//! the stored asymmetric key set (EdDSA, ES256 or RS256, with `kid`) or the
//! legacy HS256 shared secret.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::verified_tokens::VerifiedTokens;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use orgsvc_domain::{Admin, Organization};
use secrecy::SecretSlice;
use uuid::Uuid;

pub use crate::claims::AccessClaims;
use crate::error::{AuthError, TokenError};
use crate::key_ring::{KeyRing, RingRefusal};

/// Length of a generated secret, in bytes (256 bits).
const GENERATED_SECRET_BYTES: usize = 32;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// How tokens are signed and checked with the legacy HS256 secret only
/// (see [`TokenService::with_key_ring`] for asymmetric keys).
#[derive(Debug)]
pub struct TokenSettings {
    /// The HMAC key.
    pub secret: SecretSlice<u8>,
    /// The `iss` claim written and required.
    pub issuer: String,
    /// The `aud` claim written and required.
    pub audience: String,
    /// Lifetime of an access token.
    pub ttl: Duration,
}

/// A freshly signed access token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The compact JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs and verifies access tokens. Clones share one key ring, which
/// [`TokenService::install_key_ring`] replaces for all of them at once
/// (key rotation without restart), and one memory of the tokens they
/// verified (see [`TokenService::verify`]).
#[derive(Clone)]
pub struct TokenService {
    ring: Arc<RwLock<Arc<KeyRing>>>,
    verified: Arc<VerifiedTokens>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("keys", &self.key_ring())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// A token service signing and verifying with the HS256 secret of
    /// `settings` (no `kid`); refuses an empty secret.
    pub fn new(settings: TokenSettings) -> Result<Self, AuthError> {
        let ring = KeyRing::hs256(&settings.secret)
            .map_err(|_| AuthError::InvalidSecret("the secret is empty"))?;
        Ok(Self::with_key_ring(
            ring,
            settings.issuer,
            settings.audience,
            settings.ttl,
        ))
    }

    /// A token service signing with `ring`'s active key and verifying with
    /// its keys, writing and requiring `issuer` and `audience`, issuing
    /// tokens that live `ttl`.
    pub fn with_key_ring(ring: KeyRing, issuer: String, audience: String, ttl: Duration) -> Self {
        // The algorithm is the verifying key's, set per token by the ring.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            ring: Arc::new(RwLock::new(Arc::new(ring))),
            verified: Arc::new(VerifiedTokens::default()),
            validation,
            issuer,
            audience,
            ttl,
        }
    }

    /// Replaces the keys of this service and of all its clones (after a
    /// rotation or a reload of the key set). Tokens being signed or
    /// verified meanwhile finish with the previous ring.
    pub fn install_key_ring(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.ring.write() {
            Ok(mut current) => *current = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        // A key that left the ring must stop verifying at once.
        self.verified.forget_all();
    }

    /// The current keys (for publishing the JWK Set).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The `iss` claim written and required.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Lifetime of the tokens this service issues.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for `admin` of `organization`.
    pub fn issue(
        &self,
        admin: &Admin,
        organization: &Organization,
    ) -> Result<IssuedToken, AuthError> {
        let now = Utc::now().timestamp();
        let ttl_secs = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            sub: admin.id,
            org_id: organization.id,
            org_name: organization.name.as_str().to_owned(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4().to_string(),
            ver: admin.token_version,
        };
        let access_token = self.key_ring().sign(&claims).map_err(AuthError::Signing)?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// Checks signature (with the key the header's `kid` names, under that
    /// key's algorithm only; without `kid`, the legacy HS256 secret if
    /// configured), issuer, audience and the time claims
    /// (RFC 7519 §4.1.4-4.1.6, with a few seconds of leeway for clock skew):
    /// `exp` has not passed, `nbf` (if any) has, `iat` is not in the future,
    /// and the lifetime `exp - iat` is at most the configured TTL, so a token
    /// signed with the key cannot outlive what this service issues. Returns
    /// the claims. Whether the admin still exists with the same token
    /// version is for the caller to check against the store.
    ///
    /// A token verified before (the same text) is answered from memory, its
    /// `exp` checked again, without the signature check, which is most of
    /// an authenticated request's work (an Ed25519 verification: a third of
    /// the CPU of `GET /org/data?limit=1`). The memory holds at most
    /// [`crate::verified_tokens::CAPACITY`] tokens, is shared by the clones
    /// and is emptied when the key ring changes; refusals are never
    /// remembered.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verify_at(token, Utc::now().timestamp())
    }

    /// [`TokenService::verify`] at `now` (seconds since the epoch) for the
    /// checks this service makes itself (the library checks the signature
    /// and the registered claims at the real time).
    fn verify_at(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
            if claims.exp.saturating_add(leeway) < now {
                return Err(TokenError::Expired);
            }
            return Ok(claims);
        }
        let claims = self
            .key_ring()
            .verify::<AccessClaims>(token, &self.validation)
            .map_err(|refusal| match refusal {
                RingRefusal::Jwt(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                    TokenError::Expired
                }
                _ => TokenError::Invalid,
            })?;
        self.check_lifetime(&claims, now)?;
        self.verified.remember(token, &claims);
        Ok(claims)
    }

    /// `iat` not after `now` (plus leeway) and `exp - iat` within the TTL.
    fn check_lifetime(&self, claims: &AccessClaims, now: i64) -> Result<(), TokenError> {
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
        let ttl_secs = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let issued_in_future = claims.iat > now.saturating_add(leeway);
        let too_long = claims.exp.saturating_sub(claims.iat) > ttl_secs;
        if issued_in_future || too_long {
            Err(TokenError::Invalid)
        } else {
            Ok(())
        }
    }
}

/// A random 256-bit signing secret, for development runs without a
/// configured one.
pub fn generate_secret() -> SecretSlice<u8> {
    let mut bytes = vec![0_u8; GENERATED_SECRET_BYTES];
    OsRng.fill_bytes(&mut bytes);
    bytes.into()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use orgsvc_domain::{
        AdminEmail, AdminId, AdminRole, CollectionName, OrganizationId, OrganizationName,
        TenantLayout, TenantLocation,
    };

    use jsonwebtoken::{EncodingKey, Header};
    use secrecy::ExposeSecret;

    use super::*;

    const ALGORITHM: Algorithm = Algorithm::HS256;

    fn service_with(secret: &[u8], ttl: Duration) -> TokenService {
        TokenService::new(TokenSettings {
            secret: secret.to_vec().into(),
            issuer: "orgsvc".into(),
            audience: "orgsvc-api".into(),
            ttl,
        })
        .unwrap()
    }

    fn service() -> TokenService {
        service_with(
            b"a-test-secret-of-at-least-32-bytes!",
            Duration::from_secs(900),
        )
    }

    fn fixtures() -> (Admin, Organization) {
        let now = Utc::now();
        let name = OrganizationName::parse("Acme").unwrap();
        let organization = Organization {
            id: OrganizationId::new(),
            location: TenantLocation {
                database: "orgsvc_master".into(),
                collection: CollectionName::parse("org_acme").unwrap(),
                layout: TenantLayout::Collection,
            },
            name,
            admin_id: AdminId::new(),
            created_at: now,
            updated_at: now,
            state: Default::default(),
        };
        let admin = Admin {
            id: organization.admin_id,
            organization_id: organization.id,
            email: AdminEmail::parse("owner@acme.example").unwrap(),
            role: AdminRole::Owner,
            token_version: 3,
            email_verified: false,
            created_at: now,
            updated_at: now,
        };
        (admin, organization)
    }

    fn payload_of(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_carry_admin_org_and_version() {
        let (admin, org) = fixtures();
        let issued = service().issue(&admin, &org).unwrap();
        assert_eq!(issued.expires_in, 900);
        let claims = service().verify(&issued.access_token).unwrap();
        assert_eq!(claims.sub, admin.id);
        assert_eq!(claims.org_id, org.id);
        assert_eq!(claims.org_name, "Acme");
        assert_eq!(claims.ver, 3);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(
            (claims.iss.as_str(), claims.aud.as_str()),
            ("orgsvc", "orgsvc-api")
        );
        assert!(Uuid::parse_str(&claims.jti).is_ok());
    }

    #[test]
    fn every_token_has_its_own_jti() {
        let (admin, org) = fixtures();
        let a = service().issue(&admin, &org).unwrap().access_token;
        let b = service().issue(&admin, &org).unwrap().access_token;
        assert_ne!(payload_of(&a)["jti"], payload_of(&b)["jti"]);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let (admin, org) = fixtures();
        let token = service_with(b"another-secret-another-secret-xx", Duration::from_secs(60))
            .issue(&admin, &org)
            .unwrap();
        assert_eq!(
            service().verify(&token.access_token),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let (admin, org) = fixtures();
        let mut claims = service()
            .verify(&service().issue(&admin, &org).unwrap().access_token)
            .unwrap();
        claims.iat -= 3600;
        claims.exp -= 3600;
        let key = EncodingKey::from_secret(b"a-test-secret-of-at-least-32-bytes!");
        let token = jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &key).unwrap();
        assert_eq!(service().verify(&token), Err(TokenError::Expired));
    }

    /// A token signed with the service's key whose time claims are moved
    /// from an issued one's: `iat` and `exp` by these offsets, `nbf` set
    /// to now plus `nbf` when given.
    fn forged(iat: i64, exp: i64, nbf: Option<i64>) -> String {
        let (admin, org) = fixtures();
        let token = service().issue(&admin, &org).unwrap().access_token;
        let mut claims = payload_of(&token);
        let now = Utc::now().timestamp();
        claims["iat"] = (claims["iat"].as_i64().unwrap() + iat).into();
        claims["exp"] = (claims["exp"].as_i64().unwrap() + exp).into();
        if let Some(nbf) = nbf {
            claims["nbf"] = (now + nbf).into();
        }
        let key = EncodingKey::from_secret(b"a-test-secret-of-at-least-32-bytes!");
        jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &key).unwrap()
    }

    #[test]
    fn a_token_not_yet_valid_by_nbf_is_refused() {
        assert_eq!(
            service().verify(&forged(0, 0, Some(3600))),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            service().verify(&forged(0, 0, Some(60))),
            Err(TokenError::Invalid)
        );
        // Valid from now, or a few seconds ahead (clock skew): accepted.
        assert!(service().verify(&forged(0, 0, Some(0))).is_ok());
        assert!(service().verify(&forged(0, 0, Some(-60))).is_ok());
        assert!(service().verify(&forged(0, 0, Some(3))).is_ok());
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused() {
        assert_eq!(
            service().verify(&forged(3600, 0, None)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            service().verify(&forged(60, 60, None)),
            Err(TokenError::Invalid)
        );
        assert!(
            service().verify(&forged(3, 3, None)).is_ok(),
            "within the leeway"
        );
    }

    #[test]
    fn a_token_living_longer_than_the_ttl_is_refused() {
        // The TTL is 900 s: exp - iat of 901 s, or a year, is too long.
        assert_eq!(
            service().verify(&forged(0, 1, None)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            service().verify(&forged(0, 365 * 86_400, None)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            service().verify(&forged(-100, 0, None)),
            Err(TokenError::Invalid)
        );
        // Shorter lifetimes are fine.
        assert!(service().verify(&forged(0, -100, None)).is_ok());
        assert!(service().verify(&forged(-100, -100, None)).is_ok());
    }

    #[test]
    fn unsigned_alg_none_tokens_are_refused() {
        let (admin, org) = fixtures();
        let genuine = service().issue(&admin, &org).unwrap().access_token;
        let payload = genuine.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        for forged in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert_eq!(service().verify(&forged), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn tokens_signed_with_another_algorithm_are_refused() {
        let (admin, org) = fixtures();
        let claims = service()
            .verify(&service().issue(&admin, &org).unwrap().access_token)
            .unwrap();
        let key = EncodingKey::from_secret(b"a-test-secret-of-at-least-32-bytes!");
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &key).unwrap();
        assert_eq!(service().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_for_another_audience_or_issuer_is_refused() {
        let (admin, org) = fixtures();
        let other = TokenService::new(TokenSettings {
            secret: b"a-test-secret-of-at-least-32-bytes!".to_vec().into(),
            issuer: "someone-else".into(),
            audience: "another-api".into(),
            ttl: Duration::from_secs(60),
        })
        .unwrap();
        let token = other.issue(&admin, &org).unwrap();
        assert_eq!(
            service().verify(&token.access_token),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn garbage_is_invalid_and_an_empty_secret_is_refused() {
        assert_eq!(service().verify("not.a.token"), Err(TokenError::Invalid));
        assert_eq!(service().verify(""), Err(TokenError::Invalid));
        let empty = TokenService::new(TokenSettings {
            secret: Vec::new().into(),
            issuer: "orgsvc".into(),
            audience: "orgsvc-api".into(),
            ttl: Duration::from_secs(60),
        });
        assert!(matches!(empty, Err(AuthError::InvalidSecret(_))));
    }

    fn encryption() -> crate::KeyEncryptionKey {
        crate::KeyEncryptionKey::derive(&b"a-key-encryption-secret-of-32-bytes!".to_vec().into())
            .unwrap()
    }

    /// A key set whose only (active) key has `algorithm`.
    fn key_set(algorithm: orgsvc_domain::SigningAlgorithm) -> Vec<orgsvc_domain::SigningKey> {
        let new = crate::generate_signing_key(algorithm, &encryption()).unwrap();
        orgsvc_domain::add_key(&[], new, Utc::now()).unwrap()
    }

    fn ring_service(keys: &[orgsvc_domain::SigningKey], legacy: bool) -> TokenService {
        let secret: SecretSlice<u8> = b"a-test-secret-of-at-least-32-bytes!".to_vec().into();
        let ring = KeyRing::new(keys, Some(&encryption()), legacy.then_some(&secret)).unwrap();
        TokenService::with_key_ring(
            ring,
            "orgsvc".into(),
            "orgsvc-api".into(),
            Duration::from_secs(900),
        )
    }

    fn header_of(token: &str) -> serde_json::Value {
        let header = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
    }

    #[test]
    fn key_ring_tokens_carry_the_kid_and_the_same_claims() {
        let (admin, org) = fixtures();
        for algorithm in orgsvc_domain::SigningAlgorithm::ALL {
            let keys = key_set(algorithm);
            let ring = ring_service(&keys, false);
            let issued = ring.issue(&admin, &org).unwrap();
            assert_eq!(header_of(&issued.access_token)["kid"], keys[0].kid.as_str());
            let claims = ring.verify(&issued.access_token).unwrap();
            assert_eq!(
                (claims.sub, claims.ver, claims.exp - claims.iat),
                (admin.id, 3, 900)
            );
            // The HS256-only service knows no kid.
            assert_eq!(
                service().verify(&issued.access_token),
                Err(TokenError::Invalid)
            );
        }
    }

    /// A token is verified once, then answered from memory; its `exp` is
    /// still checked on every use.
    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let keys = key_set(orgsvc_domain::SigningAlgorithm::EdDsa);
        let service = ring_service(&keys, false);
        let (admin, org) = fixtures();
        let token = service.issue(&admin, &org).unwrap().access_token;
        let claims = service.verify(&token).unwrap();
        let clone = service.clone();
        assert_eq!(clone.verify_at(&token, claims.exp), Ok(claims.clone()));

        let later = claims.exp + i64::try_from(LEEWAY_SECS).unwrap() + 1;
        assert_eq!(clone.verify_at(&token, later), Err(TokenError::Expired));
    }

    #[test]
    fn expired_key_ring_tokens_are_refused_as_expired() {
        let keys = key_set(orgsvc_domain::SigningAlgorithm::EdDsa);
        let service = ring_service(&keys, false);
        let (admin, org) = fixtures();
        let mut claims = service
            .verify(&service.issue(&admin, &org).unwrap().access_token)
            .unwrap();
        claims.iat -= 3600;
        claims.exp -= 3600;
        let token = service.key_ring().sign(&claims).unwrap();
        assert_eq!(service.verify(&token), Err(TokenError::Expired));
    }

    /// Moving an HS256 deployment to a key set: tokens issued before keep
    /// verifying (no kid, the configured secret) while new ones carry the
    /// active key's kid; every clone of the service switches at once.
    #[test]
    fn switching_from_hs256_keeps_earlier_tokens_valid() {
        let (admin, org) = fixtures();
        let before = service();
        let clone = before.clone();
        let old_token = before.issue(&admin, &org).unwrap().access_token;

        let keys = key_set(orgsvc_domain::SigningAlgorithm::EdDsa);
        let secret: SecretSlice<u8> = b"a-test-secret-of-at-least-32-bytes!".to_vec().into();
        before.install_key_ring(KeyRing::new(&keys, Some(&encryption()), Some(&secret)).unwrap());

        let new_token = clone.issue(&admin, &org).unwrap().access_token;
        assert_eq!(header_of(&new_token)["alg"], "EdDSA");
        assert_eq!(clone.key_ring().signing_kid(), Some(keys[0].kid.as_str()));
        assert!(clone.verify(&old_token).is_ok());
        assert!(clone.verify(&new_token).is_ok());
        assert_eq!(clone.key_ring().jwks().keys.len(), 1);

        // Once the secret is dropped from the configuration, the old
        // tokens are refused.
        clone.install_key_ring(KeyRing::new(&keys, Some(&encryption()), None).unwrap());
        assert_eq!(before.verify(&old_token), Err(TokenError::Invalid));
        assert!(before.verify(&new_token).is_ok());
    }

    #[test]
    fn generated_secrets_are_32_random_bytes() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.expose_secret().len(), 32);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
