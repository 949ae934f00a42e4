//! The credential services `auth.*` asks for: the argon2id hasher and the
//! access-token service, signing with the stored key set (kept current by
//! [`SigningKeys`]), an in-memory key, or the HS256 secret.

use std::sync::Arc;
use std::time::Duration;

use orgsvc_app::signing_keys::{SigningKeys, SigningSettings};
use orgsvc_auth::{
    generate_signing_key, KeyEncryptionKey, KeyError, KeyRing, PasswordHasher, TokenService,
    TokenSettings,
};
use orgsvc_domain::clock::now_millis;
use orgsvc_domain::{add_key, SigningAlgorithm, TenantStore};
use secrecy::{ExposeSecret, SecretSlice};

use crate::config::Settings;

/// The credential services built from `auth.*`.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Argon2id hashing.
    pub hasher: PasswordHasher,
    /// Access tokens.
    pub tokens: TokenService,
    /// The stored signing key set the tokens follow (asymmetric algorithm
    /// with `auth.key_encryption_secret`); its refresher runs beside the
    /// server.
    pub signing_keys: Option<SigningKeys>,
}

/// Why the credential services could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The hashing or token settings are unusable.
    #[error(transparent)]
    Auth(#[from] orgsvc_auth::AuthError),
    /// The signing keys could not be generated, loaded or used.
    #[error("the signing keys are unusable")]
    Keys(#[from] KeyError),
}

impl Credentials {
    /// The credential services, signing with the stored key set on `store`
    /// (kept current by the returned [`SigningKeys`]) when
    /// `auth.signing.algorithm` is asymmetric and
    /// `auth.key_encryption_secret` is set; otherwise as
    /// [`Credentials::from_settings`].
    pub async fn load(
        settings: &Settings,
        store: Arc<dyn TenantStore>,
    ) -> Result<Self, CredentialsError> {
        let auth = &settings.auth;
        let Some((algorithm, encryption)) = stored_key_set(settings)? else {
            return Self::from_settings(settings);
        };
        if auth.jwt_secret.is_some() {
            tracing::warn!(
                "auth.jwt_secret is set: HS256 tokens without kid signed with it are still accepted; remove it once auth.access_token_ttl has passed since the switch to the key set"
            );
        }
        let signing_keys = SigningKeys::start(
            store,
            SigningSettings {
                algorithm,
                policy: auth.rotation_policy(),
                encryption,
                legacy_secret: legacy_secret(settings),
                issuer: auth.issuer.clone(),
                audience: auth.audience.clone(),
            },
        )
        .await?;
        Ok(Self {
            hasher: hasher(settings)?,
            tokens: signing_keys.tokens().clone(),
            signing_keys: Some(signing_keys),
        })
    }

    /// The credential services without a stored key set: with
    /// `auth.signing.algorithm = "HS256"`, `auth.jwt_secret` (or, which
    /// `Settings::load` allows in development only, a random secret);
    /// with an asymmetric algorithm, one key of it generated now and kept
    /// in memory only (development without `auth.key_encryption_secret`),
    /// verifying `auth.jwt_secret`'s tokens too. Either way a warning says
    /// that tokens stop working at restart.
    pub fn from_settings(settings: &Settings) -> Result<Self, CredentialsError> {
        let auth = &settings.auth;
        let ttl = Duration::from_secs(auth.access_token_ttl);
        let tokens = match auth.signing.algorithm.asymmetric() {
            None => {
                let secret = legacy_secret(settings).unwrap_or_else(|| {
                    tracing::warn!(
                        "auth.jwt_secret is not set: using a random secret, so access tokens stop working at restart; set ORGSVC__AUTH__JWT_SECRET"
                    );
                    orgsvc_auth::generate_secret()
                });
                TokenService::new(TokenSettings {
                    secret,
                    issuer: auth.issuer.clone(),
                    audience: auth.audience.clone(),
                    ttl,
                })?
            }
            Some(algorithm) => {
                tracing::warn!(
                    algorithm = %algorithm,
                    "auth.key_encryption_secret is not set: signing with a key kept in memory only (a key set in the store is not used), so access tokens stop working at restart and other instances cannot verify them; set ORGSVC__AUTH__KEY_ENCRYPTION_SECRET"
                );
                let encryption = KeyEncryptionKey::derive(&orgsvc_auth::generate_secret())?;
                let key = generate_signing_key(algorithm, &encryption)?;
                let keys = add_key(&[], key, now_millis()).map_err(KeyError::from)?;
                let ring =
                    KeyRing::new(&keys, Some(&encryption), legacy_secret(settings).as_ref())?;
                TokenService::with_key_ring(ring, auth.issuer.clone(), auth.audience.clone(), ttl)
            }
        };
        Ok(Self {
            hasher: hasher(settings)?,
            tokens,
            signing_keys: None,
        })
    }
}

/// The algorithm of the stored key set and the key that encrypts its
/// private keys, when `auth.*` asks for a stored key set (an asymmetric
/// `auth.signing.algorithm` and `auth.key_encryption_secret`); `None`
/// otherwise.
///
/// # Errors
/// [`KeyError::WeakSecret`] for a secret under 32 bytes.
pub fn stored_key_set(
    settings: &Settings,
) -> Result<Option<(SigningAlgorithm, KeyEncryptionKey)>, KeyError> {
    let auth = &settings.auth;
    let (Some(algorithm), Some(secret)) = (
        auth.signing.algorithm.asymmetric(),
        &auth.key_encryption_secret,
    ) else {
        return Ok(None);
    };
    let secret = SecretSlice::from(secret.expose_secret().as_bytes().to_vec());
    Ok(Some((algorithm, KeyEncryptionKey::derive(&secret)?)))
}

/// `auth.jwt_secret`, as bytes.
fn legacy_secret(settings: &Settings) -> Option<SecretSlice<u8>> {
    settings
        .auth
        .jwt_secret
        .as_ref()
        .map(|secret| SecretSlice::from(secret.expose_secret().as_bytes().to_vec()))
}

/// The argon2id hasher `auth.argon2` and `auth.hashing_concurrency` ask for.
fn hasher(settings: &Settings) -> Result<PasswordHasher, orgsvc_auth::AuthError> {
    PasswordHasher::new(settings.auth.argon2, settings.hashing_concurrency())
}
