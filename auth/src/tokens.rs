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

use chrono::{DateTime, Utc};
use domain::{Actor, Role};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::extract::AuthError;
use crate::settings::{AuthSettings, AuthSettingsError, JwtAlgorithm};

/// Tokens longer than this are refused unread (ours are about 300 bytes).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How far `iat` may be in the future, and `exp` beyond `iat` + TTL, to allow for clock skew
/// between replicas.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// What a token says: who (`sub`, `role`), until when (`exp`, seconds since the epoch), since
/// when (`iat`, `nbf`), which token (`jti`, the key of revocation), who issued it (`iss`) and
/// the user's token generation when it was issued (`gen`: a password, role or activity change
/// moves it on and so ends every earlier token).
///
/// `role` is what the user had at issue time; [`crate::Authenticator`] replaces it with the
/// user's current role, so the role that authorizes a request is always the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: Uuid,
    pub iss: String,
    #[serde(rename = "gen", default)]
    pub generation: i64,
}

impl Claims {
    /// The sender of the commands this token authorizes.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.sub,
            role: self.role,
        }
    }

    /// `exp` as a time (the far future if out of range).
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Whole seconds from now until `exp` (0 once expired).
    pub fn seconds_left(&self) -> u64 {
        u64::try_from(self.exp.saturating_sub(Utc::now().timestamp())).unwrap_or(0)
    }
}

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
mod tests {
    use std::path::PathBuf;

    use service_runtime::settings::Secret;

    use super::*;

    const SECRET: &str = "test-secret-test-secret-test-secret!";

    fn hs256() -> Tokens {
        Tokens::from_settings(&AuthSettings {
            jwt_secret: Secret::new(SECRET),
            ..AuthSettings::default()
        })
        .expect("tokens")
    }

    fn key(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(name)
    }

    fn pair(algorithm: JwtAlgorithm, private: &str, public: &str) -> AuthSettings {
        AuthSettings {
            algorithm,
            private_key_path: Some(key(private)),
            public_key_path: Some(key(public)),
            ..AuthSettings::default()
        }
    }

    fn rs256() -> Tokens {
        Tokens::from_settings(&pair(
            JwtAlgorithm::Rs256,
            "rsa_private.pem",
            "rsa_public.pem",
        ))
        .expect("RS256 tokens")
    }

