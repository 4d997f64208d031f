use auth::Revocations;
use domain::Role;
use test_support::TestDatabase;
use uuid::Uuid;

use crate::{TestRedis, dead_pool, dead_redis, tokens};

#[tokio::test]
async fn a_revoked_token_is_revoked_in_postgres_and_in_redis_until_it_expires() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let revocations = Revocations::new(redis.connection.clone(), db.pool.clone(), &redis.prefix);
    let claims = tokens().claims_for(Uuid::new_v4(), Role::User);

    assert!(!revocations.is_revoked(claims.jti).await.expect("check"));
    revocations.revoke(&claims).await.expect("revoke");
    revocations
        .revoke(&claims)
        .await
        .expect("revoking twice is fine");

    assert!(revocations.is_revoked(claims.jti).await.expect("check"));
    assert!(!revocations.is_revoked(Uuid::new_v4()).await.expect("check"));
    let key = revocations.key(claims.jti);
    assert_eq!(key, format!("{}:revoked:{}", redis.prefix, claims.jti));
    assert_eq!(redis.keys().await, std::slice::from_ref(&key));
    let ttl = redis.ttl(&key).await;
    assert!((3590..=3600).contains(&ttl), "TTL until exp, got {ttl}");

    let (expires_at, user_id): (chrono::DateTime<chrono::Utc>, Uuid) =
        sqlx::query_as("SELECT expires_at, user_id FROM revoked_tokens WHERE jti = $1")
            .bind(claims.jti)
            .fetch_one(&db.pool)
            .await
            .expect("the durable row");
    assert_eq!((expires_at.timestamp(), user_id), (claims.exp, claims.sub));
    redis.clean().await;
}

#[tokio::test]
async fn with_redis_down_revoking_and_checking_go_to_postgres() {
    let db = TestDatabase::new().await;
    let revocations = Revocations::new(dead_redis(), db.pool.clone(), "unused");
    let claims = tokens().claims_for(Uuid::new_v4(), Role::User);

    revocations
        .revoke(&claims)
        .await
        .expect("revoke without Redis");
    assert!(
        revocations.is_revoked(claims.jti).await.expect("check"),
        "still revoked, via PostgreSQL"
    );
    assert!(!revocations.is_revoked(Uuid::new_v4()).await.expect("check"));
}

#[tokio::test]
async fn with_redis_and_postgres_down_a_check_fails_instead_of_guessing() {
    let revocations = Revocations::new(dead_redis(), dead_pool(), "unused");
    let claims = tokens().claims_for(Uuid::new_v4(), Role::User);
    assert!(revocations.is_revoked(claims.jti).await.is_err());
    assert!(
        revocations.revoke(&claims).await.is_err(),
        "not recorded: say so"
    );
}

#[tokio::test]
async fn a_revocation_missed_by_redis_is_copied_there_by_resync() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let claims = tokens().claims_for(Uuid::new_v4(), Role::User);
    // Revoked while Redis was down: only PostgreSQL knows.
    Revocations::new(dead_redis(), db.pool.clone(), &redis.prefix)
        .revoke(&claims)
        .await
        .expect("revoke");
    let revocations = Revocations::new(redis.connection.clone(), db.pool.clone(), &redis.prefix);
    assert!(
        !revocations.is_revoked(claims.jti).await.expect("check"),
        "Redis answers, and does not know yet"
    );

    assert_eq!(revocations.resync().await.expect("resync"), 1);
    assert!(revocations.is_revoked(claims.jti).await.expect("check"));
    let ttl = redis.ttl(&revocations.key(claims.jti)).await;
    assert!((3590..=3600).contains(&ttl), "TTL until exp, got {ttl}");
    redis.clean().await;
}

#[tokio::test]
async fn purging_deletes_only_the_rows_of_expired_tokens() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let revocations = Revocations::new(redis.connection.clone(), db.pool.clone(), &redis.prefix);
    let live = tokens().claims_for(Uuid::new_v4(), Role::User);
    let mut expired = tokens().claims_for(Uuid::new_v4(), Role::User);
    expired.exp = chrono::Utc::now().timestamp() - 10;
    revocations.revoke(&live).await.expect("revoke");
    revocations.revoke(&expired).await.expect("revoke");
    assert_eq!(
        redis.keys().await.len(),
        1,
        "no Redis key for an expired token"
    );

    assert_eq!(revocations.purge_expired().await.expect("purge"), 1);
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT jti FROM revoked_tokens")
        .fetch_all(&db.pool)
        .await
        .expect("rows");
    assert_eq!(left, [live.jti]);
    assert_eq!(revocations.resync().await.expect("resync"), 1);
    redis.clean().await;
}

#[tokio::test]
async fn maintenance_copies_missed_revocations_to_redis_until_shutdown() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let claims = tokens().claims_for(Uuid::new_v4(), Role::User);
    Revocations::new(dead_redis(), db.pool.clone(), &redis.prefix)
        .revoke(&claims)
        .await
        .expect("revoke while Redis is down");
    let revocations = Revocations::new(redis.connection.clone(), db.pool.clone(), &redis.prefix);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let maintenance = tokio::spawn(revocations.clone().run_maintenance(
        std::time::Duration::from_millis(50),
        async move {
            let _ = stopped.await;
        },
    ));
    let key = revocations.key(claims.jti);
    test_support::eventually(test_support::EVENTUALLY, "the revocation in Redis", || {
        let (redis, key) = (&redis, &key);
        async move { (redis.keys().await == [key.clone()]).then_some(()) }
    })
    .await;
    assert!(revocations.is_revoked(claims.jti).await.expect("check"));
    stop.send(()).expect("maintenance still running");
    tokio::time::timeout(std::time::Duration::from_secs(5), maintenance)
        .await
        .expect("stops at shutdown")
        .expect("did not panic");
    redis.clean().await;
}
