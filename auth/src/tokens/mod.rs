//! JWTs: [`Claims`], and [`Tokens`], which issues and verifies them.
//!
//! Verification pins the configured algorithm: a token whose header names another one (`none`,
//! or HS256 signed with an RS256 public key as the HMAC secret) is refused before its claims are
//! read. `exp` and `nbf` are checked with no leeway, `iss` must equal the configured issuer,
//! every claim of [`Claims`] must be present, `iat` may not be in the future and `exp` may not be
//! later than `iat` + the configured TTL (+ [`MAX_CLOCK_SKEW_SECS`]): a token that claims to live
//! until the year 9999 is refused even with a valid signature.
//!
//! Whether the user still exists, is active and still has this token's generation (password,
//! role or activity unchanged since it was issued) is [`crate::Authenticator`]'s job.

use chrono::Utc;
use domain::Role;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::claims::Claims;
use crate::error::AuthError;
use crate::settings::{AuthSettings, AuthSettingsError, JwtAlgorithm};

/// Tokens longer than this are refused unread (ours are about 300 bytes).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How far `iat` may be in the future, and `exp` beyond `iat` + TTL, to allow for clock skew
/// between replicas.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// The reply of a successful login (OAuth 2 style): `{"access_token", "token_type": "bearer",
/// "expires_in"}`. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Issuing a token failed. Either is a bug or a misconfiguration (answer 500).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("these tokens were built with Tokens::verify_only and cannot issue")]
    CannotSign,
    #[error("signing the token failed: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Issues and verifies tokens with one algorithm and issuer. Build it once at start and share it
/// (`Arc<Tokens>`); it holds the keys, so `Debug` prints only the algorithm and issuer.
pub struct Tokens {
    algorithm: JwtAlgorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    issuer: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("can_issue", &self.can_issue())
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Issues and verifies (the command API). With RS256 / EdDSA reads both PEM files and checks
    /// that they belong together.
    ///
    /// # Errors
    /// Invalid settings, an unreadable or unparsable key, or keys that do not match.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, AuthSettingsError> {
        let mut tokens = Self::verify_only(settings)?;
        let encoding = match settings.algorithm {
            JwtAlgorithm::Hs256 => {
                EncodingKey::from_secret(settings.jwt_secret.expose().as_bytes())
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::EdDsa => {
                let path = settings.private_key_path()?;
                let pem = AuthSettings::read_key(path)?;
                let parsed = if settings.algorithm == JwtAlgorithm::Rs256 {
                    EncodingKey::from_rsa_pem(&pem)
                } else {
                    EncodingKey::from_ed_pem(&pem)
                };
                parsed.map_err(|e| settings.invalid_key(path, "private key", e))?
            }
        };
        tokens.encoding = Some(encoding);
        let probe = tokens
            .sign(&tokens.claims_for(Uuid::nil(), Role::User))
            .map_err(|_| AuthSettingsError::KeyPairMismatch)?;
        tokens
            .verify(&probe)
            .map_err(|_| AuthSettingsError::KeyPairMismatch)?;
        Ok(tokens)
    }

