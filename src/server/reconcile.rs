//! The database holds each client's wanted access; the host is brought to
//! it. An access change is written first (pending), then carried out on the
//! host, then confirmed, so a host that is down, or a panel stopped between
//! the two, leaves the change pending and the server's next pass applies it.
//! Each pass also looks for drift: a disabled WireGuard/AmneziaWG peer found
//! back on its host (re-added by hand) is taken off again, with an event,
//! and counted on the server. Running a pass twice changes nothing.

use crate::domain::policy::DisableReason;
use crate::domain::{ClientId, Protocol, PublicKey};
use crate::server::peers::{self, Applied};
use crate::server::poll::PollError;
use crate::server::store::{AccessChange, ClientRecord, NewEvent, ServerRecord, Store};
use crate::server::transport::HostTransport;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Whether the server's clients can be taken off it: an OpenVPN server
/// needs its client-config-dir to refuse reconnections.
pub fn can_block(record: &ServerRecord) -> bool {
    record.protocol != Protocol::Openvpn || record.client_config_dir.is_some()
}

/// An event of the enforcer's about client `c`.
pub fn enforcer_event(
    record: &ServerRecord,
    c: &ClientRecord,
    at: DateTime<Utc>,
    action: &str,
    reason: &str,
    figures: &str,
) -> NewEvent {
    NewEvent {
        reason: Some(reason.to_owned()),
        figures: Some(figures.to_owned()),
        server_id: Some(record.id),
        ..NewEvent::about(c, at, "enforcer", action)
    }
}

/// Brings the host to the client's wanted access (`c` as stored) and
/// confirms it.
pub async fn carry_out(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    c: &ClientRecord,
    wait: Duration,
) -> Result<Applied, PollError> {
    let applied = peers::apply_to(transport, record, &peers::change_for(c, !c.disabled)?, wait).await?;
    store.confirm_access(c.id, c.disabled).await.map_err(PollError::internal)?;
    Ok(applied)
}

/// Client `id`, which must be on this server.
async fn client_here(store: &dyn Store, record: &ServerRecord, id: ClientId) -> Result<ClientRecord, PollError> {
    let c = store.client(id, "").await.map_err(PollError::internal)?;
    c.filter(|c| c.server_id == record.id).ok_or_else(|| PollError::internal("no such client here"))
}

/// Carries out the stored access of one client of this server (a change
/// just made by an admin).
pub async fn carry_out_client(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    id: ClientId,
    wait: Duration,
) -> Result<Applied, PollError> {
    let c = client_here(store, record, id).await?;
    carry_out(transport, record, store, &c, wait).await
}

/// Takes one client of this server off its host for good (before its
/// record is deleted).
pub async fn remove_client(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    id: ClientId,
    wait: Duration,
) -> Result<Applied, PollError> {
    let c = client_here(store, record, id).await?;
    peers::apply_to(transport, record, &peers::removal_for(&c)?, wait).await
}

/// Changes a client's access, decided on `c` as read: in the database
/// (pending, with `event`) if the client still has the access `c` shows,
/// then on the host, then confirmed. Returns false (and does nothing) when
/// the client changed meanwhile.
pub async fn change_access(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    c: &ClientRecord,
    reason: Option<DisableReason>,
    event: &NewEvent,
    wait: Duration,
) -> Result<bool, PollError> {
    let change = AccessChange { id: c.id, reason, expected: Some(current(c)), event: event.clone() };
    let made = store.set_access_many(&[change]).await.map_err(PollError::internal)?;
    if !made.first().copied().unwrap_or(false) {
        return Ok(false);
    }
    let wanted = ClientRecord { disabled: reason.is_some(), disabled_reason: reason, pending: true, ..c.clone() };
    carry_out(transport, record, store, &wanted, wait).await?;
    Ok(true)
}

