//! Users and their devices online.

use super::events;
use super::ingest::{current_state, to_json};
use super::rows::{instant, is_unique_violation, secs};
use super::SqliteStore;
use crate::domain::status::ONLINE_WINDOW;
use crate::domain::{ClientId, ServerId, UserId};
use crate::server::store::{LiveDevice, NewEvent, StoreError, UserFields, UserRecord};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};

fn taken(e: sqlx::Error, email: &Option<String>) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("a user with the email {} exists already", email.as_deref().unwrap_or("")))
    } else {
        e.into()
    }
}

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
           (SELECT json_group_array(c.id) FROM clients c WHERE c.user_id = u.id AND c.deleted_at IS NULL) AS clients \
         FROM users u WHERE (?1 IS NULL OR u.id = ?1) ORDER BY u.name COLLATE NOCASE, u.id",
    )
    .bind(id.map(|u| u.get()))
    .fetch_all(&store.read)
    .await?;
    rows.iter()
        .map(|r| {
            let clients: String = r.try_get("clients")?;
            let clients: Vec<i64> =
                serde_json::from_str(&clients).map_err(|e| super::rows::corrupt("client ids", e))?;
            Ok(UserRecord {
                id: UserId::new(r.try_get("id")?),
                name: r.try_get("name")?,
                email: r.try_get("email")?,
                max_connections: u32::try_from(r.try_get::<i64, _>("max_connections")?).unwrap_or(0),
                created_at: instant(r.try_get("created_at")?)?,
                clients: clients.into_iter().map(ClientId::new).collect(),
            })
        })
        .collect()
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
    let mut live: HashMap<UserId, Vec<LiveDevice>> = HashMap::new();
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
    let mut wireguard: BTreeMap<i64, Vec<(UserId, i64, Option<i64>)>> = BTreeMap::new();
    for r in &rows {
        let user = UserId::new(r.try_get("user_id")?);
        let client: i64 = r.try_get("client_id")?;
        let server: i64 = r.try_get("server_id")?;
        let started: Option<i64> = r.try_get("connected_at")?;
        if r.try_get::<String, _>("protocol")? == "openvpn" {
            if let Some(started) = started {
                live.entry(user).or_default().push(LiveDevice {
                    client: ClientId::new(client),
                    server: ServerId::new(server),
                    started: instant(started)?,
                });
            }
        } else {
            wireguard.entry(server).or_default().push((user, client, started));
        }
    }
    let since = secs(now - ONLINE_WINDOW);
    for (server, clients) in wireguard {
        let state = current_state(&mut tx, ServerId::new(server)).await?;
        let online: HashSet<i64> = state
            .clients
            .iter()
            .filter(|c| c.on_host && c.latest_handshake.is_some_and(|h| h > since))
            .map(|c| c.client_id)
            .collect();
        for (user, client, started) in clients {
            if online.contains(&client) {
                let started = instant(started.unwrap_or(since))?;
                let device = LiveDevice { client: ClientId::new(client), server: ServerId::new(server), started };
                live.entry(user).or_default().push(device);
            }
        }
    }
    tx.commit().await?;
    // Oldest first across servers, as one query would have listed them.
    for devices in live.values_mut() {
        devices.sort_by_key(|d| (d.started, d.client));
    }
    Ok(live)
}
