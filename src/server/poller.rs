//! Polling: one supervised task per server.
//!
//! Each task owns its host connection (reused between polls), polls at the
//! configured interval, backs off while the host fails, and records every
//! outcome on the server row. Tasks are independent: a host that hangs only
//! holds up its own task, and only until the poll's deadline. Every task has
//! a cancellation token; shutdown cancels them all and waits a bounded time.
//! A task that panics is restarted (with backoff, on a fresh connection) and
//! the panic is recorded on its server. Anything else that must talk to a
//! host the task owns (poll now, end a session) is sent to the task as a
//! request.

use crate::domain::accounting::month_key;
use crate::domain::{ClientId, ServerId};
use crate::server::bus::EventBus;
use crate::server::enforce::Watch;
use crate::server::generate::{Generated, PeerRequest};
use crate::server::openvpn::KillTarget;
use crate::server::peers::Applied;
use crate::server::poll::{PollError, PollLimits, Reading};
use crate::server::store::{Fence, PollOutcome, ServerRecord, Store};
use crate::server::transport::ssh::{HostKeyPolicy, SshTarget, SshTimeouts, SshTransport};
use crate::server::transport::HostTransport;
use chrono::Utc;
use chrono_tz::Tz;
use job::PollJob;
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

mod job;

#[derive(Debug, Clone, Copy)]
pub struct PollSettings {
    pub interval: Duration,
    pub max_backoff: Duration,
    pub ssh: SshTimeouts,
    /// One whole poll, however many remote calls it makes.
    pub deadline: Duration,
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

    pub fn limits(&self) -> PollLimits {
        PollLimits { call: self.ssh.command, deadline: self.deadline, timezone: self.timezone }
    }
}

/// Makes the transport that reaches a host: SSH in the panel, a fake in
/// tests.
pub type TransportFactory = Arc<dyn Fn(SshTarget) -> Box<dyn HostTransport> + Send + Sync>;

/// How a stored server is reached: its pinned host key, or trust on first
/// use if none was pinned yet.
pub fn target_of(record: &ServerRecord) -> SshTarget {
    let host_key = match &record.host_key {
        Some(pin) => HostKeyPolicy::Pinned(pin.clone()),
        None => HostKeyPolicy::TrustOnFirstUse,
    };
    SshTarget {
        host: record.host.clone(),
        port: record.port,
        user: record.user.clone(),
        key: record.key.clone(),
        host_key,
    }
}

/// The SSH transport a server's record calls for.
pub fn transport_for(record: &ServerRecord, timeouts: SshTimeouts) -> Box<dyn HostTransport> {
    Box::new(SshTransport::new(target_of(record), timeouts))
}

enum Request {
    PollNow(oneshot::Sender<Result<PollOutcome, PollError>>),
    Peer { client: ClientId, reply: oneshot::Sender<Result<Applied, PollError>> },
    Remove { client: ClientId, reply: oneshot::Sender<Result<Applied, PollError>> },
    Push { reading: Reading, reply: oneshot::Sender<Result<PollOutcome, PollError>> },
    Generate { request: PeerRequest, reply: oneshot::Sender<Result<Generated, PollError>> },
    Kill { target: KillTarget, halt: bool, reply: oneshot::Sender<Result<String, String>> },
}

type Requests = Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>;

/// A poller's fence, which a lease round may change while it runs.
type SharedFence = Arc<Mutex<Option<Fence>>>;

fn fence_of(shared: &SharedFence) -> Option<Fence> {
    shared.lock().ok().and_then(|f| f.clone())
}

struct Worker {
    /// The lease it polls under (see [`Supervisor::spawn_leased`]).
    fence: SharedFence,
    cancel: CancellationToken,
    requests: mpsc::Sender<Request>,
}

/// When a new task polls first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPoll {
    /// At a random moment within one interval, so that a panel starting
    /// with many servers does not poll them all in the same instant.
    Jittered,
    /// After one interval (the server was just read).
    AfterInterval,
    /// At once (a server taken over from another replica).
    Now,
}

