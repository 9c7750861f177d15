//! The storage port. All SQL lives behind [`Store`]; each backend implements
//! it and owns its migrations folder (`migrations/<backend>/`).

pub mod sqlite;

use crate::api::Protocol;
use crate::domain::wg_dump::WgDump;
use crate::domain::{
    ByteCount, ClientId, CommandPrefix, HostAddress, InterfaceName, PublicKey, ServerId, ServerName, SshUser, UserId,
    Username,
};
use crate::server::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the message names what collided.
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The database is busy (locked) beyond the busy timeout.
    #[error("the database is busy; try again")]
    Busy,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored value no longer parses (edited by hand, or a bug).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended codes included.
            if let Some(code) = db.code() {
                if let Ok(n) = code.parse::<i64>() {
                    if matches!(n & 0xff, 5 | 6) {
                        return StoreError::Busy;
                    }
                }
            }
        }
        StoreError::Database(e)
    }
}

/// How the panel authenticates to a host's sshd.
#[derive(Debug, Clone)]
pub enum SshKeySource {
    /// A private key file on the panel's machine.
    File(PathBuf),
    /// The private key text, stored in the database.
    Inline(Secret),
}

/// The host key pinned for a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyPin {
    /// The key as an OpenSSH public-key line (`ssh-ed25519 AAAA…`).
    pub openssh: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct NewServer {
    pub name: ServerName,
    pub protocol: Protocol,
    pub host: HostAddress,
    pub port: u16,
    pub user: SshUser,
    pub key: SshKeySource,
    pub interface: InterfaceName,
    pub command_prefix: CommandPrefix,
    pub host_key: HostKeyPin,
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
    pub interface: InterfaceName,
    pub command_prefix: CommandPrefix,
    pub host_key: Option<HostKeyPin>,
    pub created_at: DateTime<Utc>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Clients present on the host at the last poll.
    pub clients: u32,
    /// Of those, online (handshake within the online window) at `now`.
    pub online: u32,
}

#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub id: ClientId,
    pub server_id: ServerId,
    pub public_key: PublicKey,
    pub name: Option<String>,
    pub disabled: bool,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    pub latest_handshake: Option<DateTime<Utc>>,
    /// The host's receive counter: what the client uploaded.
    pub rx: ByteCount,
    /// The host's transmit counter: what the client downloaded.
    pub tx: ByteCount,
    pub last_sync_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AdminRecord {
    pub id: UserId,
    pub username: Username,
    pub password_hash: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_admin(
        &self,
        username: &Username,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UserId, StoreError>;
    async fn set_admin_password(&self, username: &Username, password_hash: &str) -> Result<(), StoreError>;
    /// Deletes the admin and all their sessions.
    async fn delete_admin(&self, username: &Username) -> Result<(), StoreError>;
    async fn admins(&self) -> Result<Vec<Username>, StoreError>;
    async fn admin_by_username(&self, username: &str) -> Result<Option<AdminRecord>, StoreError>;

    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        admin: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The admin a live session belongs to.
    async fn session_admin(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(UserId, Username)>, StoreError>;
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn insert_server(&self, server: &NewServer, now: DateTime<Utc>) -> Result<ServerId, StoreError>;
    async fn servers(&self, now: DateTime<Utc>) -> Result<Vec<ServerRecord>, StoreError>;
    async fn server(&self, id: ServerId, now: DateTime<Utc>) -> Result<Option<ServerRecord>, StoreError>;
    async fn pin_host_key(&self, id: ServerId, pin: &HostKeyPin) -> Result<(), StoreError>;

    /// Writes every peer of `dump` and the server's poll state in one transaction.
    async fn record_poll_success(&self, id: ServerId, at: DateTime<Utc>, dump: &WgDump) -> Result<(), StoreError>;
    async fn record_poll_failure(&self, id: ServerId, at: DateTime<Utc>, error: &str) -> Result<(), StoreError>;
    /// Clients present on the server's host at the last poll.
    async fn clients(&self, server: ServerId) -> Result<Vec<ClientRecord>, StoreError>;
}
