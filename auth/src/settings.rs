//! `TASKTRAIL_AUTH__*`: how tokens are signed and verified.
//!
//! | variable                            | default                | meaning                                   |
//! |-------------------------------------|------------------------|-------------------------------------------|
//! | `TASKTRAIL_AUTH__JWT_SECRET`        | none: required (HS256) | HS256 shared secret, at least 32 bytes    |
//! | `TASKTRAIL_AUTH__ALGORITHM`         | `HS256`                | `HS256`, `RS256` or `EdDSA`               |
//! | `TASKTRAIL_AUTH__PRIVATE_KEY_PATH`  | none                   | PEM private key (RS256/EdDSA; signing)    |
//! | `TASKTRAIL_AUTH__PUBLIC_KEY_PATH`   | none                   | PEM public key (RS256/EdDSA; verifying)   |
//! | `TASKTRAIL_AUTH__TOKEN_TTL_SECS`    | `3600`                 | lifetime of an issued token               |
//! | `TASKTRAIL_AUTH__ISSUER`            | `tasktrail`            | the `iss` claim, issued and required      |
//!
//! There is no default secret: a service without one (HS256) or without its key files (RS256 /
//! EdDSA) refuses to start and says how to make one (`openssl rand -base64 48`); `scripts/dev`
//! and `scripts/test` generate one per checkout into `.services/jwt-secret`.
//!
//! With HS256 both APIs need the same secret. With RS256 or EdDSA the command API (which signs)
//! needs both keys and the query API only the public one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use service_runtime::settings::Secret;

/// The shortest HS256 secret accepted (RFC 7518 §3.2: a key at least as long as the hash output).
pub const MIN_SECRET_BYTES: usize = 32;

/// The signing algorithm; tokens with any other `alg` are refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with the shared `jwt_secret`.
    #[default]
    #[serde(rename = "HS256", alias = "hs256")]
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: an RSA key pair in PEM files.
    #[serde(rename = "RS256", alias = "rs256")]
    Rs256,
    /// Ed25519: an Ed25519 key pair in PEM files.
    #[serde(rename = "EdDSA", alias = "eddsa", alias = "EDDSA")]
    EdDsa,
}

impl JwtAlgorithm {
    /// The JOSE name, as in the token header.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub(crate) const fn jose(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Hs256 => jsonwebtoken::Algorithm::HS256,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// What the PEM files must hold, for error messages.
    const fn key_kind(self) -> &'static str {
        match self {
            Self::Hs256 => "HMAC",
            Self::Rs256 => "RSA",
            Self::EdDsa => "Ed25519",
        }
    }
}

impl std::fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How tokens are signed and verified. Compose it into a service's settings as
/// `#[serde(default)] pub auth: AuthSettings`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// The HS256 secret. Unused with RS256 / EdDSA. Empty (the default) refuses to start.
    #[serde(default = "no_secret")]
    pub jwt_secret: Secret,
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
    /// PEM private key (PKCS#8, or PKCS#1 for RSA): needed to issue tokens with RS256 / EdDSA.
    #[serde(default)]
    pub private_key_path: Option<PathBuf>,
    /// PEM public key (SubjectPublicKeyInfo): needed to verify tokens with RS256 / EdDSA.
    #[serde(default)]
    pub public_key_path: Option<PathBuf>,
    /// Lifetime of an issued token, in seconds.
    #[serde(default = "default_token_ttl_secs")]
    pub token_ttl_secs: u64,
    /// The `iss` claim put in issued tokens and required in verified ones.
    #[serde(default = "default_issuer")]
    pub issuer: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: no_secret(),
            algorithm: JwtAlgorithm::default(),
            private_key_path: None,
            public_key_path: None,
            token_ttl_secs: default_token_ttl_secs(),
            issuer: default_issuer(),
        }
    }
}

fn no_secret() -> Secret {
    Secret::new("")
}
fn default_token_ttl_secs() -> u64 {
    3600
}
fn default_issuer() -> String {
    "tasktrail".to_owned()
}

