//! Clients (devices): their rows with live figures, owners and policy.

use super::ingest::{current_state, store_state};
use super::SqliteStore;
use crate::domain::listing::ClientQuery;
use crate::domain::policy::{DisableReason, PeriodMark};
use crate::domain::Protocol;
use crate::domain::{ClientId, ServerId};
use crate::server::store::rows::{secs, Columns};
use crate::server::store::shared::clients::{
    access_text, client_from_row, listed, managed_peers_json, period_columns, CLIENT_COLUMNS,
};
use crate::server::store::shared::listing::{Listing, INDEX_COLUMNS, INDEX_FROM};
use crate::server::store::{AccessChange, ClientPage, ClientRecord, ClientUpdate, NewEvent, StoreError, DELETED_MARK};
use chrono::{DateTime, Utc};
use sqlx::Row;

pub(super) async fn clients(
    store: &SqliteStore,
    server: ServerId,
    month: &str,
) -> Result<Vec<ClientRecord>, StoreError> {
    let mut tx = store.read.begin().await?;
    let sql = format!(
        "SELECT {CLIENT_COLUMNS} WHERE c.server_id = $2 AND c.deleted_at IS NULL \
         ORDER BY COALESCE(c.name, c.identity) COLLATE NOCASE"
    );
    let rows = sqlx::query(&sql).bind(month).bind(server.get()).fetch_all(&mut *tx).await?;
    let state = current_state(&mut tx, server).await?;
    tx.commit().await?;
    let live = state.into_by_id();
    let mut clients = Vec::with_capacity(rows.len());
    for row in &rows {
        let client = client_from_row(row, live.get(&row.int("id")?), month)?;
        if listed(&client) {
            clients.push(client);
        }
    }
    Ok(clients)
}

/// One page of a server's clients, as [`clients`] lists them; see
/// `shared::listing`.
pub(super) async fn client_page(
    store: &SqliteStore,
    server: ServerId,
    protocol: Protocol,
    month: &str,
    query: &ClientQuery,
    now: DateTime<Utc>,
) -> Result<ClientPage, StoreError> {
    let mut tx = store.read.begin().await?;
    let sql = format!("SELECT json_group_array(json_array({INDEX_COLUMNS})) {INDEX_FROM}");
    let json: String = sqlx::query_scalar(&sql).bind(month).bind(server.get()).fetch_one(&mut *tx).await?;
    let state = current_state(&mut tx, server).await?;
    let listing = Listing::new(&json, &state, protocol, month, query, now)?;
    let ids =
        serde_json::to_string(&listing.selection.ids).map_err(|e| StoreError::Corrupt(format!("page ids: {e}")))?;
    let sql =
        format!("SELECT {CLIENT_COLUMNS} WHERE c.id IN (SELECT value FROM json_each($2)) AND c.deleted_at IS NULL");
    let rows = sqlx::query(&sql).bind(month).bind(ids).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    listing.page(&rows, month)
}

pub(super) async fn client(store: &SqliteStore, id: ClientId, month: &str) -> Result<Option<ClientRecord>, StoreError> {
    let mut tx = store.read.begin().await?;
    let sql = format!("SELECT {CLIENT_COLUMNS} WHERE c.id = $2 AND c.deleted_at IS NULL");
    let Some(row) = sqlx::query(&sql).bind(month).bind(id.get()).fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let state = current_state(&mut tx, ServerId::new(row.try_get("server_id")?)).await?;
    tx.commit().await?;
    let live = state.clients.iter().find(|c| c.client_id == id.get());
    client_from_row(&row, live, month).map(Some)
}

pub(super) async fn set_managed(
    store: &SqliteStore,
    server: ServerId,
    peers: &[(String, Vec<String>)],
) -> Result<(), StoreError> {
    let json = managed_peers_json(peers)?;
    sqlx::query(
        "UPDATE clients SET managed = 1, desired_allowed_ips = j.value ->> 1 \
             FROM json_each(?2) AS j WHERE clients.server_id = ?1 AND clients.identity = j.value ->> 0",
    )
    .bind(server.get())
    .bind(json)
    .execute(&store.write)
    .await?;
    Ok(())
}

