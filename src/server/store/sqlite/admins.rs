//! Admins and their login sessions.

use super::SqliteStore;
use crate::domain::{UserId, Username};
use crate::server::store::rows::{is_unique_violation, secs, Columns};
use crate::server::store::shared::users::{admin_from_row, admin_name};
use crate::server::store::{AdminRecord, StoreError};
use chrono::{DateTime, Utc};

pub(super) async fn create_admin(
    store: &SqliteStore,
    username: &Username,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<UserId, StoreError> {
    let result = sqlx::query("INSERT INTO admins (username, password_hash, created_at) VALUES (?, ?, ?)")
        .bind(username.as_str())
        .bind(password_hash)
        .bind(secs(now))
        .execute(&store.write)
        .await;
    match result {
        Ok(done) => Ok(UserId::new(done.last_insert_rowid())),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("an admin named {username} already exists")))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn set_admin_password(
    store: &SqliteStore,
    username: &Username,
    password_hash: &str,
) -> Result<(), StoreError> {
    let mut tx = store.write.begin().await?;
    let done = sqlx::query("UPDATE admins SET password_hash = ? WHERE username = ?")
        .bind(password_hash)
        .bind(username.as_str())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("admin"));
    }
    // A new password ends every existing session of that admin.
    sqlx::query("DELETE FROM sessions WHERE admin_id = (SELECT id FROM admins WHERE username = ?)")
        .bind(username.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_admin(store: &SqliteStore, username: &Username) -> Result<(), StoreError> {
    let done =
        sqlx::query("DELETE FROM admins WHERE username = ?").bind(username.as_str()).execute(&store.write).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("admin"));
    }
    Ok(())
}

pub(super) async fn admins(store: &SqliteStore) -> Result<Vec<Username>, StoreError> {
    let rows = sqlx::query("SELECT username FROM admins ORDER BY username").fetch_all(&store.read).await?;
    rows.iter().map(admin_name).collect()
}

pub(super) async fn admin_by_username(store: &SqliteStore, username: &str) -> Result<Option<AdminRecord>, StoreError> {
    let row = sqlx::query("SELECT id, username, password_hash FROM admins WHERE username = ?")
        .bind(username)
        .fetch_optional(&store.read)
        .await?;
    row.as_ref().map(admin_from_row).transpose()
}

pub(super) async fn create_session(
    store: &SqliteStore,
    token_hash: &[u8; 32],
    admin: UserId,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO sessions (token_hash, admin_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .bind(&token_hash[..])
        .bind(admin.get())
        .bind(secs(now))
        .bind(secs(expires_at))
        .execute(&store.write)
        .await?;
    Ok(())
}

pub(super) async fn session_admin(
    store: &SqliteStore,
    token_hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<(UserId, Username)>, StoreError> {
    let row = sqlx::query(
        "SELECT a.id, a.username FROM sessions s JOIN admins a ON a.id = s.admin_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
    )
    .bind(&token_hash[..])
    .bind(secs(now))
    .fetch_optional(&store.read)
    .await?;
    row.map(|r| Ok((UserId::new(r.int("id")?), admin_name(&r)?))).transpose()
}

pub(super) async fn delete_session(store: &SqliteStore, token_hash: &[u8; 32]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = ?").bind(&token_hash[..]).execute(&store.write).await?;
    Ok(())
}

pub(super) async fn delete_expired_sessions(store: &SqliteStore, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?").bind(secs(now)).execute(&store.write).await?;
    Ok(done.rows_affected())
}
