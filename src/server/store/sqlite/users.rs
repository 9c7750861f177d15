//! Users and their devices online.

use super::events;
use super::ingest::{current_state, to_json};
use super::SqliteStore;
use crate::domain::status::ONLINE_WINDOW;
use crate::domain::{ServerId, UserId};
use crate::server::store::rows::secs;
use crate::server::store::shared::users::{add_online, sort_live, split_live, taken, user_from_row, LiveDevices};
use crate::server::store::{LiveDevice, NewEvent, StoreError, UserFields, UserRecord};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

pub(super) async fn create_user(
    store: &SqliteStore,
    user: &UserFields,
    event: &NewEvent,
) -> Result<UserId, StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("INSERT INTO users (name, email, max_connections, created_at) VALUES (?, ?, ?, ?)")
        .bind(&user.name)
        .bind(&user.email)
        .bind(i64::from(user.max_connections))
        .bind(secs(event.at))
        .execute(&mut *tx)
        .await
        .map_err(|e| taken(e, &user.email))?;
    let id = UserId::new(done.last_insert_rowid());
    // OpenVPN clients that logged in with the new user's email, or with its
    // name if no other user has it, and have no owner yet become theirs.
    sqlx::query(
        "UPDATE clients SET user_id = ?1 WHERE user_id IS NULL AND deleted_at IS NULL AND username IS NOT NULL \
           AND (username = ?2 COLLATE NOCASE OR (username = ?3 AND (SELECT COUNT(*) FROM users WHERE name = ?3) = 1))",
    )
    .bind(id.get())
    .bind(&user.email)
    .bind(&user.name)
    .execute(&mut *tx)
    .await?;
    events::insert(&mut tx, &NewEvent { user_id: Some(id), ..event.clone() }).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn update_user(
    store: &SqliteStore,
    id: UserId,
    user: &UserFields,
    event: &NewEvent,
) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("UPDATE users SET name = ?, email = ?, max_connections = ? WHERE id = ?")
        .bind(&user.name)
        .bind(&user.email)
        .bind(i64::from(user.max_connections))
        .bind(id.get())
        .execute(&mut *tx)
        .await
        .map_err(|e| taken(e, &user.email))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("user"));
    }
    events::insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_user(store: &SqliteStore, id: UserId, event: &NewEvent) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("DELETE FROM users WHERE id = ?").bind(id.get()).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("user"));
    }
    events::insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

async fn load(store: &SqliteStore, id: Option<UserId>) -> Result<Vec<UserRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.id, u.name, u.email, u.max_connections, u.created_at, \
           (SELECT MAX(o.last_seen_at) FROM connections o JOIN clients c ON c.id = o.client_id \
             WHERE c.user_id = u.id AND c.deleted_at IS NULL) AS last_seen, \
           (SELECT json_group_array(c.id) FROM clients c WHERE c.user_id = u.id AND c.deleted_at IS NULL) AS clients \
         FROM users u WHERE (?1 IS NULL OR u.id = ?1) ORDER BY u.name COLLATE NOCASE, u.id",
    )
    .bind(id.map(|u| u.get()))
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(user_from_row).collect()
}

pub(super) async fn users(store: &SqliteStore) -> Result<Vec<UserRecord>, StoreError> {
    load(store, None).await
}

pub(super) async fn user(store: &SqliteStore, id: UserId) -> Result<Option<UserRecord>, StoreError> {
    Ok(load(store, Some(id)).await?.into_iter().next())
}

pub(super) async fn live_sessions_of(
    store: &SqliteStore,
    ids: &[UserId],
    now: DateTime<Utc>,
) -> Result<HashMap<UserId, Vec<LiveDevice>>, StoreError> {
    let mut live = LiveDevices::new();
    if ids.is_empty() {
        return Ok(live);
    }
    let mut tx = store.read.begin().await?;
    // Open OpenVPN sessions, and WireGuard clients with their open session's
    // start, of active clients only: a blocked OpenVPN client shows in the
    // server's status for a moment while its retry is refused.
    let ids_json = to_json(&ids.iter().map(|u| u.get()).collect::<Vec<_>>())?;
    let rows = sqlx::query(
        "SELECT c.user_id, c.id AS client_id, c.server_id, s.protocol, o.connected_at \
         FROM clients c JOIN servers s ON s.id = c.server_id \
         LEFT JOIN connections o ON o.client_id = c.id AND o.disconnected_at IS NULL \
         WHERE c.user_id IN (SELECT value FROM json_each(?1)) AND c.access = 'active' AND c.deleted_at IS NULL \
         ORDER BY o.connected_at, c.id",
    )
    .bind(ids_json)
    .fetch_all(&mut *tx)
    .await?;
    let wireguard = split_live(&rows, &mut live)?;
    let since = secs(now - ONLINE_WINDOW);
    for (server, clients) in wireguard {
        let state = current_state(&mut tx, ServerId::new(server)).await?;
        add_online(&mut live, server, clients, &state, since)?;
    }
    tx.commit().await?;
    sort_live(&mut live);
    Ok(live)
}
