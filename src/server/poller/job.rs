//! One server's poll task: polls at its interval, runs the enforcement
//! passes, and carries out the requests sent to it, one at a time, over the
//! connection it owns.

use super::{fence_of, PollSettings, Request, Requests, SharedFence};
use crate::api::live::LiveEvent;
use crate::server::bus::EventBus;
use crate::server::enforce::{enforce, Pass, Watch};
use crate::server::generate::generate;
use crate::server::openvpn::kill_session;
use crate::server::poll::{poll_server, store_reading, PollError};
use crate::server::reconcile::{carry_out_client, remove_client};
use crate::server::store::{PollFigures, PollOutcome, ServerRecord, Store};
use crate::server::transport::HostTransport;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

pub(super) struct PollJob {
    pub record: ServerRecord,
    pub transport: Box<dyn HostTransport>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub settings: PollSettings,
    pub cancel: CancellationToken,
    pub requests: Requests,
    /// What the last enforcement pass found.
    pub watch: Watch,
    /// The lease the server is polled under, if any.
    pub fence: SharedFence,
}

/// Runs a host job for a request within the poll deadline (a late one is a
/// `Deadline` error); `None` when the task is cancelled meanwhile.
async fn within<T>(
    cancel: &CancellationToken,
    deadline: Duration,
    job: impl std::future::Future<Output = Result<T, PollError>>,
) -> Option<Result<T, PollError>> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        outcome = tokio::time::timeout(deadline, job) => Some(outcome.unwrap_or(Err(PollError::Deadline(deadline)))),
    }
}

/// The longest between two enforcement passes, polls or not (an expiry is
/// acted on, at least in the database, while the host does not answer or
/// polls are far apart).
const PASS_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

