//! Admins and their login sessions.

use super::PostgresStore;
use crate::domain::{UserId, Username};
use crate::server::store::rows::{is_unique_violation, secs, Columns};
use crate::server::store::shared::users::{admin_from_row, admin_name};
use crate::server::store::{AdminRecord, StoreError};
use chrono::{DateTime, Utc};

pub(super) async fn create_admin(
    store: &PostgresStore,
    username: &Username,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<UserId, StoreError> {
    let mut tx = store.begin_write().await?;
    let result: Result<i64, sqlx::Error> =
        sqlx::query_scalar("INSERT INTO admins (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(username.as_str())
            .bind(password_hash)
            .bind(secs(now))
            .fetch_one(&mut *tx)
            .await;
    let id = match result {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Conflict(format!("an admin named {username} already exists")));
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    Ok(UserId::new(id))
}

pub(super) async fn set_admin_password(
    store: &PostgresStore,
    username: &Username,
    password_hash: &str,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("UPDATE admins SET password_hash = $1 WHERE username = $2")
        .bind(password_hash)
        .bind(username.as_str())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("admin"));
    }
    // A new password ends every existing session of that admin.
    sqlx::query("DELETE FROM sessions WHERE admin_id = (SELECT id FROM admins WHERE username = $1)")
        .bind(username.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_admin(store: &PostgresStore, username: &Username) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("DELETE FROM admins WHERE username = $1").bind(username.as_str()).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("admin"));
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn admins(store: &PostgresStore) -> Result<Vec<Username>, StoreError> {
    // Byte order, as SQLite's BINARY collation sorts.
    let rows =
        sqlx::query("SELECT username FROM admins ORDER BY username COLLATE \"C\"").fetch_all(&store.pool).await?;
    rows.iter().map(admin_name).collect()
}

pub(super) async fn admin_by_username(
    store: &PostgresStore,
    username: &str,
) -> Result<Option<AdminRecord>, StoreError> {
    let row = sqlx::query("SELECT id, username, password_hash FROM admins WHERE username = $1")
        .bind(username)
        .fetch_optional(&store.pool)
        .await?;
    row.as_ref().map(admin_from_row).transpose()
}

pub(super) async fn create_session(
    store: &PostgresStore,
    token_hash: &[u8; 32],
    admin: UserId,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    sqlx::query("INSERT INTO sessions (token_hash, admin_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(&token_hash[..])
        .bind(admin.get())
        .bind(secs(now))
        .bind(secs(expires_at))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn session_admin(
    store: &PostgresStore,
    token_hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<(UserId, Username)>, StoreError> {
    let row = sqlx::query(
        "SELECT a.id, a.username FROM sessions s JOIN admins a ON a.id = s.admin_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(&token_hash[..])
    .bind(secs(now))
    .fetch_optional(&store.pool)
    .await?;
    row.map(|r| Ok((UserId::new(r.int("id")?), admin_name(&r)?))).transpose()
}

pub(super) async fn delete_session(store: &PostgresStore, token_hash: &[u8; 32]) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(&token_hash[..]).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_expired_sessions(store: &PostgresStore, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(secs(now)).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
