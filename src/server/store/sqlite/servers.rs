//! Servers and their clients.

use super::ingest::current_state;
use super::SqliteStore;
use crate::domain::{HostKeyPin, ServerId, SshKeySource};
use crate::server::store::rows::{corrupt, is_unique_violation, secs};
use crate::server::store::shared::servers::{server_from_row, with_counts, SERVER_COLUMNS, SERVER_FROM};
use crate::server::store::{EnforcementStamp, NewEvent, NewServer, ServerRecord, StoreError};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

async fn server_with_counts(
    store: &SqliteStore,
    conn: &mut SqliteConnection,
    row: &SqliteRow,
    now: DateTime<Utc>,
) -> Result<ServerRecord, StoreError> {
    let server = server_from_row(row, |aad, stored| store.unseal(aad, stored))?;
    let state = current_state(conn, server.id).await;
    with_counts(server, state, now)
}

pub(super) async fn insert_server(
    store: &SqliteStore,
    server: &NewServer,
    now: DateTime<Utc>,
) -> Result<ServerId, StoreError> {
    let (key_path, key_text) = match &server.key {
        SshKeySource::File(p) => (Some(p.to_string_lossy().into_owned()), None),
        SshKeySource::Inline(s) => (None, Some(s)),
    };
    let password = server.openvpn.as_ref().and_then(|o| o.management_password.as_ref());
    if key_text.is_some() || password.is_some() {
        // Refused before anything is written when there is no key.
        store.sealer()?;
    }
    let prefix = serde_json::to_string(server.command_prefix.parts()).map_err(|e| corrupt("command prefix", e))?;
    let ovpn = server.openvpn.as_ref();
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let result = sqlx::query(
        "INSERT INTO servers (name, protocol, host, port, ssh_user, ssh_key_path, ssh_private_key, \
             interface, command_prefix, openvpn_status_path, openvpn_management_port, openvpn_management_password, \
             host_key, host_key_fingerprint, created_at, config_path, client_config_dir, endpoint, dns) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(server.name.as_str())
    .bind(server.protocol.as_str())
    .bind(server.host.as_str())
    .bind(i64::from(server.port))
    .bind(server.user.as_str())
    .bind(key_path)
    .bind(key_text.map(|_| "v1:pending"))
    .bind(server.interface.as_ref().map(|i| i.as_str().to_owned()))
    .bind(prefix)
    .bind(ovpn.and_then(|o| o.status_path.as_ref()).map(|p| p.as_str().to_owned()))
    .bind(ovpn.and_then(|o| o.management_port).map(i64::from))
    .bind(password.map(|_| "v1:pending"))
    .bind(&server.host_key.openssh)
    .bind(&server.host_key.fingerprint)
    .bind(secs(now))
    .bind(server.config_path.as_ref().map(|p| p.as_str().to_owned()))
    .bind(server.client_config_dir.as_ref().map(|p| p.as_str().to_owned()))
    .bind(server.client_defaults.endpoint.as_ref().map(ToString::to_string))
    .bind(server.client_defaults.dns_text())
    .execute(&mut *tx)
    .await;
    match result {
        Ok(done) => {
            let id = done.last_insert_rowid();
            for (column, secret) in [("ssh_private_key", key_text), ("openvpn_management_password", password)] {
                let Some(secret) = secret else { continue };
                let sealed = store.seal(&format!("servers.{column}:{id}"), secret.expose())?;
                sqlx::query(&format!("UPDATE servers SET {column} = ? WHERE id = ?"))
                    .bind(sealed)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(ServerId::new(id))
        }
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("a server named {} already exists", server.name)))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn servers(
    store: &SqliteStore,
    now: DateTime<Utc>,
    month: &str,
) -> Result<Vec<ServerRecord>, StoreError> {
    // One read transaction: the rows and the states are one snapshot.
    let mut tx = store.read.begin().await?;
    let sql = format!("SELECT {SERVER_COLUMNS} {SERVER_FROM} ORDER BY s.name COLLATE NOCASE, s.id");
    let rows = sqlx::query(&sql).bind(month).fetch_all(&mut *tx).await?;
    let mut servers = Vec::with_capacity(rows.len());
    for row in &rows {
        servers.push(server_with_counts(store, &mut tx, row, now).await?);
    }
    tx.commit().await?;
    Ok(servers)
}

pub(super) async fn server(
    store: &SqliteStore,
    id: ServerId,
    now: DateTime<Utc>,
    month: &str,
) -> Result<Option<ServerRecord>, StoreError> {
    let mut tx = store.read.begin().await?;
    let sql = format!("SELECT {SERVER_COLUMNS} {SERVER_FROM} WHERE s.id = $2");
    let row = sqlx::query(&sql).bind(month).bind(id.get()).fetch_optional(&mut *tx).await?;
    let server = match row {
        Some(row) => Some(server_with_counts(store, &mut tx, &row, now).await?),
        None => None,
    };
    tx.commit().await?;
    Ok(server)
}

pub(super) async fn pin_host_key(store: &SqliteStore, id: ServerId, pin: &HostKeyPin) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE servers SET host_key = ?, host_key_fingerprint = ? WHERE id = ?")
        .bind(&pin.openssh)
        .bind(&pin.fingerprint)
        .bind(id.get())
        .execute(&store.write)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("server"));
    }
    Ok(())
}

pub(super) async fn enforcement_stamp(store: &SqliteStore, id: ServerId) -> Result<EnforcementStamp, StoreError> {
    let row = sqlx::query("SELECT policy_version, polls_applied FROM servers WHERE id = ?")
        .bind(id.get())
        .fetch_optional(&store.read)
        .await?
        .ok_or(StoreError::NotFound("server"))?;
    Ok(EnforcementStamp {
        policy_version: row.try_get("policy_version")?,
        polls_applied: row.try_get("polls_applied")?,
    })
}

pub(super) async fn record_poll_failure(
    store: &SqliteStore,
    id: ServerId,
    at: DateTime<Utc>,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE servers SET last_poll_at = ?, last_error = ?, \
             consecutive_failures = consecutive_failures + 1 WHERE id = ?",
    )
    .bind(secs(at))
    .bind(error)
    .bind(id.get())
    .execute(&store.write)
    .await?;
    Ok(())
}

pub(super) async fn set_push_token(
    store: &SqliteStore,
    id: ServerId,
    hash: &[u8; 32],
    event: &NewEvent,
) -> Result<(), StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("UPDATE servers SET push_token_hash = ? WHERE id = ?")
        .bind(hash.as_slice())
        .bind(id.get())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("server"));
    }
    super::events::insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn push_token(store: &SqliteStore, id: ServerId) -> Result<Option<Vec<u8>>, StoreError> {
    let hash: Option<Option<Vec<u8>>> = sqlx::query_scalar("SELECT push_token_hash FROM servers WHERE id = ?")
        .bind(id.get())
        .fetch_optional(&store.read)
        .await?;
    Ok(hash.flatten())
}

pub(super) async fn record_drift(store: &SqliteStore, id: ServerId, found: u32) -> Result<(), StoreError> {
    sqlx::query("UPDATE servers SET drift_count = drift_count + ? WHERE id = ?")
        .bind(i64::from(found))
        .bind(id.get())
        .execute(&store.write)
        .await?;
    Ok(())
}
