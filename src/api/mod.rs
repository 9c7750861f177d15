//! What the panel says about servers and clients: the shapes shared by the JSON
//! API, the server functions and the UI. Views are built from plain values and
//! `now`, so they compile for the browser too.

pub mod fns;
pub mod live;
pub mod wire;

use crate::domain::status::ConnectionStatus;
use crate::domain::time::relative;
use crate::domain::{ByteCount, ClientId, Protocol, PublicKey, ServerId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How polling a server went lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerHealth {
    /// Not polled yet.
    Pending,
    /// The last poll succeeded.
    Ok,
    /// The last poll failed; `last_error` says why.
    Error,
}

impl ServerHealth {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ok => "OK",
            Self::Error => "Error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    pub id: ServerId,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub protocol: Protocol,
    /// WireGuard and AmneziaWG.
    pub interface: Option<String>,
    pub command_prefix: Vec<String>,
    /// OpenVPN: the status file read, and the management port used.
    pub openvpn_status_path: Option<String>,
    pub openvpn_management_port: Option<u16>,
    pub host_key_fingerprint: Option<String>,
    pub health: ServerHealth,
    #[serde(with = "wire::instant::option")]
    pub last_poll_at: Option<DateTime<Utc>>,
    #[serde(with = "wire::instant::option")]
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Times the host was found off the wanted state (a disabled peer back
    /// on it) and set right.
    pub drift_count: u32,
    /// What generated client configs say: `host:port` (`null`: the SSH host
    /// and the interface's port) and DNS servers.
    pub endpoint: Option<String>,
    pub dns: Vec<String>,
    pub clients: u32,
    pub online: u32,
    /// Lifetime bytes from clients (uploads) and to them (downloads).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// This calendar month (configured time zone).
    pub month: Traffic,
}

/// Whether a client may connect (revocation comes later; every client polled
/// from a host is active).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessStatus {
    Active,
    Disabled,
}

/// Human-readable traffic and presence, as bots print them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStats {
    pub sent: String,
    pub received: String,
    pub total: String,
    /// "Online", "Never connected", or how long ago the client was last seen.
    pub last_seen: String,
    pub is_online: bool,
}

impl ClientStats {
    pub fn new(
        sent: ByteCount,
        received: ByteCount,
        status: ConnectionStatus,
        last_seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        let last_seen = match (status, last_seen) {
            (ConnectionStatus::Online, _) => "Online".to_owned(),
            (_, Some(at)) => relative(at, now),
            (_, None) => status.label().to_owned(),
        };
        Self {
            sent: sent.human(),
            received: received.human(),
            total: (sent + received).human(),
            last_seen,
            is_online: status.is_online(),
        }
    }
}

/// Bytes one way and the other, with human forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// From the client (its upload).
    pub bytes_sent: u64,
    /// To the client (its download).
    pub bytes_received: u64,
}

impl Traffic {
    pub fn new(sent: u64, received: u64) -> Self {
        Self { bytes_sent: sent, bytes_received: received }
    }

    pub fn total(&self) -> u64 {
        self.bytes_sent.saturating_add(self.bytes_received)
    }
}

/// One client of one server. `bytes_sent` is what the client uploaded (the
/// host's receive counter), `bytes_received` what it downloaded, over its
/// lifetime as accounted; `month` the same for this calendar month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientView {
    pub id: ClientId,
    pub server_id: ServerId,
    pub protocol: Protocol,
    /// The WireGuard public key or the OpenVPN common name.
    pub identity: String,
    pub public_key: Option<PublicKey>,
    pub common_name: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub client_ip: Option<String>,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    pub status: AccessStatus,
    pub connection: ConnectionStatus,
    pub stats: ClientStats,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub month: Traffic,
    #[serde(with = "wire::instant::option")]
    pub last_handshake: Option<DateTime<Utc>>,
    #[serde(with = "wire::instant::option")]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(with = "wire::instant::option")]
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Part of the wanted configuration (see `tollgate sync`).
    pub managed: bool,
    /// WireGuard: present on the host at the last poll. OpenVPN: connected.
    pub on_host: bool,
    pub email: Option<String>,
    /// The admin's note, plain text.
    #[serde(default)]
    pub note: Option<String>,
    pub user_id: Option<i64>,
    /// `manual`, `traffic_limit`, `expired` or `device_limit` when disabled.
    pub disabled_reason: Option<String>,
    /// The access changed and the host has not confirmed it yet (it was
    /// unreachable): the change is applied when it answers.
    pub pending: bool,
    /// Bytes (sent + received) allowed in the limit's period; `null`: none.
    pub traffic_limit: Option<u64>,
    pub traffic_warn_threshold: u8,
    /// `lifetime` or `monthly`.
    pub limit_period: String,
    pub reset_day: Option<u8>,
    #[serde(with = "wire::instant::option")]
    pub expiry_date: Option<DateTime<Utc>>,
    /// Bytes (sent + received) the limit counts now: lifetime, or the
    /// current monthly period's.
    pub limit_used: u64,
}

