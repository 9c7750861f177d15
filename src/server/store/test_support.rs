//! Shared by the store's tests and by tests of what uses the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::sqlite::SqliteStore;
use super::{NewServer, OpenVpnAccess, ReportStore, ServerStore, UsageQuery};
use crate::domain::accounting::Counters;
use crate::domain::Protocol;
use crate::domain::{CommandPrefix, HostAddress, InterfaceName, RemotePath, ServerId, ServerName, SshUser};
use crate::domain::{HostKeyPin, SshKeySource};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A server for tests of the store and of what uses it: no host is ever
/// contacted (the key file does not exist, the host key is a placeholder).
pub fn test_server(name: &str, protocol: Protocol) -> NewServer {
    let openvpn = (protocol == Protocol::Openvpn).then(|| OpenVpnAccess {
        status_path: Some(RemotePath::parse("/run/openvpn/status.log").unwrap()),
        management_port: Some(7505),
        management_password: None,
    });
    NewServer {
        name: ServerName::parse(name).unwrap(),
        protocol,
        host: HostAddress::parse("198.18.0.2").unwrap(),
        port: 22,
        user: SshUser::parse("root").unwrap(),
        key: SshKeySource::File("/nonexistent".into()),
        interface: (protocol != Protocol::Openvpn).then(|| InterfaceName::parse("wg0").unwrap()),
        command_prefix: CommandPrefix::empty(),
        openvpn,
        host_key: HostKeyPin { openssh: "ssh-ed25519 AAAA".into(), fingerprint: "SHA256:x".into() },
        config_path: None,
        client_config_dir: None,
        client_defaults: Default::default(),
    }
}

/// A client's bytes in one month, keyed by (identity, `YYYY-MM`).
pub type MonthlyLedger = BTreeMap<(String, String), Counters>;

/// Compares the stored monthly ledger (non-zero rows) and the server's
/// lifetime and current-month totals with a model's.
pub async fn compare_ledgers(
    store: &SqliteStore,
    id: ServerId,
    now: DateTime<Utc>,
    month: &str,
    model: &MonthlyLedger,
    server_total: Counters,
    server_month: Counters,
) -> Result<(), String> {
    let rows = store.usage(&UsageQuery::default()).await.map_err(|e| e.to_string())?;
    let stored: MonthlyLedger = rows
        .into_iter()
        .filter(|r| !r.bytes.is_zero())
        .map(|r| ((r.identity, r.month.unwrap_or_default()), r.bytes))
        .collect();
    let model: MonthlyLedger = model.iter().filter(|(_, c)| !c.is_zero()).map(|(k, c)| (k.clone(), *c)).collect();
    if stored != model {
        return Err(format!("monthly ledger: stored {stored:?}, model {model:?}"));
    }
    let server = store.server(id, now, month).await.map_err(|e| e.to_string())?.ok_or("server vanished")?;
    if server.total != server_total || server.month != server_month {
        return Err(format!(
            "server: stored {:?}/{:?}, model {server_total:?}/{server_month:?}",
            server.total, server.month
        ));
    }
    Ok(())
}

/// An event for tests that need one to write a change.
pub fn test_event(action: &str) -> super::NewEvent {
    super::NewEvent {
        at: Utc::now(),
        actor: "test".into(),
        action: action.into(),
        reason: None,
        figures: None,
        client_id: None,
        user_id: None,
        server_id: None,
        label: String::new(),
    }
}