pub struct Supervisor {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    settings: PollSettings,
    factory: TransportFactory,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    workers: Mutex<HashMap<ServerId, Worker>>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WorkerError {
    #[error("no poller runs for this server")]
    NotRunning,
    /// The poller took the request but stopped before it answered (its
    /// lease moved, or the panel is stopping): the change may or may not
    /// have been made, so it is not handed on.
    #[error("the poller stopped before it finished; the change may or may not have been made")]
    Interrupted,
    #[error(transparent)]
    Poll(#[from] PollError),
    #[error("{0}")]
    Failed(String),
}

impl Supervisor {
    /// A supervisor that reaches hosts over SSH and tells `bus` of every
    /// poll.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>, settings: PollSettings) -> Arc<Self> {
        let timeouts = settings.ssh;
        let factory: TransportFactory = Arc::new(move |target| Box::new(SshTransport::new(target, timeouts)));
        Self::with_factory(store, bus, settings, factory)
    }

    pub fn with_factory(
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        settings: PollSettings,
        factory: TransportFactory,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            bus,
            settings,
            factory,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            workers: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> PollSettings {
        self.settings
    }

    /// Where changes are announced to the pages of every replica.
    pub fn bus(&self) -> &dyn EventBus {
        self.bus.as_ref()
    }

    /// A transport to `target`, made by this supervisor's factory.
    pub fn transport(&self, target: SshTarget) -> Box<dyn HostTransport> {
        (self.factory)(target)
    }

    /// Starts polling `record` with `transport` (which may already hold a
    /// session, as after adding a server), under supervision.
    pub fn spawn(&self, record: ServerRecord, transport: Box<dyn HostTransport>, first: FirstPoll) {
        self.spawn_leased(record, transport, first, None);
    }

    /// As [`Supervisor::spawn`], its polls written under `fence`.
    pub fn spawn_leased(
        &self,
        record: ServerRecord,
        transport: Box<dyn HostTransport>,
        first: FirstPoll,
        fence: Option<Fence>,
    ) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let cancel = self.shutdown.child_token();
        let (tx, rx) = mpsc::channel(8);
        let Ok(mut workers) = self.workers.lock() else {
            tracing::error!("poller registry lock poisoned");
            return;
        };
        let fence: SharedFence = Arc::new(Mutex::new(fence));
        let worker = Worker { cancel: cancel.clone(), requests: tx, fence: fence.clone() };
        if let Some(old) = workers.insert(record.id, worker) {
            old.cancel.cancel();
        }
        drop(workers);
        let span = tracing::info_span!("poller", server_id = %record.id, server = %record.name, host = %record.host);
        let delay = match first {
            FirstPoll::Jittered => jitter(self.settings.interval),
            FirstPoll::AfterInterval => self.settings.interval,
            FirstPoll::Now => Duration::ZERO,
        };
        let supervision = Supervision {
            store: self.store.clone(),
            bus: self.bus.clone(),
            settings: self.settings,
            factory: self.factory.clone(),
            tracker: self.tracker.clone(),
            cancel,
            requests: Arc::new(tokio::sync::Mutex::new(rx)),
            fence,
        };
        self.tracker.spawn(supervision.run(record, transport, delay).instrument(span));
    }

    async fn ask<T>(&self, id: ServerId, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, WorkerError> {
        let sender = {
            let workers = self.workers.lock().map_err(|_| WorkerError::NotRunning)?;
            workers.get(&id).map(|w| w.requests.clone()).ok_or(WorkerError::NotRunning)?
        };
        let (reply, outcome) = oneshot::channel();
        sender.send(make(reply)).await.map_err(|_| WorkerError::NotRunning)?;
        outcome.await.map_err(|_| WorkerError::Interrupted)
    }

    /// The servers polled here, with the fence each is polled under.
    pub fn running(&self) -> HashMap<ServerId, Option<Fence>> {
        self.workers
            .lock()
            .map(|w| w.iter().map(|(id, worker)| (*id, fence_of(&worker.fence))).collect())
            .unwrap_or_default()
    }

    /// Polls `id` under `fence` from its next write on (the lease was
    /// taken or renewed under a new number); false if no poller runs for it.
    pub fn set_fence(&self, id: ServerId, fence: Fence) -> bool {
        let Some(shared) = self.workers.lock().ok().and_then(|w| w.get(&id).map(|worker| worker.fence.clone())) else {
            return false;
        };
        if let Ok(mut current) = shared.lock() {
            *current = Some(fence);
        }
        true
    }

    /// Stops polling `id` here (its lease went to another replica); an
    /// unfinished poll is cancelled, so nothing of it is stored.
    pub fn stop(&self, id: ServerId) {
        if let Some(worker) = self.workers.lock().ok().and_then(|mut w| w.remove(&id)) {
            worker.cancel.cancel();
        }
    }

    /// Polls the server now and waits for the outcome.
    pub async fn poll_now(&self, id: ServerId) -> Result<PollOutcome, WorkerError> {
        Ok(self.ask(id, Request::PollNow).await??)
    }

    /// Brings the server's host to the client's stored access (revoked or
    /// restored) and confirms it.
    pub async fn carry_out(&self, id: ServerId, client: ClientId) -> Result<Applied, WorkerError> {
        Ok(self.ask(id, |reply| Request::Peer { client, reply }).await??)
    }

    /// Takes a client off the server's host for good (a delete).
    pub async fn remove(&self, id: ServerId, client: ClientId) -> Result<Applied, WorkerError> {
        Ok(self.ask(id, |reply| Request::Remove { client, reply }).await??)
    }

    /// Applies what the server pushed, as a poll, then runs a pass.
    pub async fn push(&self, id: ServerId, reading: Reading) -> Result<PollOutcome, WorkerError> {
        Ok(self.ask(id, |reply| Request::Push { reading, reply }).await??)
    }

    /// Generates a peer on the server's host (in its task, one at a time).
    pub async fn generate(&self, id: ServerId, request: PeerRequest) -> Result<Generated, WorkerError> {
        Ok(self.ask(id, |reply| Request::Generate { request, reply }).await??)
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

/// A random delay in `[0, interval)`.
fn jitter(interval: Duration) -> Duration {
    let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::thread_rng().gen_range(0..millis))
}

/// Runs a server's poll task and restarts it when it panics.
struct Supervision {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    settings: PollSettings,
    factory: TransportFactory,
    tracker: TaskTracker,
    cancel: CancellationToken,
    requests: Requests,
    fence: SharedFence,
}

impl Supervision {
    async fn run(self, mut record: ServerRecord, transport: Box<dyn HostTransport>, first_delay: Duration) {
        let mut transport = Some(transport);
        let mut delay = first_delay;
        let mut panics: u32 = 0;
        loop {
            let job = PollJob {
                record: record.clone(),
                transport: transport.take().unwrap_or_else(|| (self.factory)(target_of(&record))),
                store: self.store.clone(),
                bus: self.bus.clone(),
                settings: self.settings,
                cancel: self.cancel.clone(),
                requests: self.requests.clone(),
                watch: Watch::new(),
                fence: self.fence.clone(),
            };
            let task = self.tracker.spawn(job.run(delay).in_current_span());
            let panic = match task.await {
                Ok(()) => return,
                Err(e) if e.is_panic() => e.into_panic(),
                Err(_) => return, // cancelled by the runtime shutting down
            };
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            panics = panics.saturating_add(1);
            let error = PollError::internal(format!("the poll task panicked: {message}"));
            let shown = format!("the poller crashed and was restarted: {error}");
            if let Err(e) = self.store.record_poll_failure(record.id, Utc::now(), &shown).await {
                tracing::error!(error = %e, "could not record the panic");
            }
            let backoff = self.settings.delay_after(panics);
            tracing::warn!(panics, backoff_secs = backoff.as_secs(), "restarting the poll task");
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = sleep(backoff) => {}
            }
            let now = Utc::now();
            match self.store.server(record.id, now, &month_key(now, &self.settings.timezone)).await {
                Ok(Some(fresh)) => record = fresh,
                Ok(None) => return, // the server was removed
                Err(e) => tracing::warn!(error = %e, "could not reload the server; restarting with what was known"),
            }
            delay = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests;
