//! The records the store reads and writes: servers, clients, sessions,
//! events, users, and what a poll brings and gives back.

use super::Fence;
use crate::domain::accounting::Counters;
use crate::domain::client_change::ClientPolicy;
use crate::domain::client_config::ClientDefaults;
use crate::domain::openvpn::OvpnStatus;
use crate::domain::policy::{DisableReason, PeriodMark};
use crate::domain::wg_dump::WgDump;
use crate::domain::Protocol;
use crate::domain::{
    ClientId, CommandPrefix, HostAddress, InterfaceName, RemotePath, ServerId, ServerName, SshUser, UserId, Username,
};
use crate::domain::{HostKeyPin, IpNetwork, PublicKey, Secret, SshKeySource};
use chrono::{DateTime, Utc};

/// Where an OpenVPN server's state is read: its management interface on the
/// host's loopback (reached through the SSH connection), a status file, or both
/// (management first).
#[derive(Debug, Clone)]
pub struct OpenVpnAccess {
    pub status_path: Option<RemotePath>,
    pub management_port: Option<u16>,
    pub management_password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct NewServer {
    pub name: ServerName,
    pub protocol: Protocol,
    pub host: HostAddress,
    pub port: u16,
    pub user: SshUser,
    pub key: SshKeySource,
    /// WireGuard and AmneziaWG.
    pub interface: Option<InterfaceName>,
    pub command_prefix: CommandPrefix,
    pub openvpn: Option<OpenVpnAccess>,
    pub host_key: HostKeyPin,
    /// WireGuard and AmneziaWG: the wg-quick file; `None`: the default.
    pub config_path: Option<RemotePath>,
    /// OpenVPN: the server's client-config-dir (revokes write `disable` there).
    pub client_config_dir: Option<RemotePath>,
    /// WireGuard and AmneziaWG: what generated client configs say.
    pub client_defaults: ClientDefaults,
}

#[derive(Debug, Clone)]
pub struct ServerRecord {
    pub id: ServerId,
    pub name: ServerName,
    pub protocol: Protocol,
    pub host: HostAddress,
    pub port: u16,
    pub user: SshUser,
    pub key: SshKeySource,
    pub interface: Option<InterfaceName>,
    pub command_prefix: CommandPrefix,
    pub openvpn: Option<OpenVpnAccess>,
    pub host_key: Option<HostKeyPin>,
    /// WireGuard and AmneziaWG: the wg-quick file; `None`: the default.
    pub config_path: Option<RemotePath>,
    /// OpenVPN: the server's client-config-dir.
    pub client_config_dir: Option<RemotePath>,
    pub client_defaults: ClientDefaults,
    pub created_at: DateTime<Utc>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Times the host was found off the wanted state and set right.
    pub drift_count: u32,
    /// Clients present on the host (WireGuard) or known (OpenVPN).
    pub clients: u32,
    /// Of those, online at `now`.
    pub online: u32,
    pub total: Counters,
    /// Traffic in the month asked for.
    pub month: Counters,
}

#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub id: ClientId,
    pub server_id: ServerId,
    pub protocol: Protocol,
    /// WireGuard public key, or OpenVPN common name.
    pub identity: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The admin's note (plain text).
    pub note: Option<String>,
    /// The person this device belongs to.
    pub user_id: Option<UserId>,
    pub username: Option<String>,
    pub disabled: bool,
    pub disabled_reason: Option<DisableReason>,
    pub policy: ClientPolicy,
    /// The threshold crossing last warned about (`<period>:<limit>`).
    pub warned_usage: Option<String>,
    /// The local day of the last expiry warning (`YYYY-MM-DD`).
    pub warned_expiry_day: Option<String>,
    /// The monthly limit's current period, once begun.
    pub period: Option<PeriodMark>,
    /// The access changed and the host has not confirmed it yet.
    pub pending: bool,
    pub managed: bool,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    pub desired_allowed_ips: Option<Vec<String>>,
    pub virtual_ip: Option<String>,
    pub latest_handshake: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// WireGuard: in the last poll. OpenVPN: connected now.
    pub on_host: bool,
    pub total: Counters,
    /// Traffic in the month asked for.
    pub month: Counters,
    pub last_sync_at: DateTime<Utc>,
}

