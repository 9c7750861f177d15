//! The OpenVPN management interface, spoken over a tunnel through the SSH
//! connection to the host's loopback (no `nc`, no shell on the host).
//!
//! Real-time notifications (`>CLIENT:…`, `>BYTECOUNT:…`) can arrive between
//! a command and its answer; they are skipped. Sessions are ended with
//! `client-kill <client id>` (or `kill <ip:port>` when the status carries no
//! client id), never with `kill <common name>`, which would end every
//! session of that user — except when revoking that user, which is the point.

use crate::domain::openvpn::{classify_management_line, ManagementLine};
use crate::domain::Secret;
use crate::domain::{CommandPrefix, RemoteCommand};
use crate::server::store::OpenVpnAccess;
use crate::server::transport::{HostTransport, TransportError, Tunnel};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Most bytes read for one answer (a `status` of ~100,000 sessions).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the management interface did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("the management interface closed the connection")]
    Closed,
    #[error("the management interface asks for a password; set one for this server")]
    PasswordRequired,
    #[error("the management interface refused the password")]
    BadPassword,
    #[error("OpenVPN refused: {0}")]
    Refused(String),
    #[error("reading the management interface: {0}")]
    Io(#[from] std::io::Error),
    #[error("the management interface's answer is larger than {MAX_ANSWER} bytes")]
    TooLarge,
}

/// Which session to end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KillTarget {
    ClientId(u64),
    Address(SocketAddr),
    /// Every session of a common name (revoking a client).
    CommonName(String),
}

pub struct ManagementClient {
    stream: Tunnel,
    buffer: Vec<u8>,
    wait: Duration,
}

impl ManagementClient {
    /// Greets the interface, answering its password prompt if it has one.
    pub async fn connect(stream: Tunnel, password: Option<&Secret>, wait: Duration) -> Result<Self, ManagementError> {
        let mut client = Self { stream, buffer: Vec::new(), wait };
        loop {
            match classify_management_line(&client.read_line().await?) {
                ManagementLine::PasswordPrompt => {
                    let password = password.ok_or(ManagementError::PasswordRequired)?;
                    client.send(password.expose()).await?;
                    match classify_management_line(&client.read_line().await?) {
                        ManagementLine::Success(_) => {}
                        _ => return Err(ManagementError::BadPassword),
                    }
                }
                ManagementLine::Notification(n) if n.starts_with("INFO:") => return Ok(client),
                ManagementLine::Notification(_) => {}
                ManagementLine::Error(e) => return Err(ManagementError::Refused(e)),
                ManagementLine::Success(_) | ManagementLine::Data(_) => return Ok(client),
            }
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), ManagementError> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        timeout(self.wait, self.stream.write_all(&bytes)).await.map_err(|_| ManagementError::Timeout(self.wait))??;
        timeout(self.wait, self.stream.flush()).await.map_err(|_| ManagementError::Timeout(self.wait))??;
        Ok(())
    }

