//! Applying a WireGuard or AmneziaWG poll.

use super::ingest::{begin, current_state, finish, roll_month, sample, to_json, Tx};
use super::rows::{db_bytes, opt_instant, secs};
use super::SqliteStore;
use crate::domain::accounting::Counters;
use crate::domain::ingest::{plan_wireguard, wireguard_virtual_ip, PeerBefore, WireguardPlan};
use crate::domain::sessions::SessionStep;
use crate::domain::wg_dump::WgPeer;
use crate::domain::ServerId;
use crate::server::store::state::{fingerprint, ClientState, ServerState};
use crate::server::store::{PollOutcome, StoreError, WireguardPoll, DELETED_MARK};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Fingerprint of a peer's endpoint (see [`ClientState::endpoint`]).
fn endpoint_fingerprint(endpoint: SocketAddr) -> u64 {
    let ip = match endpoint.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    fingerprint(&[&ip, &endpoint.port().to_le_bytes()])
}

/// Fingerprint of a peer's allowed IPs, preshared key and keepalive (see
/// [`ClientState::attributes`]).
fn peer_attributes(peer: &WgPeer) -> u64 {
    let mut bytes = Vec::with_capacity(8 + peer.allowed_ips.len() * 18);
    bytes.push(u8::from(peer.has_preshared_key));
    bytes.extend_from_slice(&peer.persistent_keepalive.map_or(-1, i32::from).to_le_bytes());
    for net in &peer.allowed_ips {
        match net.addr() {
            IpAddr::V4(v4) => bytes.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => bytes.extend_from_slice(&v6.octets()),
        }
        bytes.push(net.prefix());
    }
    fingerprint(&[&bytes])
}

/// A peer's row attributes as written to `clients`, after `head` (its
/// identity or id): `[head, endpoint, allowed_ips, virtual_ip,
/// has_preshared_key, persistent_keepalive]`.
fn peer_row(head: Value, peer: &WgPeer) -> Value {
    let allowed = peer.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    json!([
        head,
        peer.endpoint.map(|e| e.to_string()),
        allowed,
        wireguard_virtual_ip(peer),
        i64::from(peer.has_preshared_key),
        peer.persistent_keepalive,
    ])
}

pub(super) async fn apply_wireguard(
    store: &SqliteStore,
    id: ServerId,
    poll: &WireguardPoll<'_>,
) -> Result<PollOutcome, StoreError> {
    let Some((mut tx, first_poll)) = begin(store, id, poll.at).await? else {
        return Ok(PollOutcome { applied: false, sources: poll.dump.peers.len(), ..PollOutcome::default() });
    };
    let mut state = current_state(&mut tx, id).await?;
    let mut before: HashMap<&str, PeerBefore> = HashMap::with_capacity(state.clients.len());
    let mut deleted = Vec::new();
    for c in &state.clients {
        let known = PeerBefore {
            client_id: c.client_id,
            counters: c.counters,
            on_host: c.on_host,
            open_session: c.open_session,
            last_seen: opt_instant(c.last_seen)?,
        };
        match deleted_key(&c.identity) {
            // A deleted peer no poll has seen gone yet: a reading taken
            // before the delete still lists its key, and it is that peer.
            Some(key) if c.on_host => deleted.push((key, known)),
            _ => {
                before.insert(c.identity.as_str(), known);
            }
        }
    }
    for (key, known) in deleted {
        before.entry(key).or_insert(known);
    }
    let plan = plan_wireguard(&before, poll.dump, poll.at, first_poll);
    drop(before);
    let outcome = write_wireguard(&mut tx, id, poll, &plan, &mut state).await?;
    tx.commit().await?;
    Ok(outcome)
}
/// The key of a deleted peer's identity (`<key>#deleted-<id>`, see
/// `delete_client`).
fn deleted_key(identity: &str) -> Option<&str> {
    identity.split_once(DELETED_MARK).map(|(key, _)| key)
}

/// A session to close: `[connection, disconnected_at, client total rx, tx,
/// client last seen]`; its bytes become the total minus its base.
fn close_row(conn: i64, disconnected_at: DateTime<Utc>, c: &ClientState) -> Value {
    json!([conn, secs(disconnected_at), db_bytes(c.total.rx), db_bytes(c.total.tx), c.last_seen])
}

