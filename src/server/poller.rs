//! Polling: one supervised task per server.
//!
//! Each task owns its host connection (reused between polls), polls at the
//! configured interval, backs off while the host fails, and records every
//! outcome on the server row. Tasks are independent: a host that hangs only
//! holds up its own task, and only until the transport's timeouts fire.
//! Every task has a cancellation token; shutdown cancels them all and waits
//! a bounded time. Anything else that must talk to a host the task owns
//! (poll now, end a session) is sent to the task as a request.

use crate::api::Protocol;
use crate::domain::accounting::month_key;
use crate::domain::openvpn::parse_status;
use crate::domain::wg_dump::{parse_dump, DumpFlavor};
use crate::domain::{CommandPrefix, InterfaceName, RemoteCommand, ServerId};
use crate::server::openvpn::{kill_session, read_status, KillTarget};
use crate::server::store::{OpenVpnAccess, OpenvpnPoll, PollOutcome, ServerRecord, Store, WireguardPoll};
use crate::server::transport::ssh::{HostKeyPolicy, SshTarget, SshTimeouts, SshTransport};
use crate::server::transport::HostTransport;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

#[derive(Debug, Clone, Copy)]
pub struct PollSettings {
    pub interval: Duration,
    pub max_backoff: Duration,
    pub ssh: SshTimeouts,
    /// The time zone of the monthly ledger.
    pub timezone: Tz,
}

impl PollSettings {
    /// The wait after `failures` consecutive failures: the interval doubled
    /// per failure, capped at `max_backoff`.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.interval;
        }
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.interval.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Reads a server's state over `transport`, without storing anything.
pub enum Reading {
    Wireguard(crate::domain::wg_dump::WgDump),
    Openvpn(crate::domain::openvpn::OvpnStatus),
}

/// What to read on a host: enough of a server to poll it.
pub struct PollTarget<'a> {
    pub protocol: Protocol,
    pub interface: Option<&'a InterfaceName>,
    pub command_prefix: &'a CommandPrefix,
    pub openvpn: Option<&'a OpenVpnAccess>,
}

impl ServerRecord {
    pub fn target(&self) -> PollTarget<'_> {
        PollTarget {
            protocol: self.protocol,
            interface: self.interface.as_ref(),
            command_prefix: &self.command_prefix,
            openvpn: self.openvpn.as_ref(),
        }
    }
}

/// Fetches and parses what the host reports now.
pub async fn read_server(
    transport: &mut dyn HostTransport,
    target: &PollTarget<'_>,
    wait: Duration,
) -> Result<Reading, String> {
    match target.protocol {
        Protocol::Wireguard | Protocol::Amneziawg => {
            let (tool, flavor) = match target.protocol {
                Protocol::Amneziawg => ("awg", DumpFlavor::AmneziaWg),
                _ => ("wg", DumpFlavor::WireGuard),
            };
            let interface = target.interface.ok_or("the server has no interface")?;
            let command = RemoteCommand::dump(target.command_prefix, tool, interface);
            let output = transport.run(&command).await.map_err(|e| e.to_string())?;
            parse_dump(&output.stdout, flavor)
                .map(Reading::Wireguard)
                .map_err(|e| format!("the host's answer to `{command}` is not a {} dump: {e}", target.protocol.label()))
        }
        Protocol::Openvpn => {
            let access = target.openvpn.ok_or("the server has no OpenVPN settings")?;
            let text = read_status(transport, access, target.command_prefix, wait).await?;
            parse_status(&text).map(Reading::Openvpn).map_err(|e| format!("the OpenVPN status is unreadable: {e}"))
        }
    }
}

/// Stores a reading taken at `at`.
pub async fn store_reading(
    store: &dyn Store,
    id: ServerId,
    protocol: Protocol,
    reading: &Reading,
    at: DateTime<Utc>,
    timezone: Tz,
    import: bool,
) -> Result<PollOutcome, String> {
    let month = month_key(at, &timezone);
    let outcome = match reading {
        Reading::Wireguard(dump) => {
            let poll = WireguardPoll { protocol, at, month: &month, dump, import };
            store.apply_wireguard_poll(id, &poll).await
        }
        Reading::Openvpn(status) => store.apply_openvpn_poll(id, &OpenvpnPoll { at, month: &month, status }).await,
    };
    outcome.map_err(|e| format!("could not save the poll: {e}"))
}

