//! Applying a poll to SQLite: one `BEGIN IMMEDIATE` transaction that reads
//! the server's live state (one packed row, see [`super::state`]), plans the
//! poll with the pure core ([`crate::domain::ingest`]), and writes the new
//! state back as one row. Ordinary rows are written only for what changed:
//! new clients, changed attributes, sessions that open or close, one row of
//! raw samples, and the server's own ledger. A 10,000-peer poll therefore
//! costs a handful of statements and two row reads/writes, not 10,000 row
//! updates.

use super::sqlite::{counters, db_bytes, opt_instant, secs, SqliteStore};
use super::state::{decode, encode, fingerprint, ClientState, ServerState};
use super::{OpenvpnPoll, PollOutcome, StoreError, WireguardPoll};
use crate::domain::accounting::Counters;
use crate::domain::ingest::{
    plan_openvpn, plan_wireguard, wireguard_virtual_ip, OpenvpnPlan, PeerBefore, SessionBefore, WireguardPlan,
};
use crate::domain::sessions::SessionStep;
use crate::domain::wg_dump::WgPeer;
use crate::domain::ServerId;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

type Tx = Transaction<'static, Sqlite>;

fn to_json<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("encoding a poll: {e}")))
}

/// Starts the transaction and checks the poll is newer than the last one
/// applied. Returns `None` (and rolls back) for a stale or repeated poll,
/// else whether this is the server's first poll.
async fn begin(store: &SqliteStore, id: ServerId, at: DateTime<Utc>) -> Result<Option<(Tx, bool)>, StoreError> {
    let mut tx = store.write.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query("SELECT last_sample_at, polls_applied FROM servers WHERE id = ?")
        .bind(id.get())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("server"))?;
    let last: Option<i64> = row.try_get("last_sample_at")?;
    // Milliseconds: two distinct polls within one second (a CLI run right
    // after the panel's poll) are both applied; the same poll twice is not.
    if last.is_some_and(|last| last >= at.timestamp_millis()) {
        tx.rollback().await?;
        return Ok(None);
    }
    let first = row.try_get::<i64, _>("polls_applied")? == 0;
    Ok(Some((tx, first)))
}

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

/// The server's live state as of this transaction. The stored row is used
/// when it was written after the last change to the server's client rows;
/// otherwise it is brought up to date from them: entries of removed clients
/// are dropped, and clients without an entry (added outside a poll, or
/// never polled since the upgrade to packed state) start from their row.
pub(super) async fn current_state(conn: &mut SqliteConnection, id: ServerId) -> Result<ServerState, StoreError> {
    let row = sqlx::query(
        "SELECT s.clients_version, st.clients_version AS state_version, st.data \
         FROM servers s LEFT JOIN server_state st ON st.server_id = s.id WHERE s.id = ?",
    )
    .bind(id.get())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound("server"))?;
    let version: i64 = row.try_get("clients_version")?;
    let state_version: Option<i64> = row.try_get("state_version")?;
    let data: Option<Vec<u8>> = row.try_get("data")?;
    let stored =
        data.map(|d| decode(&d)).transpose().map_err(|e| StoreError::Corrupt(format!("state of server {id}: {e}")))?;
    let stored = match (stored, state_version) {
        (Some(state), Some(v)) if v == version => return Ok(state),
        (stored, _) => stored.unwrap_or_default(),
    };
    let mut kept = stored.into_by_id();
    let rows = sqlx::query(
        "SELECT c.id, c.identity, c.seed_rx_counter, c.seed_tx_counter, c.seed_total_rx, c.seed_total_tx, \
           c.seed_latest_handshake, c.seed_last_seen_at, c.seed_last_sync_at, c.seed_on_host, o.id AS open_session \
         FROM clients c LEFT JOIN connections o \
           ON o.client_id = c.id AND o.disconnected_at IS NULL AND o.protocol <> 'openvpn' \
         WHERE c.server_id = ? ORDER BY c.id",
    )
    .bind(id.get())
    .fetch_all(&mut *conn)
    .await?;
    let mut clients = Vec::with_capacity(rows.len());
    for r in &rows {
        let client_id: i64 = r.try_get("id")?;
        let identity: String = r.try_get("identity")?;
        if let Some(c) = kept.remove(&client_id).filter(|c| c.identity == identity) {
            clients.push(c);
            continue;
        }
        clients.push(ClientState {
            client_id,
            identity,
            counters: counters(r, "seed_rx_counter", "seed_tx_counter")?,
            total: counters(r, "seed_total_rx", "seed_total_tx")?,
            // The months so far are all in `usage_monthly`.
            month: String::new(),
            month_bytes: Counters::ZERO,
            latest_handshake: r.try_get("seed_latest_handshake")?,
            last_seen: r.try_get("seed_last_seen_at")?,
            last_sync_at: r.try_get("seed_last_sync_at")?,
            on_host: r.try_get::<i64, _>("seed_on_host")? != 0,
            open_session: r.try_get("open_session")?,
            // Unknown: the next poll rewrites the row's attributes once.
            endpoint: 0,
            attributes: 0,
        });
    }
    Ok(ServerState { clients })
}

