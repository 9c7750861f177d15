//! The panel's operations, shared by the JSON API, the server functions and
//! the CLI. Each returns [`AppError`] with a message safe to show; causes are
//! logged.

use crate::api::{
    AccessStatus, AddServerRequest, AddedServer, ClientStats, ClientView, DashboardView, Protocol, ServerHealth,
    ServerView, SessionView, Traffic,
};
use crate::domain::accounting::month_key;
use crate::domain::status::ConnectionStatus;
use crate::domain::throttle::LoginThrottle;
use crate::domain::{
    ByteCount, ClientId, CommandPrefix, HostAddress, InterfaceName, PublicKey, RemotePath, ServerId, ServerName,
    SshUser, Username,
};
use crate::error::{AppError, ErrorKind};
use crate::server::auth;
use crate::server::config::Config;
use crate::server::openvpn::KillTarget;
use crate::server::poll::{read_server, store_reading, PollError, PollTarget};
use crate::server::poller::{FirstPoll, Supervisor, WorkerError};
use crate::server::secret::Secret;
use crate::server::store::{
    ClientRecord, NewServer, OpenVpnAccess, PollOutcome, ServerRecord, SessionFilter, SessionRecord, SshKeySource,
    Store, StoreError,
};
use crate::server::transport::ssh::{load_key, HostKeyPolicy, SshTarget, SshTransport};
use crate::server::transport::HostTransport;
use axum::http::HeaderMap;
use chrono::{DateTime, TimeDelta, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Panel {
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub poller: Arc<Supervisor>,
    throttle: Mutex<LoginThrottle>,
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => AppError::conflict(message),
            StoreError::NotFound(what) => AppError::not_found(what),
            StoreError::Busy => {
                tracing::warn!("database busy");
                AppError::new(ErrorKind::Internal, "The database is busy; try again in a moment.")
            }
            other => AppError::internal(other),
        }
    }
}

/// A logged-in admin, as found from the session cookie.
#[derive(Debug, Clone)]
pub struct Admin {
    pub username: Username,
}

/// How long disconnected sessions stay in "recently disconnected".
pub const RECENT: TimeDelta = TimeDelta::hours(24);

fn traffic(c: crate::domain::accounting::Counters) -> Traffic {
    Traffic::new(c.rx, c.tx)
}

pub fn server_view(r: &ServerRecord) -> ServerView {
    let health = match (r.last_poll_at, &r.last_error) {
        (None, _) => ServerHealth::Pending,
        (Some(_), Some(_)) => ServerHealth::Error,
        (Some(_), None) => ServerHealth::Ok,
    };
    ServerView {
        id: r.id,
        name: r.name.to_string(),
        host: r.host.to_string(),
        port: r.port,
        user: r.user.to_string(),
        protocol: r.protocol,
        interface: r.interface.as_ref().map(ToString::to_string),
        command_prefix: r.command_prefix.parts().to_vec(),
        openvpn_status_path: r.openvpn.as_ref().and_then(|o| o.status_path.as_ref()).map(ToString::to_string),
        openvpn_management_port: r.openvpn.as_ref().and_then(|o| o.management_port),
        host_key_fingerprint: r.host_key.as_ref().map(|k| k.fingerprint.clone()),
        health,
        last_poll_at: r.last_poll_at,
        last_success_at: r.last_success_at,
        last_error: r.last_error.clone(),
        consecutive_failures: r.consecutive_failures,
        clients: r.clients,
        online: r.online,
        bytes_sent: r.total.rx,
        bytes_received: r.total.tx,
        month: traffic(r.month),
    }
}

