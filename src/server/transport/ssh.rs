//! [`HostTransport`] over SSH (russh). The host key is checked during key
//! exchange, before authentication: a host whose key does not match the pin
//! never sees our credentials or a command.

use super::{CommandOutput, HostTransport, Stage, TransportError, Tunnel};
use crate::domain::{HostAddress, RemoteCommand, SshUser};
use crate::domain::{HostKeyPin, SshKeySource};
use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::timeout;

/// Largest command output read from a host (a 10,000-peer dump is ~2 MB).
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;
const MAX_STDERR: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct SshTimeouts {
    pub connect: Duration,
    pub authenticate: Duration,
    pub command: Duration,
}

/// What the panel expects of the host's key.
#[derive(Debug, Clone)]
pub enum HostKeyPolicy {
    /// Only this exact key.
    Pinned(HostKeyPin),
    /// First contact, with the fingerprint the admin expects.
    Fingerprint(String),
    /// First contact, trusting whatever key the host offers (it gets pinned).
    TrustOnFirstUse,
}

#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: HostAddress,
    pub port: u16,
    pub user: SshUser,
    pub key: SshKeySource,
    pub host_key: HostKeyPolicy,
}

pub struct SshTransport {
    target: SshTarget,
    timeouts: SshTimeouts,
    session: Option<Handle<KeyCheck>>,
    seen_key: Option<HostKeyPin>,
}

/// The russh handler: checks the host key against the policy and remembers
/// what the host offered, for the error message or for pinning.
struct KeyCheck {
    policy: HostKeyPolicy,
    offered: Arc<Mutex<Option<PublicKey>>>,
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn pin_of(key: &PublicKey) -> Result<HostKeyPin, TransportError> {
    let mut key = key.clone();
    key.set_comment("");
    let openssh = key.to_openssh().map_err(|e| TransportError::Ssh(format!("encoding the host key: {e}")))?;
    Ok(HostKeyPin { openssh, fingerprint: fingerprint(&key) })
}

impl client::Handler for KeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, offered: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        // Host certificates are not trusted: pinning is per key.
        let PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            return Ok(false);
        };
        if let Ok(mut slot) = self.offered.lock() {
            *slot = Some(key.clone());
        }
        Ok(match &self.policy {
            HostKeyPolicy::Pinned(pin) => match PublicKey::from_openssh(&pin.openssh) {
                Ok(pinned) => pinned.key_data() == key.key_data(),
                Err(_) => false,
            },
            HostKeyPolicy::Fingerprint(expected) => fingerprint(key) == *expected,
            HostKeyPolicy::TrustOnFirstUse => true,
        })
    }
}

/// Reads and decodes an SSH private key (unencrypted OpenSSH or PEM).
pub fn load_key(source: &SshKeySource) -> Result<PrivateKey, TransportError> {
    let loaded = match source {
        SshKeySource::File(path) => russh::keys::load_secret_key(path, None),
        SshKeySource::Inline(secret) => russh::keys::decode_secret_key(secret.expose(), None),
    };
    // The error text of the key decoder never contains key material.
    loaded.map_err(|e| match e {
        russh::keys::Error::KeyIsEncrypted => {
            TransportError::Key("the key is protected by a passphrase; give the panel an unencrypted key".into())
        }
        russh::keys::Error::IO(io) => TransportError::Key(format!("cannot read the key file: {io}")),
        other => TransportError::Key(other.to_string()),
    })
}

impl SshTransport {
    pub fn new(target: SshTarget, timeouts: SshTimeouts) -> Self {
        let seen_key = match &target.host_key {
            HostKeyPolicy::Pinned(pin) => Some(pin.clone()),
            _ => None,
        };
        Self { target, timeouts, session: None, seen_key }
    }

    fn address(&self) -> String {
        if self.target.host.as_str().contains(':') {
            format!("[{}]:{}", self.target.host, self.target.port)
        } else {
            format!("{}:{}", self.target.host, self.target.port)
        }
    }

    fn load_key(&self) -> Result<PrivateKey, TransportError> {
        load_key(&self.target.key)
    }