impl AuthSettings {
    /// [`AuthSettings::token_ttl_secs`] as a duration.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    /// Checks what can be checked without reading the key files: secret length, TTL, issuer and
    /// that RS256 / EdDSA name a public key. ([`crate::Tokens::from_settings`] calls this, then
    /// reads and parses the keys.)
    ///
    /// # Errors
    /// The first problem found, with the variable to fix.
    pub fn validate(&self) -> Result<(), AuthSettingsError> {
        if self.token_ttl_secs == 0 {
            return Err(AuthSettingsError::ZeroTtl);
        }
        if self.issuer.trim().is_empty() {
            return Err(AuthSettingsError::EmptyIssuer);
        }
        match self.algorithm {
            JwtAlgorithm::Hs256 => {
                let len = self.jwt_secret.expose().len();
                if len == 0 {
                    return Err(AuthSettingsError::MissingSecret);
                }
                if len < MIN_SECRET_BYTES {
                    return Err(AuthSettingsError::SecretTooShort { len });
                }
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::EdDsa => {
                self.public_key_path()?;
            }
        }
        Ok(())
    }

    /// The public key path, required with RS256 / EdDSA (an empty value counts as unset).
    pub(crate) fn public_key_path(&self) -> Result<&Path, AuthSettingsError> {
        non_empty(self.public_key_path.as_deref()).ok_or(AuthSettingsError::MissingKeyPath {
            variable: "TASKTRAIL_AUTH__PUBLIC_KEY_PATH",
            algorithm: self.algorithm,
        })
    }

    /// The private key path, required to issue with RS256 / EdDSA.
    pub(crate) fn private_key_path(&self) -> Result<&Path, AuthSettingsError> {
        non_empty(self.private_key_path.as_deref()).ok_or(AuthSettingsError::MissingKeyPath {
            variable: "TASKTRAIL_AUTH__PRIVATE_KEY_PATH",
            algorithm: self.algorithm,
        })
    }

    /// Reads one PEM file.
    pub(crate) fn read_key(path: &Path) -> Result<Vec<u8>, AuthSettingsError> {
        std::fs::read(path).map_err(|source| AuthSettingsError::ReadKey {
            path: path.to_owned(),
            source,
        })
    }

    pub(crate) fn invalid_key(
        &self,
        path: &Path,
        which: &'static str,
        source: jsonwebtoken::errors::Error,
    ) -> AuthSettingsError {
        AuthSettingsError::InvalidKey {
            path: path.to_owned(),
            expected: format!("{} {which}", self.algorithm.key_kind()),
            source,
        }
    }
}

fn non_empty(path: Option<&Path>) -> Option<&Path> {
    path.filter(|p| !p.as_os_str().is_empty())
}

/// Auth settings that cannot work; the service refuses to start with this message.
#[derive(Debug, thiserror::Error)]
pub enum AuthSettingsError {
    #[error(
        "TASKTRAIL_AUTH__JWT_SECRET is not set: there is no default signing key. Generate one \
         with `openssl rand -base64 48` and give both APIs the same value (scripts/dev and \
         scripts/test do this per checkout), or use a key pair (TASKTRAIL_AUTH__ALGORITHM=EdDSA)"
    )]
    MissingSecret,
    #[error(
        "TASKTRAIL_AUTH__JWT_SECRET is {len} bytes long; HS256 needs at least {MIN_SECRET_BYTES} \
         (generate one with `openssl rand -base64 48`)"
    )]
    SecretTooShort { len: usize },
    #[error("{variable} is required when TASKTRAIL_AUTH__ALGORITHM={algorithm}")]
    MissingKeyPath {
        variable: &'static str,
        algorithm: JwtAlgorithm,
    },
    #[error("cannot read the key file {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a PEM {expected}: {source}")]
    InvalidKey {
        path: PathBuf,
        expected: String,
        source: jsonwebtoken::errors::Error,
    },
    #[error(
        "the private key does not match the public key: a token signed with \
         TASKTRAIL_AUTH__PRIVATE_KEY_PATH fails verification with TASKTRAIL_AUTH__PUBLIC_KEY_PATH"
    )]
    KeyPairMismatch,
    #[error("TASKTRAIL_AUTH__TOKEN_TTL_SECS must be at least 1")]
    ZeroTtl,
    #[error("TASKTRAIL_AUTH__ISSUER must not be empty")]
    EmptyIssuer,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn without_a_secret_the_settings_are_refused_with_how_to_make_one() {
        // Given no configuration at all
        let settings: AuthSettings = serde_json::from_value(json!({})).expect("defaults");
        assert_eq!(settings.algorithm, JwtAlgorithm::Hs256);
        assert_eq!(settings.token_ttl_secs, 3600);
        assert_eq!(settings.issuer, "tasktrail");
        // When they are validated
        let error = settings.validate().expect_err("no secret");
        // Then the service refuses to start, saying how to make a key
        assert!(matches!(error, AuthSettingsError::MissingSecret));
        let message = error.to_string();
        assert!(
            message.contains("TASKTRAIL_AUTH__JWT_SECRET")
                && message.contains("openssl rand -base64 48"),
            "{message}"
        );
        assert!(crate::Tokens::from_settings(&settings).is_err());
        assert!(crate::Tokens::verify_only(&settings).is_err());
    }

    #[test]
    fn a_configured_secret_of_32_bytes_is_accepted() {
        let settings = AuthSettings {
            jwt_secret: Secret::new("x".repeat(MIN_SECRET_BYTES)),
            ..AuthSettings::default()
        };
        settings.validate().expect("32 bytes is enough");
        assert!(!format!("{settings:?}").contains(&"x".repeat(MIN_SECRET_BYTES)));
    }

    #[test]
    fn a_short_secret_is_refused_with_the_variable_name() {
        let settings = AuthSettings {
            jwt_secret: Secret::new("hunter2"),
            ..AuthSettings::default()
        };
        let error = settings.validate().expect_err("too short");
        assert!(matches!(
            error,
            AuthSettingsError::SecretTooShort { len: 7 }
        ));
        let message = error.to_string();
        assert!(
            message.contains("TASKTRAIL_AUTH__JWT_SECRET") && !message.contains("hunter2"),
            "{message}"
        );
    }

    #[test]
    fn algorithms_parse_from_their_jose_names_and_lowercase() {
        for (raw, expected) in [
            ("HS256", JwtAlgorithm::Hs256),
            ("rs256", JwtAlgorithm::Rs256),
            ("EdDSA", JwtAlgorithm::EdDsa),
            ("eddsa", JwtAlgorithm::EdDsa),
        ] {
            let settings: AuthSettings =
                serde_json::from_value(json!({ "algorithm": raw })).expect(raw);
            assert_eq!(settings.algorithm, expected, "{raw}");
        }
        assert!(serde_json::from_value::<AuthSettings>(json!({ "algorithm": "none" })).is_err());
    }

    #[test]
    fn key_pairs_need_a_public_key_path() {
        let settings = AuthSettings {
            algorithm: JwtAlgorithm::Rs256,
            public_key_path: Some(PathBuf::new()),
            ..AuthSettings::default()
        };
        let message = settings.validate().expect_err("no public key").to_string();
        assert_eq!(
            message,
            "TASKTRAIL_AUTH__PUBLIC_KEY_PATH is required when TASKTRAIL_AUTH__ALGORITHM=RS256"
        );
    }

    #[test]
    fn zero_ttl_and_empty_issuer_are_refused() {
        let zero = AuthSettings {
            token_ttl_secs: 0,
            jwt_secret: Secret::new("x".repeat(MIN_SECRET_BYTES)),
            ..AuthSettings::default()
        };
        assert!(matches!(zero.validate(), Err(AuthSettingsError::ZeroTtl)));
        let blank = AuthSettings {
            issuer: " ".to_owned(),
            jwt_secret: Secret::new("x".repeat(MIN_SECRET_BYTES)),
            ..AuthSettings::default()
        };
        assert!(matches!(
            blank.validate(),
            Err(AuthSettingsError::EmptyIssuer)
        ));
    }
}
