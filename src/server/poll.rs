//! One poll of one host: read what it reports, parse it, store it. Errors are
//! typed ([`PollError`]): what the host did wrong is shown to the admin as it
//! is; what went wrong inside the panel is logged with a reference and shown
//! only as that reference.

use crate::domain::accounting::month_key;
use crate::domain::openvpn::{parse_status, OvpnStatus};
use crate::domain::wg_dump::{parse_dump, DumpFlavor, WgDump};
use crate::domain::Protocol;
use crate::domain::{CommandPrefix, InterfaceName, RemoteCommand, ServerId};
use crate::error::error_reference;
use crate::server::openvpn::{read_status, ManagementError, StatusReadError};
use crate::server::store::{
    Fence, OpenVpnAccess, OpenvpnPoll, PollOutcome, ServerRecord, Store, StoreError, WireguardPoll,
};
use crate::server::transport::{HostTransport, TransportError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::time::Duration;

/// Why a poll failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum PollError {
    /// The host could not be reached, or stopped answering.
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    HostKey(String),
    /// The host refused the login, or the key cannot be used.
    #[error("{0}")]
    Auth(String),
    /// A command (or the OpenVPN management interface) failed on the host.
    #[error("{0}")]
    Command(String),
    /// The host's answer is not what the protocol prints.
    #[error("{0}")]
    Parse(String),
    #[error("the poll did not finish within its deadline of {0:?}")]
    Deadline(Duration),
    /// A failure inside the panel (the database, a bug): the cause is in
    /// the log under this reference.
    #[error("internal error (ref {0})")]
    Internal(String),
    /// Another replica took the server over; this poll was not stored.
    #[error("another replica polls this server now")]
    LeaseLost,
}

impl PollError {
    /// Logs `cause` under a new reference; the error shows only that.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let reference = error_reference();
        tracing::error!(error = %cause, %reference, "internal error during a poll");
        PollError::Internal(reference)
    }

    /// Whether the host (not the panel) is the cause.
    pub fn is_host_side(&self) -> bool {
        !matches!(self, PollError::Internal(_) | PollError::LeaseLost)
    }
}

impl From<TransportError> for PollError {
    fn from(e: TransportError) -> Self {
        let message = e.to_string();
        match e {
            TransportError::Connect { .. }
            | TransportError::Timeout { .. }
            | TransportError::Ssh(_)
            | TransportError::Tunnel { .. } => PollError::Unreachable(message),
            TransportError::HostKeyMismatch { .. } => PollError::HostKey(message),
            TransportError::AuthRejected { .. } | TransportError::Key(_) => PollError::Auth(message),
            TransportError::CommandFailed { .. } | TransportError::OutputTooLarge { .. } => PollError::Command(message),
        }
    }
}

impl From<StatusReadError> for PollError {
    fn from(e: StatusReadError) -> Self {
        let message = e.to_string();
        match e {
            StatusReadError::File(t) => t.into(),
            StatusReadError::NotConfigured => PollError::internal(message),
            StatusReadError::Management { error, .. } => match error {
                ManagementError::Transport(t) => match PollError::from(t) {
                    PollError::Command(_) => PollError::Command(message),
                    PollError::Auth(_) => PollError::Auth(message),
                    PollError::HostKey(_) => PollError::HostKey(message),
                    _ => PollError::Unreachable(message),
                },
                ManagementError::Timeout(_) | ManagementError::Closed | ManagementError::Io(_) => {
                    PollError::Unreachable(message)
                }
                ManagementError::PasswordRequired | ManagementError::BadPassword => PollError::Auth(message),
                ManagementError::Refused(_) | ManagementError::TooLarge => PollError::Command(message),
            },
        }
    }
}