impl PollJob {
    /// One enforcement pass, within the poll deadline, given the figures of
    /// the poll applied just before it (if any); a failure is logged and the
    /// next pass tries again.
    async fn enforce_pass(&mut self, figures: Option<&PollFigures>) {
        let pass = Pass { now: Utc::now(), tz: self.settings.timezone, wait: self.settings.ssh.command };
        let (store, watch) = (self.store.as_ref(), &mut self.watch);
        let pass = enforce(self.transport.as_mut(), &self.record, store, watch, figures, pass);
        match tokio::time::timeout(self.settings.deadline, pass).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(changed = n, "enforcement pass");
                self.bus.publish(LiveEvent::ClientsChanged { server: self.record.id });
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "enforcement pass failed; it runs again after the next poll or within a minute")
            }
            Err(_) => {
                self.watch.forget();
                tracing::warn!("enforcement pass timed out; it runs again after the next poll or within a minute");
            }
        }
    }

    /// The pass after a poll or push that was stored, with its figures;
    /// false if the task was cancelled meanwhile.
    async fn pass_after(&mut self, outcome: &Result<PollOutcome, PollError>, cancel: &CancellationToken) -> bool {
        let Ok(applied) = outcome else { return true };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => false,
            _ = self.enforce_pass(applied.figures.as_ref()) => true,
        }
    }

    /// Tells the pages of a poll's end: every applied poll, and a failure
    /// when the server's health changes (its first failure in a row).
    fn announce(&self, outcome: &Result<PollOutcome, PollError>, failures: u32) {
        let server = self.record.id;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let event = match outcome {
            Ok(o) if o.applied => LiveEvent::ServerPolled {
                server,
                ok: true,
                sessions_opened: count(o.sessions_opened),
                sessions_closed: count(o.sessions_closed),
            },
            Ok(_) => return,
            Err(_) if failures == 1 => {
                LiveEvent::ServerPolled { server, ok: false, sessions_opened: 0, sessions_closed: 0 }
            }
            Err(_) => return,
        };
        self.bus.publish(event);
    }

    pub async fn run(mut self, first_delay: Duration) {
        tracing::debug!("poller started");
        let requests = self.requests.clone();
        let mut requests = requests.lock().await;
        let mut failures: u32 = 0;
        let mut next = Instant::now() + first_delay;
        let mut next_pass = Instant::now() + PASS_AT_LEAST_EVERY;
        let cancel = self.cancel.clone();
        loop {
            let request = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                request = requests.recv() => match request {
                    Some(r) => Some(r),
                    None => break,
                },
                _ = sleep_until(next) => None,
                _ = sleep_until(next_pass) => {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => break,
                        _ = self.enforce_pass(None) => {}
                    }
                    next_pass = Instant::now() + PASS_AT_LEAST_EVERY;
                    continue;
                }
            };
            let reply = match request {
                Some(Request::Kill { target, halt, reply }) => {
                    let access = self.record.openvpn.clone();
                    let wait = self.settings.ssh.command;
                    let outcome = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => break,
                        outcome = tokio::time::timeout(self.settings.deadline, async {
                            match &access {
                                Some(access) => kill_session(self.transport.as_mut(), access, &target, halt, wait).await,
                                None => Err("only OpenVPN sessions can be ended".to_owned()),
                            }
                        }) => outcome.unwrap_or_else(|_| Err("the host did not answer in time".to_owned())),
                    };
                    let _ = reply.send(outcome);
                    continue;
                }
                Some(Request::Peer { client, reply }) => {
                    let (deadline, wait) = (self.settings.deadline, self.settings.ssh.command);
                    let job =
                        carry_out_client(self.transport.as_mut(), &self.record, self.store.as_ref(), client, wait);
                    let Some(outcome) = within(&cancel, deadline, job).await else { break };
                    let _ = reply.send(outcome);
                    continue;
                }
                Some(Request::Remove { client, reply }) => {
                    let (deadline, wait) = (self.settings.deadline, self.settings.ssh.command);
                    let job = remove_client(self.transport.as_mut(), &self.record, self.store.as_ref(), client, wait);
                    let Some(outcome) = within(&cancel, deadline, job).await else { break };
                    let _ = reply.send(outcome);
                    continue;
                }
                Some(Request::Push { reading, reply }) => {
                    let fence = fence_of(&self.fence);
                    let (store, record, fence) = (self.store.as_ref(), &self.record, fence.as_ref());
                    let (at, tz) = (Utc::now(), self.settings.timezone);
                    let outcome =
                        store_reading(store, record.id, record.protocol, &reading, at, tz, false, fence).await;
                    self.announce(&outcome, 0);
                    if !self.pass_after(&outcome, &cancel).await {
                        break;
                    }
                    if outcome.is_ok() {
                        next_pass = Instant::now() + PASS_AT_LEAST_EVERY;
                    }
                    let _ = reply.send(outcome);
                    continue;
                }
                Some(Request::Generate { request, reply }) => {
                    let deadline = self.settings.deadline;
                    let job =
                        generate(self.transport.as_mut(), &self.record, self.store.as_ref(), &request, Utc::now());
                    let Some(outcome) = within(&cancel, deadline, job).await else { break };
                    let _ = reply.send(outcome);
                    continue;
                }
                Some(Request::PollNow(reply)) => Some(reply),
                None => None,
            };
            let limits = self.settings.limits();
            let fence = fence_of(&self.fence);
            let outcome = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                outcome = poll_server(
                    self.transport.as_mut(), &mut self.record, self.store.as_ref(), limits, fence.as_ref()
                ) => outcome,
            };
            if !self.pass_after(&outcome, &cancel).await {
                break;
            }
            if outcome.is_ok() {
                next_pass = Instant::now() + PASS_AT_LEAST_EVERY;
            }
            match &outcome {
                Ok(report) => {
                    if failures > 0 {
                        tracing::info!(sources = report.sources, "host answers again");
                    }
                    failures = 0;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(failures, %error, "poll failed");
                }
            }
            self.announce(&outcome, failures);
            next = Instant::now() + self.settings.delay_after(failures);
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }
        tracing::debug!("poller stopped");
    }
}