    /// The next line, without its line end. The password prompt ends without
    /// a newline, so it is recognised in the buffer as it stands.
    async fn read_line(&mut self) -> Result<String, ManagementError> {
        const PROMPT: &[u8] = b"ENTER PASSWORD:";
        loop {
            if self.buffer.starts_with(PROMPT) {
                self.buffer.drain(..PROMPT.len());
                return Ok("ENTER PASSWORD:".to_owned());
            }
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buffer.len() > MAX_ANSWER {
                return Err(ManagementError::TooLarge);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = timeout(self.wait, self.stream.read(&mut chunk))
                .await
                .map_err(|_| ManagementError::Timeout(self.wait))??;
            if n == 0 {
                return Err(ManagementError::Closed);
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// `status 3`: the answer up to and including `END`.
    pub async fn status(&mut self) -> Result<String, ManagementError> {
        self.send("status 3").await?;
        let mut text = String::new();
        loop {
            let line = self.read_line().await?;
            match classify_management_line(&line) {
                ManagementLine::Notification(_) => continue,
                ManagementLine::Error(e) => return Err(ManagementError::Refused(e)),
                _ => {}
            }
            text.push_str(&line);
            text.push('\n');
            if text.len() > MAX_ANSWER {
                return Err(ManagementError::TooLarge);
            }
            if line == "END" {
                return Ok(text);
            }
        }
    }

    /// Ends a session. With `halt`, the client is told to exit instead of
    /// reconnecting.
    pub async fn kill(&mut self, target: &KillTarget, halt: bool) -> Result<String, ManagementError> {
        let command = match (target, halt) {
            (KillTarget::ClientId(id), false) => format!("client-kill {id}"),
            (KillTarget::ClientId(id), true) => format!("client-kill {id} HALT"),
            (KillTarget::Address(addr), _) => format!("kill {addr}"),
            (KillTarget::CommonName(cn), _) => format!("kill {cn}"),
        };
        self.send(&command).await?;
        loop {
            match classify_management_line(&self.read_line().await?) {
                ManagementLine::Success(m) => return Ok(m),
                ManagementLine::Error(e) => return Err(ManagementError::Refused(e)),
                ManagementLine::Notification(_) | ManagementLine::Data(_) | ManagementLine::PasswordPrompt => {}
            }
        }
    }

    pub async fn quit(mut self) {
        let _ = self.send("quit").await;
        let _ = timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}

async fn management(
    transport: &mut dyn HostTransport,
    access: &OpenVpnAccess,
    port: u16,
    wait: Duration,
) -> Result<ManagementClient, ManagementError> {
    let tunnel = transport.open_tcp("127.0.0.1", port).await?;
    ManagementClient::connect(tunnel, access.management_password.as_ref(), wait).await
}

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusReadError {
    #[error("OpenVPN management port {port}: {error}")]
    Management { port: u16, error: ManagementError },
    #[error("reading the OpenVPN status file: {0}")]
    File(TransportError),
    #[error("no OpenVPN management port or status file configured")]
    NotConfigured,
}

/// The server's status text: from the management interface when configured,
/// else (or when it fails) from the status file.
pub async fn read_status(
    transport: &mut dyn HostTransport,
    access: &OpenVpnAccess,
    prefix: &CommandPrefix,
    wait: Duration,
) -> Result<String, StatusReadError> {
    if let Some(port) = access.management_port {
        let via_management = async {
            let mut client = management(transport, access, port, wait).await?;
            let text = client.status().await?;
            client.quit().await;
            Ok::<_, ManagementError>(text)
        }
        .await;
        match (via_management, &access.status_path) {
            (Ok(text), _) => return Ok(text),
            (Err(error), None) => return Err(StatusReadError::Management { port, error }),
            (Err(e), Some(path)) => {
                tracing::warn!(error = %e, %path, "management interface failed; reading the status file");
            }
        }
    }
    let Some(path) = &access.status_path else {
        return Err(StatusReadError::NotConfigured);
    };
    let output = transport.run(&RemoteCommand::read_file(prefix, path)).await.map_err(StatusReadError::File)?;
    Ok(output.stdout)
}

/// Ends a session through the management interface.
pub async fn kill_session(
    transport: &mut dyn HostTransport,
    access: &OpenVpnAccess,
    target: &KillTarget,
    halt: bool,
    wait: Duration,
) -> Result<String, String> {
    let port = access
        .management_port
        .ok_or_else(|| "this server has no OpenVPN management port, so sessions cannot be ended".to_owned())?;
    let result = async {
        let mut client = management(transport, access, port, wait).await?;
        let reply = client.kill(target, halt).await?;
        client.quit().await;
        Ok::<_, ManagementError>(reply)
    }
    .await;
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    const REPLIES: &str = include_str!("../domain/fixtures/openvpn_management_replies.txt");
    const STATUS: &str = include_str!("../domain/fixtures/openvpn_management_status3.txt");

    async fn scripted(script: &'static [u8]) -> (Tunnel, tokio::task::JoinHandle<Vec<u8>>) {
        let (ours, mut theirs) = duplex(1 << 20);
        let server = tokio::spawn(async move {
            theirs.write_all(script).await.unwrap();
            let mut heard = Vec::new();
            let _ = timeout(Duration::from_millis(300), theirs.read_to_end(&mut heard)).await;
            heard
        });
        (Box::new(ours), server)
    }

    #[tokio::test]
    async fn status_skips_the_greeting_and_notifications() {
        let script: &'static str = Box::leak(
            format!(
                "{}>BYTECOUNT_CLI:0,1,2\r\n{}",
                &STATUS[..STATUS.find('\n').unwrap() + 1],
                &STATUS[STATUS.find('\n').unwrap() + 1..]
            )
            .into_boxed_str(),
        );
        let (tunnel, server) = scripted(script.as_bytes()).await;
        let mut client = ManagementClient::connect(tunnel, None, Duration::from_secs(2)).await.unwrap();
        let text = client.status().await.unwrap();
        assert!(text.starts_with("TITLE\t") && text.ends_with("END\n"), "{text}");
        assert!(!text.contains("BYTECOUNT"));
        client.quit().await;
        let heard = String::from_utf8(server.await.unwrap()).unwrap();
        assert_eq!(heard, "status 3\nquit\n");
    }

    #[tokio::test]
    async fn kill_reads_past_notifications_to_the_verdict() {
        // The captured replies: greeting, SUCCESS, ERROR, ERROR, a >CLIENT block, ERROR.
        let (tunnel, _server) = scripted(REPLIES.as_bytes()).await;
        let mut client = ManagementClient::connect(tunnel, None, Duration::from_secs(2)).await.unwrap();
        assert_eq!(client.kill(&KillTarget::ClientId(1), false).await.unwrap(), "client-kill command succeeded");
        assert!(matches!(client.kill(&KillTarget::ClientId(99), true).await, Err(ManagementError::Refused(_))));
        let addr: SocketAddr = "198.18.202.9:1".parse().unwrap();
        let e = client.kill(&KillTarget::Address(addr), false).await.unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }

    #[tokio::test]
    async fn a_password_prompt_is_answered_or_reported() {
        let (tunnel, server) = scripted(
            b"ENTER PASSWORD:SUCCESS: password is correct\r\n>INFO:OpenVPN Management Interface Version 5\r\n",
        )
        .await;
        let secret = Secret::new("s3cret".into());
        let client = ManagementClient::connect(tunnel, Some(&secret), Duration::from_secs(2)).await.unwrap();
        client.quit().await;
        assert_eq!(String::from_utf8(server.await.unwrap()).unwrap(), "s3cret\nquit\n");

        let (tunnel, _s) = scripted(b"ENTER PASSWORD:").await;
        assert!(matches!(
            ManagementClient::connect(tunnel, None, Duration::from_secs(2)).await,
            Err(ManagementError::PasswordRequired)
        ));
        let (tunnel, _s) = scripted(b"ENTER PASSWORD:ERROR: bad password\r\n").await;
        assert!(matches!(
            ManagementClient::connect(tunnel, Some(&secret), Duration::from_secs(2)).await,
            Err(ManagementError::BadPassword)
        ));
    }

    #[tokio::test]
    async fn a_silent_interface_times_out() {
        let (ours, _theirs) = duplex(64);
        let e = ManagementClient::connect(Box::new(ours), None, Duration::from_millis(100)).await;
        assert!(matches!(e, Err(ManagementError::Timeout(_))));
    }
}