pub fn client_view(c: &ClientRecord, now: DateTime<Utc>) -> ClientView {
    let (connection, last_seen) = match c.protocol {
        Protocol::Openvpn => (ConnectionStatus::connected(c.on_host, c.last_seen, now), c.last_seen),
        _ => (ConnectionStatus::at(c.latest_handshake, now), c.latest_handshake),
    };
    let public_key = match c.protocol {
        Protocol::Openvpn => None,
        _ => PublicKey::parse(&c.identity).ok(),
    };
    ClientView {
        id: c.id,
        server_id: c.server_id,
        protocol: c.protocol,
        identity: c.identity.clone(),
        public_key,
        common_name: (c.protocol == Protocol::Openvpn).then(|| c.identity.clone()),
        username: c.username.clone(),
        name: c.name.clone(),
        client_ip: c.virtual_ip.clone(),
        endpoint: c.endpoint.clone(),
        allowed_ips: c.allowed_ips.clone(),
        status: if c.disabled { AccessStatus::Disabled } else { AccessStatus::Active },
        connection,
        stats: ClientStats::new(ByteCount::new(c.total.rx), ByteCount::new(c.total.tx), connection, last_seen, now),
        bytes_sent: c.total.rx,
        bytes_received: c.total.tx,
        month: traffic(c.month),
        last_handshake: c.latest_handshake,
        last_seen: c.last_seen,
        last_sync_at: Some(c.last_sync_at),
        managed: c.managed,
        on_host: c.on_host,
    }
}

pub fn session_view(s: &SessionRecord) -> SessionView {
    let client = s.client_name.clone().unwrap_or_else(|| match PublicKey::parse(&s.identity) {
        Ok(k) if s.protocol != Protocol::Openvpn => k.short(),
        _ => s.identity.clone(),
    });
    SessionView {
        id: s.id,
        server_id: s.server_id,
        server_name: s.server_name.clone(),
        client_id: s.client_id,
        client,
        identity: s.identity.clone(),
        session_key: s.session_key.clone(),
        protocol: s.protocol,
        connected_at: s.connected_at,
        disconnected_at: s.disconnected_at,
        last_seen_at: s.last_seen_at,
        endpoint: s.endpoint.clone(),
        virtual_ip: s.virtual_ip.clone(),
        bytes_sent: s.bytes.rx,
        bytes_received: s.bytes.tx,
        openvpn_client_id: s.openvpn_client_id,
    }
}

/// A poll's failure as the API shows it: host-side causes as they are (502),
/// the panel's own as a reference (500).
fn poll_error(e: PollError) -> AppError {
    match e {
        PollError::Internal(_) => AppError::new(ErrorKind::Internal, e.to_string()),
        host => AppError::host_unavailable(host.to_string()),
    }
}

fn worker_error(e: WorkerError) -> AppError {
    match e {
        WorkerError::Poll(e) => poll_error(e),
        WorkerError::Failed(message) => AppError::host_unavailable(message),
        WorkerError::NotRunning => AppError::internal("no poller for an existing server"),
    }
}