/// A server's state as read over its transport, not yet stored.
pub enum Reading {
    Wireguard(WgDump),
    Openvpn(OvpnStatus),
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
) -> Result<Reading, PollError> {
    match target.protocol {
        Protocol::Wireguard | Protocol::Amneziawg => {
            let tool = if target.protocol == Protocol::Amneziawg { "awg" } else { "wg" };
            let interface =
                target.interface.ok_or_else(|| PollError::internal("a WireGuard server without interface"))?;
            let command = RemoteCommand::dump(target.command_prefix, tool, interface);
            let output = transport.run(&command).await?;
            parse_reading(target.protocol, &output.stdout).map_err(|e| match e {
                PollError::Parse(why) => PollError::Parse(format!("the host's answer to `{command}` is {why}")),
                other => other,
            })
        }
        Protocol::Openvpn => {
            let access = target.openvpn.ok_or_else(|| PollError::internal("an OpenVPN server without settings"))?;
            let text = read_status(transport, access, target.command_prefix, wait).await?;
            parse_reading(target.protocol, &text)
        }
    }
}

/// Parses what a host printed (a `wg`/`awg show dump`, or an OpenVPN
/// status in any version), as a poll or a pushed event carries it.
pub fn parse_reading(protocol: Protocol, text: &str) -> Result<Reading, PollError> {
    match protocol {
        Protocol::Wireguard | Protocol::Amneziawg => {
            let flavor = if protocol == Protocol::Amneziawg { DumpFlavor::AmneziaWg } else { DumpFlavor::WireGuard };
            parse_dump(text, flavor)
                .map(Reading::Wireguard)
                .map_err(|e| PollError::Parse(format!("not a {} dump: {e}", protocol.label())))
        }
        Protocol::Openvpn => parse_status(text)
            .map(Reading::Openvpn)
            .map_err(|e| PollError::Parse(format!("the OpenVPN status is unreadable: {e}"))),
    }
}

/// Stores a reading taken at `at`.
#[allow(clippy::too_many_arguments)]
pub async fn store_reading(
    store: &dyn Store,
    id: ServerId,
    protocol: Protocol,
    reading: &Reading,
    at: DateTime<Utc>,
    timezone: Tz,
    import: bool,
    fence: Option<&Fence>,
) -> Result<PollOutcome, PollError> {
    let month = month_key(at, &timezone);
    let outcome = match reading {
        Reading::Wireguard(dump) => {
            let poll = WireguardPoll { protocol, at, month: &month, dump, import, fence };
            store.apply_wireguard_poll(id, &poll).await
        }
        Reading::Openvpn(status) => {
            store.apply_openvpn_poll(id, &OpenvpnPoll { at, month: &month, status, fence }).await
        }
    };
    if let Err(StoreError::LeaseLost(_)) = &outcome {
        return Err(PollError::LeaseLost);
    }
    outcome.map_err(|e| PollError::internal(format!("could not save the poll: {e}")))
}

/// How a poll is bounded.
#[derive(Debug, Clone, Copy)]
pub struct PollLimits {
    /// Each remote call (a command, a management read).
    pub call: Duration,
    /// Reaching the host: connect, log in, every call.
    pub deadline: Duration,
    pub timezone: Tz,
}

/// One poll: read, parse, store, within one deadline. A failure is recorded
/// on the server row (the admin-safe text) and returned.
pub async fn poll_server(
    transport: &mut dyn HostTransport,
    record: &mut ServerRecord,
    store: &dyn Store,
    limits: PollLimits,
    fence: Option<&Fence>,
) -> Result<PollOutcome, PollError> {
    let at = Utc::now();
    // The deadline bounds the host; storing is bounded by the database's
    // busy timeout, and is never cut off halfway through a commit.
    let result = async {
        let read = tokio::time::timeout(limits.deadline, read_server(transport, &record.target(), limits.call)).await;
        let reading = read.unwrap_or(Err(PollError::Deadline(limits.deadline)))?;
        if record.host_key.is_none() {
            if let Some(pin) = transport.host_key().cloned() {
                store.pin_host_key(record.id, &pin).await.map_err(PollError::internal)?;
                tracing::info!(fingerprint = %pin.fingerprint, "pinned host key on first contact");
                record.host_key = Some(pin);
            }
        }
        store_reading(store, record.id, record.protocol, &reading, at, limits.timezone, false, fence).await
    }
    .await;
    // A lost lease is no failure of the host: its new owner polls it.
    if let Some(e) = result.as_ref().err().filter(|e| **e != PollError::LeaseLost) {
        if let Err(store_error) = store.record_poll_failure(record.id, at, &e.to_string()).await {
            tracing::error!(error = %store_error, "could not record the failed poll");
        }
    }
    result
}
