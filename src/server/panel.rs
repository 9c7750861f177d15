//! The panel's operations, shared by the JSON API, the server functions and
//! the CLI. Each returns [`AppError`] with a message safe to show; causes are
//! logged.

use crate::api::live::LiveEvent;
use crate::api::{AddServerRequest, AddedServer, ClientView, ServerView, SessionView};
use crate::domain::accounting::month_key;
use crate::domain::throttle::LoginThrottle;
use crate::domain::{ClientId, Protocol, Secret, ServerId, Username};
use crate::error::{AppError, ErrorKind};
use crate::server::auth;
use crate::server::config::Config;
use crate::server::forward::{run_here, Forwarder, HostCall, HostReply};
use crate::server::openvpn::KillTarget;
use crate::server::poll::{read_server, store_reading, PollError, PollTarget};
use crate::server::poller::{FirstPoll, Supervisor, WorkerError};
use crate::server::shared::Shared;
use crate::server::store::{NewServer, PollOutcome, ServerRecord, SessionFilter, Store, StoreError};
use crate::server::transport::ssh::SshTarget;
use axum::http::HeaderMap;
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::{Arc, Mutex};
use validate::validate;

mod access;
mod clients;
mod dashboard;
mod generate;
mod history;
mod push;
mod users;
mod validate;
mod views;

pub use clients::PeerField;
pub use generate::GeneratedPeer;
pub use push::issue_push_token;
pub use views::{client_view, event_view, server_view, session_view};

pub struct Panel {
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub poller: Arc<Supervisor>,
    /// Hands changes on hosts polled by another replica to it.
    pub forwarder: Option<Arc<Forwarder>>,
    throttle: Mutex<LoginThrottle>,
    /// The dashboard by its server filter, shared by the pages that ask
    /// at one bus generation.
    dashboards: Shared<Option<ServerId>, crate::api::DashboardView, AppError>,
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

/// A poll's failure as the API shows it: host-side causes as they are (502),
/// the panel's own as a reference (500).
pub(crate) fn poll_error(e: PollError) -> AppError {
    match e {
        PollError::Internal(_) => AppError::new(ErrorKind::Internal, e.to_string()),
        host => AppError::host_unavailable(host.to_string()),
    }
}

pub(crate) fn worker_error(e: WorkerError) -> AppError {
    match e {
        WorkerError::Poll(e) => poll_error(e),
        WorkerError::Failed(message) => AppError::host_unavailable(message),
        WorkerError::Interrupted => AppError::host_unavailable(
            "the server's poller stopped before it finished (another replica is taking it over); \
             the change may or may not have been made: check before trying again",
        ),
        // No replica holds the server's lease right now (one stopped and
        // the next takes over within a poll interval).
        WorkerError::NotRunning => AppError::host_unavailable(
            "no replica polls this server at the moment (it is being handed over); try again in a few seconds",
        ),
    }
}

impl Panel {
    pub fn new(store: Arc<dyn Store>, config: Config, poller: Arc<Supervisor>) -> Self {
        Self {
            store,
            config,
            poller,
            forwarder: None,
            throttle: Mutex::new(LoginThrottle::default()),
            dashboards: Shared::default(),
        }
    }

    /// The panel, forwarding changes on hosts it does not poll with `forwarder`.
    pub fn with_forwarder(mut self, forwarder: Arc<Forwarder>) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    /// Carries `call` out on `server`'s host: here if this replica polls
    /// it, else by the replica that does.
    pub(crate) async fn on_host(&self, server: ServerId, call: HostCall) -> Result<HostReply, WorkerError> {
        if self.forwarder.is_none() {
            return run_here(&self.poller, server, call).await;
        }
        match run_here(&self.poller, server, call.clone()).await {
            Err(WorkerError::NotRunning) => self.forward(server, call).await,
            done => done,
        }
    }

    /// Has the replica polling `server` carry `call` out.
    pub(crate) async fn forward(&self, server: ServerId, call: HostCall) -> Result<HostReply, WorkerError> {
        match &self.forwarder {
            Some(forwarder) => forwarder.ask(server, call).await,
            None => Err(WorkerError::NotRunning),
        }
    }

