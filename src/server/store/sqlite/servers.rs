//! Servers and their clients.

use super::ingest::current_state;
use super::rows::{corrupt, counters, instant, is_unique_violation, opt_instant, protocol, secs};
use super::SqliteStore;
use crate::domain::client_config::{ClientDefaults, Endpoint};
use crate::domain::status::ONLINE_WINDOW;
use crate::domain::Protocol;
use crate::domain::{CommandPrefix, HostAddress, InterfaceName, RemotePath, ServerId, ServerName, SshUser};
use crate::domain::{HostKeyPin, SshKeySource};
use crate::server::store::state::ServerState;
use crate::server::store::{EnforcementStamp, NewServer, OpenVpnAccess, ServerRecord, StoreError};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use std::path::PathBuf;

const SERVER_COLUMNS: &str = "s.id, s.name, s.protocol, s.host, s.port, s.ssh_user, s.ssh_key_path, \
    s.ssh_private_key, s.interface, s.command_prefix, s.openvpn_status_path, s.openvpn_management_port, \
    s.openvpn_management_password, s.host_key, s.host_key_fingerprint, s.created_at, \
    s.config_path, s.client_config_dir, s.endpoint, s.dns, s.last_poll_at, s.last_success_at, s.last_error, s.consecutive_failures, s.drift_count, s.total_rx, s.total_tx, \
    COALESCE(m.rx, 0) AS month_rx, COALESCE(m.tx, 0) AS month_tx";

const SERVER_FROM: &str = "FROM servers s LEFT JOIN server_usage_monthly m ON m.server_id = s.id AND m.month = ?1";

/// Clients present (WireGuard: on the host; OpenVPN: every user known) and,
/// of those, online at `now`.
fn client_counts(protocol: Protocol, state: &ServerState, now: DateTime<Utc>) -> (u32, u32) {
    let openvpn = protocol == Protocol::Openvpn;
    let since = secs(now - ONLINE_WINDOW);
    let present = state.clients.iter().filter(|c| c.on_host || openvpn);
    let online =
        state.clients.iter().filter(|c| c.on_host && (openvpn || c.latest_handshake.is_some_and(|h| h > since)));
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (count(present.count()), count(online.count()))
}

async fn server_with_counts(
    store: &SqliteStore,
    conn: &mut SqliteConnection,
    row: &SqliteRow,
    now: DateTime<Utc>,
) -> Result<ServerRecord, StoreError> {
    let mut server = server_from_row(store, row)?;
    match current_state(conn, server.id).await {
        Ok(state) => (server.clients, server.online) = client_counts(server.protocol, &state, now),
        // One damaged server must not hide the others: its polls fail with
        // the same error until the row is repaired from a backup.
        Err(StoreError::Corrupt(e)) => {
            let reference = crate::error::error_reference();
            tracing::error!(server = %server.name, error = %e, %reference, "stored client figures are damaged");
            server.last_error = Some(format!(
                "stored client figures are damaged; restore the database from a backup (ref {reference})"
            ));
        }
        Err(e) => return Err(e),
    }
    Ok(server)
}

/// An optional path on the host, from a column.
fn opt_path(row: &SqliteRow, column: &str) -> Result<Option<RemotePath>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.as_deref().map(RemotePath::parse).transpose().map_err(|e| corrupt(column, e))
}

fn server_from_row(store: &SqliteStore, row: &SqliteRow) -> Result<ServerRecord, StoreError> {
    let id: i64 = row.try_get("id")?;
    let name: String = row.try_get("name")?;
    let protocol = protocol(&row.try_get::<String, _>("protocol")?)?;
    let host: String = row.try_get("host")?;
    let port: i64 = row.try_get("port")?;
    let user: String = row.try_get("ssh_user")?;
    let key_path: Option<String> = row.try_get("ssh_key_path")?;
    let key_text: Option<String> = row.try_get("ssh_private_key")?;
    let interface: Option<String> = row.try_get("interface")?;
    let prefix: String = row.try_get("command_prefix")?;
    let status_path: Option<String> = row.try_get("openvpn_status_path")?;
    let management_port: Option<i64> = row.try_get("openvpn_management_port")?;
    let management_password: Option<String> = row.try_get("openvpn_management_password")?;
    let host_key: Option<String> = row.try_get("host_key")?;
    let fingerprint: Option<String> = row.try_get("host_key_fingerprint")?;
    let key = match (key_path, key_text) {
        (Some(p), None) => SshKeySource::File(PathBuf::from(p)),
        (None, Some(k)) => SshKeySource::Inline(store.unseal(&format!("servers.ssh_private_key:{id}"), &k)?),
        _ => return Err(StoreError::Corrupt("server has no single SSH key".into())),
    };
    let prefix_words: Vec<String> = serde_json::from_str(&prefix).map_err(|e| corrupt("command prefix", e))?;
    let openvpn = match protocol {
        Protocol::Openvpn => Some(OpenVpnAccess {
            status_path: status_path
                .as_deref()
                .map(RemotePath::parse)
                .transpose()
                .map_err(|e| corrupt("status path", e))?,
            management_port: management_port
                .map(u16::try_from)
                .transpose()
                .map_err(|e| corrupt("management port", e))?,
            management_password: management_password
                .map(|p| store.unseal(&format!("servers.openvpn_management_password:{id}"), &p))
                .transpose()?,
        }),
        _ => None,
    };
    let count =
        |name: &str| -> Result<u32, StoreError> { Ok(u32::try_from(row.try_get::<i64, _>(name)?).unwrap_or(u32::MAX)) };
    Ok(ServerRecord {
        id: ServerId::new(row.try_get("id")?),
        name: ServerName::parse(&name).map_err(|e| corrupt("server name", e))?,
        protocol,
        host: HostAddress::parse(&host).map_err(|e| corrupt("host", e))?,
        port: u16::try_from(port).map_err(|e| corrupt("port", e))?,
        user: SshUser::parse(&user).map_err(|e| corrupt("ssh user", e))?,
        key,
        interface: interface.as_deref().map(InterfaceName::parse).transpose().map_err(|e| corrupt("interface", e))?,
        command_prefix: CommandPrefix::from_parts(prefix_words.iter().map(String::as_str))
            .map_err(|e| corrupt("command prefix", e))?,
        openvpn,
        host_key: match (host_key, fingerprint) {
            (Some(openssh), Some(fingerprint)) => Some(HostKeyPin { openssh, fingerprint }),
            _ => None,
        },
        config_path: opt_path(row, "config_path")?,
        client_config_dir: opt_path(row, "client_config_dir")?,
        client_defaults: ClientDefaults {
            endpoint: row
                .try_get::<Option<String>, _>("endpoint")?
                .map(|e| Endpoint::parse(&e))
                .transpose()
                .map_err(|e| corrupt("endpoint", e))?,
            dns: ClientDefaults::parse_dns(&row.try_get::<String, _>("dns")?).map_err(|e| corrupt("dns", e))?,
        },
        created_at: instant(row.try_get("created_at")?)?,
        last_poll_at: opt_instant(row.try_get("last_poll_at")?)?,
        last_success_at: opt_instant(row.try_get("last_success_at")?)?,
        last_error: row.try_get("last_error")?,
        consecutive_failures: count("consecutive_failures")?,
        drift_count: count("drift_count")?,
        clients: 0,
        online: 0,
        total: counters(row, "total_rx", "total_tx")?,
        month: counters(row, "month_rx", "month_tx")?,
    })
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
    let sql = format!("SELECT {SERVER_COLUMNS} {SERVER_FROM} WHERE s.id = ?2");
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