/// A client's access as read.
fn current(c: &ClientRecord) -> Option<DisableReason> {
    if c.disabled {
        Some(c.disabled_reason.unwrap_or(DisableReason::Manual))
    } else {
        None
    }
}

/// Disables many clients at once: one transaction (pending, each with its
/// event), the WireGuard peers revoked in one batch (see
/// [`peers::revoke_many`]; OpenVPN names one by one), one confirmation.
pub async fn disable_many(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    changes: &[(&ClientRecord, DisableReason, NewEvent)],
    wait: Duration,
) -> Result<(), PollError> {
    if changes.is_empty() {
        return Ok(());
    }
    // What the host needs is checked before anything is written.
    let target = peers::PeerTarget::of(record);
    let keys = match &target {
        Some(_) => changes
            .iter()
            .map(|(c, _, _)| PublicKey::parse(&c.identity).map_err(PollError::internal))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let rows: Vec<AccessChange> = changes
        .iter()
        .map(|(c, reason, e)| AccessChange {
            id: c.id,
            reason: Some(*reason),
            expected: Some(current(c)),
            event: e.clone(),
        })
        .collect();
    let made = store.set_access_many(&rows).await.map_err(PollError::internal)?;
    let made: Vec<usize> = made.iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| i).collect();
    match target {
        Some(target) => {
            let keys: Vec<PublicKey> = made.iter().map(|&i| keys[i]).collect();
            peers::revoke_many(transport, &target, &keys).await?;
        }
        None => {
            for &i in &made {
                peers::apply_to(transport, record, &peers::change_for(changes[i].0, false)?, wait).await?;
            }
        }
    }
    let confirmed: Vec<(ClientId, bool)> = made.iter().map(|&i| (changes[i].0.id, true)).collect();
    store.confirm_many(&confirmed).await.map_err(PollError::internal)
}

/// Whether the last poll found a disabled client back on its host: a
/// WireGuard/AmneziaWG peer present on the interface. (An OpenVPN client
/// is refused by its client-config-dir file and killed when it is
/// disabled; a refused retry can show for a moment, so it is not drift.)
fn drifted(record: &ServerRecord, c: &ClientRecord) -> bool {
    c.disabled && !c.pending && c.on_host && record.protocol.wg_tool().is_some()
}

/// Applies every pending change and sets right every drift found by the
/// poll just applied. Returns how many clients it changed on the host.
pub async fn reconcile(
    transport: &mut dyn HostTransport,
    record: &ServerRecord,
    store: &dyn Store,
    clients: &[ClientRecord],
    now: DateTime<Utc>,
    wait: Duration,
) -> Result<usize, PollError> {
    let mut changed = 0;
    let mut drift = 0;
    for c in clients {
        if c.pending {
            match carry_out(transport, record, store, c, wait).await {
                Ok(_) => {
                    tracing::info!(client_id = %c.id, disabled = c.disabled, "queued change applied on the host");
                    changed += 1;
                }
                // The host is gone: the next pass tries again.
                Err(e @ (PollError::Unreachable(_) | PollError::Deadline(_))) => return Err(e),
                // This client's change cannot be made: the others still are.
                Err(e) => tracing::warn!(client_id = %c.id, error = %e, "a queued change could not be applied"),
            }
        } else if drifted(record, c) {
            carry_out(transport, record, store, c, wait).await?;
            let reason = c.disabled_reason.unwrap_or(DisableReason::Manual);
            let figures = "disabled peer found on the host; taken off again";
            let e = enforcer_event(record, c, now, "reconcile", reason.as_str(), figures);
            store.record_event(&e).await.map_err(PollError::internal)?;
            tracing::warn!(actor = "enforcer", client_id = %c.id, action = "reconcile", reason = reason.as_str(), "disabled peer was back on the host; taken off again");
            drift += 1;
            changed += 1;
        }
    }
    if drift > 0 {
        store.record_drift(record.id, drift).await.map_err(PollError::internal)?;
    }
    Ok(changed)
}
