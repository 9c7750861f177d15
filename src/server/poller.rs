//! Polling: one supervised task per server.
//!
//! Each task owns its host connection (reused between polls), polls at the
//! configured interval, backs off while the host fails, and records every
//! outcome on the server row. Tasks are independent: a host that hangs only
//! holds up its own task, and only until the transport's timeouts fire.
//! Every task has a cancellation token; shutdown cancels them all and waits
//! a bounded time.

use crate::domain::wg_dump::parse_wg_dump;
use crate::domain::{RemoteCommand, ServerId};
use crate::server::store::{ServerRecord, Store};
use crate::server::transport::ssh::{HostKeyPolicy, SshTarget, SshTimeouts, SshTransport};
use crate::server::transport::HostTransport;
use chrono::Utc;
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

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub peers: usize,
}

type PollReply = oneshot::Sender<Result<PollReport, String>>;

struct Worker {
    cancel: CancellationToken,
    poll_now: mpsc::Sender<PollReply>,
}

pub struct Supervisor {
    store: Arc<dyn Store>,
    settings: PollSettings,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    workers: Mutex<HashMap<ServerId, Worker>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PollNowError {
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
        let servers = self.store.servers(Utc::now()).await?;
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
        if let Some(old) = workers.insert(record.id, Worker { cancel: cancel.clone(), poll_now: tx }) {
            old.cancel.cancel();
        }
        drop(workers);
        let span = tracing::info_span!("poller", server_id = %record.id, server = %record.name, host = %record.host);
        let job =
            PollJob { record, transport, store: self.store.clone(), settings: self.settings, cancel, requests: rx };
        self.tracker.spawn(job.run(poll_first).instrument(span));
    }

    /// Polls the server now and waits for the outcome.
    pub async fn poll_now(&self, id: ServerId) -> Result<PollReport, PollNowError> {
        let sender = {
            let workers = self.workers.lock().map_err(|_| PollNowError::NotRunning)?;
            workers.get(&id).map(|w| w.poll_now.clone()).ok_or(PollNowError::NotRunning)?
        };
        let (reply, outcome) = oneshot::channel();
        sender.send(reply).await.map_err(|_| PollNowError::NotRunning)?;
        outcome.await.map_err(|_| PollNowError::NotRunning)?.map_err(PollNowError::Failed)
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
    requests: mpsc::Receiver<PollReply>,
}

impl PollJob {
    async fn run(mut self, poll_first: bool) {
        tracing::debug!("poller started");
        let mut failures: u32 = 0;
        let mut next = if poll_first { Instant::now() } else { Instant::now() + self.settings.interval };
        let cancel = self.cancel.clone();
        loop {
            let reply = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                request = self.requests.recv() => match request {
                    Some(reply) => Some(reply),
                    None => break,
                },
                _ = sleep_until(next) => None,
            };
            let outcome = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                outcome = self.poll_once() => outcome,
            };
            match &outcome {
                Ok(report) => {
                    if failures > 0 {
                        tracing::info!(peers = report.peers, "host answers again");
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

    /// One poll: read the dump, parse it, store it. Any failure is recorded on
    /// the server row and returned as the message shown to admins.
    async fn poll_once(&mut self) -> Result<PollReport, String> {
        let at = Utc::now();
        let result = self.fetch_and_store(at).await;
        if let Err(message) = &result {
            if let Err(e) = self.store.record_poll_failure(self.record.id, at, message).await {
                tracing::error!(error = %e, "could not record the failed poll");
            }
        }
        result
    }

    async fn fetch_and_store(&mut self, at: chrono::DateTime<Utc>) -> Result<PollReport, String> {
        let command = RemoteCommand::wg_dump(&self.record.command_prefix, &self.record.interface);
        let output = self.transport.run(&command).await.map_err(|e| e.to_string())?;
        let dump = parse_wg_dump(&output.stdout)
            .map_err(|e| format!("the host's answer to `{command}` is not a WireGuard dump: {e}"))?;
        if self.record.host_key.is_none() {
            if let Some(pin) = self.transport.host_key().cloned() {
                self.store.pin_host_key(self.record.id, &pin).await.map_err(|e| e.to_string())?;
                tracing::info!(fingerprint = %pin.fingerprint, "pinned host key on first contact");
                self.record.host_key = Some(pin);
            }
        }
        self.store
            .record_poll_success(self.record.id, at, &dump)
            .await
            .map_err(|e| format!("could not save the poll: {e}"))?;
        Ok(PollReport { peers: dump.peers.len() })
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
        };
        let secs: Vec<u64> = (0..7).map(|f| s.delay_after(f).as_secs()).collect();
        assert_eq!(secs, [30, 30, 60, 120, 240, 300, 300]);
        assert_eq!(s.delay_after(u32::MAX), Duration::from_secs(300));
    }
}
