//! Unit tests for [`Tokens`]: issuing and verifying with each algorithm, the keys checked at
//! start, and each reason a token is refused.

use std::path::PathBuf;

use domain::Actor;
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
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(input)
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
