//! [`Store`] on an embedded SQLite file: WAL journal, a busy timeout, one
//! writer connection and a small pool of read-only readers.
//!
//! Poll ingestion (`sqlite_ingest`) and reports (`sqlite_usage`) live in
//! their own files; this one holds the connection setup, admins, sessions,
//! servers and clients.

use super::sqlite_ingest::current_state;
use super::state::{ClientState, ServerState};
use super::{
    AdminRecord, ClientRecord, HostKeyPin, NewServer, OpenVpnAccess, OpenvpnPoll, PendingSamples, PollOutcome,
    ServerRecord, SessionFilter, SessionRecord, SshKeySource, Store, StoreError, UsageQuery, UsageRow, WireguardPoll,
};
use crate::api::Protocol;
use crate::domain::accounting::Counters;
use crate::domain::status::ONLINE_WINDOW;
use crate::domain::{
    ClientId, CommandPrefix, HostAddress, InterfaceName, RemotePath, ServerId, ServerName, SshUser, UserId, Username,
};
use crate::server::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer checkpoints the write-ahead log itself only past this many
/// pages (64 MiB); normally [`Store::checkpoint`], called in the background,
/// keeps it far smaller, so a poll's commit never pays for a checkpoint.
const WAL_BACKSTOP_PAGES: &str = "16384";