/// One page of a server's clients and the counts around it.
#[derive(Debug, Clone)]
pub struct ClientPage {
    pub clients: Vec<ClientRecord>,
    pub selection: crate::domain::listing::Selection,
}

impl ClientRecord {
    /// The client's name, else its identity: how events and messages name it.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.identity.clone())
    }
}

/// One client's new access, with its event.
#[derive(Debug, Clone)]
pub struct AccessChange {
    pub id: ClientId,
    /// `None`: active.
    pub reason: Option<DisableReason>,
    /// Made only if the client's access is still this (`Some(None)`:
    /// active): a decision taken on a snapshot never overrides a change
    /// made since, such as an admin's revoke.
    pub expected: Option<Option<DisableReason>>,
    pub event: NewEvent,
}

/// A peer generated by the panel, as stored.
#[derive(Debug, Clone)]
pub struct GeneratedClient {
    pub public_key: PublicKey,
    pub name: Option<String>,
    pub email: Option<String>,
    pub user_id: Option<UserId>,
    pub address: IpNetwork,
    /// The wg-quick text its device imports (it holds the private and
    /// preshared keys): stored sealed.
    pub config: Secret,
    pub at: DateTime<Utc>,
}

/// A VPN session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: i64,
    pub server_id: ServerId,
    pub server_name: String,
    pub client_id: ClientId,
    pub identity: String,
    pub client_name: Option<String>,
    /// The name of the user the client belongs to.
    pub user: Option<String>,
    pub session_key: String,
    pub protocol: Protocol,
    pub connected_at: DateTime<Utc>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub last_seen_at: DateTime<Utc>,
    pub endpoint: Option<String>,
    pub virtual_ip: Option<String>,
    pub bytes: Counters,
    pub openvpn_client_id: Option<u64>,
}

/// A client's editable fields, as they are to be after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    pub note: Option<String>,
    pub user_id: Option<UserId>,
    pub policy: ClientPolicy,
}

impl ClientUpdate {
    /// The client's fields as they are: a change starts from here.
    pub fn of(c: &ClientRecord) -> Self {
        Self {
            name: c.name.clone(),
            email: c.email.clone(),
            note: c.note.clone(),
            user_id: c.user_id,
            policy: c.policy,
        }
    }
}

/// An action to log: by an admin (`actor` = the name) or the enforcer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub reason: Option<String>,
    /// "usage 10.7 GB of 10.0 GB", "3/2 devices", "traffic_limit 5.0 GB → none".
    pub figures: Option<String>,
    pub client_id: Option<ClientId>,
    pub user_id: Option<UserId>,
    pub server_id: Option<ServerId>,
    /// The client's name or identity when it happened.
    pub label: String,
}

