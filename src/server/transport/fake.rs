//! A host for tests of what cannot be staged on a real one (a transport that
//! panics, a host that never answers) and of the panel's logic around the
//! transport. Tests of hosts themselves use real ones (`end2end/`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{CommandOutput, HostTransport, TransportError, Tunnel};
use crate::domain::{HostKeyPin, RemoteCommand};
use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A `wg show dump` of a real wireguard-go server.
pub const DUMP: &str = include_str!("../../domain/fixtures/wg_show_server_dump.txt");

/// What the fake host does when asked to run a command.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Prints [`DUMP`].
    Answer,
    /// Panics the first time, then answers.
    PanicFirst,
    /// Never answers.
    Hang,
}

pub struct FakeHost {
    behaviour: Behaviour,
    /// Commands run so far (shared, so a test can count them).
    pub calls: Arc<AtomicUsize>,
    key: HostKeyPin,
}

impl FakeHost {
    pub fn new(behaviour: Behaviour, calls: Arc<AtomicUsize>) -> Self {
        let key = HostKeyPin { openssh: "ssh-ed25519 AAAAfake".into(), fingerprint: "SHA256:fake".into() };
        Self { behaviour, calls, key }
    }
}

#[async_trait]
impl HostTransport for FakeHost {
    async fn run(&mut self, _command: &RemoteCommand) -> Result<CommandOutput, TransportError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.behaviour {
            Behaviour::PanicFirst if n == 0 => panic!("the fake host's first answer is a panic"),
            Behaviour::Hang => std::future::pending::<()>().await,
            _ => {}
        }
        Ok(CommandOutput { stdout: DUMP.to_owned(), stderr: String::new(), exit_status: Some(0) })
    }

    async fn run_with_input(
        &mut self,
        command: &RemoteCommand,
        _input: &[u8],
    ) -> Result<CommandOutput, TransportError> {
        self.run(command).await
    }

    async fn open_tcp(&mut self, _host: &str, _port: u16) -> Result<Tunnel, TransportError> {
        Err(TransportError::Ssh("the fake host has no tunnels".into()))
    }

    fn host_key(&self) -> Option<&HostKeyPin> {
        Some(&self.key)
    }
}
