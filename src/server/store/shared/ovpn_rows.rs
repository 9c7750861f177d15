//! An OpenVPN poll's planning glue, the same on both backends: the
//! sessions as known before the poll, the state carried forward, and the
//! rows (JSON arrays) the backend's statements write.

use crate::domain::ingest::{OpenvpnPlan, SessionBefore};
use crate::domain::openvpn::OvpnStatus;
use crate::domain::ServerId;
use crate::server::store::rows::{counters, db_bytes, instant, secs, Columns};
use crate::server::store::shared::poll_rows::sample;
use crate::server::store::state::{ClientState, ServerState};
use crate::server::store::{PollFigures, PollOutcome, StoreError};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// What finds the known sessions the poll reports again: their sources,
/// and the exact starts (a client whose address changed).
pub(in crate::server::store) fn session_keys(status: &OvpnStatus) -> (Vec<String>, Vec<i64>) {
    let sources: Vec<String> = status.sessions.iter().map(|s| s.source()).collect();
    let starts: Vec<i64> = status
        .sessions
        .iter()
        .filter(|s| s.since_exact)
        .filter_map(|s| s.connected_since.map(|t| t.timestamp()))
        .collect();
    (sources, starts)
}

/// A known session from its `connections` row (`id, source, source_since,
/// source_exact, openvpn_client_id, rx_counter, tx_counter, last_seen_at`
/// and `open`).
pub(in crate::server::store) fn session_before(r: &impl Columns) -> Result<SessionBefore, StoreError> {
    Ok(SessionBefore {
        connection_id: r.int("id")?,
        source: r.text("source")?,
        since: r.opt_int("source_since")?,
        since_exact: r.flag("source_exact")?,
        client_id: r.opt_int("openvpn_client_id")?.and_then(|c| u64::try_from(c).ok()),
        counters: counters(r, "rx_counter", "tx_counter")?,
        last_seen: instant(r.int("last_seen_at")?)?,
        open: r.flag("open")?,
    })
}

/// The poll's users as client rows to insert or update:
/// `[common_name, username, endpoint, virtual_ip]`.
pub(in crate::server::store) fn user_rows(plan: &OpenvpnPlan<'_>) -> Vec<Value> {
    plan.users.iter().map(|(cn, u)| json!([cn, u.username, u.endpoint, u.virtual_ip])).collect()
}

/// Carries the plan's users out on the state (in `month`, polled at `at`,
/// Unix seconds), given the `(client_id, identity)` of their client rows
/// ([`user_rows`]). Users without a session in this poll are offline now.
/// Returns the client id of each common name, and the raw samples.
pub(in crate::server::store) fn apply_users(
    plan: &OpenvpnPlan<'_>,
    month: &str,
    at: i64,
    state: &mut ServerState,
    rows: Vec<(i64, String)>,
) -> (HashMap<String, i64>, Vec<[i64; 3]>) {
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(rows.len());
    let mut known: HashSet<i64> = state.clients.iter().map(|c| c.client_id).collect();
    for (client_id, identity) in rows {
        if known.insert(client_id) {
            state.clients.push(ClientState::new(client_id, identity.clone(), month, at));
        }
        ids.insert(identity, client_id);
    }
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
    (ids, samples)
}

/// Sessions that ended: `[connection, disconnected_at]`.
pub(in crate::server::store) fn ended_rows(plan: &OpenvpnPlan<'_>) -> Vec<[i64; 2]> {
    plan.ended.iter().map(|(conn, last)| [*conn, secs(*last)]).collect()
}

/// The poll's sessions on server `id` at `at` (Unix seconds), given the
/// client id of each common name: sessions to open, `[client_id, source,
/// session_key, connected_at, endpoint, virtual_ip, rx, tx,
/// openvpn_client_id, source_since, source_exact (a JSON boolean)]`, and
/// known ones to continue or reopen, `[connection, new rx, new tx,
/// rx_counter, tx_counter, endpoint, exact source_since, connected_at,
/// openvpn_client_id, moved-to source]`.
pub(in crate::server::store) fn session_rows(
    id: ServerId,
    plan: &OpenvpnPlan<'_>,
    at: i64,
    ids: &HashMap<String, i64>,
) -> Result<(Vec<Value>, Vec<Value>), StoreError> {
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
                s.moved_to,
            ])),
        }
    }
    Ok((opens, continues))
}

/// What the poll did, once written (`opened`: sessions opened).
pub(in crate::server::store) fn poll_outcome(
    plan: &OpenvpnPlan<'_>,
    opened: usize,
    figures: PollFigures,
) -> PollOutcome {
    PollOutcome {
        applied: true,
        figures: Some(figures),
        sources: plan.sessions.len(),
        new: plan.new,
        carried: plan.carried,
        sessions_opened: opened,
        sessions_closed: plan.ended.len(),
    }
}
