//! Users and their devices online.

use super::events;
use super::ingest::current_state;
use super::PostgresStore;
use crate::domain::status::ONLINE_WINDOW;
use crate::domain::{ServerId, UserId};
use crate::server::store::rows::secs;
use crate::server::store::shared::users::{add_online, sort_live, split_live, taken, user_from_row, LiveDevices};
use crate::server::store::{LiveDevice, NewEvent, StoreError, UserFields, UserRecord};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// A taken email is a `Conflict`: the unique index `users_by_email` on
/// `lower(email)` makes the insert fail with a unique violation, which
/// [`taken`] turns into the same error as on SQLite.
pub(super) async fn create_user(
    store: &PostgresStore,
    user: &UserFields,
    event: &NewEvent,
) -> Result<UserId, StoreError> {
    let mut tx = store.begin_write().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (name, email, max_connections, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&user.name)
    .bind(&user.email)
    .bind(i64::from(user.max_connections))
    .bind(secs(event.at))
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| taken(e, &user.email))?;
    let id = UserId::new(id);
    // OpenVPN clients that logged in with the new user's email, or with its
    // name if no other user has it, and have no owner yet become theirs. The
    // email matches whatever the case of its ASCII letters, as SQLite's
    // NOCASE compares: `lower` under the "C" collation folds ASCII only.
    sqlx::query(
        "UPDATE clients SET user_id = $1 WHERE user_id IS NULL AND deleted_at IS NULL AND username IS NOT NULL \
           AND (lower(username COLLATE \"C\") = lower($2::text COLLATE \"C\") \
             OR (username = $3 AND (SELECT COUNT(*) FROM users WHERE name = $3) = 1))",
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

/// A taken email is a `Conflict`, as in [`create_user`].
pub(super) async fn update_user(
    store: &PostgresStore,
    id: UserId,
    user: &UserFields,
    event: &NewEvent,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("UPDATE users SET name = $1, email = $2, max_connections = $3 WHERE id = $4")
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

pub(super) async fn delete_user(store: &PostgresStore, id: UserId, event: &NewEvent) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id.get()).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("user"));
    }
    events::insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Users (all, or the one `id`) by name, whatever the case of its ASCII
/// letters (SQLite's NOCASE: `lower` under the "C" collation, compared
/// byte by byte), with their clients' ids in ascending order.
async fn load(store: &PostgresStore, id: Option<UserId>) -> Result<Vec<UserRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.id, u.name, u.email, u.max_connections, u.created_at, \
           (SELECT MAX(o.last_seen_at) FROM connections o JOIN clients c ON c.id = o.client_id \
             WHERE c.user_id = u.id AND c.deleted_at IS NULL) AS last_seen, \
           COALESCE((SELECT json_agg(c.id ORDER BY c.id) FROM clients c \
                      WHERE c.user_id = u.id AND c.deleted_at IS NULL), '[]'::json)::text AS clients \
         FROM users u WHERE ($1::bigint IS NULL OR u.id = $1) ORDER BY lower(u.name COLLATE \"C\"), u.id",
    )
    .bind(id.map(|u| u.get()))
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(user_from_row).collect()
}

pub(super) async fn users(store: &PostgresStore) -> Result<Vec<UserRecord>, StoreError> {
    load(store, None).await
}

pub(super) async fn user(store: &PostgresStore, id: UserId) -> Result<Option<UserRecord>, StoreError> {
    Ok(load(store, Some(id)).await?.into_iter().next())
}

pub(super) async fn live_sessions_of(
    store: &PostgresStore,
    ids: &[UserId],
    now: DateTime<Utc>,
) -> Result<HashMap<UserId, Vec<LiveDevice>>, StoreError> {
    let mut live = LiveDevices::new();
    if ids.is_empty() {
        return Ok(live);
    }
    // One snapshot for every query, as SQLite's read transaction gives.
    let mut tx = store.begin_read().await?;
    // Open OpenVPN sessions, and WireGuard clients with their open session's
    // start, of active clients only: a blocked OpenVPN client shows in the
    // server's status for a moment while its retry is refused.
    let ids: Vec<i64> = ids.iter().map(|u| u.get()).collect();
    let rows = sqlx::query(
        "SELECT c.user_id, c.id AS client_id, c.server_id, s.protocol, o.connected_at \
         FROM clients c JOIN servers s ON s.id = c.server_id \
         LEFT JOIN connections o ON o.client_id = c.id AND o.disconnected_at IS NULL \
         WHERE c.user_id = ANY($1::bigint[]) AND c.access = 'active' AND c.deleted_at IS NULL \
         ORDER BY o.connected_at NULLS FIRST, c.id",
    )
    .bind(ids)
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