/// Ends a change to one client row: refused when no row changed, else
/// `event` is written beside the change and both are committed.
async fn commit_with_event(
    mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    rows: u64,
    event: &NewEvent,
) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound("client"));
    }
    super::events::insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn update_client(
    store: &SqliteStore,
    id: ClientId,
    update: &ClientUpdate,
    event: &NewEvent,
) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(user) = update.user_id {
        let known: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE id = ?").bind(user.get()).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            return Err(StoreError::NotFound("user"));
        }
    }
    let p = &update.policy;
    let (period, reset_day) = period_columns(p.limit_period);
    let done = sqlx::query(
        "UPDATE clients SET name = ?1, email = ?2, user_id = ?3, traffic_limit = ?4, traffic_warn_threshold = ?5, \
         period_start = CASE WHEN limit_period = ?6 AND reset_day IS ?7 THEN period_start END, \
         limit_period = ?6, reset_day = ?7, expiry_date = ?8, note = ?10 WHERE id = ?9",
    )
    .bind(&update.name)
    .bind(&update.email)
    .bind(update.user_id.map(|u| u.get()))
    .bind(p.traffic_limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)))
    .bind(i64::from(p.traffic_warn_threshold.get()))
    .bind(period)
    .bind(reset_day)
    .bind(p.expiry_date.map(secs))
    .bind(id.get())
    .bind(&update.note)
    .execute(&mut *tx)
    .await?;
    commit_with_event(tx, done.rows_affected(), event).await
}

pub(super) async fn clients_by_identity(
    store: &SqliteStore,
    identity: &str,
    interface: &str,
    server: Option<ServerId>,
) -> Result<Vec<(ClientId, ServerId)>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.id, c.server_id FROM clients c JOIN servers s ON s.id = c.server_id \
         WHERE c.identity = ?1 AND s.interface = ?2 AND (?3 IS NULL OR s.id = ?3) AND c.deleted_at IS NULL \
         ORDER BY c.id",
    )
    .bind(identity)
    .bind(interface)
    .bind(server.map(|s| s.get()))
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(|r| Ok((ClientId::new(r.try_get("id")?), ServerId::new(r.try_get("server_id")?)))).collect()
}

/// Changes the access of many clients in one transaction, each with its
/// event; every change is pending until confirmed. A change with an
/// expected access is made only if the client still has it (else skipped:
/// `false` in the result); one without is made or fails as not found.
pub(super) async fn set_access_many(store: &SqliteStore, changes: &[AccessChange]) -> Result<Vec<bool>, StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let mut made = Vec::with_capacity(changes.len());
    for change in changes {
        let expected = change.expected.map(|e| (access_text(e), e.map(DisableReason::as_str)));
        let done = sqlx::query(
            "UPDATE clients SET access = ?1, disabled_reason = ?2, pending = 1 \
             WHERE id = ?3 AND (?4 IS NULL OR (access = ?4 AND disabled_reason IS ?5))",
        )
        .bind(access_text(change.reason))
        .bind(change.reason.map(DisableReason::as_str))
        .bind(change.id.get())
        .bind(expected.map(|(a, _)| a))
        .bind(expected.and_then(|(_, r)| r))
        .execute(&mut *tx)
        .await?;
        match (done.rows_affected(), change.expected) {
            (0, None) => return Err(StoreError::NotFound("client")),
            (0, Some(_)) => made.push(false),
            _ => {
                super::events::insert(&mut tx, &change.event).await?;
                made.push(true);
            }
        }
    }
    tx.commit().await?;
    Ok(made)
}

pub(super) async fn record_warning(
    store: &SqliteStore,
    id: ClientId,
    usage: Option<&str>,
    expiry_day: Option<&str>,
    event: &NewEvent,
) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query(
        "UPDATE clients SET warned_usage = COALESCE(?, warned_usage), \
         warned_expiry_day = COALESCE(?, warned_expiry_day) WHERE id = ?",
    )
    .bind(usage)
    .bind(expiry_day)
    .bind(id.get())
    .execute(&mut *tx)
    .await?;
    commit_with_event(tx, done.rows_affected(), event).await
}