/// Traffic charts' bars: hourly (48 UTC hours), daily (60 days) and
/// monthly (12 months), oldest first, ending now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryView {
    pub hourly: Vec<crate::domain::history::Bar>,
    pub daily: Vec<crate::domain::history::Bar>,
    pub monthly: Vec<crate::domain::history::Bar>,
}

/// A client's page: the client, its traffic history, its latest sessions
/// and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientDetail {
    pub client: ClientView,
    pub history: HistoryView,
    pub sessions: Vec<SessionView>,
    pub server_name: String,
    /// Only peers generated by the panel have a config to show again.
    pub has_config: bool,
    pub events: Vec<EventView>,
}

/// A user: a person owning clients on any servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    /// 0: no limit.
    pub max_connections: u32,
    #[serde(with = "wire::instant")]
    pub created_at: DateTime<Utc>,
    pub clients: Vec<i64>,
    /// Devices connected now, across every server.
    pub active: u32,
    /// The latest moment any of its devices was seen in a session.
    #[serde(default)]
    #[serde(with = "wire::instant::option")]
    pub last_seen: Option<DateTime<Utc>>,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub id: i64,
    #[serde(with = "wire::instant")]
    pub at: DateTime<Utc>,
    /// An admin's name, or `enforcer`.
    pub actor: String,
    pub action: String,
    pub reason: Option<String>,
    pub figures: Option<String>,
    pub client_id: Option<i64>,
    pub user_id: Option<i64>,
    pub server_id: Option<i64>,
    /// The client's name or identity when it happened.
    pub label: String,
}

impl ClientView {
    /// The name an admin gave, else the common name or the start of the key.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.common_name.clone())
            .or_else(|| self.public_key.map(|k| k.short()))
            .unwrap_or_else(|| self.identity.clone())
    }
}

/// One VPN session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: i64,
    pub server_id: ServerId,
    pub server_name: String,
    pub client_id: ClientId,
    pub client: String,
    /// The user the device belongs to.
    #[serde(default)]
    pub user: Option<String>,
    pub identity: String,
    pub session_key: String,
    pub protocol: Protocol,
    #[serde(with = "wire::instant")]
    pub connected_at: DateTime<Utc>,
    #[serde(with = "wire::instant::option")]
    pub disconnected_at: Option<DateTime<Utc>>,
    #[serde(with = "wire::instant")]
    pub last_seen_at: DateTime<Utc>,
    pub endpoint: Option<String>,
    pub virtual_ip: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub openvpn_client_id: Option<u64>,
}

/// One page of a server's clients (`GET /api/servers/{id}/clients` with
/// any of `q`, `status`, `sort`, `dir`, `page`, `per_page`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientListing {
    pub clients: Vec<ClientView>,
    /// The page shown (the last when the one asked for is past the end), from 1.
    pub page: u32,
    pub pages: u32,
    pub per_page: u32,
    /// Clients the search and status filter kept.
    pub matched: usize,
    /// Every client the server lists.
    pub total: usize,
    /// Of all of them, online now.
    pub online: usize,
}