    async fn connect(&mut self) -> Result<Handle<KeyCheck>, TransportError> {
        let key = self.load_key()?;
        let offered = Arc::new(Mutex::new(None));
        let handler = KeyCheck { policy: self.target.host_key.clone(), offered: offered.clone() };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let address = self.address();
        let connecting = client::connect(config, (self.target.host.as_str(), self.target.port), handler);
        let outcome = timeout(self.timeouts.connect, connecting).await;
        let offered_key = offered.lock().ok().and_then(|k| k.clone());
        let mut handle = match outcome {
            Err(_) => return Err(TransportError::Timeout { stage: Stage::Connect, after: self.timeouts.connect }),
            Ok(Err(russh::Error::UnknownKey)) => {
                let offered =
                    offered_key.map(|k| fingerprint(&k)).unwrap_or_else(|| "a certificate or no key".to_owned());
                let pinned = match &self.target.host_key {
                    HostKeyPolicy::Pinned(pin) => pin.fingerprint.clone(),
                    HostKeyPolicy::Fingerprint(fp) => fp.clone(),
                    HostKeyPolicy::TrustOnFirstUse => "nothing".to_owned(),
                };
                return Err(TransportError::HostKeyMismatch { pinned, offered });
            }
            Ok(Err(russh::Error::IO(io))) => return Err(TransportError::Connect { address, reason: io.to_string() }),
            Ok(Err(e)) => return Err(TransportError::Ssh(e.to_string())),
            Ok(Ok(handle)) => handle,
        };
        if let Some(k) = offered_key {
            let pin = pin_of(&k)?;
            // From now on this transport accepts only this key, whatever its
            // policy was on first contact.
            self.target.host_key = HostKeyPolicy::Pinned(pin.clone());
            self.seen_key = Some(pin);
        }

        let user = self.target.user.as_str().to_owned();
        let authenticate = async {
            let hash = if key.algorithm().is_rsa() { handle.best_supported_rsa_hash().await?.flatten() } else { None };
            handle.authenticate_publickey(user.clone(), PrivateKeyWithHashAlg::new(Arc::new(key), hash)).await
        };
        match timeout(self.timeouts.authenticate, authenticate).await {
            Err(_) => Err(TransportError::Timeout { stage: Stage::Authenticate, after: self.timeouts.authenticate }),
            Ok(Err(e)) => Err(TransportError::Ssh(e.to_string())),
            Ok(Ok(result)) if result.success() => Ok(handle),
            Ok(Ok(_)) => Err(TransportError::AuthRejected { user }),
        }
    }

    async fn exec(
        handle: &Handle<KeyCheck>,
        line: &str,
        command: &RemoteCommand,
        input: Option<&[u8]>,
    ) -> Result<CommandOutput, ExecError> {
        let mut channel = handle.channel_open_session().await.map_err(ExecError::Open)?;
        channel.exec(true, line).await.map_err(|e| ExecError::Failed(TransportError::Ssh(e.to_string())))?;
        if let Some(input) = input {
            let failed = |e: russh::Error| ExecError::Failed(TransportError::Ssh(format!("sending input: {e}")));
            channel.data(input).await.map_err(failed)?;
            channel.eof().await.map_err(failed)?;
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut exit_status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    if stdout.len() + data.len() > MAX_OUTPUT {
                        return Err(ExecError::Failed(TransportError::OutputTooLarge {
                            command: command.to_string(),
                            limit: MAX_OUTPUT,
                        }));
                    }
                    stdout.extend_from_slice(&data);
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    let room = MAX_STDERR.saturating_sub(stderr.len());
                    stderr.extend_from_slice(&data[..data.len().min(room)]);
                }
                ChannelMsg::ExitStatus { exit_status: status } => exit_status = Some(status),
                ChannelMsg::Failure => {
                    return Err(ExecError::Failed(TransportError::Ssh("the host refused to run the command".into())))
                }
                _ => {}
            }
        }
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            exit_status,
        })
    }
}

enum ExecError {
    /// Opening a channel failed: on a reused session this means the
    /// connection died while idle, and one reconnect is worth it.
    Open(russh::Error),
    Failed(TransportError),
}

/// The end of stderr, cleaned for display: the last non-empty lines (at
/// most three), joined. A command's own error comes last; whatever the
/// remote shell's start-up files printed before it (a noisy `.bashrc`)
/// comes first and is what gets dropped when the text is long.
fn summarize(stderr: &str) -> String {
    const MAX_LINES: usize = 3;
    const MAX_CHARS: usize = 300;
    let lines: Vec<String> = stderr
        .lines()
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "(no error output)".into();
    }
    let joined = lines[lines.len().saturating_sub(MAX_LINES)..].join(" · ");
    let count = joined.chars().count();
    if count <= MAX_CHARS {
        joined
    } else {
        let tail: String = joined.chars().skip(count - MAX_CHARS).collect();
        format!("…{tail}")
    }
}

impl SshTransport {
    /// The live session, connecting if there is none. Returns whether it was
    /// reused (a reused session may have died while idle).
    async fn ensure_session(&mut self) -> Result<bool, TransportError> {
        match &self.session {
            Some(handle) if !handle.is_closed() => Ok(true),
            _ => {
                self.session = None;
                self.session = Some(self.connect().await?);
                Ok(false)
            }
        }
    }
}