/// One poll: read, parse, store; a failure is recorded on the server row
/// and returned as the message shown to admins.
pub async fn poll_server(
    transport: &mut dyn HostTransport,
    record: &mut ServerRecord,
    store: &dyn Store,
    settings: &PollSettings,
) -> Result<PollOutcome, String> {
    let at = Utc::now();
    let result = async {
        let reading = read_server(transport, &record.target(), settings.ssh.command).await?;
        if record.host_key.is_none() {
            if let Some(pin) = transport.host_key().cloned() {
                store.pin_host_key(record.id, &pin).await.map_err(|e| e.to_string())?;
                tracing::info!(fingerprint = %pin.fingerprint, "pinned host key on first contact");
                record.host_key = Some(pin);
            }
        }
        store_reading(store, record.id, record.protocol, &reading, at, settings.timezone, false).await
    }
    .await;
    if let Err(message) = &result {
        if let Err(e) = store.record_poll_failure(record.id, at, message).await {
            tracing::error!(error = %e, "could not record the failed poll");
        }
    }
    result
}

enum Request {
    PollNow(oneshot::Sender<Result<PollOutcome, String>>),
    Kill { target: KillTarget, halt: bool, reply: oneshot::Sender<Result<String, String>> },
}

struct Worker {
    cancel: CancellationToken,
    requests: mpsc::Sender<Request>,
}

pub struct Supervisor {
    store: Arc<dyn Store>,
    settings: PollSettings,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    workers: Mutex<HashMap<ServerId, Worker>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("no poller runs for this server")]
    NotRunning,
    #[error("{0}")]
    Failed(String),
}

/// The transport a server's record calls for.
pub fn transport_for(record: &ServerRecord, timeouts: SshTimeouts) -> Box<dyn HostTransport> {
    let host_key = match &record.host_key {
        Some(pin) => HostKeyPolicy::Pinned(pin.clone()),
        None => HostKeyPolicy::TrustOnFirstUse,
    };
    Box::new(SshTransport::new(
        SshTarget {
            host: record.host.clone(),
            port: record.port,
            user: record.user.clone(),
            key: record.key.clone(),
            host_key,
        },
        timeouts,
    ))
}

