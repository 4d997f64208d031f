//! Password hashing: argon2id with the argon2 crate's defaults, which are OWASP's first
//! recommended configuration: 19 MiB of memory (`m=19456` KiB), 2 passes (`t=2`), 1 lane
//! (`p=1`), a random 16-byte salt and a 32-byte output, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Verification reads the parameters from the
//! stored string, so raising them later keeps old hashes valid.
//!
//! One hash or verify costs tens of milliseconds of CPU and 19 MiB, so the async functions run
//! it on tokio's blocking pool and at most [`max_concurrent`] at a time: a burst of logins
//! queues instead of stalling the runtime or exhausting memory.

use std::sync::LazyLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Argon2, PasswordHash as PhcString};
use domain::{Password, PasswordHash};
use tokio::sync::Semaphore;

/// A hash of a password nobody knows, made with the current parameters, for [`dummy_verify`].
/// The test `the_dummy_hash_uses_the_current_parameters` fails if the parameters change.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$aZGRVmNX02cXVTLNsyHOwg$6LqcNb76xwlw75bP6a5DbK9O8WXx4N7aHlEQRqySkWA";

/// How many hashes or verifications run at once: the number of CPUs (at least 2).
pub fn max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(max_concurrent()));

/// Hashing failed (a bug, or the blocking pool shutting down): answer 500.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing the password failed: {0}")]
    Hash(password_hash::Error),
    #[error("the password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A plaintext password to verify: a validated [`Password`] or a raw `str` / `String`
/// (e.g. a login form, where validation rules should not be revealed).
pub trait Plaintext {
    fn plaintext(&self) -> &str;
}

impl Plaintext for Password {
    fn plaintext(&self) -> &str {
        self.as_str()
    }
}

impl Plaintext for str {
    fn plaintext(&self) -> &str {
        self
    }
}

impl Plaintext for String {
    fn plaintext(&self) -> &str {
        self
    }
}

/// Hashes on the current thread (CLIs, tests). In async code use [`hash_password`].
///
/// # Errors
/// [`PasswordError::Hash`] if argon2 fails (it does not with the default parameters).
pub fn hash_password_blocking(password: &Password) -> Result<PasswordHash, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_str().as_bytes(), &salt)
        .map(|hash| PasswordHash::new(hash.to_string()))
        .map_err(PasswordError::Hash)
}

/// Whether `password` matches `hash`, on the current thread. A malformed hash never matches
/// (and is logged: it means a stored hash is corrupt).
pub fn verify_password_blocking(password: &str, hash: &PasswordHash) -> bool {
    match PhcString::new(hash.as_str()) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(error) => {
            tracing::error!(%error, "a stored password hash is malformed");
            false
        }
    }
}

/// Hashes `password` with argon2id on the blocking pool.
///
/// # Errors
/// [`PasswordError`] if hashing fails or its task dies.
pub async fn hash_password(password: &Password) -> Result<PasswordHash, PasswordError> {
    let password = password.clone();
    let _slot = SLOTS.acquire().await;
    tokio::task::spawn_blocking(move || hash_password_blocking(&password)).await?
}

/// Whether `password` matches `hash`, checked on the blocking pool. `false` on any failure.
pub async fn verify_password<P: Plaintext + ?Sized>(password: &P, hash: &PasswordHash) -> bool {
    let password = password.plaintext().to_owned();
    let hash = hash.clone();
    let _slot = SLOTS.acquire().await;
    tokio::task::spawn_blocking(move || verify_password_blocking(&password, &hash))
        .await
        .unwrap_or_else(|error| {
            tracing::error!(%error, "the password verification task failed");
            false
        })
}

/// Spends the time of one verification and learns nothing: call it when the username is
/// unknown, so the reply takes as long as for a known user with a wrong password.
pub async fn dummy_verify() {
    let dummy = PasswordHash::new(DUMMY_HASH);
    let _matched = verify_password("not the password of anyone", &dummy).await;
}

/// [`verify_password`] against the user's hash, or [`dummy_verify`] (and `false`) when there is
/// no such user: one call for a login handler that does not reveal which usernames exist.
pub async fn verify_password_or_dummy<P: Plaintext + ?Sized>(
    password: &P,
    hash: Option<&PasswordHash>,
) -> bool {
    match hash {
        Some(hash) => verify_password(password, hash).await,
        None => {
            dummy_verify().await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use argon2::Params;

    use super::*;

    fn password(raw: &str) -> Password {
        Password::parse(raw).expect("valid password")
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_not_another() {
        let hash = hash_password(&password("correct horse battery"))
            .await
            .expect("hash");
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!format!("{hash:?}").contains("argon2"));
        assert!(verify_password(&password("correct horse battery"), &hash).await);
        assert!(verify_password("correct horse battery", &hash).await);
        assert!(!verify_password("correct horse battery!", &hash).await);
        assert!(!verify_password("", &hash).await);
        assert!(verify_password_or_dummy("correct horse battery", Some(&hash)).await);
        assert!(!verify_password_or_dummy("correct horse battery", None).await);
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let a = hash_password(&password("same password"))
            .await
            .expect("hash");
        let b = hash_password(&password("same password"))
            .await
            .expect("hash");
        assert_ne!(a, b, "a fresh salt every time");
    }

    #[test]
    fn a_malformed_hash_never_matches() {
        for bad in ["", "plaintext", "$argon2id$v=19$m=19456,t=2,p=1$bad"] {
            assert!(!verify_password_blocking(
                "anything",
                &PasswordHash::new(bad)
            ));
        }
    }

    #[test]
    fn the_dummy_hash_uses_the_current_parameters() {
        let dummy = PhcString::new(DUMMY_HASH).expect("the dummy hash parses");
        let current = Params::default();
        let params = Params::try_from(&dummy).expect("argon2 params");
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (current.m_cost(), current.t_cost(), current.p_cost()),
            "regenerate DUMMY_HASH with the new parameters: {}",
            hash_password_blocking(&password("no one knows this one"))
                .expect("hash")
                .as_str()
        );
    }

    #[tokio::test]
    async fn a_dummy_verification_takes_about_as_long_as_a_real_one() {
        let hash = hash_password(&password("correct horse battery"))
            .await
            .expect("hash");
        // The fastest of three of each, so a busy machine does not decide the comparison.
        let mut real = std::time::Duration::MAX;
        let mut dummy = std::time::Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            assert!(!verify_password("wrong", &hash).await);
            real = real.min(started.elapsed());
            let started = Instant::now();
            dummy_verify().await;
            dummy = dummy.min(started.elapsed());
        }
        assert!(
            dummy * 4 > real && real * 4 > dummy,
            "real {real:?} vs dummy {dummy:?}"
        );
    }
}