fn blank_to_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `SHA256:` followed by 43 characters of unpadded base64.
fn parse_fingerprint(text: &str) -> Result<String, String> {
    let text = text.trim();
    let ok = text
        .strip_prefix("SHA256:")
        .is_some_and(|b| b.len() == 43 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'));
    if ok {
        Ok(text.to_owned())
    } else {
        Err("host_key_fingerprint: expected SHA256:… as printed by ssh-keygen -l".to_owned())
    }
}

/// A validated add-server request, before the host is contacted.
struct Draft {
    name: ServerName,
    protocol: Protocol,
    host: HostAddress,
    port: u16,
    user: SshUser,
    key: SshKeySource,
    interface: Option<InterfaceName>,
    command_prefix: CommandPrefix,
    openvpn: Option<OpenVpnAccess>,
    host_key: HostKeyPolicy,
}

/// A key file given by path must be an unencrypted private key inside
/// `key_dir` (symbolic links resolved). A path outside it gets one answer,
/// whether or not a file is there, so the form cannot probe the panel's
/// machine.
fn key_file(key_dir: &Path, raw: &str) -> Result<SshKeySource, String> {
    let outside = || format!("must be an absolute path to a private key file in {}", key_dir.display());
    let path = PathBuf::from(raw);
    if !path.is_absolute() {
        return Err(outside());
    }
    let dir = std::fs::canonicalize(key_dir).map_err(|_| outside())?;
    let inside = |p: &Path| p.starts_with(&dir);
    // Judge the path as written before asking the file system about it.
    let lexical: PathBuf = path.components().fold(PathBuf::new(), |mut acc, c| {
        match c {
            std::path::Component::ParentDir => {
                acc.pop();
            }
            std::path::Component::CurDir => {}
            other => acc.push(other),
        }
        acc
    });
    if !inside(&lexical) && !lexical.starts_with(key_dir) {
        return Err(outside());
    }
    let Ok(real) = std::fs::canonicalize(&path) else {
        return Err(format!("there is no file {} in the key directory", path.display()));
    };
    if !inside(&real) {
        return Err(outside());
    }
    let source = SshKeySource::File(real);
    load_key(&source)
        .map_err(|_| format!("{} is not an unencrypted SSH private key (OpenSSH or PEM)", path.display()))?;
    Ok(source)
}

fn validate(req: AddServerRequest, key_dir: &Path) -> Result<Draft, AppError> {
    let mut problems: Vec<String> = Vec::new();
    fn check<T, E: ToString>(problems: &mut Vec<String>, field: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| problems.push(format!("{field}: {}", e.to_string()))).ok()
    }
    let name = check(&mut problems, "name", ServerName::parse(&req.name));
    let host = check(&mut problems, "host", HostAddress::parse(&req.host));
    let port = req.port.unwrap_or(22);
    if port == 0 {
        problems.push("port: must be 1 to 65535".into());
    }
    let user = check(&mut problems, "user", SshUser::parse(req.user.trim()));
    let protocol = check(
        &mut problems,
        "protocol",
        match blank_to_none(req.protocol) {
            None => Ok(Protocol::Wireguard),
            Some(p) => Protocol::parse(&p).ok_or_else(|| format!("{p:?} is not one of wireguard, amneziawg, openvpn")),
        },
    );
    let interface = blank_to_none(req.interface);
    let status_path = blank_to_none(req.status_path);
    let (interface, openvpn) = match protocol {
        Some(Protocol::Openvpn) => {
            if interface.is_some() {
                problems.push("interface: OpenVPN servers are read through a status file or management port".into());
            }
            let path = status_path.map(|p| check(&mut problems, "status_path", RemotePath::parse(&p)));
            if path.is_none() && req.management_port.is_none() {
                problems.push("status_path or management_port: an OpenVPN server needs one (or both)".into());
            }
            if req.management_port == Some(0) {
                problems.push("management_port: must be 1 to 65535".into());
            }
            let access = OpenVpnAccess {
                status_path: path.flatten(),
                management_port: req.management_port,
                management_password: req.management_password.filter(|p| !p.is_empty()).map(Secret::new),
            };
            (None, Some(access))
        }
        _ => {
            if status_path.is_some() || req.management_port.is_some() {
                problems.push("status_path and management_port are for OpenVPN servers".into());
            }
            let iface = match interface {
                Some(i) => check(&mut problems, "interface", InterfaceName::parse(&i)),
                None => {
                    problems.push("interface: required, such as wg0 or awg0".into());
                    None
                }
            };
            (iface, None)
        }
    };
    let prefix = check(
        &mut problems,
        "command_prefix",
        match req.command_prefix {
            None | Some(serde_json::Value::Null) => Ok(CommandPrefix::empty()),
            Some(serde_json::Value::String(s)) => CommandPrefix::parse(&s).map_err(|e| e.to_string()),
            Some(serde_json::Value::Array(items)) => match items.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>()
            {
                Some(words) => CommandPrefix::from_parts(words).map_err(|e| e.to_string()),
                None => Err("must be a string or an array of strings".to_owned()),
            },
            Some(_) => Err("must be a string or an array of strings".to_owned()),
        },
    );
    let key = match (blank_to_none(req.private_key_path), req.private_key.filter(|k| !k.trim().is_empty())) {
        (Some(path), None) => check(&mut problems, "private_key_path", key_file(key_dir, &path)),
        (None, Some(text)) => {
            let inline = SshKeySource::Inline(Secret::new(text));
            let checked = load_key(&inline).map(|_| inline);
            check(
                &mut problems,
                "private_key",
                checked.map_err(|_| "not an unencrypted SSH private key (OpenSSH or PEM)"),
            )
        }
        (Some(_), Some(_)) => {
            check::<(), _>(&mut problems, "private_key", Err("give private_key_path or private_key, not both"))
                .and(None)
        }
        (None, None) => {
            check::<(), _>(&mut problems, "private_key", Err("give private_key_path or private_key")).and(None)
        }
    };
    let host_key = match blank_to_none(req.host_key_fingerprint) {
        None => Some(HostKeyPolicy::TrustOnFirstUse),
        Some(fp) => parse_fingerprint(&fp).map(HostKeyPolicy::Fingerprint).map_err(|e| problems.push(e)).ok(),
    };
    match (name, host, user, protocol, prefix, key, host_key) {
        (Some(name), Some(host), Some(user), Some(protocol), Some(command_prefix), Some(key), Some(host_key))
            if problems.is_empty() =>
        {
            Ok(Draft { name, protocol, host, port, user, key, interface, command_prefix, openvpn, host_key })
        }
        _ => Err(AppError::bad_request(problems.join("; "))),
    }
}