async fn write_wireguard(
    tx: &mut Tx,
    id: ServerId,
    poll: &WireguardPoll<'_>,
    plan: &WireguardPlan<'_>,
    state: &mut ServerState,
) -> Result<PollOutcome, StoreError> {
    let at = secs(poll.at);
    roll_month(tx, state, poll.month).await?;

    // New peers get a row first: everything else refers to its id.
    let fresh: Vec<Value> =
        plan.peers.iter().filter(|p| p.client_id.is_none()).map(|p| peer_row(json!(p.identity), p.peer)).collect();
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(state.clients.len() + fresh.len());
    for (i, c) in state.clients.iter().enumerate() {
        index.insert(c.client_id, i);
    }
    let mut fresh_ids: HashMap<String, i64> = HashMap::with_capacity(fresh.len());
    if !fresh.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO clients (server_id, identity, endpoint, allowed_ips, virtual_ip, has_preshared_key, \
               persistent_keepalive, seed_on_host, first_seen_at, seed_last_sync_at, managed, desired_allowed_ips) \
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, \
               1, ?2, ?2, ?3, CASE WHEN ?3 THEN j.value ->> 2 END \
             FROM json_each(?4) AS j RETURNING id, identity",
        )
        .bind(id.get())
        .bind(at)
        .bind(poll.import)
        .bind(to_json(&fresh)?)
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            let identity: String = r.try_get("identity")?;
            let client_id: i64 = r.try_get("id")?;
            index.insert(client_id, state.clients.len());
            fresh_ids.insert(identity.clone(), client_id);
            state.clients.push(ClientState::new(client_id, identity, poll.month, at));
        }
    }

    let mut changed = Vec::new();
    let mut samples = Vec::new();
    let mut opens = Vec::new();
    let mut closes = Vec::new();
    for p in &plan.peers {
        let client_id = p.client_id.or_else(|| fresh_ids.get(&p.identity).copied());
        let Some(c) = client_id.and_then(|id| index.get(&id)).and_then(|&i| state.clients.get_mut(i)) else {
            return Err(StoreError::Corrupt(format!("peer {} has no client row", p.identity)));
        };
        if let (SessionStep::Close { disconnected_at }, Some(conn)) = (p.session, p.open_session) {
            // As before this poll, but with its traffic.
            let mut closing = c.clone();
            closing.count(p.delta);
            closes.push(close_row(conn, disconnected_at, &closing));
            c.open_session = None;
        }
        let endpoint = p.peer.endpoint.map(endpoint_fingerprint).unwrap_or(c.endpoint);
        let attributes = peer_attributes(p.peer);
        if endpoint != c.endpoint || attributes != c.attributes {
            // New rows were written with these attributes just now.
            if p.client_id.is_some() {
                changed.push(peer_row(json!(c.client_id), p.peer));
            }
            c.endpoint = endpoint;
            c.attributes = attributes;
        }
        c.counters = Counters::new(p.peer.rx.get(), p.peer.tx.get());
        c.count(p.delta);
        c.latest_handshake = p.peer.latest_handshake.map(secs).or(c.latest_handshake);
        c.last_seen = p.last_seen.map(secs);
        c.on_host = true;
        c.last_sync_at = at;
        if !p.delta.new.is_zero() {
            samples.push(sample(c.client_id, p.delta.new));
        }
        if let SessionStep::Open { connected_at } = p.session {
            // The session's bytes from here on: the client's total minus
            // what it was before this poll's new bytes.
            let base = c.total.saturating_sub(p.delta.new);
            opens.push(json!([
                c.client_id,
                p.identity,
                secs(connected_at),
                p.last_seen.map(secs).unwrap_or_else(|| secs(connected_at)),
                p.peer.endpoint.map(|e| e.to_string()),
                wireguard_virtual_ip(p.peer),
                db_bytes(base.rx),
                db_bytes(base.tx),
            ]));
        }
    }
    for g in &plan.gone {
        let Some(c) = index.get(&g.client_id).and_then(|&i| state.clients.get_mut(i)) else { continue };
        c.on_host = false;
        if let (SessionStep::Close { disconnected_at }, Some(conn)) = (g.session, g.open_session) {
            closes.push(close_row(conn, disconnected_at, c));
            c.open_session = None;
        }
    }

    // Sessions end with the endpoint the client had before this poll.
    close_sessions(tx, &closes).await?;
    if !changed.is_empty() {
        sqlx::query(
            "UPDATE clients SET endpoint = COALESCE(j.value ->> 1, endpoint), allowed_ips = j.value ->> 2, virtual_ip = j.value ->> 3, \
               has_preshared_key = j.value ->> 4, persistent_keepalive = j.value ->> 5 \
             FROM json_each(?) AS j WHERE clients.id = j.value ->> 0",
        )
        .bind(to_json(&changed)?)
        .execute(&mut **tx)
        .await?;
    }
    if !opens.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO connections (server_id, client_id, session_key, source, protocol, connected_at, \
               last_seen_at, endpoint, virtual_ip, base_rx, base_tx) \
             SELECT ?1, j.value ->> 0, 'wg:' || (j.value ->> 1), j.value ->> 1, ?2, j.value ->> 2, j.value ->> 3, \
               j.value ->> 4, j.value ->> 5, j.value ->> 6, j.value ->> 7 \
             FROM json_each(?3) AS j RETURNING id, client_id",
        )
        .bind(id.get())
        .bind(poll.protocol.as_str())
        .bind(to_json(&opens)?)
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            let client: i64 = r.try_get("client_id")?;
            if let Some(c) = index.get(&client).and_then(|&i| state.clients.get_mut(i)) {
                c.open_session = Some(r.try_get("id")?);
            }
        }
    }
    let figures = finish(tx, id, poll.at, poll.month, &samples, plan.new, plan.carried, state).await?;
    Ok(PollOutcome {
        applied: true,
        figures: Some(figures),
        sources: plan.peers.len(),
        new: plan.new,
        carried: plan.carried,
        sessions_opened: opens.len(),
        sessions_closed: closes.len(),
    })
}

/// Closes WireGuard sessions (rows from [`close_row`]): the bytes are frozen
/// as the client's total minus the session's base.
async fn close_sessions(tx: &mut Tx, closes: &[Value]) -> Result<(), StoreError> {
    if closes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE connections SET disconnected_at = MAX(j.value ->> 1, connected_at), \
           last_seen_at = MAX(last_seen_at, COALESCE(j.value ->> 4, last_seen_at), j.value ->> 1), \
           rx = MAX((j.value ->> 2) - COALESCE(base_rx, 0), 0), tx = MAX((j.value ->> 3) - COALESCE(base_tx, 0), 0), \
           endpoint = COALESCE((SELECT c.endpoint FROM clients c WHERE c.id = connections.client_id), endpoint) \
         FROM json_each(?) AS j WHERE connections.id = j.value ->> 0",
    )
    .bind(to_json(closes)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