#[async_trait]
impl HostTransport for SshTransport {
    async fn open_tcp(&mut self, host: &str, port: u16) -> Result<Tunnel, TransportError> {
        for attempt in 0..2 {
            let reused = self.ensure_session().await?;
            let Some(handle) = self.session.as_ref() else {
                return Err(TransportError::Ssh("no session".into()));
            };
            let opening = handle.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0);
            match timeout(self.timeouts.command, opening).await {
                Err(_) => {
                    self.session = None;
                    return Err(TransportError::Timeout { stage: Stage::Tunnel, after: self.timeouts.command });
                }
                Ok(Ok(channel)) => return Ok(Box::new(channel.into_stream())),
                Ok(Err(russh::Error::ChannelOpenFailure(reason))) => {
                    return Err(TransportError::Tunnel {
                        target: format!("{host}:{port}"),
                        reason: format!("{reason:?}"),
                    })
                }
                Ok(Err(_)) if reused && attempt == 0 => self.session = None,
                Ok(Err(e)) => {
                    self.session = None;
                    return Err(TransportError::Ssh(format!("opening a tunnel: {e}")));
                }
            }
        }
        Err(TransportError::Ssh("the connection keeps dropping".into()))
    }

    async fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, TransportError> {
        self.run_inner(command, None).await
    }

    async fn run_with_input(&mut self, command: &RemoteCommand, input: &[u8]) -> Result<CommandOutput, TransportError> {
        self.run_inner(command, Some(input)).await
    }

    fn host_key(&self) -> Option<&HostKeyPin> {
        self.seen_key.as_ref()
    }
}

impl SshTransport {
    async fn run_inner(
        &mut self,
        command: &RemoteCommand,
        input: Option<&[u8]>,
    ) -> Result<CommandOutput, TransportError> {
        let line = command.to_shell_line();
        for attempt in 0..2 {
            let reused = self.ensure_session().await?;
            let Some(handle) = self.session.as_ref() else {
                return Err(TransportError::Ssh("no session".into()));
            };
            let result = timeout(self.timeouts.command, Self::exec(handle, &line, command, input)).await;
            let output = match result {
                Err(_) => {
                    self.session = None;
                    return Err(TransportError::Timeout { stage: Stage::Command, after: self.timeouts.command });
                }
                Ok(Err(ExecError::Open(_))) if reused && attempt == 0 => {
                    self.session = None;
                    continue;
                }
                Ok(Err(ExecError::Open(e))) => {
                    self.session = None;
                    return Err(TransportError::Ssh(format!("opening a channel: {e}")));
                }
                Ok(Err(ExecError::Failed(e))) => {
                    self.session = None;
                    return Err(e);
                }
                Ok(Ok(output)) => output,
            };
            return match output.exit_status {
                Some(0) => Ok(output),
                Some(status) => Err(TransportError::CommandFailed {
                    command: command.to_string(),
                    status,
                    stderr: summarize(&output.stderr),
                }),
                None => Err(TransportError::Ssh(format!(
                    "`{command}` ended without an exit status: {}",
                    summarize(&output.stderr)
                ))),
            };
        }
        Err(TransportError::Ssh("the connection keeps dropping".into()))
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        if let Some(handle) = self.session.take() {
            // Best effort: tell the host we are leaving, without blocking the drop.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ =
                        timeout(Duration::from_secs(2), handle.disconnect(russh::Disconnect::ByApplication, "", "en"))
                            .await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_summarised_to_its_clean_last_lines() {
        assert_eq!(
            summarize("\n  Unable to access interface: No such device\n\n"),
            "Unable to access interface: No such device"
        );
        assert_eq!(summarize(""), "(no error output)");
        assert_eq!(summarize(" \n\t\n"), "(no error output)");
        assert_eq!(summarize("a\u{1b}[31mred"), "a[31mred");
    }

    #[test]
    fn noise_from_the_remote_shells_start_up_files_does_not_hide_the_error() {
        // Captured: a host whose root .bashrc runs `pyenv rehash` while
        // another login does the same.
        let stderr = "rm: cannot remove '/root/.pyenv/shims/tmp.JQGBJjDZL6': No such file or directory\n\
                      Unable to access interface: No such device\n";
        let shown = summarize(stderr);
        assert!(shown.ends_with("Unable to access interface: No such device"), "{shown}");

        let long = format!("{}\nUnable to access interface: No such device\n", "noise ".repeat(200));
        let shown = summarize(&long);
        assert!(shown.starts_with('…') && shown.ends_with("No such device"), "{shown}");
        assert!(shown.chars().count() <= 301, "{}", shown.chars().count());
    }
}
