//! The panel's operations, shared by the JSON API and the server functions.
//! Each returns [`AppError`] with a message safe to show; causes are logged.

use crate::api::{
    AccessStatus, AddServerRequest, AddedServer, ClientStats, ClientView, DashboardView, Protocol, ServerHealth,
    ServerView,
};
use crate::domain::net::client_address;
use crate::domain::status::ConnectionStatus;
use crate::domain::throttle::LoginThrottle;
use crate::domain::wg_dump::parse_wg_dump;
use crate::domain::{
    CommandPrefix, HostAddress, InterfaceName, IpNetwork, RemoteCommand, ServerId, ServerName, SshUser, Username,
};
use crate::error::{AppError, ErrorKind};
use crate::server::auth;
use crate::server::config::Config;
use crate::server::poller::{PollNowError, Supervisor};
use crate::server::secret::Secret;
use crate::server::store::{ClientRecord, NewServer, ServerRecord, SshKeySource, Store, StoreError};
use crate::server::transport::ssh::{HostKeyPolicy, SshTarget, SshTransport};
use crate::server::transport::HostTransport;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
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

fn server_view(r: &ServerRecord) -> ServerView {
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
        interface: r.interface.to_string(),
        protocol: r.protocol,
        command_prefix: r.command_prefix.parts().to_vec(),
        host_key_fingerprint: r.host_key.as_ref().map(|k| k.fingerprint.clone()),
        health,
        last_poll_at: r.last_poll_at,
        last_success_at: r.last_success_at,
        last_error: r.last_error.clone(),
        consecutive_failures: r.consecutive_failures,
        clients: r.clients,
        online: r.online,
    }
}