#[derive(Clone)]
pub struct SqliteStore {
    pub(super) write: SqlitePool,
    pub(super) read: SqlitePool,
    /// One connection that moves the write-ahead log into the database
    /// file, beside the writer rather than in its commits.
    checkpointer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url`, applies pending
    /// migrations, and restricts the file to its owner: it holds password
    /// hashes and may hold SSH keys.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        restrict_permissions(options.get_filename().to_path_buf());
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(Self { write, read, checkpointer })
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.checkpointer.close().await;
        self.write.close().await;
    }
}

fn restrict_permissions(path: PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let mut paths = vec![path.clone()];
    for suffix in ["-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        paths.push(PathBuf::from(p));
    }
    for p in paths {
        if p.exists() {
            if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path = %p.display(), error = %e, "could not restrict database file permissions");
            }
        }
    }
}

pub(super) fn secs(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

pub(super) fn instant(secs: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| StoreError::Corrupt(format!("timestamp {secs}")))
}

pub(super) fn opt_instant(secs: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    secs.map(instant).transpose()
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// SQLite integers are signed; byte counts beyond 8 EiB are clamped.
pub(super) fn db_bytes(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn bytes(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn counters(row: &SqliteRow, rx: &str, tx: &str) -> Result<Counters, StoreError> {
    Ok(Counters::new(bytes(row.try_get(rx)?), bytes(row.try_get(tx)?)))
}

pub(super) fn protocol(text: &str) -> Result<Protocol, StoreError> {
    Protocol::parse(text).ok_or_else(|| corrupt("protocol", text))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

const SERVER_COLUMNS: &str = "s.id, s.name, s.protocol, s.host, s.port, s.ssh_user, s.ssh_key_path, \
    s.ssh_private_key, s.interface, s.command_prefix, s.openvpn_status_path, s.openvpn_management_port, \
    s.openvpn_management_password, s.host_key, s.host_key_fingerprint, s.created_at, \
    s.last_poll_at, s.last_success_at, s.last_error, s.consecutive_failures, s.total_rx, s.total_tx, \
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
    conn: &mut SqliteConnection,
    row: &SqliteRow,
    now: DateTime<Utc>,
) -> Result<ServerRecord, StoreError> {
    let mut server = server_from_row(row)?;
    match current_state(conn, server.id).await {
        Ok(state) => (server.clients, server.online) = client_counts(server.protocol, &state, now),
        // One damaged server must not hide the others: its polls fail with
        // the same error until the row is repaired from a backup.
        Err(StoreError::Corrupt(e)) => {
            tracing::error!(server = %server.name, error = %e, "stored client figures are damaged");
            server.last_error = Some(format!("stored client figures are damaged: {e}"));
        }
        Err(e) => return Err(e),
    }
    Ok(server)
}

fn server_from_row(row: &SqliteRow) -> Result<ServerRecord, StoreError> {
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
        (None, Some(k)) => SshKeySource::Inline(Secret::new(k)),
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
            management_password: management_password.map(Secret::new),
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
        created_at: instant(row.try_get("created_at")?)?,
        last_poll_at: opt_instant(row.try_get("last_poll_at")?)?,
        last_success_at: opt_instant(row.try_get("last_success_at")?)?,
        last_error: row.try_get("last_error")?,
        consecutive_failures: count("consecutive_failures")?,
        clients: 0,
        online: 0,
        total: counters(row, "total_rx", "total_tx")?,
        month: counters(row, "month_rx", "month_tx")?,
    })
}

const CLIENT_COLUMNS: &str = "c.id, c.server_id, s.protocol, c.identity, c.name, c.username, c.access, c.managed, \
    c.endpoint, c.allowed_ips, c.desired_allowed_ips, c.virtual_ip, c.seed_latest_handshake, c.seed_last_seen_at, \
    c.seed_on_host, c.seed_total_rx, c.seed_total_tx, COALESCE(m.rx, 0) AS month_rx, COALESCE(m.tx, 0) AS month_tx, \
    c.seed_last_sync_at \
    FROM clients c JOIN servers s ON s.id = c.server_id \
    LEFT JOIN usage_monthly m ON m.client_id = c.id AND m.month = ?1";

/// A client row with its live figures from the server's state (`live`);
/// without an entry, the row's own figures.
fn client_from_row(row: &SqliteRow, live: Option<&ClientState>, month: &str) -> Result<ClientRecord, StoreError> {
    let allowed: String = row.try_get("allowed_ips")?;
    let desired: Option<String> = row.try_get("desired_allowed_ips")?;
    let access: String = row.try_get("access")?;
    let ledger = counters(row, "month_rx", "month_tx")?;
    let (latest_handshake, last_seen, on_host, total, month, last_sync_at) = match live {
        Some(c) => (c.latest_handshake, c.last_seen, c.on_host, c.total, c.month_usage(month, ledger), c.last_sync_at),
        None => (
            row.try_get("seed_latest_handshake")?,
            row.try_get("seed_last_seen_at")?,
            row.try_get::<i64, _>("seed_on_host")? != 0,
            counters(row, "seed_total_rx", "seed_total_tx")?,
            ledger,
            row.try_get("seed_last_sync_at")?,
        ),
    };
    Ok(ClientRecord {
        id: ClientId::new(row.try_get("id")?),
        server_id: ServerId::new(row.try_get("server_id")?),
        protocol: protocol(&row.try_get::<String, _>("protocol")?)?,
        identity: row.try_get("identity")?,
        name: row.try_get("name")?,
        username: row.try_get("username")?,
        disabled: access == "disabled",
        managed: row.try_get::<i64, _>("managed")? != 0,
        endpoint: row.try_get("endpoint")?,
        allowed_ips: split_list(&allowed),
        desired_allowed_ips: desired.as_deref().map(split_list),
        virtual_ip: row.try_get("virtual_ip")?,
        latest_handshake: opt_instant(latest_handshake)?,
        last_seen: opt_instant(last_seen)?,
        on_host,
        total,
        month,
        last_sync_at: instant(last_sync_at)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_admin(
        &self,
        username: &Username,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UserId, StoreError> {
        let result = sqlx::query("INSERT INTO admins (username, password_hash, created_at) VALUES (?, ?, ?)")
            .bind(username.as_str())
            .bind(password_hash)
            .bind(secs(now))
            .execute(&self.write)
            .await;
        match result {
            Ok(done) => Ok(UserId::new(done.last_insert_rowid())),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("an admin named {username} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn set_admin_password(&self, username: &Username, password_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query("UPDATE admins SET password_hash = ? WHERE username = ?")
            .bind(password_hash)
            .bind(username.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("admin"));
        }
        // A new password ends every existing session of that admin.
        sqlx::query("DELETE FROM sessions WHERE admin_id = (SELECT id FROM admins WHERE username = ?)")
            .bind(username.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_admin(&self, username: &Username) -> Result<(), StoreError> {
        let done =
            sqlx::query("DELETE FROM admins WHERE username = ?").bind(username.as_str()).execute(&self.write).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("admin"));
        }
        Ok(())
    }

    async fn admins(&self) -> Result<Vec<Username>, StoreError> {
        let rows = sqlx::query("SELECT username FROM admins ORDER BY username").fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("username")?;
                Username::parse(&name).map_err(|e| corrupt("username", e))
            })
            .collect()
    }

    async fn admin_by_username(&self, username: &str) -> Result<Option<AdminRecord>, StoreError> {
        let row = sqlx::query("SELECT id, username, password_hash FROM admins WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| {
            let name: String = r.try_get("username")?;
            Ok(AdminRecord {
                id: UserId::new(r.try_get("id")?),
                username: Username::parse(&name).map_err(|e| corrupt("username", e))?,
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        admin: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (token_hash, admin_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&token_hash[..])
            .bind(admin.get())
            .bind(secs(now))
            .bind(secs(expires_at))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn session_admin(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(UserId, Username)>, StoreError> {
        let row = sqlx::query(
            "SELECT a.id, a.username FROM sessions s JOIN admins a ON a.id = s.admin_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(&token_hash[..])
        .bind(secs(now))
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            let name: String = r.try_get("username")?;
            Ok((UserId::new(r.try_get("id")?), Username::parse(&name).map_err(|e| corrupt("username", e))?))
        })
        .transpose()
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?").bind(&token_hash[..]).execute(&self.write).await?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= ?").bind(secs(now)).execute(&self.write).await?;
        Ok(done.rows_affected())
    }

    async fn insert_server(&self, server: &NewServer, now: DateTime<Utc>) -> Result<ServerId, StoreError> {
        let (key_path, key_text) = match &server.key {
            SshKeySource::File(p) => (Some(p.to_string_lossy().into_owned()), None),
            SshKeySource::Inline(s) => (None, Some(s.expose().to_owned())),
        };
        let prefix = serde_json::to_string(server.command_prefix.parts()).map_err(|e| corrupt("command prefix", e))?;
        let ovpn = server.openvpn.as_ref();
        let result = sqlx::query(
            "INSERT INTO servers (name, protocol, host, port, ssh_user, ssh_key_path, ssh_private_key, \
             interface, command_prefix, openvpn_status_path, openvpn_management_port, openvpn_management_password, \
             host_key, host_key_fingerprint, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(server.name.as_str())
        .bind(server.protocol.as_str())
        .bind(server.host.as_str())
        .bind(i64::from(server.port))
        .bind(server.user.as_str())
        .bind(key_path)
        .bind(key_text)
        .bind(server.interface.as_ref().map(|i| i.as_str().to_owned()))
        .bind(prefix)
        .bind(ovpn.and_then(|o| o.status_path.as_ref()).map(|p| p.as_str().to_owned()))
        .bind(ovpn.and_then(|o| o.management_port).map(i64::from))
        .bind(ovpn.and_then(|o| o.management_password.as_ref()).map(|p| p.expose().to_owned()))
        .bind(&server.host_key.openssh)
        .bind(&server.host_key.fingerprint)
        .bind(secs(now))
        .execute(&self.write)
        .await;
        match result {
            Ok(done) => Ok(ServerId::new(done.last_insert_rowid())),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("a server named {} already exists", server.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn servers(&self, now: DateTime<Utc>, month: &str) -> Result<Vec<ServerRecord>, StoreError> {
        // One read transaction: the rows and the states are one snapshot.
        let mut tx = self.read.begin().await?;
        let sql = format!("SELECT {SERVER_COLUMNS} {SERVER_FROM} ORDER BY s.name COLLATE NOCASE, s.id");
        let rows = sqlx::query(&sql).bind(month).fetch_all(&mut *tx).await?;
        let mut servers = Vec::with_capacity(rows.len());
        for row in &rows {
            servers.push(server_with_counts(&mut tx, row, now).await?);
        }
        tx.commit().await?;
        Ok(servers)
    }

    async fn server(&self, id: ServerId, now: DateTime<Utc>, month: &str) -> Result<Option<ServerRecord>, StoreError> {
        let mut tx = self.read.begin().await?;
        let sql = format!("SELECT {SERVER_COLUMNS} {SERVER_FROM} WHERE s.id = ?2");
        let row = sqlx::query(&sql).bind(month).bind(id.get()).fetch_optional(&mut *tx).await?;
        let server = match row {
            Some(row) => Some(server_with_counts(&mut tx, &row, now).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(server)
    }

    async fn pin_host_key(&self, id: ServerId, pin: &HostKeyPin) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE servers SET host_key = ?, host_key_fingerprint = ? WHERE id = ?")
            .bind(&pin.openssh)
            .bind(&pin.fingerprint)
            .bind(id.get())
            .execute(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("server"));
        }
        Ok(())
    }

    async fn apply_wireguard_poll(&self, id: ServerId, poll: &WireguardPoll<'_>) -> Result<PollOutcome, StoreError> {
        super::sqlite_ingest::apply_wireguard(self, id, poll).await
    }

    async fn apply_openvpn_poll(&self, id: ServerId, poll: &OpenvpnPoll<'_>) -> Result<PollOutcome, StoreError> {
        super::sqlite_ingest::apply_openvpn(self, id, poll).await
    }

    async fn record_poll_failure(&self, id: ServerId, at: DateTime<Utc>, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE servers SET last_poll_at = ?, last_error = ?, \
             consecutive_failures = consecutive_failures + 1 WHERE id = ?",
        )
        .bind(secs(at))
        .bind(error)
        .bind(id.get())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn clients(&self, server: ServerId, month: &str) -> Result<Vec<ClientRecord>, StoreError> {
        let mut tx = self.read.begin().await?;
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} WHERE c.server_id = ?2 ORDER BY COALESCE(c.name, c.identity) COLLATE NOCASE"
        );
        let rows = sqlx::query(&sql).bind(month).bind(server.get()).fetch_all(&mut *tx).await?;
        let state = current_state(&mut tx, server).await?;
        tx.commit().await?;
        let live = state.into_by_id();
        let mut clients = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let client = client_from_row(row, live.get(&id), month)?;
            // WireGuard: peers on the host or part of the wanted configuration.
            if client.on_host || client.managed || client.protocol == Protocol::Openvpn {
                clients.push(client);
            }
        }
        Ok(clients)
    }

    async fn client(&self, id: ClientId, month: &str) -> Result<Option<ClientRecord>, StoreError> {
        let mut tx = self.read.begin().await?;
        let sql = format!("SELECT {CLIENT_COLUMNS} WHERE c.id = ?2");
        let Some(row) = sqlx::query(&sql).bind(month).bind(id.get()).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let state = current_state(&mut tx, ServerId::new(row.try_get("server_id")?)).await?;
        tx.commit().await?;
        let live = state.clients.iter().find(|c| c.client_id == id.get());
        client_from_row(&row, live, month).map(Some)
    }

    async fn set_managed(&self, server: ServerId, peers: &[(String, Vec<String>)]) -> Result<(), StoreError> {
        let json: Vec<(&str, String)> = peers.iter().map(|(id, ips)| (id.as_str(), ips.join(","))).collect();
        let json = serde_json::to_string(&json).map_err(|e| corrupt("managed peers", e))?;
        sqlx::query(
            "UPDATE clients SET managed = 1, desired_allowed_ips = j.value ->> 1 \
             FROM json_each(?2) AS j WHERE clients.server_id = ?1 AND clients.identity = j.value ->> 0",
        )
        .bind(server.get())
        .bind(json)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
        super::sqlite_usage::sessions(self, filter).await
    }

    async fn session(&self, id: i64) -> Result<Option<SessionRecord>, StoreError> {
        super::sqlite_usage::session(self, id).await
    }

    async fn delete_sessions_ended_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // In batches, so the writer is never held for long.
        let mut deleted = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM connections WHERE id IN \
                 (SELECT id FROM connections WHERE disconnected_at < ? LIMIT 5000)",
            )
            .bind(secs(before))
            .execute(&self.write)
            .await?;
            deleted += done.rows_affected();
            if done.rows_affected() < 5000 {
                return Ok(deleted);
            }
        }
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        super::sqlite_usage::usage(self, query).await
    }

    async fn pending_samples(&self) -> Result<PendingSamples, StoreError> {
        super::sqlite_usage::pending_samples(self).await
    }

    async fn store_rollup(
        &self,
        pending: &PendingSamples,
        daily: &[(i64, String, Counters)],
        keep_samples_since: DateTime<Utc>,
        keep_hourly_since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        super::sqlite_usage::store_rollup(self, pending, daily, keep_samples_since, keep_hourly_since).await
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        // PASSIVE: copies what it can without waiting for readers or the
        // writer, so it never holds up a poll.
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.checkpointer).await?;
        Ok(())
    }
}
