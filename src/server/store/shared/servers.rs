//! Servers on both backends: the column list, turning a row into a
//! [`ServerRecord`], and counting its clients from the live state.

use crate::domain::client_config::{ClientDefaults, Endpoint};
use crate::domain::status::ONLINE_WINDOW;
use crate::domain::{CommandPrefix, HostAddress, InterfaceName, Protocol, RemotePath, ServerId, ServerName, SshUser};
use crate::domain::{HostKeyPin, Secret, SshKeySource};
use crate::server::store::rows::{corrupt, counters, instant, opt_instant, protocol, secs, Columns};
use crate::server::store::state::ServerState;
use crate::server::store::{OpenVpnAccess, ServerRecord, StoreError};
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// The columns [`server_from_row`] reads, from `servers s` and its
/// `server_usage_monthly` row `m` (see [`SERVER_FROM`]).
pub(crate) const SERVER_COLUMNS: &str = "s.id, s.name, s.protocol, s.host, s.port, s.ssh_user, s.ssh_key_path, \
    s.ssh_private_key, s.interface, s.command_prefix, s.openvpn_status_path, s.openvpn_management_port, \
    s.openvpn_management_password, s.host_key, s.host_key_fingerprint, s.created_at, \
    s.config_path, s.client_config_dir, s.endpoint, s.dns, s.last_poll_at, s.last_success_at, s.last_error, s.consecutive_failures, s.drift_count, s.total_rx, s.total_tx, \
    COALESCE(m.rx, 0) AS month_rx, COALESCE(m.tx, 0) AS month_tx";

/// The servers with the month bound as `$1` (SQLite binds `$N` by number
/// too); a query appends `WHERE …` with `$2` on.
pub(crate) const SERVER_FROM: &str =
    "FROM servers s LEFT JOIN server_usage_monthly m ON m.server_id = s.id AND m.month = $1";

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

/// The server with its client counts from `state`, its server's live state
/// as read.
pub(in crate::server::store) fn with_counts(
    mut server: ServerRecord,
    state: Result<ServerState, StoreError>,
    now: DateTime<Utc>,
) -> Result<ServerRecord, StoreError> {
    match state {
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
fn opt_path(row: &impl Columns, column: &str) -> Result<Option<RemotePath>, StoreError> {
    let text = row.opt_text(column)?;
    text.as_deref().map(RemotePath::parse).transpose().map_err(|e| corrupt(column, e))
}

/// A server from a row of [`SERVER_COLUMNS`], with no clients counted yet;
/// `unseal(aad, stored)` opens its secrets (the backend's
/// `unseal`).
pub(crate) fn server_from_row(
    row: &impl Columns,
    unseal: impl Fn(&str, &str) -> Result<Secret, StoreError>,
) -> Result<ServerRecord, StoreError> {
    let id = row.int("id")?;
    let name = row.text("name")?;
    let protocol = protocol(&row.text("protocol")?)?;
    let host = row.text("host")?;
    let port = row.int("port")?;
    let user = row.text("ssh_user")?;
    let key_path = row.opt_text("ssh_key_path")?;
    let key_text = row.opt_text("ssh_private_key")?;
    let interface = row.opt_text("interface")?;
    let prefix = row.text("command_prefix")?;
    let status_path = row.opt_text("openvpn_status_path")?;
    let management_port = row.opt_int("openvpn_management_port")?;
    let management_password = row.opt_text("openvpn_management_password")?;
    let host_key = row.opt_text("host_key")?;
    let fingerprint = row.opt_text("host_key_fingerprint")?;
    let key = match (key_path, key_text) {
        (Some(p), None) => SshKeySource::File(PathBuf::from(p)),
        (None, Some(k)) => SshKeySource::Inline(unseal(&format!("servers.ssh_private_key:{id}"), &k)?),
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
                .map(|p| unseal(&format!("servers.openvpn_management_password:{id}"), &p))
                .transpose()?,
        }),
        _ => None,
    };
    let count = |name: &str| -> Result<u32, StoreError> { Ok(u32::try_from(row.int(name)?).unwrap_or(u32::MAX)) };
    Ok(ServerRecord {
        id: ServerId::new(id),
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
                .opt_text("endpoint")?
                .map(|e| Endpoint::parse(&e))
                .transpose()
                .map_err(|e| corrupt("endpoint", e))?,
            dns: ClientDefaults::parse_dns(&row.text("dns")?).map_err(|e| corrupt("dns", e))?,
        },
        created_at: instant(row.int("created_at")?)?,
        last_poll_at: opt_instant(row.opt_int("last_poll_at")?)?,
        last_success_at: opt_instant(row.opt_int("last_success_at")?)?,
        last_error: row.opt_text("last_error")?,
        consecutive_failures: count("consecutive_failures")?,
        drift_count: count("drift_count")?,
        clients: 0,
        online: 0,
        total: counters(row, "total_rx", "total_tx")?,
        month: counters(row, "month_rx", "month_tx")?,
    })
}
