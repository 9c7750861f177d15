//! Changes on a host asked of whichever replica a browser reached: the
//! replica holding the server's lease carries them out (it owns the host's
//! connection and polls under the lease's fence), so any other replica
//! forwards the call to it and waits for the reply.
//!
//! Calls travel over plain HTTP (no TLS between replicas is needed) to `POST /internal/host-call` at the
//! owner's address (`replicas.address`). Both the call and the reply are
//! sealed with the secrets key every replica shares (XChaCha20-Poly1305):
//! only a replica can make a call, nobody on the path can read or alter
//! one, and a reply answers only its own call. A call names the replica it
//! is for and the time it was made; one older than [`MAX_AGE`] or seen
//! before is refused, so a recorded call cannot be replayed.

use crate::domain::{ClientId, Protocol, ServerId};
use crate::server::generate::PeerRequest;
use crate::server::openvpn::KillTarget;
use crate::server::peers::Applied;
use crate::server::poll::{parse_reading, PollError};
use crate::server::poller::{Supervisor, WorkerError};
use crate::server::sealer::Sealer;
use crate::server::store::{LeaseOwner, PollOutcome, Store};
use chrono::Utc;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The internal endpoint's path.
pub const PATH: &str = "/internal/host-call";

/// How old a call may be when it arrives (clocks of replicas agree to
/// well within this).
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// What a call is sealed for; a reply's is [`reply_aad`].
const CALL_AAD: &str = "replica:host-call";

fn reply_aad(id: &str) -> String {
    format!("replica:host-reply:{id}")
}

/// A change on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostCall {
    PollNow,
    /// Bring the host to the client's stored access (revoke or restore).
    CarryOut {
        client: ClientId,
    },
    /// Take the client off the host for good (delete).
    Remove {
        client: ClientId,
    },
    Generate(PeerRequest),
    Kill {
        target: KillTarget,
        halt: bool,
    },
    /// A status the host pushed (as its text), applied as a poll.
    Push {
        protocol: Protocol,
        body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostReply {
    Polled(PollOutcome),
    Applied(Applied),
    /// The new client; its config is read from the database, where it is
    /// stored sealed, so no secret travels in a reply.
    Generated(ClientId),
    Killed(String),
}

fn mismatch(reply: HostReply) -> WorkerError {
    WorkerError::Poll(PollError::internal(format!("a reply of another kind: {reply:?}")))
}

impl HostReply {
    pub fn polled(self) -> Result<PollOutcome, WorkerError> {
        match self {
            Self::Polled(outcome) => Ok(outcome),
            other => Err(mismatch(other)),
        }
    }

    pub fn applied(self) -> Result<Applied, WorkerError> {
        match self {
            Self::Applied(applied) => Ok(applied),
            other => Err(mismatch(other)),
        }
    }

    pub fn generated(self) -> Result<ClientId, WorkerError> {
        match self {
            Self::Generated(client) => Ok(client),
            other => Err(mismatch(other)),
        }
    }

    pub fn killed(self) -> Result<String, WorkerError> {
        match self {
            Self::Killed(reply) => Ok(reply),
            other => Err(mismatch(other)),
        }
    }
}

/// Carries `call` out with this replica's poller of `server`
/// (`NotRunning` if it polls no such server).
pub async fn run_here(poller: &Supervisor, server: ServerId, call: HostCall) -> Result<HostReply, WorkerError> {
    Ok(match call {
        HostCall::PollNow => HostReply::Polled(poller.poll_now(server).await?),
        HostCall::CarryOut { client } => HostReply::Applied(poller.carry_out(server, client).await?),
        HostCall::Remove { client } => HostReply::Applied(poller.remove(server, client).await?),
        HostCall::Generate(request) => HostReply::Generated(poller.generate(server, request).await?.client),
        HostCall::Kill { target, halt } => HostReply::Killed(poller.kill(server, target, halt).await?),
        HostCall::Push { protocol, body } => {
            HostReply::Polled(poller.push(server, parse_reading(protocol, &body)?).await?)
        }
    })
}

/// A call as sealed.
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// Random; the reply is sealed for it.
    id: String,
    /// The replica it is for.
    to: String,
    /// When it was made, Unix ms.
    at_ms: i64,
    server: ServerId,
    call: HostCall,
}

/// Why a call from another replica was not carried out.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not sealed with this panel's secrets key")]
    Unauthentic,
    #[error("made more than {MAX_AGE:?} ago, or seen before")]
    Replayed,
    #[error("meant for another replica")]
    NotForMe,
    #[error("the reply could not be sealed")]
    Seal,
}

/// How long a call may take on the owner, given the poll deadline: a
/// request waits behind a running poll and its enforcement pass, then runs
/// (a poll now runs its pass too), each bounded by the deadline.
pub fn owner_time(deadline: Duration) -> Duration {
    deadline.saturating_mul(4)
}

