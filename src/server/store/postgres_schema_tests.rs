//! PostgreSQL's schema (`migrations/postgres`) on a real PostgreSQL: it
//! applies to an empty database, applying it again changes nothing, and its
//! rules and triggers behave as SQLite's do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::postgres_test_support::postgres_database;
use sqlx::PgPool;

async fn version(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT policy_version, clients_version FROM servers WHERE id = 1").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn the_schema_applies_to_an_empty_database_and_its_triggers_count_real_changes() {
    let Some(db) = postgres_database("schema").await else { return };
    let migrator = sqlx::migrate!("./migrations/postgres");
    migrator.run(&db.pool).await.unwrap();
    migrator.run(&db.pool).await.unwrap();
    let pool = &db.pool;
    let mark: (i64, i64) = sqlx::query_as("SELECT rolled_up_to, rolled_up_seq FROM rollup_state WHERE id = 1")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mark, (0, 0), "the roll-up mark starts at the beginning");
    sqlx::query(
        "INSERT INTO servers (name, protocol, host, port, ssh_user, ssh_key_path, interface, created_at) \
         VALUES ('wg', 'wireguard', '198.18.0.2', 22, 'root', '/k', 'wg0', 0)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO users (name, email, max_connections, created_at) VALUES ('Bob', 'Bob@Example.org', 1, 0)")
        .execute(pool)
        .await
        .unwrap();
    let taken = sqlx::query("INSERT INTO users (name, email, created_at) VALUES ('B', 'bob@example.ORG', 0)")
        .execute(pool)
        .await;
    assert!(taken.is_err(), "emails are unique whatever their case");
    sqlx::query(
        "INSERT INTO clients (server_id, identity, first_seen_at, seed_last_sync_at, user_id) VALUES (1, 'k', 0, 0, 1)",
    )
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(version(pool).await, (1, 1), "an added client bumps both");
    sqlx::query("UPDATE clients SET user_id = user_id, name = 'phone', endpoint = '198.18.0.9:1'")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(version(pool).await, (1, 1), "values written back unchanged, or not decided by: no bump");
    sqlx::query("UPDATE clients SET access = 'disabled', disabled_reason = 'manual'").execute(pool).await.unwrap();
    assert_eq!(version(pool).await, (2, 1));
    sqlx::query("UPDATE users SET max_connections = 2").execute(pool).await.unwrap();
    assert_eq!(version(pool).await, (3, 1), "an owner's device limit");
    sqlx::query("DELETE FROM users").execute(pool).await.unwrap();
    let owner: Option<i64> = sqlx::query_scalar("SELECT user_id FROM clients").fetch_one(pool).await.unwrap();
    // The delete bumps it, and so does the client going unowned.
    assert_eq!((version(pool).await, owner), ((5, 1), None), "a removed owner: the client stays, unowned");
    let bad = sqlx::query("UPDATE clients SET traffic_warn_threshold = 0").execute(pool).await;
    assert!(bad.is_err(), "the same checks as SQLite's");
    sqlx::query("DELETE FROM clients").execute(pool).await.unwrap();
    assert_eq!(version(pool).await, (6, 2));
    db.drop().await;
}
