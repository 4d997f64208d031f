//! A user's standing: whether they exist and are active, their current role and their token
//! generation. [`crate::Authenticator`] checks it on every request, so deactivation, a password
//! change, a role change or an admin's password reset end every earlier token at once, on both
//! APIs, and the role that authorizes is the current one.
//!
//! - PostgreSQL's write-side `user_registry` is the durable record: the command that changes the
//!   standing moves `token_generation` on in the transaction that stores its event
//!   (`event-store`'s registry update), so the change is in force once the command is
//!   acknowledged.
//! - Redis holds a copy per user (`"{prefix}:standing:{user_id}"` = `"{generation}:{role}:{0|1}"`)
//!   for [`STANDING_TTL`]. A request reads Redis first and PostgreSQL when Redis has no copy,
//!   fails or is slow (then fills Redis). The command API writes the new standing to Redis right
//!   after the commit ([`Revocations::refresh_standing`]). Writes go through a script that never
//!   replaces a copy with an older generation, so a slow reader cannot put back a stale one.
//! - Redis down: as with logout, PostgreSQL answers; a copy Redis missed is gone within
//!   [`STANDING_TTL`] at most. Both down: 503.

use std::time::Duration;

use domain::Role;
use redis::Script;
use uuid::Uuid;

use crate::revocation::{REDIS_DOWN, RevocationError, Revocations, with_timeout};

/// How long Redis keeps a user's standing before it is read again from PostgreSQL: the longest a
/// change that Redis missed (it was down) can go unnoticed.
pub const STANDING_TTL: Duration = Duration::from_secs(60);

/// Stores ARGV[1] (the `generation:role:active` text) unless the stored copy has a newer
/// generation (ARGV[2]); expires after ARGV[3] seconds.
const STORE_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local stored = tonumber(string.match(current, '^(%-?%d+):'))
  if stored and stored > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
";

/// What the write side says about a user now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub role: Role,
    pub active: bool,
    /// Tokens issued with another generation no longer work.
    pub generation: i64,
}

impl Standing {
    fn encode(self) -> String {
        format!(
            "{}:{}:{}",
            self.generation,
            self.role.as_str(),
            u8::from(self.active)
        )
    }

    fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.split(':');
        let generation = parts.next()?.parse().ok()?;
        let role = parse_role(parts.next()?)?;
        let active = match parts.next()? {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        Some(Self {
            role,
            active,
            generation,
        })
    }
}

fn parse_role(raw: &str) -> Option<Role> {
    [Role::User, Role::Admin]
        .into_iter()
        .find(|role| role.as_str() == raw)
}

impl Revocations {
    /// The Redis key of `user_id`'s standing.
    pub fn standing_key(&self, user_id: Uuid) -> String {
        format!("{}:standing:{user_id}", self.key_prefix)
    }

    /// The standing of `user_id` (`None`: no such user): Redis first, else PostgreSQL (whose
    /// answer is then copied to Redis, best effort).
    ///
    /// # Errors
    /// [`RevocationError::Database`] when Redis could not answer and PostgreSQL failed too.
    pub async fn standing(&self, user_id: Uuid) -> Result<Option<Standing>, RevocationError> {
        let mut redis = self.redis.clone();
        let mut get = redis::cmd("GET");
        get.arg(self.standing_key(user_id));
        let redis_up = match with_timeout(get.query_async::<Option<String>>(&mut redis)).await {
            Ok(Some(raw)) => {
                if let Some(standing) = Standing::decode(&raw) {
                    return Ok(Some(standing));
                }
                true
            }
            Ok(None) => true,
            Err(error) => {
                if REDIS_DOWN.ready() {
                    tracing::warn!(%error, "Redis cannot say whether a user is still active; asking PostgreSQL (logged at most every 10 s)");
                }
                false
            }
        };
        let standing = self.standing_from_postgres(user_id).await?;
        if redis_up && let Some(standing) = standing {
            self.store_standing(user_id, standing).await;
        }
        Ok(standing)
    }

    /// Reads `user_id`'s standing from PostgreSQL and writes it to Redis: call it right after a
    /// command that changed the role, the password or the activity was committed.
    ///
    /// # Errors
    /// [`RevocationError::Database`] if PostgreSQL could not be read (the change is in force
    /// anyway for every request that finds no copy in Redis; a stale copy lives at most
    /// [`STANDING_TTL`]).
    pub async fn refresh_standing(&self, user_id: Uuid) -> Result<(), RevocationError> {
        if let Some(standing) = self.standing_from_postgres(user_id).await? {
            self.store_standing(user_id, standing).await;
        }
        Ok(())
    }

    async fn standing_from_postgres(
        &self,
        user_id: Uuid,
    ) -> Result<Option<Standing>, RevocationError> {
        let row: Option<(String, bool, i64)> = sqlx::query_as(
            "SELECT role, active, token_generation FROM user_registry WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(role, active, generation)| {
            let role = parse_role(&role)?;
            Some(Standing {
                role,
                active,
                generation,
            })
        }))
    }

    /// Copies `standing` to Redis unless Redis holds a newer generation; failures are logged.
    async fn store_standing(&self, user_id: Uuid, standing: Standing) {
        let mut redis = self.redis.clone();
        let script = Script::new(STORE_SCRIPT);
        let mut invocation = script.key(self.standing_key(user_id));
        invocation
            .arg(standing.encode())
            .arg(standing.generation)
            .arg(STANDING_TTL.as_secs());
        if let Err(error) = with_timeout(invocation.invoke_async::<i64>(&mut redis)).await
            && REDIS_DOWN.ready()
        {
            tracing::warn!(%error, "a user's standing was not copied to Redis (logged at most every 10 s)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standing_round_trips_through_its_redis_text() {
        for standing in [
            Standing {
                role: Role::Admin,
                active: true,
                generation: 3,
            },
            Standing {
                role: Role::User,
                active: false,
                generation: 0,
            },
        ] {
            assert_eq!(Standing::decode(&standing.encode()), Some(standing));
        }
        assert_eq!(Standing::decode("x:user:1"), None);
        assert_eq!(Standing::decode("1:root:1"), None);
    }
}