impl NewEvent {
    /// `actor`'s `action` on client `c` at `at`, without reason or figures.
    pub fn about(c: &ClientRecord, at: DateTime<Utc>, actor: &str, action: &str) -> Self {
        Self {
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            reason: None,
            figures: None,
            client_id: Some(c.id),
            user_id: c.user_id,
            server_id: Some(c.server_id),
            label: c.label(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    pub event: NewEvent,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub client: Option<ClientId>,
    pub server: Option<ServerId>,
    pub action: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub server: Option<ServerId>,
    /// Only this client's sessions.
    pub client: Option<ClientId>,
    /// Only open sessions.
    pub open: bool,
    /// Only sessions that ended at or after this instant.
    pub ended_since: Option<DateTime<Utc>>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRecord {
    pub id: UserId,
    pub username: Username,
    pub password_hash: String,
}

/// A poll of a WireGuard or AmneziaWG interface, ready to apply.
pub struct WireguardPoll<'a> {
    /// WireGuard or AmneziaWG.
    pub protocol: Protocol,
    pub at: DateTime<Utc>,
    /// The calendar month of `at` in the configured time zone.
    pub month: &'a str,
    pub dump: &'a WgDump,
    /// Peers first seen in this poll become managed (part of the wanted
    /// configuration). True when a server is added.
    pub import: bool,
    /// The lease this poll was taken under; refused if it is no longer the
    /// server's (`None`: a one-off poll outside the replicas' leases).
    pub fence: Option<&'a Fence>,
}

/// A poll of an OpenVPN server, ready to apply.
pub struct OpenvpnPoll<'a> {
    pub at: DateTime<Utc>,
    pub month: &'a str,
    pub status: &'a OvpnStatus,
    /// As [`WireguardPoll::fence`].
    pub fence: Option<&'a Fence>,
}

/// What applying a poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PollOutcome {
    /// False when the poll was not newer than the last one applied.
    pub applied: bool,
    /// Peers or sessions in the poll.
    pub sources: usize,
    pub new: Counters,
    pub carried: Counters,
    pub sessions_opened: usize,
    pub sessions_closed: usize,
    /// Every client's figures after the poll (`None` when not applied, and
    /// in a reply from another replica).
    #[serde(skip)]
    pub figures: Option<PollFigures>,
}

/// Every client's figures after one applied poll, and which poll that was
/// (the server's `polls_applied` it made): an enforcement pass trusts them
/// only if no other poll was applied since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollFigures {
    pub polls_applied: i64,
    pub clients: Vec<LiveFigure>,
}

/// What a deleted WireGuard client's identity gets after its key:
/// `<key>#deleted-<id>`. The key is free again for a new client.
pub const DELETED_MARK: &str = "#deleted-";

/// A client's live figures after a poll: what the enforcer's watch needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveFigure {
    pub client: ClientId,
    /// Lifetime bytes, sent + received.
    pub total: u64,
    /// WireGuard: in the poll. OpenVPN: connected.
    pub on_host: bool,
}

/// What tells an enforcement pass whether anything changed since the last
/// one: the server's policy version (see migration 0013) and its count of
/// applied polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnforcementStamp {
    pub policy_version: i64,
    pub polls_applied: i64,
}

/// One row of a usage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub server: String,
    pub identity: String,
    pub name: Option<String>,
    /// `YYYY-MM`, or `None` for lifetime totals.
    pub month: Option<String>,
    pub bytes: Counters,
}

#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// One month; `None`: every month.
    pub month: Option<String>,
    /// Lifetime totals instead of monthly rows.
    pub accumulated: bool,
    pub identity: Option<String>,
    pub server: Option<ServerId>,
}

/// An hourly bucket of rolled-up samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyBucket {
    pub client_id: i64,
    pub hour: i64,
    pub bytes: Counters,
}

/// Raw samples not yet rolled up: those committed after the roll-up mark
/// `from` up to `to` (positions in commit order), summed per client and hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingSamples {
    pub from: i64,
    pub to: i64,
    pub hourly: Vec<HourlyBucket>,
}

/// A client's traffic buckets: rolled-up hours (start, Unix seconds), days
/// (`YYYY-MM-DD`) and months (`YYYY-MM`, the ledger), and the hours of
/// samples not rolled up yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHistory {
    pub hourly: Vec<(i64, Counters)>,
    pub daily: Vec<(String, Counters)>,
    pub monthly: Vec<(String, Counters)>,
    pub pending: Vec<(i64, Counters)>,
}

/// Where a client's history starts: an hour (Unix seconds), a day and a
/// month (keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySince {
    pub hour: i64,
    pub day: String,
    pub month: String,
}

/// A user (a person owning clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    /// 0: no limit.
    pub max_connections: u32,
    pub created_at: DateTime<Utc>,
    /// The latest moment any of its devices was seen in a session.
    pub last_seen: Option<DateTime<Utc>>,
    pub clients: Vec<ClientId>,
}

/// One of a user's live sessions: an open OpenVPN session, or a WireGuard
/// client on its host with a handshake within the online window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveDevice {
    pub client: ClientId,
    pub server: ServerId,
    pub started: DateTime<Utc>,
}

/// A user's fields as they are to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFields {
    pub name: String,
    pub email: Option<String>,
    pub max_connections: u32,
}
