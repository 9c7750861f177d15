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

/// Where each known client is found by the key a host reports: live
/// clients by their identity; a deleted peer no poll has seen gone yet (a
/// reading taken before the delete still lists its key, and it is that
/// peer) by its key, unless a live client has that key again.
fn key_index(state: &ServerState) -> HashMap<&str, usize, KeyHashing> {
    let mut index = HashMap::with_capacity_and_hasher(state.clients.len(), KeyHashing::new());
    let mut deleted = Vec::new();
    for (slot, c) in state.clients.iter().enumerate() {
        match deleted_key(&c.identity) {
            Some(key) if c.on_host => deleted.push((key, slot)),
            _ => {
                index.insert(c.identity.as_str(), slot);
            }
        }
    }
    for (key, slot) in deleted {
        index.entry(key).or_insert(slot);
    }
    index
}

/// Plans the poll of `dump` at `at` against the server's state. A host
/// lists its peers in the order they were added, which is the state's
/// order: each peer is first compared with the client after the last one
/// found, and only when that is not it is the key looked up (an index
/// built on the first such miss).
pub(in crate::server::store) fn plan_poll<'a>(
    state: &ServerState,
    dump: &'a WgDump,
    at: DateTime<Utc>,
    first_poll: bool,
) -> Result<WireguardPlan<'a>, StoreError> {
    let before = state
        .clients
        .iter()
        .map(|c| {
            Ok(PeerBefore {
                client_id: c.client_id,
                counters: c.counters,
                on_host: c.on_host,
                open_session: c.open_session,
                last_seen: opt_instant(c.last_seen)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut index = None;
    let mut next = 0;
    let mut key = [0u8; 44];
    let find = |peer: &WgPeer| {
        let text = peer.public_key.write_base64(&mut key);
        let slot = match state.clients.get(next) {
            Some(c) if c.identity == text => Some(next),
            _ => index.get_or_insert_with(|| key_index(state)).get(text).copied(),
        };
        if let Some(slot) = slot {
            next = slot + 1;
        }
        slot
    };
    Ok(plan_wireguard(&before, find, dump, at, first_poll))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::wg_dump::{parse_dump, DumpFlavor};

    const DUMP: &str = include_str!("../../../domain/fixtures/wg_show_server_dump.txt");

    fn state(identities: &[(i64, String, bool)]) -> ServerState {
        let clients = identities
            .iter()
            .map(|(id, identity, on_host)| ClientState {
                on_host: *on_host,
                ..ClientState::new(*id, identity.clone(), "2026-11", 0)
            })
            .collect();
        ServerState { clients, stamp: 0 }
    }

    #[test]
    fn peers_are_found_in_the_states_order_or_out_of_it_and_a_deleted_key_only_when_no_live_client_has_it() {
        let dump = parse_dump(DUMP, DumpFlavor::WireGuard).unwrap();
        let keys: Vec<String> = dump.peers.iter().map(|p| p.public_key.to_base64()).collect();
        let at = DateTime::from_timestamp(1_795_357_400, 0).unwrap();
        let found = |s: &ServerState| {
            let plan = plan_poll(s, &dump, at, false).unwrap();
            let ids = plan.peers.iter().map(|p| p.client_id).collect::<Vec<_>>();
            (ids, plan.gone.iter().map(|g| g.client_id).collect::<Vec<_>>())
        };
        // The host's order, then reversed: the same clients either way.
        let in_order: Vec<_> = keys.iter().enumerate().map(|(i, k)| (i as i64 + 1, k.clone(), true)).collect();
        let expected: Vec<_> = (1..=keys.len() as i64).map(Some).collect();
        assert_eq!(found(&state(&in_order)), (expected.clone(), vec![]));
        let reversed: Vec<_> = in_order.iter().rev().cloned().collect();
        assert_eq!(found(&state(&reversed)), (expected, vec![]));

        // The first key deleted (client 7), not yet seen gone: a reading
        // that still lists the key is that peer.
        let mut deleted = in_order.clone();
        deleted[0] = (7, format!("{}{DELETED_MARK}7", keys[0]), true);
        assert_eq!(found(&state(&deleted)).0[0], Some(7));
        // The key added again as client 9: the live client is the peer,
        // and the deleted one has gone from the host.
        deleted.push((9, keys[0].clone(), true));
        let (ids, gone) = found(&state(&deleted));
        assert_eq!((ids[0], gone), (Some(9), vec![7]));
    }
}