    /// Unpadded base64url, to hand-build tokens.
    fn b64(input: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    #[test]
    fn an_issued_token_verifies_to_its_claims() {
        let tokens = hs256();
        let user = Uuid::new_v4();
        let issued = tokens.issue(user, Role::Admin).expect("issue");
        assert_eq!(issued.token_type, "bearer");
        assert_eq!(issued.expires_in, 3600);
        assert!(!format!("{issued:?}").contains(&issued.access_token));
        let claims = tokens.verify(&issued.access_token).expect("verify");
        assert_eq!(claims.sub, user);
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.iss, "tasktrail");
        assert_eq!(claims.exp - claims.iat, 3600);
        assert!((3590..=3600).contains(&claims.seconds_left()));
        assert_eq!(claims.actor(), Actor::admin(user));
        assert_ne!(
            claims.jti,
            tokens
                .verify(&tokens.issue(user, Role::Admin).expect("issue").access_token)
                .expect("verify")
                .jti,
            "every token has its own jti"
        );
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let tokens = hs256();
        let mut claims = tokens.claims_for(Uuid::new_v4(), Role::User);
        claims.iat -= 7200;
        claims.exp = Utc::now().timestamp() - 1;
        let token = tokens.sign(&claims).expect("sign");
        assert!(matches!(
            tokens.verify(&token),
            Err(AuthError::ExpiredToken)
        ));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = Tokens::from_settings(&AuthSettings {
            jwt_secret: Secret::new("another-secret-another-secret-another"),
            ..AuthSettings::default()
        })
        .expect("tokens");
        let token = other.issue(Uuid::new_v4(), Role::User).expect("issue");
        assert!(matches!(
            hs256().verify(&token.access_token),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn an_expired_token_with_a_bad_signature_is_invalid_not_expired() {
        let other = Tokens::from_settings(&AuthSettings {
            jwt_secret: Secret::new("another-secret-another-secret-another"),
            ..AuthSettings::default()
        })
        .expect("tokens");
        let mut claims = other.claims_for(Uuid::new_v4(), Role::User);
        claims.exp -= 7200;
        let token = other.sign(&claims).expect("sign");
        assert!(matches!(
            hs256().verify(&token),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_refused() {
        let tokens = hs256();
        let claims = tokens.claims_for(Uuid::new_v4(), Role::Admin);
        let payload = serde_json::to_vec(&claims).expect("claims json");
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None","typ":"JWT"}"#,
        ] {
            let token = format!("{}.{}.", b64(header.as_bytes()), b64(&payload));
            assert!(
                matches!(tokens.verify(&token), Err(AuthError::InvalidToken)),
                "{header}"
            );
        }
    }

    #[test]
    fn an_hs256_token_is_refused_when_rs256_is_expected_even_keyed_with_the_public_key() {
        let tokens = rs256();
        let claims = tokens.claims_for(Uuid::new_v4(), Role::Admin);
        // The classic confusion attack: HMAC keyed with the (public) RSA key's PEM bytes.
        let public_pem = std::fs::read(key("rsa_public.pem")).expect("public key");
        for secret in [public_pem.as_slice(), SECRET.as_bytes()] {
            let forged = jsonwebtoken::encode(
                &Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .expect("encode");
            assert!(matches!(
                tokens.verify(&forged),
                Err(AuthError::InvalidToken)
            ));
        }
        let genuine = tokens.sign(&claims).expect("sign");
        assert_eq!(tokens.verify(&genuine).expect("verify"), claims);
    }

    #[test]
    fn an_rs256_token_is_refused_when_hs256_is_expected() {
        let rs = rs256();
        let token = rs.issue(Uuid::new_v4(), Role::User).expect("issue");
        assert!(matches!(
            hs256().verify(&token.access_token),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn a_token_from_another_issuer_is_refused() {
        let foreign = Tokens::from_settings(&AuthSettings {
            jwt_secret: Secret::new(SECRET),
            issuer: "someone-else".to_owned(),
            ..AuthSettings::default()
        })
        .expect("tokens");
        let token = foreign.issue(Uuid::new_v4(), Role::User).expect("issue");
        assert!(matches!(
            hs256().verify(&token.access_token),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn a_token_missing_a_claim_or_garbage_is_refused() {
        let tokens = hs256();
        let now = Utc::now().timestamp();
        let no_jti = serde_json::json!({
            "sub": Uuid::new_v4(), "role": "user", "iat": now, "exp": now + 60, "iss": "tasktrail"
        });
        let token = jsonwebtoken::encode(
            &Header::default(),
            &no_jti,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert!(matches!(
            tokens.verify(&token),
            Err(AuthError::InvalidToken)
        ));
        for garbage in ["", "x.y.z", "a.b", &"a".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(matches!(
                tokens.verify(garbage),
                Err(AuthError::InvalidToken)
            ));
        }
    }

    #[test]
    fn eddsa_issues_and_verifies_and_a_verify_only_instance_cannot_issue() {
        let settings = pair(
            JwtAlgorithm::EdDsa,
            "ed25519_private.pem",
            "ed25519_public.pem",
        );
        let signer = Tokens::from_settings(&settings).expect("EdDSA tokens");
        let token = signer.issue(Uuid::new_v4(), Role::User).expect("issue");
        let verifier = Tokens::verify_only(&AuthSettings {
            private_key_path: None,
            ..settings
        })
        .expect("verify-only tokens");
        assert!(!verifier.can_issue());
        verifier.verify(&token.access_token).expect("verify");
        assert!(matches!(
            verifier.issue(Uuid::new_v4(), Role::User),
            Err(TokenError::CannotSign)
        ));
    }

    #[test]
    fn mismatched_or_missing_or_wrong_kind_of_keys_are_refused_at_start() {
        let mismatch = pair(
            JwtAlgorithm::Rs256,
            "other_rsa_private.pem",
            "rsa_public.pem",
        );
        assert!(matches!(
            Tokens::from_settings(&mismatch),
            Err(AuthSettingsError::KeyPairMismatch)
        ));

        let missing = pair(JwtAlgorithm::Rs256, "rsa_private.pem", "no_such_key.pem");
        let message = Tokens::from_settings(&missing)
            .expect_err("missing file")
            .to_string();
        assert!(
            message.contains("no_such_key.pem") && message.contains("cannot read"),
            "{message}"
        );

        let wrong_kind = pair(JwtAlgorithm::Rs256, "rsa_private.pem", "ed25519_public.pem");
        let message = Tokens::verify_only(&wrong_kind)
            .expect_err("not an RSA key")
            .to_string();
        assert!(message.contains("is not a PEM RSA public key"), "{message}");

        let no_private = AuthSettings {
            private_key_path: None,
            ..pair(JwtAlgorithm::EdDsa, "x", "ed25519_public.pem")
        };
        let message = Tokens::from_settings(&no_private)
            .expect_err("cannot sign")
            .to_string();
        assert_eq!(
            message,
            "TASKTRAIL_AUTH__PRIVATE_KEY_PATH is required when TASKTRAIL_AUTH__ALGORITHM=EdDSA"
        );
    }

    /// Finding 10 of issue 15: `nbf` is enforced, `exp` is bounded by `iat` + TTL, `iat` may not
    /// be in the future.
    #[test]
    fn a_token_not_yet_valid_or_living_beyond_its_ttl_is_refused() {
        // Given genuine signatures on doctored claims
        let tokens = hs256();
        let now = Utc::now().timestamp();
        let user = Uuid::new_v4();
        let mut not_yet = tokens.claims_for(user, Role::User);
        not_yet.nbf = now + 600;
        let mut forever = tokens.claims_for(user, Role::User);
        forever.exp = 253_402_300_799; // 9999-12-31T23:59:59Z
        let mut from_the_future = tokens.claims_for(user, Role::User);
        from_the_future.iat = now + 3600;
        from_the_future.nbf = now;
        from_the_future.exp = now + 3600;
        let no_nbf = serde_json::json!({
            "sub": user, "role": "user", "iat": now, "exp": now + 60, "iss": "tasktrail",
            "jti": Uuid::new_v4(),
        });
        let no_nbf = jsonwebtoken::encode(
            &Header::default(),
            &no_nbf,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        // When they are verified, then each is refused
        for (what, token) in [
            ("nbf in the future", tokens.sign(&not_yet).expect("sign")),
            ("exp in the year 9999", tokens.sign(&forever).expect("sign")),
            (
                "iat in the future",
                tokens.sign(&from_the_future).expect("sign"),
            ),
            ("no nbf", no_nbf),
        ] {
            assert!(
                matches!(tokens.verify(&token), Err(AuthError::InvalidToken)),
                "{what}"
            );
        }
        // And an ordinary token still passes, carrying its generation
        let issued = tokens.issue_for(user, Role::User, 7).expect("issue");
        let claims = tokens.verify(&issued.access_token).expect("verify");
        assert_eq!((claims.generation, claims.nbf), (7, claims.iat));
    }
}
