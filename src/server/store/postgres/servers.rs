//! Servers and their clients.

use super::ingest::current_state;
use super::PostgresStore;
use crate::domain::{HostKeyPin, ServerId, SshKeySource};
use crate::server::store::rows::{corrupt, is_unique_violation, secs};
use crate::server::store::shared::servers::{server_from_row, with_counts, SERVER_COLUMNS, SERVER_FROM};
use crate::server::store::{EnforcementStamp, NewEvent, NewServer, ServerRecord, StoreError};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

async fn server_with_counts(
    store: &PostgresStore,
    conn: &mut PgConnection,
    row: &PgRow,
    now: DateTime<Utc>,
) -> Result<ServerRecord, StoreError> {
    let server = server_from_row(row, |aad, stored| store.unseal(aad, stored))?;
    let state = current_state(conn, server.id).await;
    with_counts(server, state, now)
}

pub(super) async fn insert_server(
    store: &PostgresStore,
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
    let mut tx = store.begin_write().await?;
    let result: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "INSERT INTO servers (name, protocol, host, port, ssh_user, ssh_key_path, ssh_private_key, \
             interface, command_prefix, openvpn_status_path, openvpn_management_port, openvpn_management_password, \
             host_key, host_key_fingerprint, created_at, config_path, client_config_dir, endpoint, dns) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
             RETURNING id",
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
    .fetch_one(&mut *tx)
    .await;
    match result {
        Ok(id) => {
            for (column, secret) in [("ssh_private_key", key_text), ("openvpn_management_password", password)] {
                let Some(secret) = secret else { continue };
                let sealed = store.seal(&format!("servers.{column}:{id}"), secret.expose())?;
                sqlx::query(&format!("UPDATE servers SET {column} = $1 WHERE id = $2"))
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
    store: &PostgresStore,
    now: DateTime<Utc>,
    month: &str,
) -> Result<Vec<ServerRecord>, StoreError> {
    // One read transaction: the rows and the states are one snapshot.
    let mut tx = store.begin_read().await?;
    // SQLite's `COLLATE NOCASE`: ASCII letters folded, then byte order.
    let sql = format!(
        "SELECT {SERVER_COLUMNS} {SERVER_FROM} ORDER BY \
         translate(s.name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') COLLATE \"C\", s.id"
    );
    let rows = sqlx::query(&sql).bind(month).fetch_all(&mut *tx).await?;
    let mut servers = Vec::with_capacity(rows.len());
    for row in &rows {
        servers.push(server_with_counts(store, &mut tx, row, now).await?);
    }
    tx.commit().await?;
    Ok(servers)
}

pub(super) async fn server(
    store: &PostgresStore,
    id: ServerId,
    now: DateTime<Utc>,
    month: &str,
) -> Result<Option<ServerRecord>, StoreError> {
    let mut tx = store.begin_read().await?;
    let sql = format!("SELECT {SERVER_COLUMNS} {SERVER_FROM} WHERE s.id = $2");
    let row = sqlx::query(&sql).bind(month).bind(id.get()).fetch_optional(&mut *tx).await?;
    let server = match row {
        Some(row) => Some(server_with_counts(store, &mut tx, &row, now).await?),
        None => None,
    };
    tx.commit().await?;
    Ok(server)
}

pub(super) async fn pin_host_key(store: &PostgresStore, id: ServerId, pin: &HostKeyPin) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("UPDATE servers SET host_key = $1, host_key_fingerprint = $2 WHERE id = $3")
        .bind(&pin.openssh)
        .bind(&pin.fingerprint)
        .bind(id.get())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("server"));
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn enforcement_stamp(store: &PostgresStore, id: ServerId) -> Result<EnforcementStamp, StoreError> {
    let row = sqlx::query("SELECT policy_version, polls_applied FROM servers WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&store.pool)
        .await?
        .ok_or(StoreError::NotFound("server"))?;
    Ok(EnforcementStamp {
        policy_version: row.try_get("policy_version")?,
        polls_applied: row.try_get("polls_applied")?,
    })
}

pub(super) async fn record_poll_failure(
    store: &PostgresStore,
    id: ServerId,
    at: DateTime<Utc>,
    error: &str,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "UPDATE servers SET last_poll_at = $1, last_error = $2, \
             consecutive_failures = consecutive_failures + 1 WHERE id = $3",
    )
    .bind(secs(at))
    .bind(error)
    .bind(id.get())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_push_token(
    store: &PostgresStore,
    id: ServerId,
    hash: &[u8; 32],
    event: &NewEvent,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("UPDATE servers SET push_token_hash = $1 WHERE id = $2")
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

pub(super) async fn push_token(store: &PostgresStore, id: ServerId) -> Result<Option<Vec<u8>>, StoreError> {
    let hash: Option<Option<Vec<u8>>> = sqlx::query_scalar("SELECT push_token_hash FROM servers WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&store.pool)
        .await?;
    Ok(hash.flatten())
}

pub(super) async fn record_drift(store: &PostgresStore, id: ServerId, found: u32) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    sqlx::query("UPDATE servers SET drift_count = drift_count + $1 WHERE id = $2")
        .bind(i64::from(found))
        .bind(id.get())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