/// Starts a client's new limit period (`mark`), with `event` when given.
/// A period older than the stored one is ignored, so a repeated or late
/// pass changes nothing.
pub(super) async fn start_period(
    store: &SqliteStore,
    id: ClientId,
    mark: PeriodMark,
    event: Option<&NewEvent>,
) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query(
        "UPDATE clients SET period_start = ?1, period_base = ?2 \
         WHERE id = ?3 AND (period_start IS NULL OR period_start < ?1)",
    )
    .bind(secs(mark.start))
    .bind(i64::try_from(mark.base).unwrap_or(i64::MAX))
    .bind(id.get())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() > 0 {
        if let Some(event) = event {
            super::events::insert(&mut tx, event).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn confirm_access(store: &SqliteStore, confirmed: &[(ClientId, bool)]) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    for (id, disabled) in confirmed {
        sqlx::query("UPDATE clients SET pending = 0 WHERE id = ? AND access = ?")
            .bind(id.get())
            .bind(if *disabled { "disabled" } else { "active" })
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes a client with `event`: the row stays, marked deleted, when its
/// usage history is kept; otherwise it goes with its ledgers and sessions.
pub(super) async fn delete_client(
    store: &SqliteStore,
    id: ClientId,
    keep_history: bool,
    at: i64,
    event: &NewEvent,
) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    if !keep_history {
        let done = sqlx::query("DELETE FROM clients WHERE id = ?").bind(id.get()).execute(&mut *tx).await?;
        return commit_with_event(tx, done.rows_affected(), event).await;
    }
    let server: Option<i64> = sqlx::query_scalar("SELECT server_id FROM clients WHERE id = ? AND deleted_at IS NULL")
        .bind(id.get())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(server) = server.map(ServerId::new) else { return Err(StoreError::NotFound("client")) };
    let mut state = current_state(&mut tx, server).await?;
    // A WireGuard key gives up its name on the server (its row and live
    // state become `<key>#deleted-<id>`): a peer later added with the same
    // key is a new client, not traffic of a hidden one. An OpenVPN common
    // name stays blocked, so it keeps its name.
    let identity: String = sqlx::query_scalar(
        "UPDATE clients SET deleted_at = ?1, managed = 0, user_id = NULL, client_config_sealed = NULL, \
           identity = CASE WHEN (SELECT protocol FROM servers WHERE id = clients.server_id) = 'openvpn' \
             THEN identity ELSE identity || ?3 || id END \
         WHERE id = ?2 RETURNING identity",
    )
    .bind(at)
    .bind(id.get())
    .bind(DELETED_MARK)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(entry) = state.clients.iter_mut().find(|c| c.client_id == id.get() && c.identity != identity) {
        entry.identity = identity;
        store_state(&mut tx, server, &mut state).await?;
    }
    commit_with_event(tx, 1, event).await
}

/// Gives WireGuard clients deleted before keys were freed on delete their
/// `<key>#deleted-<id>` identity, rows and live state together (a
/// database from before that change; afterwards there is nothing to do).
pub(super) async fn free_deleted_keys(store: &SqliteStore) -> Result<u64, StoreError> {
    let servers: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT c.server_id FROM clients c JOIN servers s ON s.id = c.server_id \
         WHERE c.deleted_at IS NOT NULL AND s.protocol <> 'openvpn' AND instr(c.identity, ?) = 0",
    )
    .bind(DELETED_MARK)
    .fetch_all(&store.write)
    .await?;
    let mut freed = 0;
    for server in servers.into_iter().map(ServerId::new) {
        let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
        let mut state = current_state(&mut tx, server).await?;
        let renamed: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE clients SET identity = identity || ?1 || id \
             WHERE server_id = ?2 AND deleted_at IS NOT NULL AND instr(identity, ?1) = 0 RETURNING id, identity",
        )
        .bind(DELETED_MARK)
        .bind(server.get())
        .fetch_all(&mut *tx)
        .await?;
        for (id, identity) in &renamed {
            if let Some(entry) = state.clients.iter_mut().find(|c| c.client_id == *id) {
                entry.identity = identity.clone();
            }
        }
        store_state(&mut tx, server, &mut state).await?;
        tx.commit().await?;
        freed += renamed.len() as u64;
    }
    Ok(freed)
}