    /// Verifies only (the query API): needs the secret, or just the public key.
    /// [`Tokens::issue`] then fails with [`TokenError::CannotSign`].
    ///
    /// # Errors
    /// Invalid settings, or an unreadable or unparsable public key.
    pub fn verify_only(settings: &AuthSettings) -> Result<Self, AuthSettingsError> {
        settings.validate()?;
        let decoding = match settings.algorithm {
            JwtAlgorithm::Hs256 => {
                DecodingKey::from_secret(settings.jwt_secret.expose().as_bytes())
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::EdDsa => {
                let path = settings.public_key_path()?;
                let pem = AuthSettings::read_key(path)?;
                let parsed = if settings.algorithm == JwtAlgorithm::Rs256 {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ed_pem(&pem)
                };
                parsed.map_err(|e| settings.invalid_key(path, "public key", e))?
            }
        };
        let mut validation = Validation::new(settings.algorithm.jose());
        validation.leeway = 0;
        validation.set_issuer(&[&settings.issuer]);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.validate_aud = false;
        Ok(Self {
            algorithm: settings.algorithm,
            encoding: None,
            decoding,
            validation,
            ttl_secs: settings.token_ttl_secs,
            issuer: settings.issuer.clone(),
        })
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// Whether [`Tokens::issue`] can sign (false after [`Tokens::verify_only`]).
    pub fn can_issue(&self) -> bool {
        self.encoding.is_some()
    }

    /// Fresh claims for `user_id` (token generation 0): issued now, expiring after the TTL,
    /// with a random `jti`.
    pub fn claims_for(&self, user_id: Uuid, role: Role) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            sub: user_id,
            role,
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.ttl()),
            jti: Uuid::new_v4(),
            iss: self.issuer.clone(),
            generation: 0,
        }
    }

    fn ttl(&self) -> i64 {
        i64::try_from(self.ttl_secs).unwrap_or(i64::MAX)
    }

    /// A new signed token for `user_id` with `role`, token generation 0 (see
    /// [`Tokens::issue_for`]).
    ///
    /// # Errors
    /// [`TokenError`] when these tokens cannot sign.
    pub fn issue(&self, user_id: Uuid, role: Role) -> Result<IssuedToken, TokenError> {
        self.issue_for(user_id, role, 0)
    }

    /// A new signed token for `user_id` with `role` and the user's current token `generation`
    /// (from the write-side registry): it works until the generation moves on.
    ///
    /// # Errors
    /// [`TokenError`] when these tokens cannot sign.
    pub fn issue_for(
        &self,
        user_id: Uuid,
        role: Role,
        generation: i64,
    ) -> Result<IssuedToken, TokenError> {
        let mut claims = self.claims_for(user_id, role);
        claims.generation = generation;
        Ok(IssuedToken {
            access_token: self.sign(&claims)?,
            token_type: "bearer".to_owned(),
            expires_in: self.ttl_secs,
        })
    }

    /// Signs arbitrary claims (tests use it for expired or foreign-issuer tokens).
    ///
    /// # Errors
    /// [`TokenError`] when these tokens cannot sign.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let key = self.encoding.as_ref().ok_or(TokenError::CannotSign)?;
        jsonwebtoken::encode(&Header::new(self.algorithm.jose()), claims, key)
            .map_err(TokenError::Sign)
    }

    /// Checks the signature with the pinned algorithm, `exp` and `nbf` (no leeway), `iss`, and
    /// that `iat` is not in the future and `exp` not beyond `iat` + TTL (both give or take
    /// [`MAX_CLOCK_SKEW_SECS`]). Does not consult revocations (see [`crate::Authenticator`]).
    ///
    /// # Errors
    /// [`AuthError::ExpiredToken`] for a genuine but expired token, otherwise
    /// [`AuthError::InvalidToken`].
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken);
        }
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => {
                let claims = data.claims;
                let now = Utc::now().timestamp();
                let latest_exp = claims
                    .iat
                    .saturating_add(self.ttl())
                    .saturating_add(MAX_CLOCK_SKEW_SECS);
                if claims.iat > now.saturating_add(MAX_CLOCK_SKEW_SECS)
                    || claims.exp > latest_exp
                    || claims.nbf < claims.iat.saturating_sub(MAX_CLOCK_SKEW_SECS)
                {
                    tracing::debug!("token refused: iat in the future or lifetime beyond the TTL");
                    return Err(AuthError::InvalidToken);
                }
                Ok(claims)
            }
            Err(error) if matches!(error.kind(), ErrorKind::ExpiredSignature) => {
                Err(AuthError::ExpiredToken)
            }
            Err(error) => {
                // The reason helps debugging a client; the token itself is never logged.
                tracing::debug!(reason = %error, "token refused");
                Err(AuthError::InvalidToken)
            }
        }
    }
}

#[cfg(test)]
mod tests;
