//! A WireGuard or AmneziaWG poll's planning glue, the same on both
//! backends: the peers as known before the poll, the state carried
//! forward, and the rows (JSON arrays) the backend's statements write.

use crate::domain::accounting::Counters;
use crate::domain::ingest::{plan_wireguard, wireguard_virtual_ip, PeerBefore, WireguardPlan};
use crate::domain::keys::KeyHashing;
use crate::domain::sessions::SessionStep;
use crate::domain::wg_dump::{WgDump, WgPeer};
use crate::server::store::rows::{db_bytes, opt_instant, secs};
use crate::server::store::shared::poll_rows::sample;
use crate::server::store::state::{fingerprint, ClientState, Fingerprint, ServerState};
use crate::server::store::{PollFigures, PollOutcome, StoreError, DELETED_MARK};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
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
    // One part, as `fingerprint(&[&bytes])` of these bytes gathered.
    let mut hash = Fingerprint::default();
    hash.write(&[u8::from(peer.has_preshared_key)]);
    hash.write(&peer.persistent_keepalive.map_or(-1, i32::from).to_le_bytes());
    for net in &peer.allowed_ips {
        match net.addr() {
            IpAddr::V4(v4) => hash.write(&v4.octets()),
            IpAddr::V6(v6) => hash.write(&v6.octets()),
        }
        hash.write(&[net.prefix()]);
    }
    hash.end_part();
    hash.finish()
}

/// A peer's row attributes as written to `clients`, after `head` (its
/// identity or id): `[head, endpoint, allowed_ips, virtual_ip,
/// has_preshared_key (0 or 1), persistent_keepalive]`.
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

/// The key of a deleted peer's identity (`<key>#deleted-<id>`, see
/// `delete_client`).
fn deleted_key(identity: &str) -> Option<&str> {
    // A key alone is 44 characters: most identities end there.
    if identity.len() <= 44 {
        return None;
    }
    let at = identity.find('#')?;
    identity[at..].starts_with(DELETED_MARK).then(|| &identity[..at])
}

/// A session to close: `[connection, disconnected_at, client total rx, tx,
/// client last seen]`; its bytes become the total minus its base.
fn close_row(conn: i64, disconnected_at: DateTime<Utc>, c: &ClientState) -> Value {
    json!([conn, secs(disconnected_at), db_bytes(c.total.rx), db_bytes(c.total.tx), c.last_seen])
}

/// Plans the poll of `dump` at `at` against the server's state: the peers
/// it knows, by key.
pub(in crate::server::store) fn plan_poll<'a>(
    state: &ServerState,
    dump: &'a WgDump,
    at: DateTime<Utc>,
    first_poll: bool,
) -> Result<WireguardPlan<'a>, StoreError> {
    let mut before = HashMap::with_capacity_and_hasher(state.clients.len(), KeyHashing::new());
    let mut deleted = Vec::new();
    for (slot, c) in state.clients.iter().enumerate() {
        let known = PeerBefore {
            client_id: c.client_id,
            slot,
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
    Ok(plan_wireguard(&before, dump, at, first_poll))
}

/// The client rows of peers new in this poll, to insert before anything
/// else (everything else refers to their ids): [`peer_row`]s headed by the
/// identity.
pub(in crate::server::store) fn fresh_rows(plan: &WireguardPlan<'_>) -> Vec<Value> {
    plan.peers.iter().filter(|p| p.client_id.is_none()).map(|p| peer_row(json!(p.identity()), p.peer)).collect()
}

/// What a WireGuard poll writes after the client rows of new peers.
pub(in crate::server::store) struct WireguardWrites {
    /// Attributes of known peers that changed: [`peer_row`]s headed by the
    /// client id.
    pub changed: Vec<Value>,
    /// Raw samples ([`sample`]).
    pub samples: Vec<[i64; 3]>,
    /// Sessions to open: `[client_id, identity, connected_at, last_seen_at,
    /// endpoint, virtual_ip, base_rx, base_tx]`.
    pub opens: Vec<Value>,
    /// Sessions to close ([`close_row`]).
    pub closes: Vec<Value>,
    /// The position in the state of each client a session opens for.
    opening: HashMap<i64, usize>,
}

impl WireguardWrites {
    /// Records in the state the session just opened for `client`.
    pub fn opened(&self, state: &mut ServerState, client: i64, connection: i64) {
        if let Some(c) = self.opening.get(&client).and_then(|&i| state.clients.get_mut(i)) {
            c.open_session = Some(connection);
        }
    }

    /// What the poll did, once written.
    pub fn outcome(&self, plan: &WireguardPlan<'_>, figures: PollFigures) -> PollOutcome {
        PollOutcome {
            applied: true,
            figures: Some(figures),
            sources: plan.peers.len(),
            new: plan.new,
            carried: plan.carried,
            sessions_opened: self.opens.len(),
            sessions_closed: self.closes.len(),
        }
    }
}

/// Carries the plan out on the state (in `month`, polled at `at`, Unix
/// seconds), given the `(client_id, identity)` of the rows just inserted
/// for new peers ([`fresh_rows`]), and returns the rows to write.
pub(in crate::server::store) fn apply_plan(
    plan: &WireguardPlan<'_>,
    month: &str,
    at: i64,
    state: &mut ServerState,
    fresh: Vec<(i64, String)>,
) -> Result<WireguardWrites, StoreError> {
    // New peers' slots: after the known clients, in the order inserted.
    let mut fresh_slots: HashMap<String, usize> = HashMap::with_capacity(fresh.len());
    for (client_id, identity) in fresh {
        fresh_slots.insert(identity.clone(), state.clients.len());
        state.clients.push(ClientState::new(client_id, identity, month, at));
    }

    let mut changed = Vec::new();
    let mut samples = Vec::with_capacity(plan.peers.len());
    let mut opens = Vec::new();
    let mut closes = Vec::new();
    let mut opening = HashMap::new();
    for p in &plan.peers {
        let slot = p.slot.or_else(|| fresh_slots.get(&p.identity()).copied());
        let Some((slot, c)) = slot.and_then(|i| Some((i, state.clients.get_mut(i)?))) else {
            return Err(StoreError::Corrupt(format!("peer {} has no client row", p.identity())));
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
            opening.insert(c.client_id, slot);
            opens.push(json!([
                c.client_id,
                p.identity(),
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
        let Some(c) = state.clients.get_mut(g.slot) else { continue };
        c.on_host = false;
        if let (SessionStep::Close { disconnected_at }, Some(conn)) = (g.session, g.open_session) {
            closes.push(close_row(conn, disconnected_at, c));
            c.open_session = None;
        }
    }
    Ok(WireguardWrites { changed, samples, opens, closes, opening })
}