/// Everything the server page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerDetail {
    pub server: ServerView,
    pub clients: ClientListing,
    /// The listing's query as the server understood it.
    pub query: crate::domain::listing::ClientQuery,
    pub open_sessions: Vec<SessionView>,
    pub recently_disconnected: Vec<SessionView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardView {
    /// The server the dashboard is narrowed to, if any.
    pub server: Option<ServerId>,
    /// Every server, for the filter.
    pub server_names: Vec<ServerRef>,
    /// Per-server counts: the chosen server, or the busiest (most online)
    /// and every failing one, at most [`DashboardView::SERVERS_SHOWN`].
    pub servers: Vec<ServerCount>,
    pub server_count: u32,
    /// Servers whose last poll succeeded.
    pub servers_active: u32,
    pub servers_failing: u32,
    pub clients: u32,
    /// Clients online now.
    pub online: u32,
    /// Users with a device online now (on the chosen server).
    pub online_users: u32,
    pub users: u32,
    /// Open sessions.
    pub active_connections: u64,
    /// The average time the open sessions have lasted so far, in seconds.
    pub average_connection_secs: Option<u64>,
    pub month: Traffic,
    /// The newest open sessions, at most [`DashboardView::SESSIONS_SHOWN`].
    pub active_sessions: Vec<SessionView>,
    /// Sessions ended in the last 24 hours, newest first, at most
    /// [`DashboardView::RECENT_SHOWN`].
    pub recently_disconnected: Vec<SessionView>,
    /// Traffic per day, the last 30 days (rolled up every ten minutes).
    pub daily: Vec<crate::domain::history::Bar>,
}

impl DashboardView {
    pub const SERVERS_SHOWN: usize = 20;
    pub const SESSIONS_SHOWN: u32 = 15;
    pub const RECENT_SHOWN: u32 = 10;
}

/// A server's id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRef {
    pub id: ServerId,
    pub name: String,
}

/// A server's clients online and in all, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCount {
    pub id: ServerId,
    pub name: String,
    pub health: ServerHealth,
    pub online: u32,
    pub clients: u32,
    #[serde(with = "wire::instant::option")]
    pub last_poll_at: Option<DateTime<Utc>>,
}

/// `POST /api/servers`: a WireGuard, AmneziaWG or OpenVPN host reached over SSH.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddServerRequest {
    pub name: String,
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    pub user: String,
    /// A key file on the panel's machine.
    #[serde(default)]
    pub private_key_path: Option<String>,
    /// The key itself (OpenSSH or PEM text). Stored by the panel, never shown again.
    #[serde(default)]
    pub private_key: Option<String>,
    /// WireGuard and AmneziaWG.
    #[serde(default)]
    pub interface: Option<String>,
    /// WireGuard and AmneziaWG: the wg-quick file revokes and restores edit
    /// (default `/etc/wireguard/<interface>.conf`).
    #[serde(default)]
    pub config_path: Option<String>,
    /// OpenVPN: the server's client-config-dir, where revoking a client
    /// writes `disable` (the server must have `client-config-dir` set to it).
    #[serde(default)]
    pub client_config_dir: Option<String>,
    /// WireGuard and AmneziaWG: `host:port` generated client configs connect
    /// to (default: the SSH host and the interface's `ListenPort`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// WireGuard and AmneziaWG: DNS servers for generated client configs,
    /// comma-separated.
    #[serde(default)]
    pub dns: Option<String>,
    /// `wireguard` (default), `amneziawg` or `openvpn`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Words run before the tool, such as `docker exec amnezia-awg`: a string or an array.
    #[serde(default)]
    pub command_prefix: Option<serde_json::Value>,
    /// OpenVPN: a status file to read (any status-version).
    #[serde(default)]
    pub status_path: Option<String>,
    /// OpenVPN: the management port on the host's 127.0.0.1.
    #[serde(default)]
    pub management_port: Option<u16>,
    /// OpenVPN: the management password, if the interface has one.
    #[serde(default)]
    pub management_password: Option<String>,
    /// `SHA256:…` of the host key, if the admin knows it already; without it
    /// the key offered on first contact is pinned.
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedServer {
    pub id: ServerId,
    pub host_key_fingerprint: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_read_like_the_seed_api() {
        let now = DateTime::from_timestamp(1_795_357_357, 0).unwrap();
        let online = ConnectionStatus::at(Some(now), now);
        let s = ClientStats::new(ByteCount::new(1_610_612_736), ByteCount::new(3_435_973_836), online, Some(now), now);
        assert_eq!(
            s,
            ClientStats {
                sent: "1.5 GB".into(),
                received: "3.2 GB".into(),
                total: "4.7 GB".into(),
                last_seen: "Online".into(),
                is_online: true,
            }
        );
        let old = now - chrono::TimeDelta::minutes(42);
        let status = ConnectionStatus::at(Some(old), now);
        assert_eq!(ClientStats::new(ByteCount::ZERO, ByteCount::ZERO, status, Some(old), now).last_seen, "42 min ago");
        let never = ClientStats::new(ByteCount::ZERO, ByteCount::ZERO, ConnectionStatus::NeverConnected, None, now);
        assert_eq!((never.last_seen.as_str(), never.is_online), ("Never connected", false));
    }
}
