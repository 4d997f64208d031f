//! [`Claims`]: what a JWT says about its user and itself.

use chrono::{DateTime, Utc};
use domain::{Actor, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