    /// The ledger month of `now`.
    pub fn month(&self, now: DateTime<Utc>) -> String {
        month_key(now, &self.config.timezone)
    }

    /// Tells the open pages of every replica that something changed.
    pub(crate) fn announce(&self, event: LiveEvent) {
        self.poller.bus().publish(event);
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
        Ok(self
            .store
            .clients(id, &self.month(now))
            .await?
            .iter()
            .map(|c| client_view(c, now, &self.config.timezone))
            .collect())
    }

    /// One page of a server's clients, as `query` asks.
    pub async fn client_page(
        &self,
        id: ServerId,
        query: &crate::domain::listing::ClientQuery,
    ) -> Result<crate::api::ClientListing, AppError> {
        let server = self.record(id).await?;
        let now = Utc::now();
        let page = self.store.client_page(id, server.protocol, &self.month(now), query, now).await?;
        let s = page.selection;
        Ok(crate::api::ClientListing {
            clients: page.clients.iter().map(|c| client_view(c, now, &self.config.timezone)).collect(),
            page: s.page,
            pages: s.pages,
            per_page: query.per_page,
            matched: s.matched,
            total: s.total,
            online: s.online,
        })
    }

    pub async fn client(&self, id: ClientId) -> Result<ClientView, AppError> {
        let now = Utc::now();
        let record = self.store.client(id, &self.month(now)).await?.ok_or_else(|| AppError::not_found("Client"))?;
        Ok(client_view(&record, now, &self.config.timezone))
    }

    pub async fn sessions(&self, filter: SessionFilter) -> Result<Vec<SessionView>, AppError> {
        Ok(self.store.sessions(&filter).await?.iter().map(session_view).collect())
    }

    /// The replicas sharing the database, their leases and heartbeats.
    pub async fn cluster(&self) -> Result<Vec<crate::server::store::ReplicaRecord>, AppError> {
        Ok(self.store.cluster().await?)
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
        let mut transport = self.poller.transport(SshTarget {
            host: draft.host.clone(),
            port: draft.port,
            user: draft.user.clone(),
            key: draft.key.clone(),
            host_key: draft.host_key.clone(),
        });
        let target = PollTarget {
            protocol: draft.protocol,
            interface: draft.interface.as_ref(),
            command_prefix: &draft.command_prefix,
            openvpn: draft.openvpn.as_ref(),
        };
        let reading = read_server(transport.as_mut(), &target, settings.ssh.command).await.map_err(|e| match e {
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
            config_path: draft.config_path,
            client_config_dir: draft.client_config_dir,
            client_defaults: draft.client_defaults,
        };
        let id = self.store.insert_server(&new, now).await?;
        let at = Utc::now();
        store_reading(self.store.as_ref(), id, new.protocol, &reading, at, settings.timezone, true, None)
            .await
            .map_err(poll_error)?;
        let record = self.record(id).await?;
        tracing::info!(server_id = %id, server = %record.name, fingerprint = %pin.fingerprint, "server added");
        self.poller.spawn(record, transport, FirstPoll::AfterInterval);
        self.announce(LiveEvent::ServerChanged { server: id });
        Ok(AddedServer { id, host_key_fingerprint: pin.fingerprint })
    }

    /// Polls a server now.
    pub async fn sync_now(&self, id: ServerId) -> Result<PollOutcome, AppError> {
        self.record(id).await?;
        self.on_host(id, HostCall::PollNow).await.and_then(HostReply::polled).map_err(worker_error)
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
        let call = HostCall::Kill { target, halt };
        let reply = self.on_host(session.server_id, call).await.and_then(HostReply::killed).map_err(worker_error)?;
        tracing::info!(session = session_id, key = %session.session_key, halt, "ended a session");
        self.announce(LiveEvent::SessionEnded { server: session.server_id });
        Ok(reply)
    }
}

#[cfg(test)]
mod tests;
