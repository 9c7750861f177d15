//! How the panel reaches a VPN host. [`HostTransport`] is the capability; SSH
//! is its first implementation.

#[cfg(test)]
pub mod fake;
pub mod ssh;

use crate::domain::HostKeyPin;
use crate::domain::RemoteCommand;
use async_trait::async_trait;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a TCP service reached through the host.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

pub type Tunnel = Box<dyn Duplex>;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    /// `None` if the host closed the channel without reporting a status.
    pub exit_status: Option<u32>,
}

/// The stage an operation timed out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Authenticate,
    Command,
    Tunnel,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connecting",
            Stage::Authenticate => "authenticating",
            Stage::Command => "running the command",
            Stage::Tunnel => "opening a tunnel",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("could not connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("timed out after {} s while {stage}", .after.as_secs())]
    Timeout { stage: Stage, after: Duration },
    #[error(
        "the host key changed: pinned {pinned}, the host offered {offered}. \
         Refusing to log in. If the host was reinstalled, check the new key and re-pin it."
    )]
    HostKeyMismatch { pinned: String, offered: String },
    #[error("the host refused public-key login as {user}")]
    AuthRejected { user: String },
    #[error("cannot use the SSH private key: {0}")]
    Key(String),
    #[error("SSH error: {0}")]
    Ssh(String),
    #[error("`{command}` failed with exit status {status}: {stderr}")]
    CommandFailed { command: String, status: u32, stderr: String },
    #[error("`{command}` printed more than {limit} bytes; refusing to read on")]
    OutputTooLarge { command: String, limit: usize },
    #[error("the host could not connect to {target}: {reason}")]
    Tunnel { target: String, reason: String },
}

/// A connection to one VPN host. Implementations keep their session between
/// calls and reconnect when it dropped; every call is bounded by a timeout.
#[async_trait]
pub trait HostTransport: Send {
    /// Runs `command` on the host and returns its output; a non-zero exit
    /// status is an error.
    async fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, TransportError>;

    /// Runs `command` with `input` on its standard input (a file's new
    /// content, a preshared key): data that never appears in the command line.
    async fn run_with_input(&mut self, command: &RemoteCommand, input: &[u8]) -> Result<CommandOutput, TransportError>;

    /// Opens a TCP connection made by the host to `host:port` (such as an
    /// OpenVPN management port on the host's loopback), without running
    /// anything on the host.
    async fn open_tcp(&mut self, host: &str, port: u16) -> Result<Tunnel, TransportError>;

    /// The host key seen on the last connection (pinned or newly learned).
    fn host_key(&self) -> Option<&HostKeyPin>;
}