pub struct Forwarder {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    /// This replica's id.
    me: String,
    http: reqwest::Client,
    /// How long a call may take on the owner ([`owner_time`]); the caller
    /// waits a little longer, so the owner's answer always arrives.
    wait: Duration,
    /// Calls served lately, by id, with their time (replays are refused).
    seen: Mutex<HashMap<String, i64>>,
}

impl Forwarder {
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>, me: &str, wait: Duration) -> Self {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { store, sealer, me: me.to_owned(), http, wait, seen: Mutex::new(HashMap::new()) }
    }

    /// Has the replica holding `server`'s lease carry `call` out.
    /// `NotRunning` when no other replica holds it (none yet, or this one).
    pub async fn ask(&self, server: ServerId, call: HostCall) -> Result<HostReply, WorkerError> {
        let owner = self.store.lease_owner(server, Utc::now()).await.map_err(PollError::internal)?;
        let Some(LeaseOwner { replica, address: Some(address) }) = owner.filter(|o| o.replica != self.me) else {
            return Err(WorkerError::NotRunning);
        };
        let id = format!("{:032x}", rand::thread_rng().gen::<u128>());
        let envelope =
            Envelope { id: id.clone(), to: replica.clone(), at_ms: Utc::now().timestamp_millis(), server, call };
        let plain = serde_json::to_string(&envelope).map_err(PollError::internal)?;
        let sealed = self.sealer.seal(CALL_AAD, &plain).map_err(PollError::internal)?;
        let failed = |cause: String, sent: bool| {
            tracing::warn!(%server, owner = %replica, %address, %cause, "the replica polling this server did not answer");
            WorkerError::Failed(
                if sent {
                    "the replica that polls this server did not answer in time; \
                 the change may or may not have been made: check before trying again"
                } else {
                    "the replica that polls this server could not be reached; try again in a moment"
                }
                .to_owned(),
            )
        };
        let response = self
            .http
            .post(format!("{address}{PATH}"))
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .timeout(self.wait + Duration::from_secs(10))
            .body(sealed)
            .send()
            .await
            .map_err(|e| failed(e.to_string(), !e.is_connect()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| failed(e.to_string(), true))?;
        if status == reqwest::StatusCode::CONFLICT {
            // Its lease moved on meanwhile.
            return Err(WorkerError::NotRunning);
        }
        if !status.is_success() {
            return Err(failed(format!("{status}: {text}"), true));
        }
        let reply = self.sealer.open(&reply_aad(&id), &text).map_err(|e| failed(e.to_string(), true))?;
        serde_json::from_str::<Result<HostReply, WorkerError>>(reply.expose())
            .map_err(|e| failed(format!("unreadable reply: {e}"), true))?
    }

    /// Serves a sealed call from another replica with `poller`, within the
    /// owner's time and until `closing`; returns the sealed reply.
    pub async fn serve(
        &self,
        poller: &Supervisor,
        sealed: &str,
        closing: &CancellationToken,
    ) -> Result<String, Refusal> {
        let plain = self.sealer.open(CALL_AAD, sealed).map_err(|_| Refusal::Unauthentic)?;
        let envelope: Envelope = serde_json::from_str(plain.expose()).map_err(|_| Refusal::Unauthentic)?;
        if envelope.to != self.me {
            return Err(Refusal::NotForMe);
        }
        self.first_sight(&envelope.id, envelope.at_ms, Utc::now().timestamp_millis())?;
        let result = tokio::select! {
            _ = closing.cancelled() => Err(WorkerError::Interrupted),
            done = tokio::time::timeout(self.wait, run_here(poller, envelope.server, envelope.call)) => {
                done.unwrap_or(Err(WorkerError::Interrupted))
            }
        };
        let text = serde_json::to_string(&result).map_err(|_| Refusal::Seal)?;
        self.sealer.seal(&reply_aad(&envelope.id), &text).map_err(|_| Refusal::Seal)
    }

    /// Refuses a call made too long ago (or too far ahead) or already seen.
    fn first_sight(&self, id: &str, at_ms: i64, now_ms: i64) -> Result<(), Refusal> {
        let max = i64::try_from(MAX_AGE.as_millis()).unwrap_or(i64::MAX);
        if at_ms.abs_diff(now_ms) > max.unsigned_abs() {
            return Err(Refusal::Replayed);
        }
        let mut seen = self.seen.lock().map_err(|_| Refusal::Replayed)?;
        seen.retain(|_, at| at.abs_diff(now_ms) <= max.unsigned_abs() * 2);
        if seen.insert(id.to_owned(), at_ms).is_some() {
            return Err(Refusal::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