fn client_view(c: &ClientRecord, now: DateTime<Utc>) -> ClientView {
    let networks: Vec<IpNetwork> = c.allowed_ips.iter().filter_map(|a| IpNetwork::parse(a).ok()).collect();
    ClientView {
        id: c.id,
        server_id: c.server_id,
        name: c.name.clone(),
        public_key: c.public_key,
        client_ip: client_address(&networks).map(|ip| ip.to_string()),
        endpoint: c.endpoint.clone(),
        allowed_ips: c.allowed_ips.clone(),
        status: if c.disabled { AccessStatus::Disabled } else { AccessStatus::Active },
        connection: ConnectionStatus::at(c.latest_handshake, now),
        stats: ClientStats::new(c.rx, c.tx, c.latest_handshake, now),
        bytes_sent: c.rx.get(),
        bytes_received: c.tx.get(),
        last_handshake: c.latest_handshake,
        last_sync_at: Some(c.last_sync_at),
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
    interface: InterfaceName,
    command_prefix: CommandPrefix,
    host_key: HostKeyPolicy,
}

fn validate(req: AddServerRequest) -> Result<Draft, AppError> {
    let mut problems: Vec<String> = Vec::new();
    let mut field = |name: &str, r: Result<(), String>| {
        if let Err(e) = r {
            problems.push(format!("{name}: {e}"));
        }
    };
    let name = ServerName::parse(&req.name);
    field("name", name.as_ref().map(|_| ()).map_err(ToString::to_string));
    let host = HostAddress::parse(&req.host);
    field("host", host.as_ref().map(|_| ()).map_err(ToString::to_string));
    let port = req.port.unwrap_or(22);
    field("port", if port == 0 { Err("must be 1 to 65535".into()) } else { Ok(()) });
    let user = SshUser::parse(req.user.trim());
    field("user", user.as_ref().map(|_| ()).map_err(ToString::to_string));
    let interface = InterfaceName::parse(req.interface.trim());
    field("interface", interface.as_ref().map(|_| ()).map_err(ToString::to_string));
    let protocol = match blank_to_none(req.protocol) {
        None => Ok(Protocol::Wireguard),
        Some(p) => Protocol::parse(&p).ok_or_else(|| format!("{p:?} is not supported; use \"wireguard\"")),
    };
    field("protocol", protocol.as_ref().map(|_| ()).map_err(Clone::clone));
    let prefix = match req.command_prefix {
        None | Some(serde_json::Value::Null) => Ok(CommandPrefix::empty()),
        Some(serde_json::Value::String(s)) => CommandPrefix::parse(&s).map_err(|e| e.to_string()),
        Some(serde_json::Value::Array(items)) => {
            let words: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
            match words {
                Some(words) => CommandPrefix::from_parts(words).map_err(|e| e.to_string()),
                None => Err("must be a string or an array of strings".to_owned()),
            }
        }
        Some(_) => Err("must be a string or an array of strings".to_owned()),
    };
    field("command_prefix", prefix.as_ref().map(|_| ()).map_err(Clone::clone));
    let key = match (blank_to_none(req.private_key_path), req.private_key.filter(|k| !k.trim().is_empty())) {
        (Some(path), None) => {
            let path = PathBuf::from(path);
            if path.is_absolute() {
                Ok(SshKeySource::File(path))
            } else {
                Err("private_key_path must be an absolute path".to_owned())
            }
        }
        (None, Some(text)) => Ok(SshKeySource::Inline(Secret::new(text))),
        (Some(_), Some(_)) => Err("give private_key_path or private_key, not both".to_owned()),
        (None, None) => Err("give private_key_path or private_key".to_owned()),
    };
    field("private_key", key.as_ref().map(|_| ()).map_err(Clone::clone));
    let host_key = match blank_to_none(req.host_key_fingerprint) {
        None => Ok(HostKeyPolicy::TrustOnFirstUse),
        Some(fp) => parse_fingerprint(&fp).map(HostKeyPolicy::Fingerprint),
    };
    if let Err(e) = &host_key {
        problems.push(e.clone());
    }
    match (name, host, user, interface, protocol, prefix, key, host_key) {
        (Ok(name), Ok(host), Ok(user), Ok(interface), Ok(protocol), Ok(command_prefix), Ok(key), Ok(host_key))
            if problems.is_empty() =>
        {
            Ok(Draft { name, protocol, host, port, user, key, interface, command_prefix, host_key })
        }
        _ => Err(AppError::bad_request(problems.join("; "))),
    }
}

impl Panel {
    pub fn new(store: Arc<dyn Store>, config: Config, poller: Arc<Supervisor>) -> Self {
        Self { store, config, poller, throttle: Mutex::new(LoginThrottle::default()) }
    }

    fn throttle(&self) -> Result<std::sync::MutexGuard<'_, LoginThrottle>, AppError> {
        self.throttle.lock().map_err(|_| AppError::internal("throttle lock poisoned"))
    }

    /// Checks the password and opens a session; returns the `Set-Cookie` value.
    pub async fn login(&self, address: &str, username: &str, password: &str) -> Result<String, AppError> {
        let now = Utc::now();
        let username = username.trim();
        if let Err(wait) = self.throttle()?.check(address, username, now) {
            tracing::warn!(%address, "login throttled");
            return Err(AppError::too_many_requests(wait));
        }
        let admin = self.store.admin_by_username(username).await?;
        let stored = admin.as_ref().map(|a| a.password_hash.clone());
        let password = Secret::new(password.to_owned());
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(stored.as_deref(), password.expose()))
            .await
            .map_err(AppError::internal)?;
        let Some(admin) = admin.filter(|_| ok) else {
            self.throttle()?.record_failure(address, username, now);
            tracing::info!(%address, "failed login");
            return Err(AppError::new(ErrorKind::Unauthorized, "Invalid username or password."));
        };
        self.throttle()?.record_success(username);
        let (token, hash) = auth::new_session_token();
        let ttl = chrono::TimeDelta::from_std(self.config.session_ttl).map_err(AppError::internal)?;
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
        Ok(self.store.servers(Utc::now()).await?.iter().map(server_view).collect())
    }

    pub async fn server(&self, id: ServerId) -> Result<ServerView, AppError> {
        let record = self.store.server(id, Utc::now()).await?.ok_or_else(|| AppError::not_found("Server"))?;
        Ok(server_view(&record))
    }

    pub async fn clients(&self, id: ServerId) -> Result<Vec<ClientView>, AppError> {
        let now = Utc::now();
        if self.store.server(id, now).await?.is_none() {
            return Err(AppError::not_found("Server"));
        }
        Ok(self.store.clients(id).await?.iter().map(|c| client_view(c, now)).collect())
    }

    pub async fn dashboard(&self) -> Result<DashboardView, AppError> {
        let servers = self.servers().await?;
        Ok(DashboardView {
            clients: servers.iter().map(|s| s.clients).sum(),
            online: servers.iter().map(|s| s.online).sum(),
            servers_failing: servers.iter().filter(|s| s.health == ServerHealth::Error).count() as u32,
            servers,
        })
    }

    /// Validates the request, contacts the host (pinning its key, logging in,
    /// reading one dump), and only then stores the server and starts its poller.
    pub async fn add_server(&self, req: AddServerRequest) -> Result<AddedServer, AppError> {
        let draft = validate(req)?;
        let now = Utc::now();
        if self.store.servers(now).await?.iter().any(|s| s.name == draft.name) {
            return Err(AppError::conflict(format!("A server named {} already exists.", draft.name)));
        }
        let mut transport = SshTransport::new(
            SshTarget {
                host: draft.host.clone(),
                port: draft.port,
                user: draft.user.clone(),
                key: draft.key.clone(),
                host_key: draft.host_key.clone(),
            },
            self.poller.settings().ssh,
        );
        let command = RemoteCommand::wg_dump(&draft.command_prefix, &draft.interface);
        let output = transport.run(&command).await.map_err(|e| {
            AppError::host_unavailable(format!("Could not read {} on {}: {e}", draft.interface, draft.host))
        })?;
        let dump = parse_wg_dump(&output.stdout).map_err(|e| {
            AppError::bad_request(format!("{} answered `{command}`, but not with a WireGuard dump: {e}", draft.host))
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
            host_key: pin.clone(),
        };
        let id = self.store.insert_server(&new, now).await?;
        self.store.record_poll_success(id, now, &dump).await?;
        let record = self.store.server(id, now).await?.ok_or_else(|| AppError::internal("new server vanished"))?;
        tracing::info!(server_id = %id, server = %record.name, fingerprint = %pin.fingerprint, peers = dump.peers.len(), "server added");
        self.poller.spawn(record, Box::new(transport), false);
        Ok(AddedServer { id, host_key_fingerprint: pin.fingerprint })
    }

    /// Polls a server now; returns how many peers the host reported.
    pub async fn sync_now(&self, id: ServerId) -> Result<usize, AppError> {
        self.server(id).await?;
        match self.poller.poll_now(id).await {
            Ok(report) => Ok(report.peers),
            Err(PollNowError::Failed(message)) => Err(AppError::host_unavailable(message)),
            Err(PollNowError::NotRunning) => Err(AppError::internal("no poller for an existing server")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AddServerRequest {
        AddServerRequest {
            name: "Frankfurt 1".into(),
            host: "198.18.1.2".into(),
            port: None,
            user: "root".into(),
            private_key_path: Some("/etc/tollgate/id_ed25519".into()),
            interface: "wg0".into(),
            ..AddServerRequest::default()
        }
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
            interface: "wg0 && id".into(),
            private_key_path: Some("relative/key".into()),
            command_prefix: Some(serde_json::json!("docker exec x;id")),
            host_key_fingerprint: Some("MD5:aa".into()),
            protocol: Some("ipsec".into()),
            ..request()
        };
        let e = validate(bad).err().unwrap();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        for needle in [
            "name:",
            "host:",
            "user:",
            "interface:",
            "private_key",
            "command_prefix:",
            "host_key_fingerprint",
            "protocol:",
        ] {
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
}