impl Panel {
    pub fn new(store: Arc<dyn Store>, config: Config, poller: Arc<Supervisor>) -> Self {
        Self { store, config, poller, throttle: Mutex::new(LoginThrottle::default()) }
    }

    /// The ledger month of `now`.
    pub fn month(&self, now: DateTime<Utc>) -> String {
        month_key(now, &self.config.timezone)
    }

    fn throttle(&self) -> Result<std::sync::MutexGuard<'_, LoginThrottle>, AppError> {
        self.throttle.lock().map_err(|_| AppError::internal("throttle lock poisoned"))
    }

    /// Checks the password and opens a session; returns the `Set-Cookie` value.
    pub async fn login(&self, address: &str, username: &str, password: &str) -> Result<String, AppError> {
        let now = Utc::now();
        let username = username.trim();
        // The attempt counts as a failure before the (slow) password check,
        // so parallel guesses cannot all slip past the limit.
        let attempt = match self.throttle()?.begin(address, username, now) {
            Ok(attempt) => attempt,
            Err(wait) => {
                tracing::warn!(%address, "login throttled");
                return Err(AppError::too_many_requests(wait));
            }
        };
        let admin = self.store.admin_by_username(username).await?;
        let stored = admin.as_ref().map(|a| a.password_hash.clone());
        let password = Secret::new(password.to_owned());
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(stored.as_deref(), password.expose()))
            .await
            .map_err(AppError::internal)?;
        let Some(admin) = admin.filter(|_| ok) else {
            tracing::info!(%address, "failed login");
            return Err(AppError::new(ErrorKind::Unauthorized, "Invalid username or password."));
        };
        self.throttle()?.succeeded(&attempt);
        let (token, hash) = auth::new_session_token();
        let ttl = TimeDelta::from_std(self.config.session_ttl).map_err(AppError::internal)?;
        self.store.create_session(&hash, admin.id, now, now + ttl).await?;
        tracing::info!(admin = %admin.username, %address, "logged in");
        Ok(auth::session_cookie(&token, self.config.session_ttl, self.config.secure_cookies))
    }

    /// Ends the request's session (if any); returns the clearing `Set-Cookie` value.
    pub async fn logout(&self, headers: &HeaderMap) -> Result<String, AppError> {
        if let Some(token) = auth::session_token(headers) {
            self.store.delete_session(&auth::token_hash(&token)).await?;
        }
        Ok(auth::clear_session_cookie(self.config.secure_cookies))
    }

    /// The admin whose live session the request carries.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Admin, AppError> {
        let token = auth::session_token(headers).ok_or_else(AppError::unauthorized)?;
        match self.store.session_admin(&auth::token_hash(&token), Utc::now()).await? {
            Some((_, username)) => Ok(Admin { username }),
            None => Err(AppError::unauthorized()),
        }
    }

    pub async fn servers(&self) -> Result<Vec<ServerView>, AppError> {
        let now = Utc::now();
        Ok(self.store.servers(now, &self.month(now)).await?.iter().map(server_view).collect())
    }

    async fn record(&self, id: ServerId) -> Result<ServerRecord, AppError> {
        let now = Utc::now();
        self.store.server(id, now, &self.month(now)).await?.ok_or_else(|| AppError::not_found("Server"))
    }

    pub async fn server(&self, id: ServerId) -> Result<ServerView, AppError> {
        Ok(server_view(&self.record(id).await?))
    }

    pub async fn clients(&self, id: ServerId) -> Result<Vec<ClientView>, AppError> {
        self.record(id).await?;
        let now = Utc::now();
        Ok(self.store.clients(id, &self.month(now)).await?.iter().map(|c| client_view(c, now)).collect())
    }

    pub async fn client(&self, id: ClientId) -> Result<ClientView, AppError> {
        let now = Utc::now();
        let record = self.store.client(id, &self.month(now)).await?.ok_or_else(|| AppError::not_found("Client"))?;
        Ok(client_view(&record, now))
    }

    pub async fn sessions(&self, filter: SessionFilter) -> Result<Vec<SessionView>, AppError> {
        Ok(self.store.sessions(&filter).await?.iter().map(session_view).collect())
    }

    pub async fn dashboard(&self) -> Result<DashboardView, AppError> {
        let servers = self.servers().await?;
        let active = self.sessions(SessionFilter { open: true, limit: 200, ..SessionFilter::default() }).await?;
        let recent = self
            .sessions(SessionFilter { ended_since: Some(Utc::now() - RECENT), limit: 20, ..SessionFilter::default() })
            .await?;
        Ok(DashboardView {
            clients: servers.iter().map(|s| s.clients).sum(),
            online: servers.iter().map(|s| s.online).sum(),
            servers_failing: servers.iter().filter(|s| s.health == ServerHealth::Error).count() as u32,
            month: Traffic::new(
                servers.iter().map(|s| s.month.bytes_sent).sum(),
                servers.iter().map(|s| s.month.bytes_received).sum(),
            ),
            servers,
            active_sessions: active,
            recently_disconnected: recent,
        })
    }

    /// Validates the request, contacts the host (pinning its key, logging in,
    /// reading it once), and only then stores the server, imports what the
    /// host has, and starts polling it.
    pub async fn add_server(&self, req: AddServerRequest) -> Result<AddedServer, AppError> {
        let draft = validate(req, &self.config.key_dir())?;
        let now = Utc::now();
        if self.store.servers(now, &self.month(now)).await?.iter().any(|s| s.name == draft.name) {
            return Err(AppError::conflict(format!("A server named {} already exists.", draft.name)));
        }
        let settings = self.poller.settings();
        let mut transport = SshTransport::new(
            SshTarget {
                host: draft.host.clone(),
                port: draft.port,
                user: draft.user.clone(),
                key: draft.key.clone(),
                host_key: draft.host_key.clone(),
            },
            settings.ssh,
        );
        let target = PollTarget {
            protocol: draft.protocol,
            interface: draft.interface.as_ref(),
            command_prefix: &draft.command_prefix,
            openvpn: draft.openvpn.as_ref(),
        };
        let reading = read_server(&mut transport, &target, settings.ssh.command).await.map_err(|e| match e {
            PollError::Internal(_) => poll_error(e),
            host => AppError::host_unavailable(format!("Could not read {}: {host}", draft.host)),
        })?;
        let pin =
            transport.host_key().cloned().ok_or_else(|| AppError::internal("connected without seeing a host key"))?;
        let new = NewServer {
            name: draft.name,
            protocol: draft.protocol,
            host: draft.host,
            port: draft.port,
            user: draft.user,
            key: draft.key,
            interface: draft.interface,
            command_prefix: draft.command_prefix,
            openvpn: draft.openvpn,
            host_key: pin.clone(),
        };
        let id = self.store.insert_server(&new, now).await?;
        let at = Utc::now();
        store_reading(self.store.as_ref(), id, new.protocol, &reading, at, settings.timezone, true)
            .await
            .map_err(poll_error)?;
        let record = self.record(id).await?;
        tracing::info!(server_id = %id, server = %record.name, fingerprint = %pin.fingerprint, "server added");
        self.poller.spawn(record, Box::new(transport), FirstPoll::AfterInterval);
        Ok(AddedServer { id, host_key_fingerprint: pin.fingerprint })
    }

    /// Polls a server now.
    pub async fn sync_now(&self, id: ServerId) -> Result<PollOutcome, AppError> {
        self.record(id).await?;
        self.poller.poll_now(id).await.map_err(worker_error)
    }

    /// Ends an open OpenVPN session on its server. With `halt` the client is
    /// told to exit rather than reconnect.
    pub async fn disconnect(&self, session_id: i64, halt: bool) -> Result<String, AppError> {
        let session = self.store.session(session_id).await?.ok_or_else(|| AppError::not_found("Session"))?;
        if session.disconnected_at.is_some() {
            return Err(AppError::conflict("That session has already ended."));
        }
        if session.protocol != Protocol::Openvpn {
            return Err(AppError::bad_request(
                "Only OpenVPN sessions can be ended; a WireGuard peer stays connected until it is revoked.",
            ));
        }
        let target = match (session.openvpn_client_id, session.endpoint.as_deref().and_then(|e| e.parse().ok())) {
            (Some(cid), _) => KillTarget::ClientId(cid),
            (None, Some(addr)) => KillTarget::Address(addr),
            (None, None) => return Err(AppError::bad_request("The session has no client id or address to end it by.")),
        };
        let reply = self.poller.kill(session.server_id, target, halt).await.map_err(worker_error)?;
        tracing::info!(session = session_id, key = %session.session_key, halt, "ended a session");
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key directory holding one real key, `id_ed25519`, made by ssh-keygen.
    fn keys() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.path().join("id_ed25519"))
            .status()
            .unwrap();
        assert!(made.success());
        dir
    }

    thread_local! {
        static KEYS: tempfile::TempDir = keys();
    }

    fn key_dir() -> PathBuf {
        KEYS.with(|d| d.path().to_path_buf())
    }

    fn validate(req: AddServerRequest) -> Result<Draft, AppError> {
        super::validate(req, &key_dir())
    }

    fn request() -> AddServerRequest {
        AddServerRequest {
            name: "Frankfurt 1".into(),
            host: "198.18.1.2".into(),
            port: None,
            user: "root".into(),
            private_key_path: Some(key_dir().join("id_ed25519").display().to_string()),
            interface: Some("wg0".into()),
            ..AddServerRequest::default()
        }
    }

    #[test]
    fn a_key_file_must_be_a_key_inside_the_key_directory() {
        let dir = key_dir();
        std::fs::write(dir.join("notes.txt"), "not a key").unwrap();
        let outside = key_file(&dir, "/etc/shadow").unwrap_err();
        assert_eq!(outside, key_file(&dir, "/nonexistent/key").unwrap_err(), "no hint whether a file exists");
        let escape = format!("{}/../../etc/passwd", dir.display());
        assert_eq!(key_file(&dir, &escape).unwrap_err(), outside);
        assert!(key_file(&dir, &format!("{}/missing", dir.display())).unwrap_err().contains("no file"));
        assert!(key_file(&dir, &format!("{}/notes.txt", dir.display())).unwrap_err().contains("not an unencrypted"));
        assert!(key_file(&dir, "relative/key").unwrap_err().contains("absolute path"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).unwrap();
            assert_eq!(key_file(&dir, &format!("{}/link", dir.display())).unwrap_err(), outside, "links are followed");
        }
        assert!(matches!(key_file(&dir, &format!("{}/id_ed25519", dir.display())), Ok(SshKeySource::File(_))));
    }

    #[test]
    fn a_complete_request_validates_with_defaults() {
        let d = validate(request()).map_err(|e| e.message).unwrap();
        assert_eq!(d.port, 22);
        assert_eq!(d.protocol, Protocol::Wireguard);
        assert!(d.command_prefix.is_empty());
        assert!(matches!(d.host_key, HostKeyPolicy::TrustOnFirstUse));
    }

    #[test]
    fn every_bad_field_is_named_in_one_message() {
        let bad = AddServerRequest {
            name: " ".into(),
            host: "host; reboot".into(),
            user: "root@x".into(),
            interface: Some("wg0 && id".into()),
            private_key_path: Some("relative/key".into()),
            command_prefix: Some(serde_json::json!("docker exec x;id")),
            host_key_fingerprint: Some("MD5:aa".into()),
            protocol: Some("ipsec".into()),
            ..request()
        };
        let e = validate(bad).err().unwrap();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        for needle in ["name:", "host:", "user:", "private_key", "command_prefix:", "host_key_fingerprint", "protocol:"]
        {
            assert!(e.message.contains(needle), "{needle} missing from {}", e.message);
        }
    }

    #[test]
    fn exactly_one_key_source_is_required() {
        let both = AddServerRequest { private_key: Some("-----BEGIN".into()), ..request() };
        assert!(validate(both).err().unwrap().message.contains("not both"));
        let none = AddServerRequest { private_key_path: None, ..request() };
        assert!(validate(none).is_err());
        let array =
            AddServerRequest { command_prefix: Some(serde_json::json!(["docker", "exec", "awg"])), ..request() };
        assert_eq!(validate(array).map_err(|e| e.message).unwrap().command_prefix.parts().len(), 3);
    }

    #[test]
    fn each_protocol_asks_for_its_own_settings() {
        let wg_without_interface = AddServerRequest { interface: None, ..request() };
        assert!(validate(wg_without_interface).err().unwrap().message.contains("interface: required"));
        let ovpn = AddServerRequest {
            protocol: Some("openvpn".into()),
            interface: None,
            management_port: Some(7505),
            ..request()
        };
        let d = validate(ovpn).map_err(|e| e.message).unwrap();
        assert_eq!(d.openvpn.unwrap().management_port, Some(7505));
        let ovpn_nothing = AddServerRequest { protocol: Some("openvpn".into()), interface: None, ..request() };
        assert!(validate(ovpn_nothing).err().unwrap().message.contains("needs one"));
        let bad_path = AddServerRequest {
            protocol: Some("openvpn".into()),
            interface: None,
            status_path: Some("/var/log/../../etc/shadow".into()),
            ..request()
        };
        assert!(validate(bad_path).err().unwrap().message.contains("status_path"));
        let awg = AddServerRequest { protocol: Some("amneziawg".into()), interface: Some("awg0".into()), ..request() };
        assert_eq!(validate(awg).map_err(|e| e.message).unwrap().protocol, Protocol::Amneziawg);
    }
}
