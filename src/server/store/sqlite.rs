//! [`Store`] on an embedded SQLite file: WAL journal, a busy timeout, one
//! writer connection and a small pool of read-only readers.

use super::{AdminRecord, ClientRecord, HostKeyPin, NewServer, ServerRecord, SshKeySource, Store, StoreError};
use crate::api::Protocol;
use crate::domain::status::ONLINE_WINDOW;
use crate::domain::wg_dump::WgDump;
use crate::domain::{
    ByteCount, ClientId, CommandPrefix, HostAddress, InterfaceName, PublicKey, ServerId, ServerName, SshUser, UserId,
    Username,
};
use crate::server::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::Row;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
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
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        restrict_permissions(options.get_filename().to_path_buf());
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { write, read })
    }

    pub async fn close(&self) {
        self.read.close().await;
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

fn secs(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn instant(secs: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| StoreError::Corrupt(format!("timestamp {secs}")))
}

fn opt_instant(secs: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    secs.map(instant).transpose()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn bytes_to_db(b: ByteCount) -> i64 {
    i64::try_from(b.get()).unwrap_or(i64::MAX)
}

fn bytes_from_db(v: i64) -> ByteCount {
    ByteCount::new(u64::try_from(v).unwrap_or(0))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

const SERVER_COLUMNS: &str = "s.id, s.name, s.protocol, s.host, s.port, s.ssh_user, s.ssh_key_path, \
    s.ssh_private_key, s.interface, s.command_prefix, s.host_key, s.host_key_fingerprint, s.created_at, \
    s.last_poll_at, s.last_success_at, s.last_error, s.consecutive_failures, \
    (SELECT COUNT(*) FROM clients c WHERE c.server_id = s.id AND c.on_host = 1) AS client_count, \
    (SELECT COUNT(*) FROM clients c WHERE c.server_id = s.id AND c.on_host = 1 \
        AND c.latest_handshake > ?1) AS online_count";

fn server_from_row(row: &SqliteRow) -> Result<ServerRecord, StoreError> {
    let name: String = row.try_get("name")?;
    let protocol: String = row.try_get("protocol")?;
    let host: String = row.try_get("host")?;
    let port: i64 = row.try_get("port")?;
    let user: String = row.try_get("ssh_user")?;
    let key_path: Option<String> = row.try_get("ssh_key_path")?;
    let key_text: Option<String> = row.try_get("ssh_private_key")?;
    let interface: String = row.try_get("interface")?;
    let prefix: String = row.try_get("command_prefix")?;
    let host_key: Option<String> = row.try_get("host_key")?;
    let fingerprint: Option<String> = row.try_get("host_key_fingerprint")?;
    let key = match (key_path, key_text) {
        (Some(p), None) => SshKeySource::File(PathBuf::from(p)),
        (None, Some(k)) => SshKeySource::Inline(Secret::new(k)),
        _ => return Err(StoreError::Corrupt("server has no single SSH key".into())),
    };
    let prefix_words: Vec<String> = serde_json::from_str(&prefix).map_err(|e| corrupt("command prefix", e))?;
    Ok(ServerRecord {
        id: ServerId::new(row.try_get("id")?),
        name: ServerName::parse(&name).map_err(|e| corrupt("server name", e))?,
        protocol: Protocol::parse(&protocol).ok_or_else(|| corrupt("protocol", &protocol))?,
        host: HostAddress::parse(&host).map_err(|e| corrupt("host", e))?,
        port: u16::try_from(port).map_err(|e| corrupt("port", e))?,
        user: SshUser::parse(&user).map_err(|e| corrupt("ssh user", e))?,
        key,
        interface: InterfaceName::parse(&interface).map_err(|e| corrupt("interface", e))?,
        command_prefix: CommandPrefix::from_parts(prefix_words.iter().map(String::as_str))
            .map_err(|e| corrupt("command prefix", e))?,
        host_key: match (host_key, fingerprint) {
            (Some(openssh), Some(fingerprint)) => Some(HostKeyPin { openssh, fingerprint }),
            _ => None,
        },
        created_at: instant(row.try_get("created_at")?)?,
        last_poll_at: opt_instant(row.try_get("last_poll_at")?)?,
        last_success_at: opt_instant(row.try_get("last_success_at")?)?,
        last_error: row.try_get("last_error")?,
        consecutive_failures: u32::try_from(row.try_get::<i64, _>("consecutive_failures")?).unwrap_or(u32::MAX),
        clients: u32::try_from(row.try_get::<i64, _>("client_count")?).unwrap_or(u32::MAX),
        online: u32::try_from(row.try_get::<i64, _>("online_count")?).unwrap_or(u32::MAX),
    })
}

fn client_from_row(row: &SqliteRow) -> Result<ClientRecord, StoreError> {
    let key: String = row.try_get("public_key")?;
    let allowed: String = row.try_get("allowed_ips")?;
    let access: String = row.try_get("access")?;
    Ok(ClientRecord {
        id: ClientId::new(row.try_get("id")?),
        server_id: ServerId::new(row.try_get("server_id")?),
        public_key: PublicKey::parse(&key).map_err(|e| corrupt("public key", e))?,
        name: row.try_get("name")?,
        disabled: access == "disabled",
        endpoint: row.try_get("endpoint")?,
        allowed_ips: allowed.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        latest_handshake: opt_instant(row.try_get("latest_handshake")?)?,
        rx: bytes_from_db(row.try_get("rx_bytes")?),
        tx: bytes_from_db(row.try_get("tx_bytes")?),
        last_sync_at: instant(row.try_get("last_sync_at")?)?,
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
        let result = sqlx::query(
            "INSERT INTO servers (name, protocol, host, port, ssh_user, ssh_key_path, ssh_private_key, \
             interface, command_prefix, host_key, host_key_fingerprint, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(server.name.as_str())
        .bind(server.protocol.as_str())
        .bind(server.host.as_str())
        .bind(i64::from(server.port))
        .bind(server.user.as_str())
        .bind(key_path)
        .bind(key_text)
        .bind(server.interface.as_str())
        .bind(prefix)
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

    async fn servers(&self, now: DateTime<Utc>) -> Result<Vec<ServerRecord>, StoreError> {
        let sql = format!("SELECT {SERVER_COLUMNS} FROM servers s ORDER BY s.name COLLATE NOCASE, s.id");
        let rows = sqlx::query(&sql).bind(secs(now - ONLINE_WINDOW)).fetch_all(&self.read).await?;
        rows.iter().map(server_from_row).collect()
    }

    async fn server(&self, id: ServerId, now: DateTime<Utc>) -> Result<Option<ServerRecord>, StoreError> {
        let sql = format!("SELECT {SERVER_COLUMNS} FROM servers s WHERE s.id = ?2");
        let row = sqlx::query(&sql).bind(secs(now - ONLINE_WINDOW)).bind(id.get()).fetch_optional(&self.read).await?;
        row.as_ref().map(server_from_row).transpose()
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

    async fn record_poll_success(&self, id: ServerId, at: DateTime<Utc>, dump: &WgDump) -> Result<(), StoreError> {
        let now = secs(at);
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE servers SET last_poll_at = ?1, last_success_at = ?1, last_error = NULL, \
             consecutive_failures = 0 WHERE id = ?2",
        )
        .bind(now)
        .bind(id.get())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("server"));
        }
        sqlx::query("UPDATE clients SET on_host = 0 WHERE server_id = ?").bind(id.get()).execute(&mut *tx).await?;
        for peer in &dump.peers {
            let allowed = peer.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            // A peer keeps its last known endpoint and handshake when the host
            // forgets them (interface restart), so "last seen" survives.
            sqlx::query(
                "INSERT INTO clients (server_id, public_key, endpoint, allowed_ips, has_preshared_key, \
                 persistent_keepalive, latest_handshake, rx_bytes, tx_bytes, on_host, first_seen_at, last_sync_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?10) \
                 ON CONFLICT (server_id, public_key) DO UPDATE SET \
                   endpoint = COALESCE(excluded.endpoint, clients.endpoint), \
                   allowed_ips = excluded.allowed_ips, \
                   has_preshared_key = excluded.has_preshared_key, \
                   persistent_keepalive = excluded.persistent_keepalive, \
                   latest_handshake = COALESCE(excluded.latest_handshake, clients.latest_handshake), \
                   rx_bytes = excluded.rx_bytes, tx_bytes = excluded.tx_bytes, \
                   on_host = 1, last_sync_at = excluded.last_sync_at",
            )
            .bind(id.get())
            .bind(peer.public_key.to_string())
            .bind(peer.endpoint.map(|e| e.to_string()))
            .bind(allowed)
            .bind(peer.has_preshared_key)
            .bind(peer.persistent_keepalive.map(i64::from))
            .bind(peer.latest_handshake.map(secs))
            .bind(bytes_to_db(peer.rx))
            .bind(bytes_to_db(peer.tx))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
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

    async fn clients(&self, server: ServerId) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, server_id, public_key, name, access, endpoint, allowed_ips, latest_handshake, \
             rx_bytes, tx_bytes, last_sync_at FROM clients WHERE server_id = ? AND on_host = 1 \
             ORDER BY COALESCE(name, public_key) COLLATE NOCASE",
        )
        .bind(server.get())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(client_from_row).collect()
    }
}