impl Supervisor {
    pub fn new(store: Arc<dyn Store>, settings: PollSettings) -> Arc<Self> {
        Arc::new(Self {
            store,
            settings,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            workers: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> PollSettings {
        self.settings
    }

    /// Starts a poller for every stored server. Returns how many.
    pub async fn start_all(&self) -> Result<usize, crate::server::store::StoreError> {
        let now = Utc::now();
        let servers = self.store.servers(now, &month_key(now, &self.settings.timezone)).await?;
        let count = servers.len();
        for record in servers {
            let transport = transport_for(&record, self.settings.ssh);
            self.spawn(record, transport, true);
        }
        Ok(count)
    }

    /// Starts polling `record` with `transport` (which may already hold a
    /// session, as after adding a server). With `poll_first`, the first poll
    /// runs at once; otherwise after one interval.
    pub fn spawn(&self, record: ServerRecord, transport: Box<dyn HostTransport>, poll_first: bool) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let cancel = self.shutdown.child_token();
        let (tx, rx) = mpsc::channel(8);
        let Ok(mut workers) = self.workers.lock() else {
            tracing::error!("poller registry lock poisoned");
            return;
        };
        if let Some(old) = workers.insert(record.id, Worker { cancel: cancel.clone(), requests: tx }) {
            old.cancel.cancel();
        }
        drop(workers);
        let span = tracing::info_span!("poller", server_id = %record.id, server = %record.name, host = %record.host);
        let job =
            PollJob { record, transport, store: self.store.clone(), settings: self.settings, cancel, requests: rx };
        self.tracker.spawn(job.run(poll_first).instrument(span));
    }

    async fn ask<T>(&self, id: ServerId, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, WorkerError> {
        let sender = {
            let workers = self.workers.lock().map_err(|_| WorkerError::NotRunning)?;
            workers.get(&id).map(|w| w.requests.clone()).ok_or(WorkerError::NotRunning)?
        };
        let (reply, outcome) = oneshot::channel();
        sender.send(make(reply)).await.map_err(|_| WorkerError::NotRunning)?;
        outcome.await.map_err(|_| WorkerError::NotRunning)
    }

    /// Polls the server now and waits for the outcome.
    pub async fn poll_now(&self, id: ServerId) -> Result<PollOutcome, WorkerError> {
        self.ask(id, Request::PollNow).await?.map_err(WorkerError::Failed)
    }

    /// Ends an OpenVPN session through the server's management interface.
    pub async fn kill(&self, id: ServerId, target: KillTarget, halt: bool) -> Result<String, WorkerError> {
        self.ask(id, |reply| Request::Kill { target, halt, reply }).await?.map_err(WorkerError::Failed)
    }

    /// Cancels every poller and waits up to `grace` for them to finish.
    /// Returns false if some did not finish in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.shutdown.cancel();
        self.tracker.close();
        let finished = tokio::time::timeout(grace, self.tracker.wait()).await.is_ok();
        if !finished {
            tracing::warn!(grace_secs = grace.as_secs(), "pollers did not stop in time");
        }
        finished
    }
}

struct PollJob {
    record: ServerRecord,
    transport: Box<dyn HostTransport>,
    store: Arc<dyn Store>,
    settings: PollSettings,
    cancel: CancellationToken,
    requests: mpsc::Receiver<Request>,
}

impl PollJob {
    async fn run(mut self, poll_first: bool) {
        tracing::debug!("poller started");
        let mut failures: u32 = 0;
        let mut next = if poll_first { Instant::now() } else { Instant::now() + self.settings.interval };
        let cancel = self.cancel.clone();
        loop {
            let request = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                request = self.requests.recv() => match request {
                    Some(r) => Some(r),
                    None => break,
                },
                _ = sleep_until(next) => None,
            };
            let reply = match request {
                Some(Request::Kill { target, halt, reply }) => {
                    let access = self.record.openvpn.clone();
                    let outcome = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => break,
                        outcome = async {
                            match &access {
                                Some(access) => kill_session(self.transport.as_mut(), access, &target, halt, self.settings.ssh.command).await,
                                None => Err("only OpenVPN sessions can be ended".to_owned()),
                            }
                        } => outcome,
                    };
                    let _ = reply.send(outcome);
                    continue;
                }
                Some(Request::PollNow(reply)) => Some(reply),
                None => None,
            };
            let outcome = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                outcome = poll_server(self.transport.as_mut(), &mut self.record, self.store.as_ref(), &self.settings) => outcome,
            };
            match &outcome {
                Ok(report) => {
                    if failures > 0 {
                        tracing::info!(sources = report.sources, "host answers again");
                    }
                    failures = 0;
                }
                Err(message) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(failures, error = %message, "poll failed");
                }
            }
            next = Instant::now() + self.settings.delay_after(failures);
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }
        tracing::debug!("poller stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let s = PollSettings {
            interval: Duration::from_secs(30),
            max_backoff: Duration::from_secs(300),
            ssh: SshTimeouts {
                connect: Duration::from_secs(1),
                authenticate: Duration::from_secs(1),
                command: Duration::from_secs(1),
            },
            timezone: Tz::UTC,
        };
        let secs: Vec<u64> = (0..7).map(|f| s.delay_after(f).as_secs()).collect();
        assert_eq!(secs, [30, 30, 60, 120, 240, 300, 300]);
        assert_eq!(s.delay_after(u32::MAX), Duration::from_secs(300));
    }
}
