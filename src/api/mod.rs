//! What the panel says about servers and clients: the shapes shared by the JSON
//! API, the server functions and the UI. Views are built from plain values and
//! `now`, so they compile for the browser too.

pub mod fns;

use crate::domain::status::ConnectionStatus;
use crate::domain::time::relative;
use crate::domain::{ByteCount, ClientId, PublicKey, ServerId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The VPN software a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Wireguard,
}

impl Protocol {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "wireguard" | "wg" => Some(Self::Wireguard),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wireguard => "wireguard",
        }
    }
}

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
    pub interface: String,
    pub protocol: Protocol,
    pub command_prefix: Vec<String>,
    pub host_key_fingerprint: Option<String>,
    pub health: ServerHealth,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub clients: u32,
    pub online: u32,
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
    /// "Online", "Never connected", or how long ago the last handshake was.
    pub last_seen: String,
    pub is_online: bool,
}

impl ClientStats {
    pub fn new(
        sent: ByteCount,
        received: ByteCount,
        last_handshake: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        let status = ConnectionStatus::at(last_handshake, now);
        let last_seen = match (status, last_handshake) {
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

/// One client of one server. `bytes_sent` is what the client uploaded (the
/// host's receive counter), `bytes_received` what it downloaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientView {
    pub id: ClientId,
    pub server_id: ServerId,
    pub name: Option<String>,
    pub public_key: PublicKey,
    pub client_ip: Option<String>,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    pub status: AccessStatus,
    pub connection: ConnectionStatus,
    pub stats: ClientStats,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub last_handshake: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
}

impl ClientView {
    /// The name an admin gave, else the start of the public key.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.public_key.short())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardView {
    pub servers: Vec<ServerView>,
    pub clients: u32,
    pub online: u32,
    pub servers_failing: u32,
}

/// `POST /api/servers`: a WireGuard host reached over SSH.
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
    pub interface: String,
    #[serde(default)]
    pub protocol: Option<String>,
    /// Words run before `wg`, such as `docker exec amnezia-awg`: a string or an array.
    #[serde(default)]
    pub command_prefix: Option<serde_json::Value>,
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
        let s = ClientStats::new(ByteCount::new(1_610_612_736), ByteCount::new(3_435_973_836), Some(now), now);
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
        assert_eq!(ClientStats::new(ByteCount::ZERO, ByteCount::ZERO, Some(old), now).last_seen, "42 min ago");
        let never = ClientStats::new(ByteCount::ZERO, ByteCount::ZERO, None, now);
        assert_eq!((never.last_seen.as_str(), never.is_online), ("Never connected", false));
    }
}