/// Moves bytes of earlier months out of the state into `usage_monthly`, so
/// the state holds `month` only.
async fn roll_month(tx: &mut Tx, state: &mut ServerState, month: &str) -> Result<(), StoreError> {
    let earlier: Vec<Value> = state
        .clients
        .iter()
        .filter(|c| c.month != month && !c.month_bytes.is_zero())
        .map(|c| json!([c.client_id, c.month, db_bytes(c.month_bytes.rx), db_bytes(c.month_bytes.tx)]))
        .collect();
    if !earlier.is_empty() {
        sqlx::query(
            "INSERT INTO usage_monthly (client_id, month, rx, tx) \
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3 FROM json_each(?) AS j WHERE true \
             ON CONFLICT (client_id, month) DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx",
        )
        .bind(to_json(&earlier)?)
        .execute(&mut **tx)
        .await?;
    }
    for c in state.clients.iter_mut().filter(|c| c.month != month) {
        c.month = month.to_owned();
        c.month_bytes = Counters::ZERO;
    }
    Ok(())
}

/// Writes what every protocol shares: one row of raw samples
/// (`[client_id, rx, tx]` of the clients that moved bytes), the server's
/// monthly and lifetime ledger and poll state, and the client state.
#[allow(clippy::too_many_arguments)]
async fn finish(
    tx: &mut Tx,
    id: ServerId,
    at: DateTime<Utc>,
    month: &str,
    samples: &[[i64; 3]],
    new: Counters,
    carried: Counters,
    state: &ServerState,
) -> Result<(), StoreError> {
    if !samples.is_empty() {
        sqlx::query("INSERT INTO traffic_polls (server_id, at, data) VALUES (?, ?, ?)")
            .bind(id.get())
            .bind(secs(at))
            .bind(to_json(samples)?)
            .execute(&mut **tx)
            .await?;
    }
    if !new.is_zero() {
        sqlx::query(
            "INSERT INTO server_usage_monthly (server_id, month, rx, tx) VALUES (?, ?, ?, ?) \
             ON CONFLICT (server_id, month) DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx",
        )
        .bind(id.get())
        .bind(month)
        .bind(db_bytes(new.rx))
        .bind(db_bytes(new.tx))
        .execute(&mut **tx)
        .await?;
    }
    let lifetime = new.saturating_add(carried);
    sqlx::query(
        "UPDATE servers SET total_rx = total_rx + ?2, total_tx = total_tx + ?3, last_sample_at = ?5, \
         polls_applied = polls_applied + 1, last_poll_at = ?4, last_success_at = ?4, last_error = NULL, \
         consecutive_failures = 0 WHERE id = ?1",
    )
    .bind(id.get())
    .bind(db_bytes(lifetime.rx))
    .bind(db_bytes(lifetime.tx))
    .bind(secs(at))
    .bind(at.timestamp_millis())
    .execute(&mut **tx)
    .await?;
    // Stamped with the client-row version as of now, after this poll's own
    // insertions.
    sqlx::query(
        "INSERT INTO server_state (server_id, clients_version, data) \
         VALUES (?1, (SELECT clients_version FROM servers WHERE id = ?1), ?2) \
         ON CONFLICT (server_id) DO UPDATE SET clients_version = excluded.clients_version, data = excluded.data",
    )
    .bind(id.get())
    .bind(encode(state))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn sample(client_id: i64, bytes: Counters) -> [i64; 3] {
    [client_id, db_bytes(bytes.rx), db_bytes(bytes.tx)]
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
    for c in &state.clients {
        before.insert(
            c.identity.as_str(),
            PeerBefore {
                client_id: c.client_id,
                counters: c.counters,
                on_host: c.on_host,
                open_session: c.open_session,
                last_seen: opt_instant(c.last_seen)?,
            },
        );
    }
    let plan = plan_wireguard(&before, poll.dump, poll.at, first_poll);
    drop(before);
    let outcome = write_wireguard(&mut tx, id, poll, &plan, &mut state).await?;
    tx.commit().await?;
    Ok(outcome)
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
    finish(tx, id, poll.at, poll.month, &samples, plan.new, plan.carried, state).await?;
    Ok(PollOutcome {
        applied: true,
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

pub(super) async fn apply_openvpn(
    store: &SqliteStore,
    id: ServerId,
    poll: &OpenvpnPoll<'_>,
) -> Result<PollOutcome, StoreError> {
    let Some((mut tx, first_poll)) = begin(store, id, poll.at).await? else {
        return Ok(PollOutcome { applied: false, sources: poll.status.sessions.len(), ..PollOutcome::default() });
    };
    let mut state = current_state(&mut tx, id).await?;
    // Open sessions, and closed ones the poll reports again.
    let sources: Vec<String> = poll.status.sessions.iter().map(|s| s.source()).collect();
    let rows = sqlx::query(
        "SELECT id, source, source_since, source_exact, rx_counter, tx_counter, last_seen_at, \
           disconnected_at IS NULL AS open FROM connections \
         WHERE server_id = ?1 AND protocol = 'openvpn' \
           AND (disconnected_at IS NULL OR source IN (SELECT value FROM json_each(?2)))",
    )
    .bind(id.get())
    .bind(to_json(&sources)?)
    .fetch_all(&mut *tx)
    .await?;
    let mut before = Vec::with_capacity(rows.len());
    for r in &rows {
        before.push(SessionBefore {
            connection_id: r.try_get("id")?,
            source: r.try_get("source")?,
            since: r.try_get("source_since")?,
            since_exact: r.try_get("source_exact")?,
            counters: counters(r, "rx_counter", "tx_counter")?,
            last_seen: super::sqlite::instant(r.try_get("last_seen_at")?)?,
            open: r.try_get("open")?,
        });
    }
    let plan = plan_openvpn(&before, poll.status, first_poll);
    let outcome = write_openvpn(&mut tx, id, poll, &plan, &mut state).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn write_openvpn(
    tx: &mut Tx,
    id: ServerId,
    poll: &OpenvpnPoll<'_>,
    plan: &OpenvpnPlan<'_>,
    state: &mut ServerState,
) -> Result<PollOutcome, StoreError> {
    let at = secs(poll.at);
    roll_month(tx, state, poll.month).await?;
    let users: Vec<Value> =
        plan.users.iter().map(|(cn, u)| json!([cn, u.username, u.endpoint, u.virtual_ip])).collect();
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(users.len());
    if !users.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO clients (server_id, identity, username, endpoint, virtual_ip, seed_last_seen_at, \
               seed_on_host, first_seen_at, seed_last_sync_at) \
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, ?2, 1, ?2, ?2 \
             FROM json_each(?3) AS j WHERE true \
             ON CONFLICT (server_id, identity) DO UPDATE SET \
               username = COALESCE(excluded.username, clients.username), \
               endpoint = COALESCE(excluded.endpoint, clients.endpoint), \
               virtual_ip = COALESCE(excluded.virtual_ip, clients.virtual_ip) \
             RETURNING id, identity",
        )
        .bind(id.get())
        .bind(at)
        .bind(to_json(&users)?)
        .fetch_all(&mut **tx)
        .await?;
        let mut known: HashSet<i64> = state.clients.iter().map(|c| c.client_id).collect();
        for r in &rows {
            let client_id: i64 = r.try_get("id")?;
            let identity: String = r.try_get("identity")?;
            if known.insert(client_id) {
                state.clients.push(ClientState::new(client_id, identity.clone(), poll.month, at));
            }
            ids.insert(identity, client_id);
        }
    }
    // Users without a session in this poll are offline now.
    let mut samples = Vec::new();
    for c in &mut state.clients {
        match plan.users.get(&c.identity) {
            Some(u) => {
                c.count(u.delta);
                c.last_seen = Some(at);
                c.last_sync_at = at;
                c.on_host = true;
                if !u.delta.new.is_zero() {
                    samples.push(sample(c.client_id, u.delta.new));
                }
            }
            None => c.on_host = false,
        }
    }

    // Sessions that ended are closed first: a new session from the same
    // address may open in this very poll.
    if !plan.ended.is_empty() {
        let ended: Vec<[i64; 2]> = plan.ended.iter().map(|(conn, last)| [*conn, secs(*last)]).collect();
        sqlx::query(
            "UPDATE connections SET disconnected_at = MAX(j.value ->> 1, connected_at), \
               last_seen_at = MAX(last_seen_at, j.value ->> 1) \
             FROM json_each(?) AS j WHERE connections.id = j.value ->> 0",
        )
        .bind(to_json(&ended)?)
        .execute(&mut **tx)
        .await?;
    }
    let mut opens = Vec::new();
    let mut continues = Vec::new();
    for s in &plan.sessions {
        let session = s.session;
        let endpoint = session.real_address.clone();
        let since = session.connected_since.map(secs);
        match s.connection_id {
            None => {
                // A session's own counters are exact: all of them are its bytes.
                let cid = session.client_id;
                let Some(client) = ids.get(&session.common_name) else {
                    return Err(StoreError::Corrupt(format!("user {} has no client row", session.common_name)));
                };
                opens.push(json!([
                    client,
                    s.source,
                    format!(
                        "ovpn:{}:{}",
                        id,
                        cid.map(|c| c.to_string()).unwrap_or_else(|| endpoint.clone().unwrap_or_default())
                    ),
                    since.unwrap_or(at).min(at),
                    endpoint,
                    session.virtual_address.or(session.virtual_ipv6).map(|ip| ip.to_string()),
                    db_bytes(s.counters.rx),
                    db_bytes(s.counters.tx),
                    cid.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
                    since,
                    session.since_exact,
                ]));
            }
            Some(conn) => continues.push(json!([
                conn,
                db_bytes(s.delta.new.rx),
                db_bytes(s.delta.new.tx),
                db_bytes(s.counters.rx),
                db_bytes(s.counters.tx),
                endpoint,
                s.exact_since,
                s.exact_since.map(|t| t.min(at)),
                session.client_id.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            ])),
        }
    }
    if !opens.is_empty() {
        sqlx::query(
            "INSERT INTO connections (server_id, client_id, source, session_key, protocol, connected_at, \
               last_seen_at, endpoint, virtual_ip, rx, tx, rx_counter, tx_counter, openvpn_client_id, \
               source_since, source_exact) \
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, 'openvpn', j.value ->> 3, ?2, j.value ->> 4, \
               j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 6, j.value ->> 7, j.value ->> 8, \
               j.value ->> 9, j.value ->> 10 \
             FROM json_each(?3) AS j",
        )
        .bind(id.get())
        .bind(at)
        .bind(to_json(&opens)?)
        .execute(&mut **tx)
        .await?;
    }
    // Continuing sessions, and closed ones read again with more bytes
    // (reopened): their growth only.
    if !continues.is_empty() {
        sqlx::query(
            "UPDATE connections SET rx = rx + (j.value ->> 1), tx = tx + (j.value ->> 2), \
               rx_counter = j.value ->> 3, tx_counter = j.value ->> 4, last_seen_at = MAX(last_seen_at, ?1), \
               endpoint = COALESCE(j.value ->> 5, endpoint), disconnected_at = NULL, \
               source_since = COALESCE(j.value ->> 6, source_since), \
               source_exact = source_exact OR (j.value ->> 6) IS NOT NULL, \
               connected_at = COALESCE(j.value ->> 7, connected_at), \
               openvpn_client_id = COALESCE(j.value ->> 8, openvpn_client_id) \
             FROM json_each(?2) AS j WHERE connections.id = j.value ->> 0",
        )
        .bind(at)
        .bind(to_json(&continues)?)
        .execute(&mut **tx)
        .await?;
    }
    finish(tx, id, poll.at, poll.month, &samples, plan.new, plan.carried, state).await?;
    Ok(PollOutcome {
        applied: true,
        sources: plan.sessions.len(),
        new: plan.new,
        carried: plan.carried,
        sessions_opened: opens.len(),
        sessions_closed: plan.ended.len(),
    })
}
